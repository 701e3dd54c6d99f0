"""Property tests: any text of the `expression` language means what the same text means to Python.

Expressions are drawn from the language's grammar (numbers from 0 to 10**400 and 5e-324, `step`, `epoch`,
`lr`, `pi`, `e`, every operator, comparison chains, `and`/`or`/`not`, `X if C else Y`, every function), with
and without parentheses. The service either refuses one, with a ValidationError for a documented reason, or
gives exactly Python's own value for it. Python is the reference, with the two rules the language documents
(`lrserve.schedules.compiler`):

1. Everything is a float64. Python evaluates the text itself (its parser, precedence, short circuits,
   chained comparisons, `and`/`or` returning an operand, `min`/`max`), with every literal, `step` and `lr`
   a numpy float64, a truth value (of a comparison or `not`) the float64 1.0 or 0.0, and `**` and the
   functions numpy's float64 ufuncs. numpy's float64 scalars follow IEEE-754 where Python's floats raise:
   so where Python raises ZeroDivisionError, OverflowError or a math domain ValueError, or goes complex,
   the service's value is the IEEE-754 one (inf, -inf or nan), never an error. A literal too large for a
   float64 (10**400) is refused.
2. Where `**` and the functions play no part (numpy's vectorized `exp`, `log`, `**`... may differ from libm
   in the last bit), the value is also exactly plain Python's, with `float` numbers and `math.floor`/`ceil`
   as floats, whenever plain Python raises nothing and gives a real number; equal as numbers, that is, for
   Python's truth values are the ints 0 and 1, whose zero has no sign (`-(0 < 0)` is 0 there, -0.0 here).

Runs are bounded (derandomized, a fixed number of examples) so that the file takes a few seconds.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lrserve.schedules import recursion
from lrserve.schedules.expression import Expression

SETTINGS = settings(max_examples=400, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
STEPS = [0, 1, 2, 3, 5, 7, 10, 64, 100, 12_345, 2**40]
RECURSIVE_STEPS = 40
LIBM_MAY_DIFFER = ("**", "exp", "log", "tan", "sin", "cos")  # log covers log2 and log10
REFUSAL = r"syntax nodes|nested more than|characters long|too large for a float64|too costly|not a valid arithmetic"

UNARY_FUNCTIONS = ("exp", "log", "log2", "log10", "sqrt", "sin", "cos", "tan", "floor", "ceil", "abs")
NUMBERS = st.one_of(
    st.integers(0, 12).map(str),
    st.sampled_from(["0", "0.0", "1", "2", "0.5", "1e-300", "5e-324", "1e308", "1.7976931348623157e308",
                     "1e309", "2**53", "9007199254740993", "18446744073709551616", "1" + "0" * 400, "1e-3",
                     "0.1", "3.5", "100"]),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False).map(repr),
)


@st.composite
def expressions(draw: st.DrawFn, names: tuple[str, ...], depth: int = 0) -> str:
    """A text of the language, from its grammar; `names` are the names a leaf may be. Parentheses are
    optional, so some texts are not even Python (`-not 0`): Python's parser is the reference there too."""
    if depth >= 4 or draw(st.integers(0, 2)) == 0:
        return draw(NUMBERS | st.sampled_from(names))

    def sub() -> str:
        text = draw(expressions(names, depth + 1))
        return f"({text})" if draw(st.booleans()) else text

    form = draw(st.integers(0, 8))
    if form == 0:
        return draw(st.sampled_from(["-", "+", "not "])) + sub()
    if form == 1:
        return f"{sub()} {draw(st.sampled_from(['+', '-', '*', '/', '//', '%', '**']))} {sub()}"
    if form == 2:
        return f"{sub()} {draw(st.sampled_from(['<', '<=', '>', '>=', '==', '!=']))} {sub()}"
    if form == 3:
        first, second = draw(st.sampled_from(["<", "<=", "=="])), draw(st.sampled_from(["<", "!="]))
        return f"{sub()} {first} {sub()} {second} {sub()}"
    if form in (4, 5):
        operands = [sub() for _ in range(form - 2)]
        return f" {draw(st.sampled_from(['and', 'or']))} ".join(operands)
    if form == 6:
        return f"{sub()} if {sub()} else {sub()}"
    if form == 7:
        return f"{draw(st.sampled_from(UNARY_FUNCTIONS))}({draw(expressions(names, depth + 1))})"
    arguments = [draw(expressions(names, depth + 1)) for _ in range(draw(st.integers(2, 4)))]
    return f"{draw(st.sampled_from(['min', 'max']))}({', '.join(arguments)})"


def python_parses(text: str) -> bool:
    try:
        ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return False
    return True


class _Float64(ast.NodeTransformer):
    """Rule 1's rewrite: literals and truth values as float64, `**` as numpy's power."""

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.Call(ast.Name("F", ast.Load()), [node], [])

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        return ast.Call(ast.Name("F", ast.Load()), [node], [])

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return ast.Call(ast.Name("F", ast.Load()), [node], []) if isinstance(node.op, ast.Not) else node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow):
            return ast.Call(ast.Name("power", ast.Load()), [node.left, node.right], [])
        return node


FLOAT64_NAMES: dict[str, Any] = {
    "F": lambda value: np.float64(float(value)), "power": np.power, "min": min, "max": max,
    "pi": np.float64(math.pi), "e": np.float64(math.e),
    **{name: getattr(np, name) for name in UNARY_FUNCTIONS},
}
PLAIN_NAMES: dict[str, Any] = {
    "min": min, "max": max, "pi": math.pi, "e": math.e, "abs": abs,
    "floor": lambda x: float(math.floor(x)), "ceil": lambda x: float(math.ceil(x)),
    **{name: getattr(math, name) for name in ("exp", "log", "log2", "log10", "sqrt", "sin", "cos", "tan")},
}


def python_float64(text: str) -> Any:
    """Rule 1: Python's evaluation of `text` in float64, as a code object (OverflowError for a too large literal)."""
    tree = ast.fix_missing_locations(_Float64().visit(ast.parse(text.strip(), mode="eval")))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "F" \
                and isinstance(node.args[0], ast.Constant):
            float(node.args[0].value)  # raises OverflowError for a literal no float64 holds
    return compile(tree, "<expression>", "eval")


def evaluate_float64(code: Any, step: float, lr: float | None = None) -> float:
    names = {**FLOAT64_NAMES, "step": np.float64(step), "epoch": np.float64(step)}
    if lr is not None:
        names["lr"] = np.float64(lr)
    with np.errstate(all="ignore"):
        return float(eval(code, {"__builtins__": {}}, names))  # the test's reference: Python itself


def evaluate_plain(text: str, step: float) -> float | None:
    """Rule 2: plain Python floats; None where Python raises or goes complex."""
    tree = ast.parse(text.strip(), mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            node.value = float(node.value)
    code = compile(tree, "<expression>", "eval")
    try:
        value = eval(code, {"__builtins__": {}}, {**PLAIN_NAMES, "step": float(step), "epoch": float(step)})
    except (ZeroDivisionError, OverflowError, ValueError):
        return None
    return None if isinstance(value, complex) else float(value)


def same(a: float, b: float) -> bool:
    """Bit for bit, but for nan's payload: equal with the same sign (so 0.0 is not -0.0), or both nan."""
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def accepted(**fields: Any) -> Expression | None:
    """The validated expression, or None when it is refused for one of the documented reasons."""
    try:
        return Expression(type="expression", **fields)
    except ValidationError as error:
        assert error.error_count() == 1
        assert re.search(REFUSAL, str(error)), f"refused for no documented reason: {error}"
        return None


@SETTINGS
@given(expressions(("step", "epoch", "pi", "e")))
def test_an_expression_of_step_is_pythons_own_value_in_float64(text: str) -> None:
    expression = accepted(expression=text)
    if not python_parses(text):
        assert expression is None
        return
    try:
        code = python_float64(text)
    except OverflowError:
        assert expression is None  # a literal no float64 holds is refused
        return
    assume(expression is not None)
    assert expression is not None

    served = expression.build()(np.asarray(STEPS, dtype=np.float64))

    for step, value in zip(STEPS, served):
        assert same(value, evaluate_float64(code, step)), (text, step, value, evaluate_float64(code, step))


@SETTINGS
@given(expressions(("step", "epoch", "pi", "e")).filter(lambda t: not any(s in t for s in LIBM_MAY_DIFFER)))
def test_without_powers_and_transcendental_functions_it_is_plain_pythons_value(text: str) -> None:
    expression = accepted(expression=text)
    assume(expression is not None and python_parses(text))
    assert expression is not None

    served = expression.build()(np.asarray(STEPS, dtype=np.float64))

    for step, value in zip(STEPS, served):
        plain = evaluate_plain(text, step)
        if plain is not None:
            assert value == plain or math.isnan(value) and math.isnan(plain), (text, step, value, plain)


@SETTINGS
@given(expressions(("step", "epoch", "lr", "lr", "pi")), st.sampled_from([0.0, 0.1, 1.0, 1e-300, 1e308, 3.0]))
def test_a_recursive_expression_is_pythons_own_recurrence_in_float64(text: str, initial: float) -> None:
    recursion.CACHE.clear()
    expression = accepted(expression=text, recursive=True, initial_learning_rate=initial)
    if not python_parses(text):
        assert expression is None
        return
    try:
        code = python_float64(text)
    except OverflowError:
        assert expression is None
        return
    assume(expression is not None)
    assert expression is not None

    served = expression.build()(np.arange(RECURSIVE_STEPS, dtype=np.float64))

    lr = initial
    for step, value in enumerate(served):
        lr = evaluate_float64(code, step, lr)
        assert same(value, lr), (text, step, value, lr)


@pytest.mark.parametrize(("text", "python"), [
    ("0.01 or 0.02", 0.01 or 0.02),
    ("0.0 or 0.02", 0.0 or 0.02),
    ("0.01 and 0.02", 0.01 and 0.02),
    ("0 and 0.02", 0 and 0.02),
    ("-0.0 or 0.5", -0.0 or 0.5),
    ("1e999 - 1e999 or 0.5", math.nan),  # nan is true: `nan or x` is nan
    ("not (1e999 - 1e999)", 0.0),
    ("0.1 if 1e999 - 1e999 else 0.2", 0.1),
    ("min(0.5, 1e999 - 1e999)", 0.5),
    ("min(1e999 - 1e999, 0.5)", math.nan),
    ("max(0.0, -0.0)", 0.0),
    ("max(-0.0, 0.0)", -0.0),
])
def test_the_truth_of_numbers_and_min_max_are_pythons(text: str, python: float) -> None:
    vectorized = Expression(type="expression", expression=text).build()(np.zeros(3))
    recursive = Expression(type="expression", expression=through_lr(text), recursive=True,
                           initial_learning_rate=0.0).build()(np.zeros(1))

    assert all(same(v, python) for v in vectorized), vectorized
    assert same(recursive[0], python), recursive


def through_lr(text: str) -> str:
    """`text` with every literal made to depend on lr (`c - lr * 0`, which is c when lr is 0), so that the
    recursive compiler evaluates every node one step at a time instead of handing it to numpy."""

    class Rewrite(ast.NodeTransformer):
        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            return ast.BinOp(node, ast.Sub(), ast.BinOp(ast.Name("lr", ast.Load()), ast.Mult(), ast.Constant(0)))

    return ast.unparse(Rewrite().visit(ast.parse(text, mode="eval")))
