"""One CPU-heavy task at a time per process: validating and checking a spec, computing a long range.

Such work runs in the thread pool, off the event loop, but Python threads share one interpreter lock:
with six heavy tasks at once the event loop would get a seventh of it, and health probes and reports
would wait. Taking turns, a heavy task and the event loop share it about evenly.
"""

from __future__ import annotations

import threading

HEAVY_WORK = threading.Lock()
