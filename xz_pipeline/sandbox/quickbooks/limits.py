"""QBO's throttles: per app and realm 500 requests a rolling minute and 10 in flight; 40 batch calls a minute.

Source: notes A.4/A.5 (Intuit's blog posts on concurrency and batch). Excess is HTTP 429 with a
`ThrottleExceeded` Fault (code 003001). Windows run on the sandbox clock, so tests step over a minute
instead of sleeping; only admitted calls count. QBO sends no remaining-count headers.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

from xz_pipeline.sandbox.clock import Clock

MINUTE = 60.0


@dataclass
class QboLimits:
    """The real limits by default; tests shrink them."""

    per_minute: int = 500
    concurrent: int = 10
    batch_per_minute: int = 40
    batch_items: int = 30


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    problem: str = ""  # minute | concurrent | batch
    retry_after: int = 0


class RateLimiter:
    """Sliding one-minute windows per (app, realm), a separate one for batch calls, and an in-flight count."""

    def __init__(self, clock: Clock, limits: QboLimits) -> None:
        self.clock, self.limits = clock, limits
        self._lock = threading.Lock()
        self._minute: dict[tuple[str, str], deque[float]] = {}
        self._batch: dict[tuple[str, str], deque[float]] = {}
        self._in_flight: dict[tuple[str, str], int] = {}

    def admit(self, realm: str, app: str, *, batch: bool = False) -> Decision:
        key = (app, realm)
        with self._lock:
            now = self.clock.now().timestamp()
            calls = self._minute.setdefault(key, deque())
            batches = self._batch.setdefault(key, deque())
            for window in (calls, batches):
                while window and window[0] <= now - MINUTE:
                    window.popleft()
            if len(calls) >= self.limits.per_minute:
                return Decision(False, "minute", max(1, math.ceil(calls[0] + MINUTE - now)))
            if batch and len(batches) >= self.limits.batch_per_minute:
                return Decision(False, "batch", max(1, math.ceil(batches[0] + MINUTE - now)))
            if self._in_flight.get(key, 0) >= self.limits.concurrent:
                return Decision(False, "concurrent", 1)
            calls.append(now)
            if batch:
                batches.append(now)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            return Decision(True)

    def release(self, realm: str, app: str) -> None:
        with self._lock:
            self._in_flight[app, realm] = max(0, self._in_flight.get((app, realm), 0) - 1)

    def in_flight(self, realm: str, app: str) -> int:
        with self._lock:
            return self._in_flight.get((app, realm), 0)
