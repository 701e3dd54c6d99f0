"""Dependencies shared by the routers: the `Runs` service and the path and query types."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from lrserve.runs import Runs
from lrserve.spec import RUN_ID_PATTERN


async def get_runs(request: Request) -> Runs:
    return request.app.state.runs


RunsDep = Annotated[Runs, Depends(get_runs)]
RunId = Annotated[
    str,
    Path(min_length=1, max_length=128, pattern=RUN_ID_PATTERN,
         description="1 to 128 characters of A-Z a-z 0-9 . _ -"),
]
RunIdPrefix = Annotated[
    str | None,
    Query(min_length=1, max_length=128, pattern=RUN_ID_PATTERN,
          description="only runs whose id starts with this: 1 to 128 characters of A-Z a-z 0-9 . _ -, "
                      "each taken literally and case-sensitively"),
]
