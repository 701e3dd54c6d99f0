"""The host side of `lrclient.optax`: which lrs a device table holds and when it is put again (`LrTables`,
`TableWindow`), and the edits of an optax optimizer state that put an lr or a table in it (`set_lr`,
`LrTables.sync`). Run-agnostic: `ServiceLR` gives `LrTables` the run's lr of a step and the run's version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import optax
from optax import InjectStatefulHyperparamsState

from ._optax_table import LrConstantState, LrTable, LrTableState, scale_by_constant, scale_by_table


def edit_states(opt_state: Any, edit: Callable[[Any], Any]) -> tuple[Any, bool]:
    """`opt_state` with each state in it (alone, or in the tuples of `optax.chain`) replaced by `edit(state)` where
    that is not None, and whether any was. optax states are immutable: the edited ones are new."""
    edited = False

    def visit(state: Any) -> Any:
        nonlocal edited
        if isinstance(state, tuple) and not hasattr(state, "_fields"):  # optax.chain's tuple of states
            return tuple(visit(s) for s in state)
        new = edit(state)
        edited = edited or new is not None
        return state if new is None else new

    return visit(opt_state), edited


def set_lr(opt_state: Any, lr: float, name: str = "learning_rate") -> Any:
    """The state with the `inject_hyperparams` hyperparameter `name` set to `lr` (in its dtype), outside `jit`.

    `opt_state` is the state of `optax.inject_hyperparams(...)(learning_rate=<a number>)`, alone or inside
    the tuple of an `optax.chain`; every injected state holding `name` is set. A state is not changed in place.
    """
    def with_lr(state: Any) -> Any:
        if not (isinstance(state, InjectStatefulHyperparamsState) and name in state.hyperparams):
            return None
        if name in state.hyperparams_states:
            raise TypeError(f"The optimizer computes {name!r} from its own schedule at every update, which would "
                            f"undo set_lr: build it with a number, inject_hyperparams(...)({name}=0.0).")
        # A NumPy scalar, not a JAX array: the jitted update moves it to the device with its other
        # arguments, where `jnp.asarray` here would dispatch a transfer of its own (about 20 µs a step).
        # Its dtype, not the array itself: NumPy 2.4 deprecates reading a dtype from a JAX array.
        current = state.hyperparams[name]
        value = np.asarray(lr, dtype=np.result_type(getattr(current, "dtype", current)))
        return state._replace(hyperparams={**state.hyperparams, name: value})

    new_state, found = edit_states(opt_state, with_lr)
    if not found:
        raise TypeError(f"No optax.inject_hyperparams state with a {name!r} hyperparameter in this optimizer state: "
                        f"build the optimizer with optax.inject_hyperparams(optax.sgd)({name}=0.0). "
                        f"Received: {type(opt_state).__name__}")
    return new_state


class LrTables:
    """The run's lrs as tables a jitted update reads (`schedule()`, `scale_by_lr()`, `scale_by_learning_rate()`),
    put by `sync` once per epoch. `lr(step)` is the run's lr of a step (from a cache); `version()` the run's
    version, which moves whenever the run's lrs may have changed; `length` the table's length in steps."""

    def __init__(self, lr: Callable[[int], float], version: Callable[[], int | None], epoch_run: bool,
                 length: int) -> None:
        self.lr, self.version, self.epoch_run, self._table_length = lr, version, epoch_run, length
        self._table: LrTable | None = None
        self._synced: tuple[int | None, int] | None = None  # (run version, first step) of the table put last
        self._compiled = False  # a compiled=True transformation was built: sync gives it a key
        self._constant: tuple[int | None, int, Hashable] | None = None  # (run version, first step, key) of its table
        self._constants: dict[Hashable, np.ndarray] = {}  # key -> the lrs the update is traced with
        self._window = TableWindow(length)

    def schedule(self) -> LrTable:
        """The run's lrs as an optax stateful schedule, for `optax.inject_hyperparams(...)(learning_rate=...)`:
        no host work per step. Call `opt_state = service.sync(opt_state, step)` before each epoch."""
        self._table = LrTable(self._table_length)
        return self._table

    def scale_by_lr(self, compiled: bool = False) -> optax.GradientTransformation:
        """A gradient transformation that multiplies the updates by the run's lr of the step being trained, read
        from a table of the run's lrs (sync it once per epoch): chain it after an optimizer built with learning
        rate 1, `optax.chain(optax.adamw(1.0), service.scale_by_lr())`. No `inject_hyperparams`, no host work per
        step. `scale_by_learning_rate()` is the same with optax's sign, one transformation fewer.

        compiled: keep the table out of the optimizer state and compile it into the update as a constant: the
            state is then one leaf, the step index, as `optax.sgd(schedule)` has its count, and `jit` traces and
            compiles the update again whenever `sync` brings different lrs (a plateau reduction, a revision, a
            table moved along a training longer than it). Otherwise the table is a state leaf (nothing is
            compiled again, but the leaf is passed to and from every step: donate the state). In epoch runs the
            compiled table holds one lr per epoch and the index is the epoch's.
        """
        return self._scale(1, compiled)

    def scale_by_learning_rate(self, compiled: bool = False) -> optax.GradientTransformation:
        """The updates times minus the run's lr, as `optax.scale_by_learning_rate(schedule)`, which optax's
        optimizers end with: alone it is `optax.sgd` following the run, and
        `optax.chain(optax.scale_by_adam(), service.scale_by_learning_rate())` is `optax.adam`. `compiled` as for
        `scale_by_lr`; sync it once per epoch."""
        return self._scale(-1, compiled)

    def _scale(self, sign: int, compiled: bool) -> optax.GradientTransformation:
        if compiled:
            self._compiled = True
            # The optimizer counts batches; in epoch runs sync sets the epoch's index.
            return scale_by_constant(lambda key: self._constants.get(key), sign, advance=not self.epoch_run)
        self._table = LrTable(self._table_length)
        return scale_by_table(self._table, sign)

    def _constant_table(self, step: int) -> tuple[int, Hashable]:
        """The index of `step` and the key of the constant table to train it with. The key is the table's first
        step and a digest of its lrs, so a run's write that changed none of them (another report) keeps the key,
        and the compiled update with it."""
        version = self.version()
        if self._constant is not None and not self._window.moves(self._constant[1], step):
            if self._constant[0] == version:
                return step - self._constant[1], self._constant[2]
            first = self._constant[1]
        else:
            first = step
        lrs = np.array([self.lr(s) for s in range(first, first + self._table_length)])
        key = (first, hashlib.blake2b(lrs.tobytes(), digest_size=16).hexdigest())
        self._constants = {key: lrs}
        self._constant = (self.version(), first, key)  # after the lrs: reading them may refresh
        return step - first, key

    def sync(self, opt_state: Any, step: int, name: str = "learning_rate") -> Any:
        """`opt_state` ready to train from `step` on with the table of `schedule()` or `scale_by_lr()`: the table
        is put on the device again only when the run's lrs may have changed since (a report that reduced, another
        worker's write, a revision: the run's version moved) or when the next epoch, as long as the longest so
        far, might run past its end (then it starts at `step`); the step count is set to `step` (so a resumed loop
        starts where it should). In epoch runs the table holds the epoch's lr (the optimizer counts batches), so
        it is put every epoch. With `scale_by_lr(compiled=True)` the table gets a new key (and the update is
        compiled again) only when its lrs differ. Outside `jit`, once per epoch."""
        if self._table is None and not self._compiled:
            raise TypeError("sync needs an optimizer built with service.scale_by_learning_rate(), "
                            "service.scale_by_lr() or learning_rate=service.schedule()")
        self._window.synced(step)
        constant = self._constant_table(step) if self._compiled else None
        if self._table is None:
            refill, first, count = False, 0, 0
        elif self.epoch_run:  # the optimizer counts batches: the epoch's lr in every entry
            refill, first, count = True, 0, 0
            values = np.full(self._table_length, self.lr(step))
        else:
            version = self.version()
            refill = self._synced is None or self._synced[0] != version or \
                self._window.moves(self._synced[1], step)
            first, count = (step if refill else self._synced[1]), step
            if refill:
                values = np.array([self.lr(s) for s in range(step, step + self._table_length)])
                self._synced = (self.version(), step)

        def put(table: LrTableState) -> LrTableState:
            lrs = np.asarray(values, dtype=np.result_type(table.lrs.dtype)) if refill else table.lrs
            return LrTableState(lrs=lrs, index=np.int32(count - first))

        def with_table(state: Any) -> Any:
            if isinstance(state, LrConstantState) and constant is not None:  # scale_by_lr(compiled=True)'s
                return LrConstantState(np.int32(constant[0]), constant[1])
            if isinstance(state, LrTableState):  # scale_by_lr's own state
                return put(state)
            if isinstance(state, InjectStatefulHyperparamsState) and \
                    isinstance(state.hyperparams_states.get(name), LrTableState):
                return state._replace(hyperparams_states={**state.hyperparams_states,
                                                          name: put(state.hyperparams_states[name])})
            return None

        new_state, found = edit_states(opt_state, with_table)
        if not found:
            raise TypeError(f"No state of service.scale_by_learning_rate() or service.scale_by_lr(), nor an "
                            f"optax.inject_hyperparams state whose {name!r} is service.schedule(), in this optimizer "
                            f"state: build it with service.scale_by_learning_rate(compiled=True), "
                            f"optax.chain(optax.sgd(1.0), service.scale_by_lr()) or "
                            f"inject_hyperparams(optax.sgd)({name}=service.schedule()). "
                            f"Received: {type(opt_state).__name__}")
        return new_state


class TableWindow:
    """When a table of `length` steps starting at `first` should start at `step` instead: `step` is outside its
    first half, and an epoch as long as the longest seen so far (steps between two syncs) would not fit in the
    rest of it. So a table covering the whole training never moves, and one shorter moves before an epoch would
    run past its end."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.last_sync: int | None = None
        self.longest_epoch: int | None = None

    def synced(self, step: int) -> None:
        if self.last_sync is not None and step > self.last_sync:
            self.longest_epoch = max(self.longest_epoch or 0, step - self.last_sync)
        self.last_sync = step

    def moves(self, first: int, step: int) -> bool:
        if first <= step < first + self.length // 2:
            return False
        return not first <= step or self.longest_epoch is None or step + self.longest_epoch > first + self.length
