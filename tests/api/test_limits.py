"""Limits and probes: body size, liveness and readiness."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import running_server

MIB = 1 << 20


def padded_spec(total_bytes: int) -> bytes:
    """A run spec of exactly `total_bytes` bytes; the padding is an unknown field."""
    head = json.dumps({"schedule": {"type": "constant", "learning_rate": 0.1}, "padding": ""})
    body = head[:-2] + "x" * (total_bytes - len(head)) + head[-2:]
    assert len(body) == total_bytes
    return body.encode()


def test_a_body_over_1_mib_is_413(api: httpx.Client, run_id: str) -> None:
    response = api.put(f"/runs/{run_id}", content=padded_spec(MIB + 1), headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert isinstance(response.json()["detail"], str)
    assert api.get(f"/runs/{run_id}").status_code == 404


def test_a_body_of_exactly_1_mib_is_read_and_judged_on_its_content(api: httpx.Client, run_id: str) -> None:
    response = api.put(f"/runs/{run_id}", content=padded_spec(MIB), headers={"Content-Type": "application/json"})

    assert response.status_code == 422  # the unknown field `padding`, not the size
    assert "padding" in response.json()["detail"]


def test_a_chunked_body_over_1_mib_is_413(api: httpx.Client, run_id: str) -> None:
    body = padded_spec(2 * MIB)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = api.put(f"/runs/{run_id}", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413


def test_a_huge_metrics_report_is_413(api: httpx.Client, run_id: str) -> None:
    api.put(f"/runs/{run_id}", json={"schedule": {"type": "constant", "learning_rate": 0.1}})
    metrics = {f"metric_{i:07d}": 0.5 for i in range(60_000)}  # about 1.3 MB of JSON

    response = api.post(f"/runs/{run_id}/metrics", json={"step": 0, "metrics": metrics})

    assert response.status_code == 413
    assert api.get(f"/runs/{run_id}/metrics").json()["reports"] == []


def test_healthz_says_ok(api: httpx.Client) -> None:
    response = api.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_is_200_when_the_database_is_there(api: httpx.Client) -> None:
    assert api.get("/readyz").status_code == 200


def test_readyz_is_503_once_the_sqlite_file_is_deleted(tmp_path: Path) -> None:
    path = tmp_path / "lrserve.db"
    with running_server(f"sqlite:///{path}") as server, httpx.Client(base_url=server.url) as client:
        assert client.put("/runs/r", json={"schedule": {"type": "constant", "learning_rate": 0.1}}).status_code == 201
        assert client.get("/readyz").status_code == 200
        assert path.exists()

        for each in tmp_path.iterdir():  # the file and its -wal / -shm / -journal companions
            os.remove(each)

        response = client.get("/readyz")
        assert response.status_code == 503
        assert isinstance(response.json()["detail"], str)
        head = client.head("/readyz")
        assert (head.status_code, head.content) == (503, b"")
        assert client.get("/healthz").json()["status"] == "ok"  # liveness touches no storage


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_json(api: httpx.Client, path: str) -> None:
    assert api.get(path).headers["content-type"].startswith("application/json")


def raw_request(server_url: str, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes as they are (no client library would send these framings) and read the answer."""
    import socket

    host, port = server_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while True:  # the server closes the connection after such an answer
            chunk = sock.recv(65536)
            if not chunk:
                return answer
            answer += chunk


def test_content_length_with_transfer_encoding_is_400_and_the_body_limit_holds(server, run_id: str) -> None:
    """The smuggling framing: a small declared length, and a chunked body far over the limit."""
    big = b'{"step": 0, "metrics": {"val_loss": 1.0, "pad": "' + b"x" * (2 * MIB) + b'"}}'
    chunked = b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n"
    head = (f"POST /runs/{run_id}/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n").encode()

    answer = raw_request(server.url, head, chunked[: 64 * 1024])  # refused on its headers, before the body

    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"not both" in answer
