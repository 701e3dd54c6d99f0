"""Train N worker processes against one lrserve run, as a data-parallel job would; used by the tests.

    python _fit_workers.py URL RUN_ID OUT_DIR --workers 8 --epochs 6 --spec JSON

Keras is imported once, then N processes are forked (so N imports do not cost N times ~5 s); each
sets RANK like a launcher does, trains a tiny model with `LearningRateCallback(report="chief")` on
its own data shard, and writes `OUT_DIR/worker-RANK.json` with the lr it trained each epoch with.
Exits non-zero if any worker fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

os.environ["KERAS_BACKEND"] = "torch"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so `frameworks._keras_helpers` imports

import torch

from frameworks._keras_helpers import LrRecorder, fit, tiny_model


def train(rank: int, args: argparse.Namespace) -> None:
    from lrclient.keras import LearningRateCallback

    os.environ["RANK"] = str(rank)
    torch.set_num_threads(1)
    recorder = LrRecorder()
    callback = LearningRateCallback(args.run_id, base_url=args.url, spec=json.loads(args.spec), report="chief")
    history = fit(tiny_model(seed=rank), [callback, recorder], epochs=args.epochs, seed=rank)
    result = {"lr": [recorder.by_epoch[e] for e in range(args.epochs)],
              "logged": history.history["learning_rate"], "val_loss": history.history["val_loss"]}
    (Path(args.out) / f"worker-{rank}.json").write_text(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("run_id")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()

    children = []
    for rank in range(args.workers):
        pid = os.fork()
        if pid == 0:  # the worker: never return into the parent's code
            code = 0
            try:
                train(rank, args)
            except BaseException:  # noqa: BLE001 - reported on stderr, then the exit code says it
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    failed = [pid for pid in children if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
