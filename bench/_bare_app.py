"""The baseline: a bare FastAPI app with lrserve's response shapes and none of its work.

    python bench/_bare_app.py --port 8123

`GET /runs/{run_id}/lr?step=N` answers {"run_id", "step", "lr"} from one async endpoint, and
`GET /runs/{run_id}/lr/range` answers a JSON body built once and cached, so what remains is the
cost of the framework and the server, under the same uvicorn settings as `lrserve serve`.
"""

from __future__ import annotations

import argparse
import json
import math
from functools import lru_cache

from fastapi import FastAPI, Response

from _servers import UVICORN_OPTIONS

app = FastAPI()


def _cosine(step: int) -> float:
    return 0.001 * (0.5 * (1 + math.cos(math.pi * min(step, 100_000) / 100_000)))


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/runs/{run_id}/lr")
async def lr(run_id: str, step: int) -> dict[str, object]:
    return {"run_id": run_id, "step": step, "lr": _cosine(step)}


@lru_cache(maxsize=8)
def _prebuilt_range(run_id: str, start: int, stop: int, every: int) -> bytes:
    values = [_cosine(step) for step in range(start, stop, every)]
    body = {"run_id": run_id, "start": start, "stop": stop, "every": every, "lr": values}
    return json.dumps(body, separators=(",", ":")).encode()


@app.get("/runs/{run_id}/lr/range")
async def lr_range(run_id: str, start: int, stop: int, every: int = 1) -> Response:
    return Response(_prebuilt_range(run_id, start, stop, every), media_type="application/json")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
