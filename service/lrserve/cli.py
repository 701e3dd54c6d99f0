"""The `lrserve` command: `serve`, `preview` and `openapi`, and the commands for a running service
(`runs`, `range`, `plot`, `diff`, in `cli_client`). Parses arguments; the work happens elsewhere."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from lrserve.cli_args import at_least
from lrserve.cli_client import add_client_commands
from lrserve.settings import Settings, SettingsError, flags_as_env, masked_url

KEEP_ALIVE = 75
"""Seconds an idle keep-alive connection stays open. Longer than clients keep idle connections for reuse
(httpx and lrclient: 5 s, aiohttp: 15 s), so the server never closes one just as a client sends a request
on it (uvicorn's default, 5 s, equals httpx's, and the client then gets "connection reset by peer");
75 s is nginx's default."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrserve", description="Serve learning rates to training jobs.")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the HTTP service")
    # Numbers are parsed by Settings, not argparse, so that a bad flag and a bad variable get the same
    # one-line message.
    serve.add_argument("--host", help="interface to bind (env LRSERVE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", help="port (env LRSERVE_PORT, default 8000)")
    serve.add_argument("--database", help="sqlite:///path.db or postgresql://... "
                                          "(env LRSERVE_DATABASE_URL, default sqlite:///./lrserve.db)")
    serve.add_argument("--workers", help="processes serving the port (env LRSERVE_WORKERS, default 1)")
    serve.add_argument("--shutdown-timeout", metavar="SECONDS",
                       help="on SIGTERM, cut requests still running after this long "
                            "(env LRSERVE_SHUTDOWN_TIMEOUT, default 10)")
    serve.set_defaults(handler=_serve)

    preview = commands.add_parser("preview", help="print a spec's learning rates without a server")
    preview.add_argument("spec", type=Path, help="a JSON file with a run spec, or just a schedule")
    preview.add_argument("--steps", type=at_least(0), default=20, help="how many steps (default 20)")
    preview.add_argument("--every", type=at_least(1), default=1, help="print every K-th step (default 1)")
    preview.set_defaults(handler=_preview)

    openapi = commands.add_parser("openapi", help="print the OpenAPI document (regenerates openapi.json)")
    openapi.set_defaults(handler=_openapi)

    add_client_commands(commands, server_installed=_server_installed)
    return parser


def _server_installed(command: str) -> bool:
    """Whether the `server` extra is installed; if not, say how to install it, in one line."""
    missing = [name for name in ("fastapi", "uvicorn", "pydantic", "numpy", "orjson")
               if importlib.util.find_spec(name) is None]
    if missing:
        print(f"lrserve {command}: needs the server, which is not installed here (missing: {', '.join(missing)}); "
              "install it with: pip install 'lrserve[server]'", file=sys.stderr)
    return not missing


def _serve(args: argparse.Namespace) -> int:
    if not _server_installed("serve"):
        return 2
    flags = {"host": args.host, "port": args.port, "database_url": args.database,
             "workers": args.workers, "shutdown_timeout": args.shutdown_timeout}
    try:
        settings = Settings.from_env(os.environ, flags)
    except SettingsError as error:
        print(f"lrserve serve: {error}", file=sys.stderr)
        return 2
    try:
        from lrserve.store import open_store

        open_store(settings.database_url).close()
    except Exception as error:
        print(f"lrserve serve: cannot open the database {masked_url(settings.database_url)!r}: {error}",
              file=sys.stderr)
        return 2

    import uvicorn

    # One start path for any number of workers: each process (this one too, when there is one worker)
    # builds its app with `create_app()`, which reads the settings back from the environment.
    os.environ.update(flags_as_env(flags))
    metrics_dir = _shared_metrics_dir(settings.workers)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    print(_startup_line(settings), file=sys.stderr, flush=True)
    if not settings.auth and not _loopback(settings.host):
        print(f"lrserve serve: WARNING: serving on {settings.host} without a token: anyone who can reach "
              "this address can change or delete every run; set LRSERVE_TOKEN", file=sys.stderr, flush=True)
    # uvicorn annotates the timeout as int but hands it to asyncio.wait_for, which takes any seconds.
    deadline: Any = settings.shutdown_timeout
    try:
        uvicorn.run("lrserve.api:create_app", factory=True, host=settings.host, port=settings.port,
                    workers=settings.workers, timeout_graceful_shutdown=deadline, timeout_keep_alive=KEEP_ALIVE,
                    access_log=settings.access_log, log_level="info")
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _shared_metrics_dir(workers: int) -> str | None:
    """With several workers, GET /metrics must add up every worker's counters: prometheus-client does
    so through files in PROMETHEUS_MULTIPROC_DIR, which must exist (and start empty) before any worker
    imports it. Returns the directory made here, to remove on exit (None: one worker, or the operator's)."""
    if workers == 1:
        return None
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        for stale in Path(given).glob("*.db"):  # counters of an earlier start would be added in
            stale.unlink()
        return None
    made = tempfile.mkdtemp(prefix="lrserve-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM outside uvicorn's own handler: exit with status 0.

    uvicorn handles SIGTERM while it serves; after its graceful shutdown it raises the signal again for
    the handler that was there before it. With the default one that would kill the process (status
    -15) although it stopped as asked.
    """
    raise SystemExit(0)


def _startup_line(settings: Settings) -> str:
    from lrserve import __version__

    workers = f"{settings.workers} worker" + ("s" if settings.workers > 1 else "")
    return (f"lrserve {__version__}: http://{settings.host}:{settings.port}, {workers}, "
            f"database {masked_url(settings.database_url)}, auth {_auth(settings)}, "
            f"shutdown timeout {settings.shutdown_timeout:g} s")


def _auth(settings: Settings) -> str:
    if not settings.auth:
        return "off"
    tokens = f"{len(settings.tokens)} token" + ("s" if len(settings.tokens) > 1 else "")
    return f"on ({tokens}" + (f", {len(settings.read_tokens)} read-only)" if settings.read_tokens else ")")


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _preview(args: argparse.Namespace) -> int:
    if not _server_installed("preview"):
        return 2
    from lrserve.spec_file import SpecFileError, spec_file_lrs

    try:
        steps, values, warnings = spec_file_lrs(args.spec, 0, args.steps, args.every)
        for warning in warnings:
            print(f"lrserve preview: warning: {warning}", file=sys.stderr)
    except SpecFileError as error:
        print(f"lrserve preview: {error}", file=sys.stderr)
        return 2
    for step, value in zip(steps, values):
        print(f"{step}\t{value!r}")
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from lrserve.api import create_app

    # The document does not depend on the environment: default settings, whatever is set.
    print(json.dumps(create_app(Settings()).openapi(), indent=2, sort_keys=True))
    return 0
