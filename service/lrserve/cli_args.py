"""argparse types shared by the `lrserve` commands: a bad value is argparse's one-line usage error, exit code 2."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer >= minimum."""
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum} (received {raw!r})")
        return value

    return parse


def pixel_size(raw: str) -> tuple[int, int]:
    """WIDTHxHEIGHT in pixels, each 100 to 10000."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", raw)
    size = (int(match.group(1)), int(match.group(2))) if match else None
    if size is None or not all(100 <= side <= 10_000 for side in size):
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT in pixels, each 100 to 10000, "
                                         f"such as 1000x600 (received {raw!r})")
    return size
