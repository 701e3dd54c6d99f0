"""lrclient: the thin Python client of lrserve (work in progress)."""

__all__: list[str] = []
