"""Day offsets to dates and times, through lookup tables (a million invoices build no timedelta twice)."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta

BUSINESS_START = 8 * 3600  # seconds after midnight UTC: records are entered during a working day
BUSINESS_SPAN = 10 * 3600


@functools.cache
def _seconds() -> tuple[timedelta, ...]:
    return tuple(timedelta(seconds=s) for s in range(86_400))


class Timeline:
    """Day 0 is the first day of the generated window; `end` is the last day before `as_of`."""

    def __init__(self, as_of: datetime, window_days: int, before: int = 2500, after: int = 400) -> None:
        self.as_of = as_of
        self.window = window_days
        self.end = window_days - 1
        self.origin = as_of.date() - timedelta(days=window_days)
        self._lo = -before
        span = range(-before, window_days + after)
        self._dates = [self.origin + timedelta(days=d) for d in span]
        midnight = datetime.combine(self.origin, time(), UTC)
        self._mid = [midnight + timedelta(days=d) for d in span]
        self._secs = _seconds()  # shared: a thousand worlds in one sandbox keep one table, not a thousand
        self._days = [timedelta(days=d) for d in range(after + 1)]
        self._latest = as_of - timedelta(seconds=1)

    def date(self, day: int) -> date:
        return self._dates[day - self._lo]

    def at(self, day: int, second: int) -> datetime:
        """A moment on `day`, never at or after as_of."""
        moment = self._mid[day - self._lo] + self._secs[second]
        return moment if moment < self.as_of else self._latest

    def later(self, moment: datetime, seconds: int) -> datetime:
        """`seconds` after `moment`, capped just before as_of."""
        shifted = moment + timedelta(seconds=seconds)
        return shifted if shifted < self.as_of else self._latest

    def days_before(self, moment: datetime, days: int) -> datetime:
        """`days` whole days before `moment` (0 <= days <= the table's span)."""
        return moment - self._days[days]

    def soon_after(self, moment: datetime, seconds: int) -> datetime:
        """`seconds` (under a day) after `moment`, capped just before as_of."""
        shifted = moment + self._secs[seconds]
        return shifted if shifted < self.as_of else self._latest

    def day_of(self, d: date) -> int:
        return (d - self.origin).days
