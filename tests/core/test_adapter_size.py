"""A framework adapter is a thin layer over `RunFollower`: the newer ones stay well under 100 lines of code."""

import ast
from pathlib import Path

import pytest

CLIENT = Path(__file__).parents[2] / "client" / "lrclient"


def lines_of_code(source: str) -> int:
    """Lines that are not blank, not comments and not part of a docstring."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and ast.get_docstring(node) is not None:
            docstrings.update(range(node.body[0].lineno, node.body[0].end_lineno + 1))
    return sum(1 for number, line in enumerate(source.splitlines(), 1)
               if number not in docstrings and line.strip() and not line.strip().startswith("#"))


def test_lines_of_code_leave_out_docstrings_comments_and_blank_lines() -> None:
    source = '"""Module."""\n\n# a comment\ndef f():\n    """One\n    two."""\n    return 1\n'
    assert lines_of_code(source) == 2


@pytest.mark.parametrize("module", ["lightning.py", "transformers.py", "optax.py"])
def test_a_newer_adapter_is_well_under_100_lines_of_code(module: str) -> None:
    assert lines_of_code((CLIENT / module).read_text()) < 80
