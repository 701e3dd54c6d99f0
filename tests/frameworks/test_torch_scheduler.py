"""ServiceScheduler in real PyTorch training loops against a real lrserve process."""

from __future__ import annotations

import copy
import io
import math
import time
import warnings
from collections.abc import Iterator

import httpx
import lrclient
import pytest
import torch
from support import CountingTransport, Server
from lrclient.torch import ServiceScheduler
from torch import nn

BATCHES_PER_EPOCH = 6


def regression(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A noisy linear problem: 48 training samples in batches of 8, 16 validation samples."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + torch.randn(64, 1, generator=generator)
    return x[:48], y[:48], x[48:], y[48:]


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def two_groups(model: nn.Module, lr: float = 0.01) -> torch.optim.SGD:
    """Two param groups, so that "every group gets the lr" can fail."""
    return torch.optim.SGD([{"params": model[0].parameters()}, {"params": model[2].parameters()}], lr=lr)


def sgd(model: nn.Module, lrs: list[float]) -> torch.optim.SGD:
    """Two or three param groups, each at its own lr (the weights and biases of a tiny model split up)."""
    params = list(model.parameters())
    split = {2: [[0, 1], [2, 3]], 3: [[0], [1], [2, 3]]}[len(lrs)]
    return torch.optim.SGD([{"params": [params[i] for i in group], "lr": lr} for group, lr in zip(split, lrs)])


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: tuple[torch.Tensor, ...],
                    after_batch=lambda: None) -> list[list[float]]:
    """One epoch; returns every group's lr at each optimizer.step()."""
    x, y, _, _ = data
    used = []
    for batch in range(BATCHES_PER_EPOCH):
        xs, ys = x[batch * 8:(batch + 1) * 8], y[batch * 8:(batch + 1) * 8]
        optimizer.zero_grad()
        nn.functional.mse_loss(model(xs), ys).backward()
        used.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        after_batch()
    return used


def validation_loss(model: nn.Module, data: tuple[torch.Tensor, ...]) -> float:
    _, _, val_x, val_y = data
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(val_x), val_y))


@pytest.fixture
def client(server: Server) -> Iterator[lrclient.Client]:
    with lrclient.Client(server.url) as shared:
        yield shared


def service_history(server: Server, run_id: str, stop: int) -> list[float]:
    response = httpx.get(f"{server.url}/runs/{run_id}/lr/range", params={"start": 0, "stop": stop})
    response.raise_for_status()
    return response.json()["lr"]


def test_per_batch_training_uses_the_service_lr_at_every_step(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    spec = {
        "schedule": {"type": "one_cycle", "max_lr": 0.05, "total_steps": 48},
        "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 0, "threshold": 0.1, "semantics": "torch"},
        "step_unit": "batch",
    }
    data, model = regression(0), tiny_model()
    optimizer = two_groups(model)
    scheduler = ServiceScheduler(optimizer, run_id, client=client, spec=spec, horizon=BATCHES_PER_EPOCH)
    used: list[list[float]] = []
    for _ in range(8):
        used += train_one_epoch(model, optimizer, data, after_batch=scheduler.step)
        scheduler.report({"val_loss": validation_loss(model, data)})

    served = service_history(server, run_id, 48)
    assert used == [[lr, lr] for lr in served]
    assert scheduler.get_last_lr() == [service_history(server, run_id, 49)[48]] * 2
    sent = client.reports(run_id)
    assert [r.step for r in sent] == [6 * e + 5 for e in range(8)]
    assert any(r.reduced for r in sent), "the plateau should have reduced the lr at least once"


def test_per_epoch_training_matches_torch_reduce_lr_on_plateau(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    """A constant schedule with the torch tracker, against an identical twin driven by the real scheduler."""
    plateau = {"factor": 0.5, "patience": 1, "threshold": 0.1, "cooldown": 1, "min_lr": 0.003}
    spec = {"schedule": {"type": "constant", "learning_rate": 0.05},
            "plateau": {"monitor": "val_loss", "semantics": "torch", **plateau}, "step_unit": "epoch"}
    data = regression(0)
    model = tiny_model()
    twin = copy.deepcopy(model)
    optimizer, twin_optimizer = two_groups(model), two_groups(twin, lr=0.05)
    scheduler = ServiceScheduler(optimizer, run_id, client=client, spec=spec)
    torch_scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(twin_optimizer, **plateau)
    service_lrs, torch_lrs = [], []
    for _ in range(12):
        service_lrs.append(train_one_epoch(model, optimizer, data)[0])
        torch_lrs.append(train_one_epoch(twin, twin_optimizer, data)[0])
        scheduler.step(validation_loss(model, data))
        torch_scheduler.step(validation_loss(twin, data))

    assert len({lrs[0] for lrs in torch_lrs}) >= 3, "the data should make torch reduce at least twice"
    assert service_lrs == [pytest.approx(lrs, rel=1e-12) for lrs in torch_lrs]
    assert [lrs[0] for lrs in service_lrs] == service_history(server, run_id, 12)


def test_the_state_dict_holds_only_the_run_and_position_and_resumes_there(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    spec = {"schedule": {"type": "step_decay", "initial_learning_rate": 0.1, "step_size": 2, "gamma": 0.5},
            "plateau": {"monitor": "val_loss", "patience": 0, "factor": 0.5}}
    scheduler = ServiceScheduler(torch.optim.SGD(tiny_model().parameters(), lr=1.0), run_id, client=client,
                                 spec=spec)
    for epoch in range(5):
        scheduler.step({"val_loss": 1.0 + epoch % 2})  # alternately worse: reductions

    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer)
    resumed = ServiceScheduler(torch.optim.SGD(tiny_model().parameters(), lr=1.0), run_id, client=client)
    resumed.load_state_dict(state)

    assert state == {"run_id": run_id, "last_epoch": 5}
    assert resumed.get_last_lr() == scheduler.get_last_lr() == [service_history(server, run_id, 6)[5]]
    resumed.step({"val_loss": 0.5})
    assert resumed.get_last_lr() == [service_history(server, run_id, 7)[6]]
    assert resumed.optimizer.param_groups[0]["lr"] == resumed.get_last_lr()[0]


def test_a_state_dict_of_another_run_is_refused(server: Server, client: lrclient.Client, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.1}}
    scheduler = ServiceScheduler(torch.optim.SGD(tiny_model().parameters()), run_id, client=client, spec=spec)
    with pytest.raises(ValueError, match="belongs to run 'other'"):
        scheduler.load_state_dict({"run_id": "other", "last_epoch": 3})


def test_construction_sets_the_lr_of_step_zero_like_a_torch_scheduler(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.2, "decay_steps": 1,
                         "decay_rate": 0.5}, "step_unit": "batch"}
    optimizer = two_groups(tiny_model(), lr=1.0)
    scheduler = ServiceScheduler(optimizer, run_id, client=client, spec=spec)

    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    assert [g["lr"] for g in optimizer.param_groups] == scheduler.get_last_lr() == [0.2, 0.2]
    scheduler.step()
    assert scheduler.last_epoch == 1 and scheduler.get_last_lr() == [0.1, 0.1]


def test_a_bare_number_needs_a_plateau_to_name_its_metric(server: Server, client: lrclient.Client, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.1}}
    scheduler = ServiceScheduler(torch.optim.SGD(tiny_model().parameters()), run_id, client=client, spec=spec)
    with pytest.raises(ValueError, match="this run has none"):
        scheduler.step(0.5)
    scheduler.step({"val_loss": math.nan})
    assert math.isnan(client.reports(run_id)[0].metrics["val_loss"])


def test_only_the_chief_reports_and_the_other_workers_follow_its_lr(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.1},
            "plateau": {"monitor": "val_loss", "patience": 0, "factor": 0.5, "semantics": "torch"}}
    chief = ServiceScheduler(torch.optim.SGD(tiny_model().parameters()), run_id, client=client, spec=spec,
                             report="chief", is_chief=lambda: True)
    worker = ServiceScheduler(torch.optim.SGD(tiny_model().parameters()), run_id, client=client, spec=spec,
                              report="chief", is_chief=lambda: False)
    for loss in (1.0, 2.0, 3.0):
        chief.step(loss)
        worker.step(loss + 10)  # its own local loss: never sent, or it would be a 409
        assert worker.get_last_lr() == chief.get_last_lr()

    assert [r.metrics for r in client.reports(run_id)] == [{"val_loss": 1.0}, {"val_loss": 2.0}, {"val_loss": 3.0}]
    assert worker.get_last_lr() == [service_history(server, run_id, 4)[3]] != [0.1]


# --- param groups ----------------------------------------------------------------------------


def test_two_param_groups_follow_step_lr_each_from_its_own_initial_lr(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    spec = {"schedule": {"type": "step_decay", "initial_learning_rate": 0.1, "step_size": 3, "gamma": 0.5}}
    data, model = regression(0), tiny_model()
    twin = copy.deepcopy(model)
    optimizer, twin_optimizer = sgd(model, [0.1, 0.02]), sgd(twin, [0.1, 0.02])
    scheduler = ServiceScheduler(optimizer, run_id, client=client, spec=spec)
    reference = torch.optim.lr_scheduler.StepLR(twin_optimizer, step_size=3, gamma=0.5)
    used, expected = [], []
    for _ in range(10):
        used += train_one_epoch(model, optimizer, data)
        expected += train_one_epoch(twin, twin_optimizer, data)
        scheduler.step({"val_loss": validation_loss(model, data)})
        reference.step()

    assert used == [pytest.approx(lrs, rel=1e-12) for lrs in expected]
    assert [lrs[0] for lrs in used[::BATCHES_PER_EPOCH]] == service_history(server, run_id, 10)
    assert len({lrs[1] for lrs in used}) == 4, "the second group decays too, from 0.02"
    assert validation_loss(model, data) == pytest.approx(validation_loss(twin, data), rel=1e-6)


def test_three_param_groups_follow_multistep_lr_at_every_batch(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    spec = {"schedule": {"type": "multistep_decay", "initial_learning_rate": 0.1, "milestones": [10, 30],
                         "gamma": 0.3}, "step_unit": "batch"}
    data, model = regression(1), tiny_model()
    twin = copy.deepcopy(model)
    optimizer, twin_optimizer = sgd(model, [0.1, 0.05, 0.001]), sgd(twin, [0.1, 0.05, 0.001])
    scheduler = ServiceScheduler(optimizer, run_id, client=client, spec=spec)
    reference = torch.optim.lr_scheduler.MultiStepLR(twin_optimizer, milestones=[10, 30], gamma=0.3)
    used, expected = [], []
    for _ in range(8):
        used += train_one_epoch(model, optimizer, data, after_batch=scheduler.step)
        expected += train_one_epoch(twin, twin_optimizer, data, after_batch=reference.step)
        scheduler.report({"val_loss": validation_loss(model, data)})

    assert used == [pytest.approx(lrs, rel=1e-12) for lrs in expected]
    assert [lrs[0] for lrs in used] == service_history(server, run_id, 48)
    assert sorted({lrs[2] for lrs in used}) == pytest.approx([0.00009, 0.0003, 0.001], rel=1e-12)


def test_explicit_scales_follow_one_cycle_with_a_max_lr_per_group(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    spec = {"schedule": {"type": "one_cycle", "max_lr": 0.05, "total_steps": 48, "cycle_momentum": False},
            "step_unit": "batch"}
    data, model = regression(2), tiny_model()
    twin = copy.deepcopy(model)
    optimizer, twin_optimizer = sgd(model, [0.01] * 3), sgd(twin, [0.01] * 3)
    scheduler = ServiceScheduler(optimizer, run_id, client=client, spec=spec, scales=[1.0, 0.5, 0.1])
    reference = torch.optim.lr_scheduler.OneCycleLR(twin_optimizer, max_lr=[0.05, 0.025, 0.005], total_steps=48,
                                                    cycle_momentum=False)
    used, expected = [], []
    for _ in range(8):
        used += train_one_epoch(model, optimizer, data, after_batch=scheduler.step)
        expected += train_one_epoch(twin, twin_optimizer, data, after_batch=reference.step)

    assert used == [pytest.approx(lrs, rel=1e-12) for lrs in expected]
    assert [lrs[0] for lrs in used] == service_history(server, run_id, 48)
    assert validation_loss(model, data) == pytest.approx(validation_loss(twin, data), rel=1e-6)


def test_two_param_groups_at_different_lrs_match_torch_reduce_lr_on_plateau(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    plateau = {"factor": 0.5, "patience": 0, "threshold": 0.1, "cooldown": 1}
    spec = {"schedule": {"type": "constant", "learning_rate": 0.1},
            "plateau": {"monitor": "val_loss", "semantics": "torch", **plateau}}
    data, model = regression(0), tiny_model()
    twin = copy.deepcopy(model)
    optimizer, twin_optimizer = sgd(model, [0.1, 0.01]), sgd(twin, [0.1, 0.01])
    scheduler = ServiceScheduler(optimizer, run_id, client=client, spec=spec)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(twin_optimizer, **plateau)
    used, expected = [], []
    for _ in range(12):
        used += train_one_epoch(model, optimizer, data)
        expected += train_one_epoch(twin, twin_optimizer, data)
        scheduler.step(validation_loss(model, data))
        reference.step(validation_loss(twin, data))

    assert len({lrs[1] for lrs in expected}) >= 3, "the data should make torch reduce at least twice"
    assert used == [pytest.approx(lrs, rel=1e-12) for lrs in expected]
    assert [lrs[0] for lrs in used[::BATCHES_PER_EPOCH]] == service_history(server, run_id, 12)


def test_scales_need_one_number_per_group_and_a_first_group_to_scale_from(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.1}}
    with pytest.raises(ValueError, match=r"one finite number >= 0 per param group \(2 groups\)"):
        ServiceScheduler(sgd(tiny_model(), [0.1, 0.2]), run_id, client=client, spec=spec, scales=[1.0])
    with pytest.raises(ValueError, match="pass scales"):
        ServiceScheduler(sgd(tiny_model(), [0.0, 0.1]), run_id, client=client, spec=spec)
    optimizer = sgd(tiny_model(), [0.0, 0.1])
    ServiceScheduler(optimizer, run_id, client=client, spec=spec, scales=[0.0, 2.0])
    assert [group["lr"] for group in optimizer.param_groups] == [0.0, 0.2]


# --- requests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["epoch", "batch"])
@pytest.mark.parametrize("with_plateau", [False, True], ids=["no-plateau", "plateau"])
def test_after_the_first_epoch_an_epoch_costs_one_request_and_one_more_after_a_reduction(
    server: Server, client: lrclient.Client, run_id: str, unit: str, with_plateau: bool
) -> None:
    spec: dict = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.05, "decay_steps": 5,
                               "decay_rate": 0.8}, "step_unit": unit}
    if with_plateau:
        spec["plateau"] = {"monitor": "val_loss", "factor": 0.5, "patience": 0, "threshold": 0.05,
                           "semantics": "torch"}
    data, model = regression(0), tiny_model()
    optimizer = torch.optim.SGD(model.parameters())
    counting = CountingTransport()
    counts: list[int] = []
    with lrclient.Client(server.url, transport=counting) as counted:
        scheduler = ServiceScheduler(optimizer, run_id, client=counted, spec=spec)
        for _ in range(8):
            if unit == "batch":
                train_one_epoch(model, optimizer, data, after_batch=scheduler.step)
                scheduler.report({"val_loss": validation_loss(model, data)})
            else:
                train_one_epoch(model, optimizer, data)
                scheduler.step({"val_loss": validation_loss(model, data)})
            counts.append(len(counting.requests))

    reduced = [r.reduced for r in client.reports(run_id)]
    per_epoch = [counts[0]] + [b - a for a, b in zip(counts, counts[1:])]
    refetches = [int(unit == "batch" and r) for r in reduced[:-1]]  # epoch runs: the answer's next_lr is enough
    assert per_epoch == [3] + [1 + n for n in refetches], (per_epoch, reduced)
    if with_plateau:
        assert any(reduced) and not all(reduced), "the data should reduce in some epochs and not in others"


# --- telling the user early ----------------------------------------------------------------------


def test_a_script_run_again_fails_at_its_first_optimizer_step_with_the_ways_out(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.1}}
    data = regression(0)

    def train(scheduler: ServiceScheduler, epochs: int) -> None:
        for _ in range(epochs):
            train_one_epoch(model, scheduler.optimizer, data)
            scheduler.step({"val_loss": validation_loss(model, data)})

    model = tiny_model()
    train(ServiceScheduler(torch.optim.SGD(model.parameters()), run_id, client=client, spec=spec), 3)

    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters())
    ServiceScheduler(optimizer, run_id, client=client, spec=spec)
    untrained = [p.clone() for p in model.parameters()]
    with pytest.raises(lrclient.ReportsAhead) as caught:
        train_one_epoch(model, optimizer, data)

    assert all(torch.equal(a, b) for a, b in zip(untrained, model.parameters())), "not one step was trained"
    message = str(caught.value)
    assert f"Run '{run_id}' already has reports up to step 2" in message and "new run_id" in message
    assert "load_state_dict" in message and "start_step=3" in message and f".rewind('{run_id}', -1)" in message
    assert [r.step for r in client.reports(run_id)] == [0, 1, 2]

    # The ways out: a start step after the last report, a state_dict of that position, or a rewind.
    train(ServiceScheduler(torch.optim.SGD(model.parameters()), run_id, client=client, start_step=3), 1)
    resumed = ServiceScheduler(torch.optim.SGD(model.parameters()), run_id, client=client)
    resumed.load_state_dict({"run_id": run_id, "last_epoch": 4})
    train(resumed, 1)
    client.rewind(run_id, -1)
    train(ServiceScheduler(torch.optim.SGD(model.parameters()), run_id, client=client), 1)
    assert [r.step for r in client.reports(run_id)] == [0]


def test_a_report_without_the_monitored_metric_warns_once(server: Server, client: lrclient.Client, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.1},
            "plateau": {"monitor": "val_loss", "patience": 0, "factor": 0.5, "semantics": "torch"}}
    scheduler = ServiceScheduler(torch.optim.SGD(tiny_model().parameters()), run_id, client=client, spec=spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(3):
            scheduler.step({"loss": 1.0 + epoch})  # a worse loss each time, but not the monitored metric

    (warning,) = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert "'val_loss', the metric the plateau monitors" in warning and "Metrics sent: 'loss'" in warning
    assert scheduler.get_last_lr() == [0.1], "nothing moved the tracker"


def test_when_the_chief_dies_the_other_workers_fail_clearly_within_chief_timeout(
    server: Server, client: lrclient.Client, run_id: str
) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.1},
            "plateau": {"monitor": "val_loss", "patience": 0, "factor": 0.5, "semantics": "torch"}}
    chief = ServiceScheduler(torch.optim.SGD(tiny_model().parameters()), run_id, client=client, spec=spec,
                             report="chief", is_chief=lambda: True)
    worker = ServiceScheduler(torch.optim.SGD(tiny_model().parameters()), run_id, client=client, spec=spec,
                              report="chief", is_chief=lambda: False, chief_timeout=0.5)
    for loss in (1.0, 2.0):
        chief.step(loss)
        worker.step(loss + 10)

    started = time.monotonic()  # the chief dies before it reports step 2
    with pytest.raises(TimeoutError) as caught:
        worker.step(3.0)

    assert 0.5 <= time.monotonic() - started < 5.0
    message = str(caught.value)
    assert f"No report at step 2 reached run '{run_id}' within 0.5 s (latest reported step: 1)" in message
    assert "The chief may have stopped or died" in message and "chief_timeout" in message
