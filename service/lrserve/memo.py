"""Learning rates memoized in blocks of 1,024 steps, for every run of the process, bounded in bytes.

Training asks for consecutive steps, and one numpy call costs about as much for 1,024 steps as for one,
so `RunView.lr` computes a whole block and keeps it here. A view is immutable, so a block never goes
stale: a write makes a new view with a new key. One memo is shared by all views so that its size is
bounded however many runs are cached (each block is 8 KiB of float64); the oldest block is evicted first.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np

BLOCK = 1024
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class BlockMemo:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._blocks: dict[tuple[int, int], np.ndarray] = {}
        self._max_blocks = max(1, max_bytes // (BLOCK * 8))
        self._lock = threading.Lock()
        self._keys = itertools.count(1)

    def new_key(self) -> int:
        """A key for one view's blocks; never reused in this process."""
        return next(self._keys)

    def get(self, key: int, index: int) -> np.ndarray | None:
        """A hit reads without the lock (a dict lookup is atomic); only misses change the memo."""
        return self._blocks.get((key, index))

    def put(self, key: int, index: int, block: np.ndarray) -> None:
        with self._lock:
            while len(self._blocks) >= self._max_blocks:
                del self._blocks[next(iter(self._blocks))]  # the oldest block (dicts keep insertion order)
            self._blocks[(key, index)] = block

    @property
    def nbytes(self) -> int:
        return len(self._blocks) * BLOCK * 8


MEMO = BlockMemo()
"""The process's memo, shared by every run view."""
