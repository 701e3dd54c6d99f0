"""Pages of long lists: the cursor of `GET /runs`. Pure functions."""

from __future__ import annotations

from lrserve.errors import InvalidInput

MAX_CURSOR = 2**63 - 1
"""Cursors are run seqs: 64-bit signed integers in both databases."""


def parse_cursor(cursor: str | None) -> int:
    """The seq a `next_cursor` stands for (0, the start, for none); 422 for anything GET /runs never returns.

    Only the ASCII digits 0-9 count (`str.isdigit` also accepts '²'), and only up to MAX_CURSOR, which
    the databases can compare with (a larger number would overflow SQLite's integers).
    """
    if cursor is None:
        return 0
    if not (0 < len(cursor) <= len(str(MAX_CURSOR)) and cursor.isascii() and cursor.isdigit()
            and int(cursor) <= MAX_CURSOR):
        shown = repr(cursor[:40]) + ("..." if len(cursor) > 40 else "")
        raise InvalidInput(
            f"cursor: must be a next_cursor value returned by GET /runs (digits 0-9, at most {MAX_CURSOR}); "
            f"leave it out for the first page; received {shown}"
        )
    return int(cursor)

