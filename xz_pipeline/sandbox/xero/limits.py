"""Xero's API limits: per tenant 5 in flight, 60 a rolling minute, 5,000 a rolling day; 10,000 a minute per app.

Windows are counted with the emulator's clock, so tests step over a minute instead of sleeping.
Only admitted calls count; a call refused with 429 spends nothing.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

from xz_pipeline.sandbox.clock import Clock

MINUTE = 60.0
DAY = 86400.0


@dataclass
class XeroLimits:
    """The real limits by default; tests and benchmarks shrink them."""

    concurrent: int = 5
    per_minute: int = 60
    per_day: int = 5000
    app_per_minute: int = 10000


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    problem: str = ""  # minute | day | appminute | concurrent
    retry_after: int = 0
    headers: tuple[tuple[str, str], ...] = ()


class RateLimiter:
    """Sliding windows per app and tenant, and per app; `admit()` reserves a slot, `release()` frees the
    in-flight one. Xero counts "the API calls your application can make against a particular tenant": another
    app's calls to the same organisation (a bank feed, a bookkeeper's tool) do not spend ours."""

    def __init__(self, clock: Clock, limits: XeroLimits) -> None:
        self.clock = clock
        self.limits = limits
        self._lock = threading.Lock()
        self._minute: dict[tuple[str, str], deque[float]] = {}
        self._day: dict[tuple[str, str], deque[float]] = {}
        self._app: dict[str, deque[float]] = {}
        self._in_flight: dict[tuple[str, str], int] = {}

    def _now(self) -> float:
        return self.clock.now().timestamp()

    @staticmethod
    def _trim(window: deque[float], now: float, span: float) -> None:
        while window and window[0] <= now - span:
            window.popleft()

    def _remaining(self, tenant: str | None, app: str, now: float) -> tuple[tuple[str, str], ...]:
        lim = self.limits
        calls = self._app.setdefault(app, deque())
        self._trim(calls, now, MINUTE)
        app_left = max(0, lim.app_per_minute - len(calls))
        if tenant is None:
            minute_left, day_left = lim.per_minute, lim.per_day
        else:
            m = self._minute.setdefault((app, tenant), deque())
            d = self._day.setdefault((app, tenant), deque())
            self._trim(m, now, MINUTE)
            self._trim(d, now, DAY)
            minute_left, day_left = max(0, lim.per_minute - len(m)), max(0, lim.per_day - len(d))
        return (
            ("X-DayLimit-Remaining", str(day_left)),
            ("X-MinLimit-Remaining", str(minute_left)),
            ("X-AppMinLimit-Remaining", str(app_left)),
        )

    def headers(self, tenant: str | None, app: str = "") -> tuple[tuple[str, str], ...]:
        """The three remaining-count headers, without spending a call (for responses refused before admission)."""
        with self._lock:
            return self._remaining(tenant, app, self._now())

    def admit(self, tenant: str, app: str = "") -> Decision:
        lim = self.limits
        with self._lock:
            now = self._now()
            headers = self._remaining(tenant, app, now)
            m, d, calls, key = (
                self._minute[app, tenant],
                self._day[app, tenant],
                self._app[app],
                (app, tenant),
            )

            def wait(window: deque[float], span: float) -> int:
                return max(1, math.ceil(window[0] + span - now))

            if len(d) >= lim.per_day:
                return Decision(False, "day", wait(d, DAY), headers)
            if len(calls) >= lim.app_per_minute:
                return Decision(False, "appminute", wait(calls, MINUTE), headers)
            if len(m) >= lim.per_minute:
                return Decision(False, "minute", wait(m, MINUTE), headers)
            if self._in_flight.get(key, 0) >= lim.concurrent:
                return Decision(False, "concurrent", 1, headers)
            m.append(now)
            d.append(now)
            calls.append(now)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            return Decision(True, headers=self._remaining(tenant, app, now))

    def release(self, tenant: str, app: str = "") -> None:
        with self._lock:
            self._in_flight[app, tenant] = max(0, self._in_flight.get((app, tenant), 0) - 1)

    def in_flight(self, tenant: str, app: str = "") -> int:
        with self._lock:
            return self._in_flight.get((app, tenant), 0)
