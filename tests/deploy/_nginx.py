"""The real nginx, configured by deploy/nginx.conf, in front of local processes.

`nginx_in_front(upstream_urls)` renders deploy/nginx.conf with only what must differ on a test
machine replaced (the upstream `server` lines, the `listen` port, the pid file, the logs and the
temporary paths, all in a temporary directory), runs Debian's nginx in the foreground on a free
loopback port and stops it on exit. Everything else (balancing, retries, limits, headers) is the
file exactly as deployed. nginx is installed with apt-get when it is missing; a test that cannot
have it fails, it never skips.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from support import free_port, stop_process

NGINX_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
INSTALL_LOCK = Path(tempfile.gettempdir()) / "lrserve-tests-nginx-install.lock"


@contextmanager
def nginx_in_front(upstream_urls: Sequence[str], *, access_log: Path | None = None) -> Iterator[str]:
    """Yield the base URL of nginx balancing over `upstream_urls` (http://host:port), then stop it.

    `access_log`, when given, receives nginx's access log in deploy/nginx.conf's `lrserve` format
    (it names the replica that answered each request).
    """
    binary = nginx_binary()
    with tempfile.TemporaryDirectory(prefix="lrserve-nginx-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(render_nginx_conf(
            NGINX_CONF.read_text(), upstream_urls, port=port, workdir=workdir,
            access_log=access_log or workdir / "access.log", temp_paths=compiled_temp_paths(binary),
        ))
        error_log = workdir / "error.log"
        command = [binary, "-p", f"{workdir}/", "-e", str(error_log), "-c", str(conf)]
        checked = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True, timeout=30)
        if checked.returncode != 0:
            pytest.fail(f"nginx rejects the rendered deploy/nginx.conf:\n{checked.stderr}\n{conf.read_text()}")
        process = subprocess.Popen([*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT)
        try:
            wait_until_listening(port, process, error_log)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(process)


def render_nginx_conf(
    template: str, upstream_urls: Sequence[str], *, port: int, workdir: Path, access_log: Path,
    temp_paths: Sequence[str] = TEMP_PATHS,
) -> str:
    """deploy/nginx.conf with the machine-specific lines replaced; every one must be found."""
    if not upstream_urls:
        raise ValueError("nginx needs at least one upstream URL")
    text = _replace_once(template, r"^pid\s+\S+;", f"pid {workdir / 'nginx.pid'};")
    text = _replace_once(text, r"^error_log\s+\S+", f"error_log {workdir / 'error.log'}")
    text = _replace_once(text, r"^(\s*)access_log\s+\S+\s+lrserve;", rf"\1access_log {access_log} lrserve;")
    text = _replace_once(text, r"^(\s*)listen\s+\d+;", rf"\1listen 127.0.0.1:{port};")
    text = _replace_upstream_servers(text, upstream_urls)
    temp = "".join(f"    {name}_temp_path {workdir / name};\n" for name in temp_paths)
    text = _replace_once(text, r"^http \{\n", f"http {{\n{temp}")
    if os.geteuid() == 0:
        # As root, nginx's workers would switch to the build's default user (www-data), who cannot
        # read the temporary directory: run them as root, which is fine for a throwaway test server.
        text = f"user root;\n{text}"
    return text


def _replace_once(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    if count != 1:
        raise AssertionError(f"deploy/nginx.conf has no line matching {pattern!r} for the tests to replace")
    return new


def _replace_upstream_servers(text: str, upstream_urls: Sequence[str]) -> str:
    """Swap the `server` lines of `upstream lrserve` for the given URLs, keeping their parameters."""
    block = re.search(r"^(\s*)upstream lrserve \{\n(.*?)^\1\}", text, flags=re.MULTILINE | re.DOTALL)
    if block is None:
        raise AssertionError("deploy/nginx.conf has no `upstream lrserve { ... }` block")
    server = re.compile(r"^(\s*)server\s+\S+(.*);$")
    lines = block.group(2).splitlines(keepends=True)
    servers = [m for m in map(server.match, lines) if m]
    if not servers:
        raise AssertionError("`upstream lrserve` in deploy/nginx.conf lists no server")
    indent, parameters = servers[0].groups()
    replaced = "".join(f"{indent}server {_host_port(url)}{parameters};\n" for url in upstream_urls)
    body, placed = [], False
    for line in lines:
        if not server.match(line):
            body.append(line)
        elif not placed:
            body.append(replaced)
            placed = True
    return text[:block.start(2)] + "".join(body) + text[block.end(2):]


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"an upstream must be http://host:port, got {url!r}")
    return f"{parts.hostname}:{parts.port}"


def wait_until_listening(port: int, process: subprocess.Popen, error_log: Path, timeout: float = 10.0) -> None:
    """Until nginx accepts connections; fail at once, with its error log, if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = error_log.read_text() if error_log.exists() else ""
            pytest.fail(f"nginx exited with code {process.returncode} before listening:\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.02)
    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} within {timeout}s")


def compiled_temp_paths(binary: str) -> list[str]:
    """The temporary paths this nginx build has (a module built without has no such directive)."""
    built = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=30).stderr
    return [name for name in TEMP_PATHS
            if name in ("client_body", "proxy") or f"--without-http_{name}_module" not in built]


# --- the binary ------------------------------------------------------------------------------


def nginx_binary() -> str:
    """The nginx executable, installed with apt-get first if it is missing."""
    found = _installed_nginx()
    if found:
        return found
    with _exclusive(INSTALL_LOCK):  # pytest-xdist workers: one apt-get at a time
        found = _installed_nginx()
        if found:
            return found
        if os.geteuid() != 0:
            pytest.fail("nginx is not installed, and these tests are not root so cannot install it: "
                        "run `apt-get install -y nginx-light` (or `nginx`) as root")
        _apt_install()
        found = _installed_nginx()
        if not found:
            pytest.fail("apt-get installed nginx, but no `nginx` executable is on PATH or in /usr/sbin")
        return found


def _installed_nginx() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def _apt_install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait_for_dpkg = ["-o", "DPkg::Lock::Timeout=300"]
    output = []
    for command in (["apt-get", *wait_for_dpkg, "update"],
                    ["apt-get", *wait_for_dpkg, "install", "-y", "--no-install-recommends", "nginx-light"],
                    ["apt-get", *wait_for_dpkg, "install", "-y", "--no-install-recommends", "nginx"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        output.append(f"$ {' '.join(command)}\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        if result.returncode == 0 and command[-1] != "update":
            return
        if result.returncode != 0 and command[-1] == "update":
            break
    pytest.fail("nginx is not installed and apt-get could not install it:\n" + "\n".join(output))


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
