"""`expression`: a whitelisted arithmetic language, the declarative form of a Keras `LearningRateScheduler(fn)`.

The text is parsed with `ast`, checked against the language, and compiled into closures over a fixed table of
operations (`lrserve.schedules.compiler`, which also states the meaning); nothing is ever passed to `eval`.
Every value is a float64, so `9**9**9**9` is just `inf` (and then refused), never a bignum. Non-recursive
expressions are evaluated with numpy over a whole array of steps; recursive ones (`lr(n) = f(n, lr(n-1))`)
step by step, see `lrserve.schedules.recursion`; what that costs is measured here and bounded where a
schedule is accepted (`lrserve.schedules.checks`).
"""

from __future__ import annotations

import ast
import functools
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, PrivateAttr, model_validator

from lrserve.schedules.base import ScheduleFn, ScheduleModel
from lrserve.schedules.compiler import (
    ALLOWED,
    BINARY,
    COMPARE,
    CONSTANTS,
    FUNCTIONS,
    FUNCTIONS_1,
    STEP_NAMES,
    ExpressionError,
    Spine,
    number,
    vector,
)
from lrserve.schedules.recursion import MAX_RECURSIVE_STEP, Recursion

MAX_LENGTH = 1000
MAX_NODES = 300
MAX_DEPTH = 40
MAX_RECURSIVE_COST = 30 * (MAX_RECURSIVE_STEP + 1)
"""The most work a recursive expression may take to reach step 1,000,000, in `Spine.cost` units (25-35 ns each):
about a second of CPU on the development machine (measured in tests/core/test_recursion.py)."""
STEP_COST = 2
"""Per step, besides its operations: the loop, the row of lr-free values, storing the value."""

__all__ = ["MAX_RECURSIVE_STEP", "Expression", "ExpressionError", "parse"]


@functools.lru_cache(maxsize=256)
def parse(text: str) -> ast.Expression:
    """Parse and check size limits; raise ExpressionError with a message fit for the user.

    Cached: the same text is validated again each time a run's stored spec is read back (the tree is never
    changed). A tree of 300 nodes takes about 70 KiB, so the cache holds at most about 18 MiB.
    """
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"is {len(text)} characters long; the limit is {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as error:
        raise ExpressionError(f"is not a valid arithmetic expression ({getattr(error, 'msg', error)})") from None
    nodes, depth = _size(tree)
    if nodes > MAX_NODES:
        raise ExpressionError(f"has {nodes} syntax nodes; the limit is {MAX_NODES}")
    if depth > MAX_DEPTH:
        raise ExpressionError(f"is nested more than {MAX_DEPTH} levels deep")
    return tree


def _size(tree: ast.AST) -> tuple[int, int]:
    """The number of nodes and the depth of the tree, in one pass."""
    nodes, depth, stack = 0, 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        nodes, depth = nodes + 1, max(depth, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return nodes, depth


_STRUCTURE = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Load, ast.boolop)


def check(tree: ast.AST, recursive: bool) -> None:
    """Raise ExpressionError, naming the construct and what is allowed, for anything outside the language."""
    called: set[int] = set()  # the names of called functions, checked with their call
    for node in ast.walk(tree):  # breadth first: a call comes before its function's name
        if isinstance(node, _STRUCTURE) or id(node) in called:
            continue
        if isinstance(node, ast.Constant):
            number(node)
        elif isinstance(node, ast.Name):
            if node.id == "lr" and not recursive:
                raise ExpressionError("lr can only be used with recursive: true")
            if node.id not in (*STEP_NAMES, "lr", *CONSTANTS):
                raise ExpressionError(f"unknown name {node.id!r}; allowed: {ALLOWED}")
        elif isinstance(node, ast.Call):
            _check_call(node)
            called.add(id(node.func))
        elif isinstance(node, ast.cmpop):
            if type(node) not in COMPARE:
                raise ExpressionError(f"comparison {type(node).__name__} is not allowed; allowed: {ALLOWED}")
        elif not (isinstance(node, ast.operator) and type(node) in BINARY
                  or isinstance(node, (ast.USub, ast.UAdd, ast.Not))):
            kind = "operator " if isinstance(node, (ast.operator, ast.unaryop)) else ""
            raise ExpressionError(f"{kind}{type(node).__name__} is not allowed; allowed: {ALLOWED}")


def _check_call(node: ast.Call) -> None:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in FUNCTIONS or node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        shown = name or ast.unparse(node.func)
        raise ExpressionError(f"{shown}(...) is not an allowed function; allowed: {' '.join(FUNCTIONS)}")
    if not (len(node.args) == 1 if name in FUNCTIONS_1 else len(node.args) >= 2):
        expected = "exactly 1 argument" if name in FUNCTIONS_1 else "at least 2 arguments"
        raise ExpressionError(f"{name}() takes {expected}; received {len(node.args)}")


class Expression(ScheduleModel):
    """Keras `LearningRateScheduler(fn)` with `fn` written as a safe expression of `step` (and `lr`).

    `lr(step) = expression(step)`; with `recursive`, `lr(step) = expression(step, lr=lr(step - 1))` and
    `lr(-1) = initial_learning_rate`, as Keras hands `fn` the lr the previous epoch ended with.
    """

    type: Literal["expression"]
    expression: Annotated[str, Field(min_length=1)]
    initial_learning_rate: Annotated[float, Field(ge=0)] | None = None
    recursive: bool = False
    _tree: ast.Expression = PrivateAttr()
    """The parsed expression, set by validation: `build` compiles it without parsing the text again."""
    _cost: float = PrivateAttr(default=0.0)

    @model_validator(mode="after")
    def _check(self) -> Expression:
        if self.recursive and self.initial_learning_rate is None:
            raise ValueError("initial_learning_rate is required when recursive is true (it is lr before step 0)")
        if not self.recursive and self.initial_learning_rate is not None:
            raise ValueError("initial_learning_rate is only allowed when recursive is true")
        try:
            tree = parse(self.expression)
            check(tree, self.recursive)
        except ExpressionError as error:
            raise ValueError(f"expression {error}") from None
        self._tree = tree
        if self.recursive:
            self._cost = recursive_cost(tree)  # bounded where the schedule is accepted (schedules.checks)
        return self

    def recursive_cost(self) -> float:
        return self._cost

    def build(self) -> ScheduleFn:
        if self.recursive:
            assert self.initial_learning_rate is not None
            return Recursion(Spine(self._tree), self.expression, float(self.initial_learning_rate))
        node = vector(self._tree)

        def fn(step: np.ndarray) -> np.ndarray:
            with np.errstate(all="ignore"):
                return np.broadcast_to(np.asarray(node(step), dtype=np.float64), np.shape(step)).copy()

        return fn


def recursive_cost(tree: ast.Expression) -> float:
    """The work of computing the expression recursively up to step MAX_RECURSIVE_STEP, in `Spine.cost` units."""
    return (Spine(tree).cost + STEP_COST) * (MAX_RECURSIVE_STEP + 1)


def per_step(cost: float) -> float:
    return cost / (MAX_RECURSIVE_STEP + 1)
