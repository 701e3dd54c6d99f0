"""lrclient.optax in a real optax training loop (jax.grad, inject_hyperparams(sgd)) against a real lrserve process.

The loop runs with jax x64 on (as tests/parity does, inside `jax.enable_x64`, which leaves the global
precision as it was), so the lr in the optimizer state is the service's float64 value exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import jax
import jax.numpy as jnp
import lrclient
import optax
import pytest
from support import CountingTransport, Server
from lrclient.optax import ServiceLR, set_lr

EPOCHS, BATCHES = 6, 4


@pytest.fixture(autouse=True)
def x64() -> Iterator[None]:
    with jax.enable_x64(True):
        yield


def regression() -> tuple[jax.Array, ...]:
    """A noisy linear problem: 32 training samples in batches of 8, 16 validation samples."""
    key_x, key_noise = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(key_x, (48, 3))
    y = x @ jnp.array([1.0, -2.0, 0.5]) + 0.3 * jax.random.normal(key_noise, (48,))
    return x[:32], y[:32], x[32:], y[32:]


def loss(w: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((x @ w - y) ** 2)


def train(service: ServiceLR, unit: str, after_epoch=lambda: None) -> list[float]:
    """A real optax loop; returns the lr in the optimizer state at every update (read back after `jit`)."""
    x, y, val_x, val_y = regression()
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0)
    w = jnp.zeros(3)
    opt_state = optimizer.init(w)

    @jax.jit
    def update(w: jax.Array, opt_state: optax.OptState, xs: jax.Array, ys: jax.Array):
        updates, opt_state = optimizer.update(jax.grad(loss)(w, xs, ys), opt_state, w)
        return optax.apply_updates(w, updates), opt_state

    used = []
    for epoch in range(EPOCHS):
        for batch in range(BATCHES):
            step = epoch * BATCHES + batch
            opt_state = set_lr(opt_state, service.lr(step if unit == "batch" else epoch))
            used.append(float(opt_state.hyperparams["learning_rate"]))
            w, opt_state = update(w, opt_state, x[batch * 8:(batch + 1) * 8], y[batch * 8:(batch + 1) * 8])
        end = epoch * BATCHES + BATCHES - 1 if unit == "batch" else epoch
        service.report(end, {"val_loss": loss(w, val_x, val_y)})
        after_epoch()
    return used


def service_lrs(server: Server, run_id: str, stop: int) -> list[float]:
    response = httpx.get(f"{server.url}/runs/{run_id}/lr/range", params={"start": 0, "stop": stop})
    response.raise_for_status()
    return response.json()["lr"]


@pytest.mark.parametrize("unit", ["batch", "epoch"])
def test_every_update_uses_the_runs_lr_and_an_epoch_costs_one_request(server: Server, run_id: str,
                                                                      unit: str) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 3,
                         "decay_rate": 0.7}, "step_unit": unit}
    counting = CountingTransport()
    counts: list[int] = []
    with lrclient.Client(server.url, transport=counting) as client, \
            ServiceLR(run_id, client=client, spec=spec, steps=EPOCHS * BATCHES) as service:
        used = train(service, unit, after_epoch=lambda: counts.append(len(counting.requests)))

    expected = service_lrs(server, run_id, EPOCHS * BATCHES if unit == "batch" else EPOCHS)
    assert used == (expected if unit == "batch" else [lr for lr in expected for _ in range(BATCHES)])
    assert len(set(expected)) == len(expected), "the lr should change every step, so an off-by-one can fail"
    per_epoch = [counts[0]] + [b - a for a, b in zip(counts, counts[1:])]
    assert per_epoch == [3] + [1] * (EPOCHS - 1)  # PUT, lr/range, report; then only the report


def test_a_plateau_reduction_acts_from_the_next_step(server: Server, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.05}, "step_unit": "batch",
            "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1, "threshold": 0.999,
                        "semantics": "torch"}}
    counting = CountingTransport()
    with lrclient.Client(server.url, transport=counting) as client, \
            ServiceLR(run_id, client=client, spec=spec, steps=EPOCHS * BATCHES) as service:
        used = train(service, "batch")
        requests = [method for method, _ in counting.requests]
        reduced = [r.reduced for r in client.reports(run_id)]

    assert reduced == [False, False, True, False, True, False]  # patience 1: every second non-improvement
    assert used == service_lrs(server, run_id, EPOCHS * BATCHES)
    assert used == [0.05] * 12 + [0.025] * 8 + [0.0125] * 4
    # one report per epoch, and one lr/range after each report that reduced
    assert requests == ["PUT", "GET"] + ["POST", "POST", "POST", "GET", "POST", "POST", "GET", "POST"]


def test_set_lr_reaches_into_a_chain_and_refuses_a_schedule_that_would_undo_it() -> None:
    w = jnp.zeros(3)
    chained = optax.chain(optax.clip(1.0), optax.inject_hyperparams(optax.sgd)(learning_rate=0.0))
    state = set_lr(chained.init(w), 0.25)
    assert float(state[1].hyperparams["learning_rate"]) == 0.25
    with pytest.raises(TypeError, match="own schedule"):
        set_lr(optax.inject_hyperparams(optax.sgd)(learning_rate=optax.constant_schedule(0.1)).init(w), 0.25)
    with pytest.raises(TypeError, match="inject_hyperparams"):
        set_lr(optax.sgd(0.1).init(w), 0.25)


def test_a_script_run_again_fails_before_training(server: Server, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.05}, "step_unit": "epoch"}
    with ServiceLR(run_id, server.url, spec=spec) as service:
        train(service, "epoch")
    with pytest.raises(lrclient.ReportsAhead, match=f"start_step={EPOCHS}"):
        ServiceLR(run_id, server.url, spec=spec)
    ServiceLR(run_id, server.url, spec=spec, start_step=EPOCHS).close()


def test_a_resumed_loop_after_a_rewind_trains_with_the_uninterrupted_lrs(server: Server, run_id: str) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 3,
                         "decay_rate": 0.7}, "step_unit": "epoch",
            "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1, "threshold": 0.999,
                        "semantics": "torch"}}
    with ServiceLR(f"{run_id}-a", server.url, spec=spec) as service:
        uninterrupted = train(service, "epoch")
    with ServiceLR(f"{run_id}-b", server.url, spec=spec) as service:
        train(service, "epoch")  # the crashed job: its checkpoint was saved after epoch 2, it reported up to 5
    with lrclient.Client(server.url) as client:
        measured = [r.metrics for r in client.reports(f"{run_id}-a")]  # the crashed job measured the same
        client.rewind(f"{run_id}-b", 2)
        resumed = []
        with ServiceLR(f"{run_id}-b", client=client, start_step=3) as service:
            for epoch in range(3, EPOCHS):
                resumed += [service.lr(epoch)] * BATCHES
                service.report(epoch, measured[epoch])
        reduced = [r.reduced for r in client.reports(f"{run_id}-b")]

    assert resumed == uninterrupted[3 * BATCHES:]
    assert reduced == [False, False, True, False, True, False]  # epoch 2's reduction survives the rewind


# --- the table path: the run's lrs on the device, read inside jit ----------------------------------------


MODES = ["schedule", "scale_by_lr", "compiled", "scale_by_learning_rate"]


def train_with_table(service: ServiceLR, unit: str, first_epoch: int = 0, traces: list | None = None,
                     mode: str = "schedule") -> list[float]:
    """A real optax loop with `learning_rate=service.schedule()`, or `optax.sgd(1.0)` chained with
    `service.scale_by_lr()` or `service.scale_by_lr(compiled=True)`, or `service.scale_by_learning_rate(compiled=True)`
    alone (plain SGD), and one `sync` per epoch; returns the lr of
    every update as the optimizer used it (read back as the step taken over the gradient for the scale modes;
    inject_hyperparams keeps it in `hyperparams`)."""
    x, y, val_x, val_y = regression()
    scale = mode != "schedule"
    optimizer = {"schedule": lambda: optax.inject_hyperparams(optax.sgd)(learning_rate=service.schedule()),
                 "scale_by_lr": lambda: optax.chain(optax.sgd(1.0), service.scale_by_lr()),
                 "compiled": lambda: optax.chain(optax.sgd(1.0), service.scale_by_lr(compiled=True)),
                 "scale_by_learning_rate": lambda: service.scale_by_learning_rate(compiled=True)}[mode]()
    w = jnp.zeros(3)
    opt_state = optimizer.init(w)

    @jax.jit
    def update(w: jax.Array, opt_state: optax.OptState, xs: jax.Array, ys: jax.Array):
        if traces is not None:
            traces.append(1)
        updates, opt_state = optimizer.update(jax.grad(loss)(w, xs, ys), opt_state, w)
        return optax.apply_updates(w, updates), opt_state

    used = []
    for epoch in range(first_epoch, EPOCHS):
        opt_state = service.sync(opt_state, epoch * BATCHES if unit == "batch" else epoch)
        for batch in range(BATCHES):
            xs, ys = x[batch * 8:(batch + 1) * 8], y[batch * 8:(batch + 1) * 8]
            before = w
            w, opt_state = update(w, opt_state, xs, ys)
            if scale:  # sgd(1.0) then scale: w - before = -lr * grad
                grad = jax.grad(loss)(before, xs, ys)
                used.append(float(-(w - before)[0] / grad[0]))
            else:
                used.append(float(opt_state.hyperparams["learning_rate"]))
        end = epoch * BATCHES + BATCHES - 1 if unit == "batch" else epoch
        service.report(end, {"val_loss": loss(w, val_x, val_y)})
    return used


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("unit", ["batch", "epoch"])
def test_the_table_schedule_trains_every_step_with_the_runs_lr_and_traces_once(server: Server, run_id: str,
                                                                              unit: str, mode: str) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 3,
                         "decay_rate": 0.7}, "step_unit": unit}
    counting, traces = CountingTransport(), []
    with lrclient.Client(server.url, transport=counting) as client, \
            ServiceLR(run_id, client=client, spec=spec, steps=EPOCHS * BATCHES) as service:
        used = train_with_table(service, unit, traces=traces, mode=mode)

    expected = service_lrs(server, run_id, EPOCHS * BATCHES if unit == "batch" else EPOCHS)
    per_step = expected if unit == "batch" else [lr for lr in expected for _ in range(BATCHES)]
    # the scale modes: read back through a division
    assert used == (per_step if mode == "schedule" else pytest.approx(per_step, rel=1e-12))
    assert len(traces) == 1, "one table for the whole training, of a fixed shape: the update is compiled once"
    assert [m for m, _ in counting.requests].count("POST") == EPOCHS
    assert [m for m, _ in counting.requests].count("GET") <= 2  # the prefetch, and one more past its horizon


@pytest.mark.parametrize("mode", MODES)
def test_the_table_schedule_follows_a_plateau_reduction_from_the_next_epoch(server: Server, run_id: str,
                                                                           mode: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.05}, "step_unit": "batch",
            "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1, "threshold": 0.999,
                        "semantics": "torch"}}
    traces: list = []
    with ServiceLR(run_id, server.url, spec=spec, steps=EPOCHS * BATCHES) as service:
        used = train_with_table(service, "batch", traces=traces, mode=mode)

    expected = [0.05] * 12 + [0.025] * 8 + [0.0125] * 4
    assert expected == service_lrs(server, run_id, EPOCHS * BATCHES)
    assert used == (expected if mode == "schedule" else pytest.approx(expected, rel=1e-12))
    # Every report moves the run's version; only the two that reduced change the lrs, and the compiled table.
    assert len(traces) == (3 if mode in ("compiled", "scale_by_learning_rate") else 1)


@pytest.mark.parametrize("mode", MODES)
def test_the_table_schedule_resumes_at_the_step_sync_is_given(server: Server, run_id: str, mode: str) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 1,
                         "decay_rate": 0.9}, "step_unit": "batch"}
    with ServiceLR(run_id, server.url, spec=spec, steps=EPOCHS * BATCHES, start_step=3 * BATCHES,
                   report=False) as service:
        used = train_with_table(service, "batch", first_epoch=3, mode=mode)

    expected = service_lrs(server, run_id, EPOCHS * BATCHES)[3 * BATCHES:]
    assert used == (expected if mode == "schedule" else pytest.approx(expected, rel=1e-12))


def test_without_a_sync_the_table_schedule_gives_nan_not_a_wrong_lr(server: Server, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.05}, "step_unit": "batch"}
    with ServiceLR(run_id, server.url, spec=spec, steps=4) as service:
        optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=service.schedule())
        opt_state = optimizer.init(jnp.zeros(3))
        _, never_synced = optimizer.update(jnp.ones(3), opt_state, jnp.zeros(3))
        with pytest.raises(TypeError, match="service.schedule()"):
            service.sync(optax.inject_hyperparams(optax.sgd)(learning_rate=0.1).init(jnp.zeros(3)), 0)

    assert jnp.isnan(never_synced.hyperparams["learning_rate"])


@pytest.mark.parametrize("mode", MODES)
def test_a_table_shorter_than_the_training_moves_before_an_epoch_would_run_past_it(server: Server, run_id: str,
                                                                                  mode: str) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 1,
                         "decay_rate": 0.9}, "step_unit": "batch"}
    traces: list = []
    # steps=10: a table of 10 steps for a training of 24, synced every 4.
    with ServiceLR(run_id, server.url, spec=spec, steps=10, report=False) as service:
        used = train_with_table(service, "batch", traces=traces, mode=mode)

    expected = service_lrs(server, run_id, EPOCHS * BATCHES)
    assert used == (expected if mode == "schedule" else pytest.approx(expected, rel=1e-12))  # never NaN
    # The table starts at 0, then at 8 (8 + 4 > 0 + 10), then at 16: three tables, three compiled updates.
    assert len(traces) == (3 if mode in ("compiled", "scale_by_learning_rate") else 1)


def test_without_a_sync_the_compiled_table_gives_nan_not_a_wrong_lr(server: Server, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.05}, "step_unit": "batch"}
    with ServiceLR(run_id, server.url, spec=spec, steps=4) as service:
        optimizer = optax.chain(optax.sgd(1.0), service.scale_by_lr(compiled=True))
        opt_state = optimizer.init(jnp.zeros(3))
        never_synced, _ = jax.jit(optimizer.update)(jnp.ones(3), opt_state, jnp.zeros(3))
        synced, _ = jax.jit(optimizer.update)(jnp.ones(3), service.sync(opt_state, 0), jnp.zeros(3))

    assert jnp.isnan(never_synced).all()
    assert synced.tolist() == [-0.05] * 3
