"""No request stalls the others: while heavy specs are being validated or checked, /healthz and a
metric report still answer promptly (each test measures them from another thread)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

HEAVY = "0.001 * (1 + sin(step / 7) ** 2) * exp(-step / 5000) + 0.0001 * cos(step / 3) ** 2 + " * 6 + "0.0001"
"""About 290 syntax nodes: near the 300 an expression may have."""


def leaf() -> dict:
    return {"type": "expression", "expression": HEAVY}


def nested_spec(leaves: int, groups: int = 28) -> dict:
    """A sequence of `groups` sequences holding `leaves` expression leaves (the shape of the 1 MiB attack)."""
    groups = [leaves // groups + (1 if i < leaves % groups else 0) for i in range(groups)]
    children = [{"type": "sequence", "boundaries": list(range(1, n)), "schedules": [leaf() for _ in range(n)]}
                for n in groups if n]
    return {"schedule": {"type": "sequence", "boundaries": list(range(1, len(children))), "schedules": children}}


def slowest_while(url: str, heavy: Callable[[], None], copies: int = 6, probes: int = 30) -> tuple[float, float]:
    """Run `heavy` in `copies` threads; meanwhile time /healthz and a report. The slowest probe and the
    heavy work's wall time, in seconds: a server whose event loop ran the heavy work would keep a probe
    waiting for about all of it, one that takes turns in the thread pool answers it in a small fraction."""
    done = threading.Event()
    latencies: list[float] = []

    def probe() -> None:
        with httpx.Client(base_url=url, timeout=60) as api:
            api.put("/runs/probe", json={"schedule": {"type": "constant", "learning_rate": 0.1}})
            step = 0
            while not done.is_set() or step < probes:
                for request in (lambda: api.get("/healthz"),
                                lambda: api.post("/runs/probe/metrics", json={"step": step, "metrics": {"loss": 1.0}})):
                    started = time.monotonic()
                    assert request().status_code == 200
                    latencies.append(time.monotonic() - started)
                step += 1
                time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    started = time.monotonic()
    with ThreadPoolExecutor(copies) as pool:
        list(pool.map(lambda _: heavy(), range(copies)))
    heavy_seconds = time.monotonic() - started
    done.set()
    prober.join()
    return max(latencies), heavy_seconds


def promptly(slowest: float, heavy_seconds: float) -> bool:
    """Under 0.6 s, or, on a machine busy enough that the heavy work itself took much longer than usual
    (other test processes on the same cores), under a quarter of the heavy work's wall time."""
    return slowest < max(0.6, heavy_seconds / 4)


def test_specs_with_too_many_schedules_are_refused_before_parsing_without_stalling_anyone(server) -> None:
    body = json.dumps(nested_spec(1792)).encode()
    assert 900_000 < len(body) < 1 << 20, len(body)

    def put() -> None:
        response = httpx.put(f"{server.url}/runs/attack", content=body, timeout=60,
                             headers={"content-type": "application/json"})
        assert response.status_code == 422 and "at most 64 schedules" in response.json()["detail"]

    assert promptly(*slowest_while(server.url, put))


def test_heavy_specs_at_the_limit_are_checked_without_stalling_anyone(server, run_id: str) -> None:
    """Twelve at once, each about 0.15 s of validation and checking: they take turns in the thread pool
    (`lrserve.heavy`), so the event loop keeps its share of the CPU and the probes stay well under a second."""
    spec = nested_spec(60, groups=3)  # 1 + 3 + 60 = 64 schedules, the most a spec may hold
    names = iter(range(1000))

    def put() -> None:
        response = httpx.put(f"{server.url}/runs/{run_id}-{next(names)}", json=spec, timeout=60)
        assert response.status_code == 201, response.text

    assert promptly(*slowest_while(server.url, put, copies=12))
