"""The expression language's meaning, and its two compilers of a tree that `expression.check` accepted: numpy
over arrays of steps, and plain floats for the part of a recursive expression that depends on `lr`. Both give
bit for bit the same float64 values.

The meaning is Python's, in float64:

- every number is a float64 (an integer literal too large for one is refused);
- a value is true when it is not 0 (so nan is true and -0.0 false); a comparison or `not` gives 1.0 or 0.0;
- `a or b` is `a` when `a` is true, else `b`; `a and b` is `b` when `a` is true, else `a`; `X if C else Y`
  and chained comparisons (`a < b <= c`) are Python's;
- `min` and `max` are Python's builtins: a later argument replaces the one kept only when it is smaller
  (larger), so `min(1, nan)` is 1 and `min(nan, 1)` is nan;
- `**` and the functions are numpy's float64 ufuncs (numpy's vectorized `exp`, `**`... may differ from
  Python's `math`, which is libm, in the last bit);
- where Python would raise (ZeroDivisionError, OverflowError, a math domain ValueError) or go complex, the
  value is the IEEE-754 one, as numpy gives it: `1/0` is inf, `-1/0` is -inf, `0/0`, `log(-1)` and
  `(-8)**(1/3)` are nan, `10.0**400` is inf. An lr that is not finite is then refused for its step.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

Vector = Callable[[np.ndarray], Any]
"""A compiled sub-expression of the step alone: array of steps -> array (or scalar) of values."""
Scalar = Callable[[tuple[float, ...], float], float]
"""A compiled sub-expression that uses lr: (row, lr) -> value, where row holds this step's values of the
sub-expressions that do not use lr (computed beforehand with numpy, see `Spine`)."""

FUNCTIONS_1 = ("exp", "log", "log2", "log10", "sqrt", "sin", "cos", "tan", "floor", "ceil", "abs")
FUNCTIONS = (*FUNCTIONS_1, "min", "max")
CONSTANTS = {"pi": math.pi, "e": math.e}
STEP_NAMES = ("step", "epoch")
ALLOWED = (
    "numbers, step (alias epoch), lr (recursive only), + - * / // % **, comparisons, and/or/not, "
    f"X if C else Y, the functions {' '.join(FUNCTIONS)} and the constants pi, e"
)

# What one evaluation of a node of the lr part costs, in units of about 25-35 ns, the cost of a plain float
# operation (a Python closure call), measured in tests/core/test_recursion.py: / // % and comparison chains
# call a function more, numpy's ufuncs on one float cost 4 units, and its binary ones (`**`) about 20.
PLAIN_COST = 1.0
DIVISION_COST = 2.0
FUNCTION_COST = 4.0
POWER_COST = 20.0
COLUMN_COST = 1 / 16
"""A node that does not use lr is evaluated with numpy over many steps at once: a small share per step (and
a column read from its row, besides, costs PLAIN_COST)."""


class ExpressionError(ValueError):
    pass


BINARY: dict[type[ast.operator], np.ufunc] = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide, ast.Mod: np.mod, ast.Pow: np.power,
}
_UFUNCS: dict[str, np.ufunc] = {
    "exp": np.exp, "log": np.log, "log2": np.log2, "log10": np.log10, "sqrt": np.sqrt, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "floor": np.floor, "ceil": np.ceil, "abs": np.abs,
}
COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


def number(node: ast.Constant) -> float:
    """A literal as a float64; ExpressionError for anything else."""
    if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
        raise ExpressionError(f"the constant {node.value!r} is not a number; allowed: {ALLOWED}")
    try:
        return float(node.value)
    except OverflowError:
        raise ExpressionError(f"the number {str(node.value)[:20]}... is too large for a float64") from None


def uses_lr(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "lr" for n in ast.walk(node))


def uses_step(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id in STEP_NAMES for n in ast.walk(node))


# -- numpy, over an array of steps --------------------------------------------------------------------


def vector(node: ast.AST) -> Vector:
    """Compile a checked sub-expression without lr into a function of an array of steps (numpy errors ignored
    by the caller)."""
    if isinstance(node, ast.Expression):
        return vector(node.body)
    if isinstance(node, ast.Constant):
        value = number(node)
        return lambda step: value
    if isinstance(node, ast.Name):
        if node.id in STEP_NAMES:
            return lambda step: step
        value = CONSTANTS[node.id]
        return lambda step: value
    if isinstance(node, ast.BinOp):
        op, left, right = BINARY[type(node.op)], vector(node.left), vector(node.right)
        return lambda step: op(left(step), right(step))
    if isinstance(node, ast.UnaryOp):
        operand = vector(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda step: np.negative(operand(step))
        if isinstance(node.op, ast.Not):
            return lambda step: _truth_value(operand(step) == 0)
        return operand
    if isinstance(node, ast.BoolOp):
        return _vector_bool(isinstance(node.op, ast.And), [vector(v) for v in node.values])
    if isinstance(node, ast.Compare):
        ops = [COMPARE[type(op)] for op in node.ops]
        operands = [vector(node.left), *(vector(c) for c in node.comparators)]

        def compare(step: np.ndarray) -> Any:
            values = [operand(step) for operand in operands]
            result = ops[0](values[0], values[1])
            for op, a, b in zip(ops[1:], values[1:], values[2:]):
                result = np.logical_and(result, op(a, b))
            return _truth_value(result)

        return compare
    if isinstance(node, ast.IfExp):
        test, body, orelse = vector(node.test), vector(node.body), vector(node.orelse)
        return lambda step: np.where(test(step) != 0, body(step), orelse(step))
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    args = [vector(a) for a in node.args]
    if node.func.id in ("min", "max"):
        keep_later = np.less if node.func.id == "min" else np.greater

        def extreme(step: np.ndarray) -> Any:
            result = args[0](step)
            for arg in args[1:]:
                value = arg(step)
                result = np.where(keep_later(value, result), value, result)
            return result

        return extreme
    ufunc, (arg,) = _UFUNCS[node.func.id], args
    return lambda step: ufunc(arg(step))


def _vector_bool(is_and: bool, values: list[Vector]) -> Vector:
    def evaluate(step: np.ndarray) -> Any:
        result = values[0](step)
        for value in values[1:]:
            truthy = result != 0
            result = np.where(truthy, value(step), result) if is_and else np.where(truthy, result, value(step))
        return result

    return evaluate


def _truth_value(truth: Any) -> Any:
    return np.asarray(truth, dtype=np.float64)


# -- plain floats, step by step, for the part of a recursive expression that uses lr ------------------


# Python's float + - * never raise and are IEEE-754, so numpy's; / // % are numpy's too (bit for bit, signed
# zeros included) but raise on a zero divisor, where numpy's answer is taken. Python's ** is libm's pow, which
# may differ in the last bit from numpy's vectorized one: ** always goes to numpy.


def _divide(a: float, b: float) -> float:
    return a / b if b else float(np.true_divide(a, b))


def _floor_divide(a: float, b: float) -> float:
    return a // b if b else float(np.floor_divide(a, b))


def _mod(a: float, b: float) -> float:
    return a % b if b else float(np.mod(a, b))


def _power(a: float, b: float) -> float:
    return float(np.power(a, b))


_SCALAR_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: _divide,
    ast.FloorDiv: _floor_divide, ast.Mod: _mod, ast.Pow: _power,
}


class Spine:
    """The part of a recursive expression that uses lr, compiled for one step at a time.

    Every largest sub-expression that does not use lr becomes a *column*: `columns` computes them all with
    numpy for a whole chunk of steps, and the scalar code reads this step's values from its row. So only
    the operations on lr's value cost a Python call per step; `cost` counts them (in `PLAIN_COST` units).
    """

    def __init__(self, tree: ast.Expression) -> None:
        self.cost = 0.0
        self._columns: list[Vector] = []
        self.step_fn = self._compile(tree.body)

    def columns(self, steps: np.ndarray) -> list[tuple[float, ...]]:
        """This chunk's rows: the value of every column at every step of `steps`."""
        if not self._columns:
            return [()] * len(steps)
        values = [np.broadcast_to(np.asarray(c(steps), dtype=np.float64), steps.shape).tolist()
                  for c in self._columns]
        return list(zip(*values))

    def _compile(self, node: ast.AST) -> Scalar:
        if not uses_lr(node):
            self.cost += PLAIN_COST
            if not uses_step(node):  # a constant: computed once
                with np.errstate(all="ignore"):
                    value = float(vector(node)(np.zeros(0)))
                return lambda row, lr: value
            self.cost += PLAIN_COST + COLUMN_COST * sum(isinstance(n, ast.expr) for n in ast.walk(node))
            index = len(self._columns)
            self._columns.append(vector(node))
            return lambda row, lr: row[index]
        self.cost += PLAIN_COST
        if isinstance(node, ast.Name):
            return lambda row, lr: lr
        if isinstance(node, ast.BinOp):
            left, right = self._compile(node.left), self._compile(node.right)
            if isinstance(node.op, ast.Add):  # the commonest operations, without a call to `operator`
                return lambda row, lr: left(row, lr) + right(row, lr)
            if isinstance(node.op, ast.Mult):
                return lambda row, lr: left(row, lr) * right(row, lr)
            if isinstance(node.op, ast.Pow):
                self.cost += POWER_COST - PLAIN_COST
            elif isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
                self.cost += DIVISION_COST - PLAIN_COST
            op = _SCALAR_BINARY[type(node.op)]
            return lambda row, lr: op(left(row, lr), right(row, lr))
        if isinstance(node, ast.UnaryOp):
            operand = self._compile(node.operand)
            if isinstance(node.op, ast.USub):
                return lambda row, lr: -operand(row, lr)
            if isinstance(node.op, ast.Not):
                return lambda row, lr: 0.0 if operand(row, lr) else 1.0
            return operand
        if isinstance(node, ast.BoolOp):
            self.cost += PLAIN_COST * (len(node.values) - 1)
            return _scalar_bool(isinstance(node.op, ast.And), [self._compile(v) for v in node.values])
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.IfExp):
            test, body, orelse = self._compile(node.test), self._compile(node.body), self._compile(node.orelse)
            return lambda row, lr: body(row, lr) if test(row, lr) else orelse(row, lr)
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        args = [self._compile(a) for a in node.args]
        if node.func.id in ("min", "max"):
            builtin = min if node.func.id == "min" else max
            if len(args) == 2:
                self.cost += 2 * PLAIN_COST
                first, second = args
                return lambda row, lr: builtin(first(row, lr), second(row, lr))
            self.cost += 2 * PLAIN_COST * len(args)
            return lambda row, lr: builtin([a(row, lr) for a in args])
        self.cost += FUNCTION_COST - PLAIN_COST
        ufunc, (arg,) = _UFUNCS[node.func.id], args
        return lambda row, lr: float(ufunc(arg(row, lr)))

    def _compare(self, node: ast.Compare) -> Scalar:
        ops = [COMPARE[type(op)] for op in node.ops]
        operands = [self._compile(node.left), *(self._compile(c) for c in node.comparators)]
        if len(ops) == 1:  # the common case, without the loop
            (op,), (left, right) = ops, operands
            self.cost += PLAIN_COST
            return lambda row, lr: 1.0 if op(left(row, lr), right(row, lr)) else 0.0
        self.cost += 3 * PLAIN_COST * len(ops)

        def compare(row: tuple[float, ...], lr: float) -> float:
            left = operands[0](row, lr)
            for op, operand in zip(ops, operands[1:]):
                right = operand(row, lr)
                if not op(left, right):
                    return 0.0
                left = right
            return 1.0

        return compare


def _scalar_bool(is_and: bool, values: Iterable[Scalar]) -> Scalar:
    first, *rest = values

    def evaluate(row: tuple[float, ...], lr: float) -> float:
        result = first(row, lr)
        for value in rest:
            if bool(result) != is_and:  # `or` stops at a true value, `and` at a false one
                return result
            result = value(row, lr)
        return result

    return evaluate
