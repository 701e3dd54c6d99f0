"""Both modes of `LearningRateCallback` in real `model.fit` runs on one Keras backend; used by the tests.

    KERAS_BACKEND=jax python _backend_fit.py URL RUN_ID OUT.json

The backend is fixed when Keras is imported, so each backend trains in its own process. Batch mode:
a warmup cosine `LearningRateSchedule` given to the callback (run `RUN_ID-batch`), the lr of every
batch and the schedule object's own value on this backend. Epoch mode: `EPOCH_SPEC` (run
`RUN_ID-epoch`) and the in-process Keras reference (`LearningRateScheduler` + `ReduceLROnPlateau`).
Writes what each fit trained with, and the requests each epoch cost, to OUT.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so `frameworks._keras_helpers` imports

import keras
from keras.optimizers import schedules

from frameworks._keras_helpers import (
    DECAY,
    EPOCH_SPEC,
    PLATEAU,
    LrRecorder,
    ScheduleWithPlateau,
    fit,
    keras_schedule_values,
    tiny_model,
)
from lrclient.keras import LearningRateCallback

WARMUP_COSINE = {"initial_learning_rate": 0.0, "decay_steps": 30, "warmup_target": 0.05, "warmup_steps": 6,
                 "alpha": 0.1}
BATCH_EPOCHS, BATCHES, EPOCHS = 4, 12, 10  # batch mode: batch_size 4 gives 12 batches per epoch


def schedule_values(schedule: schedules.LearningRateSchedule, steps: range) -> list[float]:
    """The schedule object's own value at each step on this backend (on JAX compiled once: eager is slow)."""
    if keras.backend.backend() != "jax":
        return keras_schedule_values(schedule, steps)
    import jax

    compiled = jax.jit(schedule)
    return [float(compiled(step)) for step in steps]


def requests_per_epoch(callback: LearningRateCallback) -> tuple[list[int], keras.callbacks.Callback]:
    counts: list[int] = []
    return counts, keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: counts.append(callback.rates.requests))


def batch_mode(url: str, run_id: str) -> dict:
    schedule = schedules.CosineDecay(**WARMUP_COSINE)
    callback = LearningRateCallback(run_id, base_url=url, spec=schedule)
    counts, count = requests_per_epoch(callback)
    trained = LrRecorder()
    history = fit(tiny_model(), [callback, trained, count], epochs=BATCH_EPOCHS, batch_size=4)
    return {"steps": sorted(trained.by_step), "lr": [trained.by_step[s] for s in sorted(trained.by_step)],
            "logged": history.history["learning_rate"], "requests": counts,
            "keras": schedule_values(schedule, range(BATCH_EPOCHS * BATCHES))}


def epoch_mode(url: str, run_id: str) -> dict:
    callback = LearningRateCallback(run_id, base_url=url, spec=EPOCH_SPEC)
    counts, count = requests_per_epoch(callback)
    trained = LrRecorder()
    history = fit(tiny_model(), [callback, trained, count], epochs=EPOCHS)
    reference = ScheduleWithPlateau(schedules.ExponentialDecay(**DECAY), keras.callbacks.ReduceLROnPlateau(**PLATEAU))
    in_process = LrRecorder()
    fit(tiny_model(), [reference, in_process], epochs=EPOCHS)
    return {"lr": [trained.by_epoch[e] for e in range(EPOCHS)], "logged": history.history["learning_rate"],
            "requests": counts, "keras": [in_process.by_epoch[e] for e in range(EPOCHS)],
            "keras_reductions": reference.reductions}


def main() -> int:
    url, run_id, out = sys.argv[1:4]
    result = {"backend": keras.backend.backend(), "batch": batch_mode(url, f"{run_id}-batch"),
              "epoch": epoch_mode(url, f"{run_id}-epoch")}
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
