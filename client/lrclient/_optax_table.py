"""The device side of `lrclient.optax`: the run's lrs as a table that a jitted optax update reads by its own
step count, either as a leaf of the optimizer state (`LrTableState`) or as a constant compiled into the update
(`LrConstantState` names it). `_optax_host.py` decides what the table holds and puts it.

    lr = lrs[index],   index = step - first,   NaN outside the table
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


class LrTableState(NamedTuple):
    """The device side of `LrTable`: `lrs[i]` is the lr of step `first + i` (`first` is kept on the host, by
    `ServiceLR.sync`), and `index` is that of the step being trained: two leaves, so a step's dispatch stays
    as cheap as an in-process schedule's."""

    lrs: Any
    index: Any


@jax.tree_util.register_pytree_node_class
class LrConstantState:
    """The state of `ServiceLR.scale_by_lr(compiled=True)`: one leaf, `index` (the step being trained, counted from
    the table's first step), as `optax.sgd(schedule)` has one, its count. The table itself is not in the state:
    `key` names it, and is static (pytree aux data), so a `sync` that brings other lrs gives the state another
    structure and `jit` traces the update again, with the new table as a constant."""

    def __init__(self, index: Any, key: Hashable = None) -> None:
        self.index = index
        self.key = key

    def tree_flatten(self) -> tuple[tuple[Any], Hashable]:
        return (self.index,), self.key

    @classmethod
    def tree_unflatten(cls, key: Hashable, leaves: tuple[Any]) -> LrConstantState:
        return cls(leaves[0], key)

    def __repr__(self) -> str:
        return f"LrConstantState(index={self.index!r}, key={self.key!r})"


def lr_at(lrs: Any, index: Any) -> Any:
    """lrs[index], NaN outside the table: a loop that forgets `ServiceLR.sync` fails loudly, never with a wrong lr."""
    length = lrs.shape[0]
    inside = (index >= 0) & (index < length)
    return jnp.where(inside, lrs[jnp.clip(index, 0, length - 1)], jnp.nan)


class LrTable:
    """An optax stateful schedule that reads the run's lrs from a table on the device, inside `jit`:
    lr = lrs[index], index = step - first, NaN outside the table (so a loop that forgets `ServiceLR.sync` fails
    loudly instead of training with a wrong lr). The table has a fixed length, so the jitted update is
    traced once; `ServiceLR.sync` replaces it from the host only when the run's lrs may have changed.
    """

    def __init__(self, length: int) -> None:
        self.length = length

    def init(self) -> LrTableState:
        return LrTableState(lrs=jnp.full((self.length,), jnp.nan), index=jnp.zeros([], jnp.int32))

    def update(self, state: LrTableState, **extra_args: Any) -> LrTableState:
        return state._replace(index=state.index + 1)

    def __call__(self, state: LrTableState, **extra_args: Any) -> Any:
        return lr_at(state.lrs, state.index)


def scale_by_table(table: LrTable, sign: int) -> optax.GradientTransformation:
    """updates * sign * lr, the lr read from `table`'s state leaf (put by `ServiceLR.sync`)."""

    def init(params: Any) -> LrTableState:
        return table.init()

    def update(updates: Any, state: LrTableState, params: Any = None) -> tuple[Any, LrTableState]:
        lr = sign * table(state)
        return jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates), table.update(state)

    return optax.GradientTransformation(init, update)


def scale_by_constant(lookup: Callable[[Hashable], np.ndarray | None], sign: int,
                      advance: bool) -> optax.GradientTransformation:
    """updates * sign * lr, the lr read from the table `lookup(state.key)` gives when `jit` traces (a constant of
    the compiled update; NaN before any sync); the index moves by one per update if `advance`."""

    def init(params: Any) -> LrConstantState:
        return LrConstantState(jnp.zeros([], jnp.int32))

    def update(updates: Any, state: LrConstantState, params: Any = None) -> tuple[Any, LrConstantState]:
        lrs = lookup(state.key)
        lr = sign * lr_at(jnp.asarray(np.full(1, np.nan) if lrs is None else lrs), state.index)
        return (jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates),
                LrConstantState(state.index + int(advance), state.key))

    return optax.GradientTransformation(init, update)
