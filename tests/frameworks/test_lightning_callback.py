"""lrclient.lightning.LearningRateCallback in real Lightning `Trainer.fit` runs on CPU against a real lrserve."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import lrclient
import pytest
import torch
from support import CountingTransport, Server
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")
from lrclient.lightning import LearningRateCallback  # noqa: E402 - needs lightning
from lrclient.torch import ServiceScheduler  # noqa: E402

BATCHES = 6  # 48 training samples in batches of 8; 16 validation samples
PLATEAU = {"factor": 0.5, "patience": 1, "threshold": 0.2, "cooldown": 1, "min_lr": 0.003}

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers:UserWarning", "ignore:.*log_every_n_steps:UserWarning")


def loaders(seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """A noisy linear problem whose validation loss stops improving after a few epochs."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + torch.randn(64, 1, generator=generator)
    return (DataLoader(TensorDataset(x[:48], y[:48]), batch_size=8),
            DataLoader(TensorDataset(x[48:], y[48:]), batch_size=16))


class Regression(pl.LightningModule):
    """A tiny model with two param groups at different lrs (so that "every group" can fail)."""

    def __init__(self, lrs: tuple[float, float] = (0.05, 0.005), plateau: dict[str, Any] | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.lrs, self.plateau = lrs, plateau

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = nn.functional.mse_loss(self.net(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", nn.functional.mse_loss(self.net(batch[0]), batch[1]))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD([{"params": self.net[0].parameters(), "lr": self.lrs[0]},
                                     {"params": self.net[2].parameters(), "lr": self.lrs[1]}])
        if self.plateau is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **self.plateau)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}


class LrRecorder(pl.Callback):
    """What each optimizer step really uses: every group's lr, keyed by global step; and per epoch."""

    def __init__(self) -> None:
        self.by_step: dict[int, list[float]] = {}
        self.by_epoch: dict[int, list[float]] = {}

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        lrs = [group["lr"] for group in optimizer.param_groups]
        self.by_step[trainer.global_step] = lrs
        self.by_epoch.setdefault(trainer.current_epoch, lrs)


class CountPerEpoch(pl.Callback):
    def __init__(self, counting: CountingTransport) -> None:
        self.counting, self.after_epoch = counting, []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.after_epoch.append(len(self.counting.requests))


def fit(module: pl.LightningModule, callbacks: list[pl.Callback], epochs: int, **kwargs: Any) -> pl.Trainer:
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=callbacks, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         **kwargs)
    train, val = loaders()
    trainer.fit(module, train, val)
    return trainer


@pytest.fixture
def counting_client(server: Server) -> Iterator[tuple[lrclient.Client, CountingTransport]]:
    counting = CountingTransport()
    with lrclient.Client(server.url, transport=counting) as client:
        yield client, counting


def per_epoch(counts: list[int]) -> list[int]:
    return [counts[0]] + [b - a for a, b in zip(counts, counts[1:])]


def test_a_batch_run_sets_every_steps_lr_on_every_group_with_one_request_per_epoch(
    counting_client: tuple[lrclient.Client, CountingTransport], run_id: str
) -> None:
    client, counting = counting_client
    spec = {"schedule": {"type": "cosine_decay", "initial_learning_rate": 0.0, "decay_steps": 24,
                         "warmup_target": 0.05, "warmup_steps": 6, "alpha": 0.1}, "step_unit": "batch"}
    trained, count = LrRecorder(), CountPerEpoch(counting)
    fit(Regression(), [LearningRateCallback(run_id, spec=spec, client=client), trained, count], epochs=5)

    served = list(client.lr_range(run_id, 0, 5 * BATCHES).lr)
    assert sorted(trained.by_step) == list(range(5 * BATCHES))
    assert [lrs[0] for lrs in trained.by_step.values()] == served
    assert [lrs[1] for lrs in trained.by_step.values()] == pytest.approx([lr * 0.1 for lr in served], rel=1e-12)
    assert len({lrs[0] for lrs in trained.by_step.values()}) == 5 * BATCHES, "the lr changes at every step"
    assert [r.step for r in client.reports(run_id)] == [BATCHES * e + BATCHES - 1 for e in range(5)]
    assert per_epoch(count.after_epoch) == [3, 1, 1, 1, 1], counting.requests


def test_gradient_accumulation_sets_the_lr_of_each_optimizer_step(server: Server, run_id: str) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.05, "decay_steps": 1,
                         "decay_rate": 0.8}, "step_unit": "batch"}
    trained = LrRecorder()
    fit(Regression(), [LearningRateCallback(run_id, base_url=server.url, spec=spec), trained], epochs=2,
        accumulate_grad_batches=2)

    with lrclient.Client(server.url) as client:
        assert sorted(trained.by_step) == list(range(BATCHES))  # 2 epochs x 3 optimizer steps
        assert [lrs[0] for lrs in trained.by_step.values()] == list(client.lr_range(run_id, 0, BATCHES).lr)
        assert [r.step for r in client.reports(run_id)] == [2, 5]


def test_an_epoch_run_with_a_plateau_matches_lightning_with_torch_reduce_lr_on_plateau(
    counting_client: tuple[lrclient.Client, CountingTransport], run_id: str
) -> None:
    """A constant schedule with the torch tracker, against the same module with its own ReduceLROnPlateau."""
    client, counting = counting_client
    spec = {"schedule": {"type": "constant", "learning_rate": 0.2},
            "plateau": {"monitor": "val_loss", "semantics": "torch", **PLATEAU}, "step_unit": "epoch"}
    served_run, count = LrRecorder(), CountPerEpoch(counting)
    fit(Regression(lrs=(0.2, 0.05)), [LearningRateCallback(run_id, spec=spec, client=client), served_run, count], epochs=12)
    in_process = LrRecorder()
    fit(Regression(lrs=(0.2, 0.05), plateau=PLATEAU), [in_process], epochs=12)

    reference = [in_process.by_epoch[e] for e in range(12)]
    assert len({lrs[0] for lrs in reference}) >= 3, "the data should make torch reduce at least twice"
    assert [served_run.by_epoch[e] for e in range(12)] == [pytest.approx(lrs, rel=1e-12) for lrs in reference]
    assert [served_run.by_epoch[e][0] for e in range(12)] == list(client.lr_range(run_id, 0, 12).lr)
    sent = client.reports(run_id)
    assert [r.step for r in sent] == list(range(12)), "once per validation, not for the sanity check"
    assert {name for r in sent for name in r.metrics} == {"val_loss"}, "not the training loss"
    assert per_epoch(count.after_epoch) == [3] + [1] * 11, "epoch runs: the answer's next_lr is the next lr"


def test_a_script_run_again_fails_before_training_with_the_ways_out(server: Server, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.05}, "step_unit": "epoch"}
    fit(Regression(), [LearningRateCallback(run_id, base_url=server.url, spec=spec)], epochs=2)
    trained = LrRecorder()

    with pytest.raises(lrclient.ReportsAhead, match=r"ckpt_path=.*epoch is 2") as raised:
        fit(Regression(), [LearningRateCallback(run_id, base_url=server.url, spec=spec), trained], epochs=2)
    assert "new run_id" in str(raised.value) and "rewind" in str(raised.value)
    assert trained.by_step == {}, "nothing was trained"


def test_metrics_chooses_what_is_reported(server: Server, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.05}, "step_unit": "epoch"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "monitored metric missing" warning: no plateau
        fit(Regression(), [LearningRateCallback(run_id, base_url=server.url, spec=spec, metrics="all")], epochs=2)

    with lrclient.Client(server.url) as client:
        assert [set(r.metrics) for r in client.reports(run_id)] == [{"train_loss", "val_loss"}] * 2


def test_a_run_resumed_from_a_checkpoint_after_a_crash_trains_as_the_uninterrupted_run(
    server: Server, run_id: str, tmp_path: Any
) -> None:
    """The job crashes after epoch 3; the run is rewound to epoch 2's report and `fit(ckpt_path=)` resumes there."""
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.2, "decay_steps": BATCHES,
                         "decay_rate": 0.9}, "plateau": {"monitor": "val_loss", "semantics": "torch", **PLATEAU},
            "step_unit": "batch"}

    def fit_saving(epochs: int, run: str, ckpt_path: str | None = None) -> LrRecorder:
        recorder = LrRecorder()
        saving = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / run, filename="{epoch}", save_top_k=-1)
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                             enable_model_summary=False, callbacks=[
                                 LearningRateCallback(run, base_url=server.url, spec=spec), recorder, saving])
        trainer.fit(Regression(), *loaders(), ckpt_path=ckpt_path)
        return recorder

    whole = fit_saving(8, f"{run_id}-whole")
    crashed = fit_saving(4, run_id)  # reports at epochs 0-3, then the job dies
    with lrclient.Client(server.url) as client:
        client.rewind(run_id, 3 * BATCHES - 1)  # the checkpoint of epoch 2 has its report, not epoch 3's
        resumed = fit_saving(8, run_id, ckpt_path=str(tmp_path / run_id / "epoch=2.ckpt"))

        assert sorted(resumed.by_step) == list(range(3 * BATCHES, 8 * BATCHES)), "resumed at epoch 3"
        assert crashed.by_step == {step: whole.by_step[step] for step in range(4 * BATCHES)}
        assert resumed.by_step == {step: whole.by_step[step] for step in range(3 * BATCHES, 8 * BATCHES)}
        assert [lrs[0] for lrs in whole.by_step.values()] == list(client.lr_range(run_id, 0, 8 * BATCHES).lr)
        lrs = [whole.by_step[BATCHES * e][0] / 0.9 ** e for e in range(8)]  # the plateau's factors by epoch
        assert lrs[3] > lrs[7] > 0, "the plateau should reduce the lr after the resume"
        assert [r.step for r in client.reports(run_id)] == [BATCHES * e + BATCHES - 1 for e in range(8)]


# --- without a callback: ServiceScheduler as the module's own lr scheduler -------------------------------


class ScheduledRegression(Regression):
    """`configure_optimizers` returns a `ServiceScheduler` stepped by Lightning at every optimizer step, and the
    module reports its validation loss itself at each validation's end: no callback at all."""

    def __init__(self, run_id: str, url: str, spec: dict[str, Any]) -> None:
        super().__init__()
        self.run_id, self.url, self.spec, self.val_losses = run_id, url, spec, []

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.val_losses.append(nn.functional.mse_loss(self.net(batch[0]), batch[1]).item())

    def on_validation_epoch_end(self) -> None:
        losses, self.val_losses = self.val_losses, []
        if not self.trainer.sanity_checking:
            self.lr_schedulers().report({"val_loss": sum(losses) / len(losses)})

    def configure_optimizers(self) -> Any:
        optimizer = super().configure_optimizers()
        scheduler = ServiceScheduler(optimizer, self.run_id, base_url=self.url, spec=self.spec)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def test_a_service_scheduler_in_configure_optimizers_follows_the_run_and_its_plateau_without_a_callback(
    server: Server, run_id: str
) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.05, "decay_steps": 6,
                         "decay_rate": 0.9}, "step_unit": "batch",
            "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 0, "min_delta": 10.0}}
    trained = LrRecorder()
    fit(ScheduledRegression(run_id, server.url, spec), [trained], epochs=4)

    with lrclient.Client(server.url) as client:
        served = list(client.lr_range(run_id, 0, 4 * BATCHES).lr)
        assert [r.step for r in client.reports(run_id)] == [BATCHES * e + BATCHES - 1 for e in range(4)]
        # The first report sets the best; each later one is no better by min_delta 10, and reduces.
        assert client.get_run(run_id).state.reductions == 3
    assert sorted(trained.by_step) == list(range(4 * BATCHES))
    assert [lrs[0] for lrs in trained.by_step.values()] == served, "every step, reductions from the next step on"
    assert [lrs[1] for lrs in trained.by_step.values()] == pytest.approx([lr * 0.1 for lr in served], rel=1e-12)
    assert served[2 * BATCHES] == pytest.approx(0.05 * 0.9 ** 2 * 0.5, rel=1e-12)  # the first reduction
