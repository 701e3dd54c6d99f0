"""lrclient.transformers.LearningRateCallback in a real `Trainer.train()` against a real lrserve process."""

from __future__ import annotations

from typing import Any

import httpx
import lrclient
import pytest
import torch
from support import CountingTransport, Server
from lrclient.transformers import LearningRateCallback
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

MAX_STEPS = 12  # optimizer steps; 24 batches of 4 with gradient_accumulation_steps=2
EVAL_STEPS = 3


class TinyRegression(nn.Module):
    """A model built locally (no download) that answers as a Hugging Face model does: {"loss": ...}."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x), labels)}


def dataset(samples: int, seed: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + torch.randn(samples, 1, generator=generator)
    return [{"x": x[i], "labels": y[i]} for i in range(samples)]


class UsedLearningRates(TrainerCallback):
    """Every param group's lr as `optimizer.step()` used it, and every logged learning_rate."""

    def __init__(self) -> None:
        self.used: list[list[float]] = []
        self.logged: list[tuple[int, float]] = []

    def on_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        self.used.append([group["lr"] for group in optimizer.param_groups])

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs and "learning_rate" in logs:
            self.logged.append((state.global_step, logs["learning_rate"]))


def train(tmp_path: Any, callback: LearningRateCallback, scheduler: str = "linear") -> UsedLearningRates:
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to=[], max_steps=MAX_STEPS, per_device_train_batch_size=4,
        gradient_accumulation_steps=2, eval_strategy="steps", eval_steps=EVAL_STEPS, logging_steps=1,
        learning_rate=0.123, lr_scheduler_type=scheduler, warmup_steps=2, save_strategy="no", optim="sgd",
        dataloader_num_workers=0, disable_tqdm=True,
    )
    recorder = UsedLearningRates()
    trainer = Trainer(model=TinyRegression(), args=args, train_dataset=dataset(96, 0), eval_dataset=dataset(16, 1),
                      callbacks=[callback, recorder])
    trainer.train()
    return recorder


def service_lrs(server: Server, run_id: str) -> list[float]:
    response = httpx.get(f"{server.url}/runs/{run_id}/lr/range", params={"start": 0, "stop": MAX_STEPS})
    response.raise_for_status()
    return response.json()["lr"]


@pytest.mark.parametrize("scheduler", ["linear", "constant"])
def test_every_optimizer_step_uses_the_runs_lr_whatever_the_trainers_own_scheduler(
    server: Server, run_id: str, tmp_path: Any, scheduler: str
) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.05, "decay_steps": 2,
                         "decay_rate": 0.7}, "step_unit": "batch"}
    recorder = train(tmp_path, LearningRateCallback(run_id, server.url, spec=spec), scheduler)

    expected = service_lrs(server, run_id)
    assert len(recorder.used) == MAX_STEPS  # one lr per optimizer step, not per micro-batch
    assert recorder.used == [[lr, lr] for lr in expected]  # the Trainer's two groups (decay / no decay)
    assert len(set(expected)) == MAX_STEPS, "the schedule should change every step, so an off-by-one can fail"
    assert recorder.logged == [(step + 1, expected[step]) for step in range(MAX_STEPS)]


def test_a_plateau_reduces_after_evaluations_that_do_not_improve_eval_loss(
    server: Server, run_id: str, tmp_path: Any
) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.05}, "step_unit": "batch",
            "plateau": {"monitor": "eval_loss", "factor": 0.5, "patience": 0, "threshold": 0.999,
                        "semantics": "torch"}}
    counting = CountingTransport()
    with lrclient.Client(server.url, transport=counting) as client:
        recorder = train(tmp_path, LearningRateCallback(run_id, client=client, spec=spec))
        requests = list(counting.requests)
        reports = client.reports(run_id)

    assert [r.step for r in reports] == [EVAL_STEPS * n - 1 for n in range(1, MAX_STEPS // EVAL_STEPS + 1)]
    assert all("eval_loss" in r.metrics for r in reports) and not any("loss" in r.metrics for r in reports)
    assert [r.reduced for r in reports] == [False, True, True, True]  # nothing improves by 99.9 %
    expected = service_lrs(server, run_id)
    assert [used[0] for used in recorder.used] == expected
    assert expected == [0.05] * 6 + [0.025] * 3 + [0.0125] * 3  # a reduction acts from the next step on
    # open (PUT the spec, one lr/range for all 12 steps), then per evaluation its report, and one lr/range
    # before the next step after a report that reduced (the last reduction acts after training)
    assert [method for method, _ in requests] == ["PUT", "GET", "POST", "POST", "GET", "POST", "GET", "POST"]


def test_a_run_with_reports_ahead_fails_before_training(server: Server, run_id: str, tmp_path: Any) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.05}, "step_unit": "batch"}
    train(tmp_path, LearningRateCallback(run_id, server.url, spec=spec, metrics="all"))
    recorder_calls: list[int] = []

    class Count(TrainerCallback):
        def on_optimizer_step(self, *args: Any, **kwargs: Any) -> None:
            recorder_calls.append(1)

    with pytest.raises(lrclient.ReportsAhead, match="resume_from_checkpoint"):
        args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], max_steps=2,
                                 per_device_train_batch_size=4, save_strategy="no", disable_tqdm=True)
        Trainer(model=TinyRegression(), args=args, train_dataset=dataset(16, 0),
                callbacks=[LearningRateCallback(run_id, server.url, spec=spec, metrics="all"), Count()]).train()
    assert recorder_calls == []


class Crash(Exception):
    pass


class CrashBefore(TrainerCallback):
    """Kills the training (as a crash would) before the optimizer step `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise Crash


def test_resume_from_a_checkpoint_after_a_rewind_trains_with_the_uninterrupted_lrs(
    server: Server, run_id: str, tmp_path: Any
) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.05, "decay_steps": 2,
                         "decay_rate": 0.8}, "step_unit": "batch",
            "plateau": {"monitor": "eval_loss", "factor": 0.5, "patience": 1, "threshold": 0.999,
                        "semantics": "torch"}}
    uninterrupted = train(tmp_path / "a", LearningRateCallback(f"{run_id}-a", server.url, spec=spec)).used

    def trainer(callbacks: list) -> Trainer:
        args = TrainingArguments(
            output_dir=str(tmp_path / "b"), use_cpu=True, report_to=[], max_steps=MAX_STEPS,
            per_device_train_batch_size=4, gradient_accumulation_steps=2, eval_strategy="steps",
            eval_steps=EVAL_STEPS, save_strategy="steps", save_steps=6, learning_rate=0.123, optim="sgd",
            disable_tqdm=True)
        return Trainer(model=TinyRegression(), args=args, train_dataset=dataset(96, 0),
                       eval_dataset=dataset(16, 1), callbacks=callbacks)

    with lrclient.Client(server.url) as client:
        with pytest.raises(Crash):  # after the evaluation at step 9 (reported at step 8); checkpoint-6 is the last
            trainer([LearningRateCallback(f"{run_id}-b", client=client, spec=spec), CrashBefore(9)]).train()
        with pytest.raises(lrclient.ReportsAhead):  # the reports after the checkpoint are still there
            trainer([LearningRateCallback(f"{run_id}-b", client=client)]).train(
                resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-6"))
        client.rewind(f"{run_id}-b", 5)
        recorder = UsedLearningRates()
        trainer([LearningRateCallback(f"{run_id}-b", client=client), recorder]).train(
            resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-6"))
        reduced = [r.reduced for r in client.reports(f"{run_id}-b")]

    assert reduced == [False, False, True, False]  # patience 1: the reduction at step 8 needs the wait of step 5
    assert recorder.used == uninterrupted[6:]
    assert uninterrupted == [[lr, lr] for lr in service_lrs(server, f"{run_id}-a")]


def test_param_groups_of_an_optimizer_of_ones_own_keep_their_ratio(server: Server, run_id: str, tmp_path: Any) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.05, "decay_steps": 2,
                         "decay_rate": 0.7}, "step_unit": "batch"}
    model = TinyRegression()
    optimizer = torch.optim.SGD([{"params": [model.linear.weight], "lr": 0.2},
                                 {"params": [model.linear.bias], "lr": 0.02}])
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], max_steps=4,
                             per_device_train_batch_size=4, save_strategy="no", disable_tqdm=True)
    recorder = UsedLearningRates()
    Trainer(model=model, args=args, train_dataset=dataset(16, 0), optimizers=(optimizer, None),
            callbacks=[LearningRateCallback(run_id, server.url, spec=spec), recorder]).train()

    assert recorder.used == [[lr, lr * (0.02 / 0.2)] for lr in service_lrs(server, run_id)[:4]]
