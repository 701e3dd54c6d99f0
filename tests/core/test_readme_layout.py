"""The README's Layout section lists every module of the service and the client, one line each, and nothing
that is not in the tree: a newcomer finds each module there, and a rename that forgets the README fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service/lrserve", "client/lrclient")


def layout_modules() -> set[str]:
    """The .py paths the Layout block names, rebuilt from its indentation (two spaces per level)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    folders: list[str] = []
    named: set[str] = set()
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if match is None:
            continue
        depth, name = len(match.group(1)) // 2, match.group(2)
        if name.endswith("/"):
            folders[depth:] = [name.rstrip("/")]
        elif name.endswith(".py") and depth <= len(folders):
            named.add("/".join([*folders[:depth], name]))
    return named


def tree_modules() -> set[str]:
    return {str(path.relative_to(ROOT)) for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def test_the_readme_layout_names_every_module_of_the_tree_and_no_other() -> None:
    named, tree = layout_modules(), tree_modules()
    assert {m for m in named if m.startswith(PACKAGES)} == tree, (
        f"missing from the README: {sorted(tree - named)}; not in the tree: {sorted(named - tree)}")
