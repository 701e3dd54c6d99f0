"""How a process knows, without asking the database, that a view it holds is still right for a read.

Guarantee: once any process has acknowledged a write, every later request to any process sharing the
database answers from a state that includes it. A read is answered from memory only when no write it
has not seen could change the answer:

- *settled* values (`RunView.settled`: every step of a run without a plateau tracker, the steps up to
  the latest report of a run with one) change only through a rewind, a revision or a delete. Those
  three append to the database's event log, and their answer is held back for `lease` seconds after
  they commit. Each process reads the log every `lease / 5` seconds, drops the views it names, and
  serves settled values from memory only while its latest read of the log *started* less than `lease`
  seconds ago. So a request that arrives after such a write was acknowledged reaches a process whose
  log read began after the write committed: the view it answers from already includes the write.
- any other read (an unsettled step, a run's state, its reports) costs one indexed query for the run's
  stamp, and the view is reloaded if another process wrote since.

`EventWatch` keeps the lease; it needs only the store's event log and a clock.

One vocabulary, used by `Runs`, `RunView`, the settings and here:

- *settled*: a value only a rewind, a revision or a delete can change (`RunView.settled(last_step)`).
- *lease* (seconds, `DEFAULT_LEASE_SECONDS`): how long a read of the event log vouches for settled values
  held in memory (`EventWatch.lease_held()`), and how long the answer to a rewind, revision or delete is
  held back (`Runs.lease`).
- *cache_seconds* (LRSERVE_CACHE_SECONDS, 0 by default): how long after the database last confirmed a view's
  stamp it may answer any read, settled or not, without asking again: 0 is exact.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from lrserve.store import Store

log = logging.getLogger("lrserve")

DEFAULT_LEASE_SECONDS = 0.25
"""How long a read of the event log vouches for settled values; also how long an event's answer waits."""
PRUNE_AFTER_SECONDS = 600.0
"""Events older than this are deleted; a process that could not read the log for half of it starts afresh."""


class EventWatch:
    """Follows the event log of rewinds, revisions and deletes, and holds the settled-read lease."""

    def __init__(self, store: Store, drop: Callable[[str], None], drop_all: Callable[[], None],
                 lease: float = DEFAULT_LEASE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._store, self._drop, self._drop_all = store, drop, drop_all
        self.lease = lease
        self._clock = clock
        self._lease_until = -1.0
        self._last_event: int | None = None
        self._last_success = clock()
        self._last_prune = -PRUNE_AFTER_SECONDS
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.generation = 0
        """Grows whenever views are dropped: a view loaded across a change of generation is not kept."""

    def lease_held(self) -> bool:
        """Settled values held in memory may be served now: the latest read of the log started less than
        `lease` seconds ago."""
        return self._clock() < self._lease_until

    def poll(self) -> None:
        """Read the log once: drop the views it names, then renew the lease from this read's start."""
        started = self._clock()
        if self._last_event is None:  # the first read: what happened before this process does not matter
            self._last_event = self._store.last_event()
        events = self._store.events_after(self._last_event)
        if started - self._last_success > PRUNE_AFTER_SECONDS / 2:
            self.generation += 1
            self._drop_all()  # events we never read may have been pruned
        for event_id, run_id in events:
            self.generation += 1
            self._drop(run_id)
            self._last_event = event_id
        self._last_success = started
        self._lease_until = started + self.lease
        if started - self._last_prune > PRUNE_AFTER_SECONDS / 10:
            self._last_prune = started
            self._store.prune_events(time.time() - PRUNE_AFTER_SECONDS)

    def start(self) -> None:
        self.poll()
        self._thread = threading.Thread(target=self._follow, name="lrserve-event-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _follow(self) -> None:
        while not self._stop.wait(self.lease / 5):
            try:
                self.poll()
            except Exception as error:  # the lease runs out by itself; reads then ask the database
                log.warning("lrserve: cannot read the event log: %s", error)
