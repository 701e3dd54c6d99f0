"""`expression`: a whitelisted arithmetic language, the declarative form of a Keras `LearningRateScheduler(fn)`.

The text is parsed with `ast` and compiled into closures over a fixed table of operations; nothing is ever
passed to `eval`. Every value is a float64, so `9**9**9**9` is just `inf` (and then refused), never a bignum.
Non-recursive expressions are evaluated with numpy over a whole array of steps; recursive ones
(`lr(n) = f(n, lr(n-1))`) step by step with plain floats, cached once per schedule object.
"""

from __future__ import annotations

import ast
import math
import operator
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from lrserve.schedules.base import ScheduleFn, ScheduleModel

MAX_LENGTH = 1000
MAX_NODES = 300
MAX_DEPTH = 40
MAX_RECURSIVE_STEP = 1_000_000

Node = Callable[[Any, Any], Any]
"""A compiled sub-expression: (step, lr) -> value."""

_FUNCTIONS_1 = ("exp", "log", "log2", "log10", "sqrt", "sin", "cos", "tan", "floor", "ceil", "abs")
_FUNCTIONS = (*_FUNCTIONS_1, "min", "max")
_CONSTANTS = {"pi": math.pi, "e": math.e}
_ALLOWED = (
    "numbers, step (alias epoch), lr (recursive only), + - * / // % **, comparisons, and/or/not, "
    f"X if C else Y, the functions {' '.join(_FUNCTIONS)} and the constants pi, e"
)


class ExpressionError(ValueError):
    pass


def _guard(fn: Callable[..., float]) -> Callable[..., float]:
    """Scalar arithmetic that yields nan/inf like numpy instead of raising or going complex."""

    def safe(*args: float) -> float:
        try:
            result = fn(*args)
        except ZeroDivisionError:
            return math.nan
        except (OverflowError, ValueError):
            return math.nan
        return result if isinstance(result, float) else (float(result) if isinstance(result, int) else math.nan)

    return safe


def _scalar_div(a: float, b: float) -> float:
    if b == 0:
        return math.copysign(math.inf, a) if a != 0 else math.nan
    return a / b


def _scalar_pow(a: float, b: float) -> float:
    try:
        return float(a) ** float(b)
    except OverflowError:
        return math.inf


_VECTOR_BINARY = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide, ast.Mod: np.mod, ast.Pow: np.power,
}
_SCALAR_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: _scalar_div,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _scalar_pow,
}
_COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_VECTOR_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "exp": np.exp, "log": np.log, "log2": np.log2, "log10": np.log10, "sqrt": np.sqrt, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "floor": np.floor, "ceil": np.ceil, "abs": np.abs,
    "min": lambda *xs: _reduce(np.minimum, xs), "max": lambda *xs: _reduce(np.maximum, xs),
}
_SCALAR_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "exp": math.exp, "log": math.log, "log2": math.log2, "log10": math.log10, "sqrt": math.sqrt,
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "floor": lambda x: float(math.floor(x)),
    "ceil": lambda x: float(math.ceil(x)), "abs": abs, "min": min, "max": max,
}


def _reduce(fn: Callable[[Any, Any], Any], xs: tuple[Any, ...]) -> Any:
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


class _Compiler:
    """Turns a checked AST into nested closures, with numpy (vector) or math (scalar) operations."""

    def __init__(self, vector: bool, recursive: bool) -> None:
        self.vector = vector
        self.recursive = recursive
        self.binary = _VECTOR_BINARY if vector else {k: _guard(v) for k, v in _SCALAR_BINARY.items()}
        self.functions = _VECTOR_FUNCTIONS if vector else {k: _guard(v) for k, v in _SCALAR_FUNCTIONS.items()}

    def truth(self, value: Any) -> Any:
        return value != 0

    def number(self, value: Any) -> Any:
        """A truth value (or array of them) as 1.0 / 0.0."""
        return np.asarray(value, dtype=np.float64) if self.vector else float(value)

    def choose(self, condition: Any, yes: Any, no: Any) -> Any:
        if self.vector:
            return np.where(condition, yes, no)
        return yes if condition else no

    def compile(self, node: ast.AST) -> Node:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExpressionError(f"{type(node).__name__} is not allowed; allowed: {_ALLOWED}")
        return method(node)

    def _Expression(self, node: ast.Expression) -> Node:
        return self.compile(node.body)

    def _Constant(self, node: ast.Constant) -> Node:
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"the constant {node.value!r} is not a number; allowed: {_ALLOWED}")
        try:
            value = float(node.value)
        except OverflowError:
            raise ExpressionError(f"the number {str(node.value)[:20]}... is too large") from None
        return lambda step, lr: value

    def _Name(self, node: ast.Name) -> Node:
        if node.id in ("step", "epoch"):
            return lambda step, lr: step
        if node.id == "lr":
            if not self.recursive:
                raise ExpressionError("lr can only be used with recursive: true")
            return lambda step, lr: lr
        if node.id in _CONSTANTS:
            value = _CONSTANTS[node.id]
            return lambda step, lr: value
        raise ExpressionError(f"unknown name {node.id!r}; allowed: {_ALLOWED}")

    def _BinOp(self, node: ast.BinOp) -> Node:
        op = self.binary.get(type(node.op))
        if op is None:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed; allowed: {_ALLOWED}")
        left, right = self.compile(node.left), self.compile(node.right)
        return lambda step, lr: op(left(step, lr), right(step, lr))

    def _UnaryOp(self, node: ast.UnaryOp) -> Node:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda step, lr: -operand(step, lr)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return lambda step, lr: self.number(operand(step, lr) == 0)
        raise ExpressionError(f"operator {type(node.op).__name__} is not allowed; allowed: {_ALLOWED}")

    def _BoolOp(self, node: ast.BoolOp) -> Node:
        values = [self.compile(v) for v in node.values]
        is_and = isinstance(node.op, ast.And)

        def evaluate(step: Any, lr: Any) -> Any:
            result = values[0](step, lr)
            for value in values[1:]:
                truthy = self.truth(result)
                falsy = ~truthy if self.vector else not truthy
                result = self.choose(truthy if is_and else falsy, value(step, lr), result)
            return result

        return evaluate

    def _Compare(self, node: ast.Compare) -> Node:
        ops = []
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise ExpressionError(f"comparison {type(op).__name__} is not allowed; allowed: {_ALLOWED}")
            ops.append(_COMPARE[type(op)])
        operands = [self.compile(node.left), *(self.compile(c) for c in node.comparators)]

        def evaluate(step: Any, lr: Any) -> Any:
            values = [operand(step, lr) for operand in operands]
            result = ops[0](values[0], values[1])
            for op, a, b in zip(ops[1:], values[1:], values[2:]):
                result = result & op(a, b) if self.vector else (result and op(a, b))
            return self.number(result)

        return evaluate

    def _IfExp(self, node: ast.IfExp) -> Node:
        test, body, orelse = self.compile(node.test), self.compile(node.body), self.compile(node.orelse)
        if self.vector:
            return lambda step, lr: np.where(test(step, lr) != 0, body(step, lr), orelse(step, lr))
        return lambda step, lr: body(step, lr) if test(step, lr) else orelse(step, lr)

    def _Call(self, node: ast.Call) -> Node:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in self.functions or node.keywords:
            shown = name or ast.unparse(node.func)
            raise ExpressionError(f"{shown}(...) is not an allowed function; allowed: {' '.join(_FUNCTIONS)}")
        arity_ok = len(node.args) == 1 if name in _FUNCTIONS_1 else len(node.args) >= 2
        if not arity_ok:
            expected = "exactly 1 argument" if name in _FUNCTIONS_1 else "at least 2 arguments"
            raise ExpressionError(f"{name}() takes {expected}; received {len(node.args)}")
        fn = self.functions[name]
        args = [self.compile(a) for a in node.args]
        return lambda step, lr: fn(*(a(step, lr) for a in args))


def parse(text: str) -> ast.Expression:
    """Parse and check size limits; raise ExpressionError with a message fit for the user."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"is {len(text)} characters long; the limit is {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as error:
        raise ExpressionError(f"is not a valid arithmetic expression ({getattr(error, 'msg', error)})") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"has {len(nodes)} syntax nodes; the limit is {MAX_NODES}")
    if _depth(tree) > MAX_DEPTH:
        raise ExpressionError(f"is nested more than {MAX_DEPTH} levels deep")
    return tree


def _depth(node: ast.AST) -> int:
    children = list(ast.iter_child_nodes(node))
    return 1 + max((_depth(c) for c in children), default=0)


class Expression(ScheduleModel):
    """Keras `LearningRateScheduler(fn)` with `fn` written as a safe expression of `step` (and `lr`)."""

    type: Literal["expression"]
    expression: Annotated[str, Field(min_length=1)]
    initial_learning_rate: Annotated[float, Field(ge=0)] | None = None
    recursive: bool = False

    @model_validator(mode="after")
    def _check(self) -> Expression:
        if self.recursive and self.initial_learning_rate is None:
            raise ValueError("initial_learning_rate is required when recursive is true (it is lr before step 0)")
        if not self.recursive and self.initial_learning_rate is not None:
            raise ValueError("initial_learning_rate is only allowed when recursive is true")
        try:
            tree = parse(self.expression)
            _Compiler(vector=not self.recursive, recursive=self.recursive).compile(tree)
        except ExpressionError as error:
            raise ValueError(f"expression {error}") from None
        return self

    def is_recursive(self) -> bool:
        return self.recursive

    def build(self) -> ScheduleFn:
        tree = parse(self.expression)
        if not self.recursive:
            node = _Compiler(vector=True, recursive=False).compile(tree)

            def fn(step: np.ndarray) -> np.ndarray:
                with np.errstate(all="ignore"):
                    return np.broadcast_to(np.asarray(node(step, None), dtype=np.float64), np.shape(step)).copy()

            return fn
        return _Recursion(_Compiler(vector=False, recursive=True).compile(tree), float(self.initial_learning_rate))


class _Recursion:
    """lr(0) = f(0, lr_init), lr(n) = f(n, lr(n-1)); values are computed once, in order, and kept."""

    def __init__(self, node: Node, initial: float) -> None:
        self._node = node
        self._values: list[float] = []
        self._previous = initial
        self._lock = threading.Lock()

    def _extend_to(self, last: int) -> None:
        with self._lock:
            values, node, previous = self._values, self._node, self._previous
            for n in range(len(values), last + 1):
                previous = node(float(n), previous)
                values.append(previous)
                if not math.isfinite(previous):
                    break
            self._previous = previous

    def __call__(self, step: np.ndarray) -> np.ndarray:
        step = np.asarray(step, dtype=np.float64)
        if step.size == 0:
            return np.empty(step.shape)
        last = int(step.max())
        if last > MAX_RECURSIVE_STEP:
            raise ExpressionError(
                f"a recursive expression is served up to step {MAX_RECURSIVE_STEP}; step {last} was requested"
            )
        if last >= len(self._values):
            self._extend_to(last)
        values = np.asarray(self._values, dtype=np.float64)
        out = np.full(step.shape, np.nan)
        known = step < len(values)
        out[known] = values[step[known].astype(np.int64)]
        return out
