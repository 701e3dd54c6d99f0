"""Pages of long lists: the cursor of `GET /runs`, and one page of a run's reports. Pure functions."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from operator import attrgetter

from lrserve.errors import InvalidInput
from lrserve.store import ReportRecord

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


def report_page(reports: Sequence[ReportRecord], after_step: int | None,
                limit: int) -> tuple[Sequence[ReportRecord], int | None]:
    """The reports with step > `after_step` (all for None), oldest first, at most `limit` of them, and the
    `after_step` of the next page: the step of this page's last report, or None when nothing follows it.

    `reports` must be sorted by step, as a run's view keeps them; the start is found by bisection.
    """
    start = 0 if after_step is None else bisect_right(reports, after_step, key=attrgetter("step"))
    page = reports[start:start + limit]
    more = start + limit < len(reports)
    return page, (page[-1].step if more else None)
