"""API credits per rolling 24 hours and concurrency per edition (zoho-api.md §13).

Credits: 50,000 + a per-user allowance, capped, by edition (Free is a flat 5,000). Concurrency counts
simultaneous calls per org per OAuth app; "complex" calls (sort_by/cvid reads, writes of more than 10
records, search, COQL) also share a sub-concurrency of 10. Over either → 429 TOO_MANY_REQUESTS.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

# edition -> (per-user credits, cap or None for unlimited)
CREDIT_TABLE = {
    "Standard": (250, 100_000),
    "Professional": (500, 3_000_000),
    "Enterprise": (1_000, 5_000_000),
    "Ultimate": (2_000, None),
}
CONCURRENCY = {"Free": 5, "Standard": 10, "Professional": 15, "Enterprise": 20, "Ultimate": 25}
WINDOW = timedelta(hours=24)
TOO_MANY_MESSAGE = (
    "Number of API requests for the 24 hour period is exceeded or the concurrency limit of the user "
    "for the app is exceeded"
)


def credits_for_edition(edition: str, users: int) -> int | None:
    """Daily credits of an edition; None means unlimited."""
    if edition == "Free":
        return 5_000
    per_user, cap = CREDIT_TABLE.get(edition, CREDIT_TABLE["Enterprise"])
    total = 50_000 + per_user * max(users, 0)
    return total if cap is None else min(total, cap)


@dataclass
class ZohoLimits:
    """Limits of one emulated org; defaults as documented for the edition, settable for tests."""

    edition: str = "Enterprise"
    users: int = 10
    credits_per_day: int | None = None
    concurrency: int | None = None
    sub_concurrency: int = 10

    def daily_credits(self) -> int | None:
        if self.credits_per_day is not None:
            return self.credits_per_day
        return credits_for_edition(self.edition, self.users)

    def max_concurrency(self) -> int:
        if self.concurrency is not None:
            return self.concurrency
        return CONCURRENCY.get(self.edition, CONCURRENCY["Enterprise"])


def write_cost(records: int) -> int:
    """Insert/update/upsert: one credit per 10 records (at least one)."""
    return max(1, math.ceil(records / 10))


def tag_cost(records: int) -> int:
    return max(1, math.ceil(records / 50))


def coql_cost(limit: int) -> int:
    return 1 if limit <= 200 else 2 if limit <= 1000 else 3


class Meter:
    """Credits spent per org over a rolling window, and calls in flight per (org, client)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[str, deque] = {}
        self._flight: dict[tuple[str, str], int] = {}
        self._complex: dict[tuple[str, str], int] = {}

    def used(self, org_id: str, now: datetime) -> int:
        with self._lock:
            return self._used(org_id, now)

    def _used(self, org_id: str, now: datetime) -> int:
        spent = self._spent.setdefault(org_id, deque())
        while spent and spent[0][0] <= now - WINDOW:
            spent.popleft()
        return sum(c for _, c in spent)

    def charge(self, org_id: str, credits: int, limit: int | None, now: datetime) -> bool:
        """Spend credits if the window allows; False (nothing spent) when it does not."""
        with self._lock:
            if limit is not None and self._used(org_id, now) + credits > limit:
                return False
            self._spent.setdefault(org_id, deque()).append((now, credits))
            return True

    def enter(self, key: tuple[str, str], complex_call: bool, limit: int, sub_limit: int) -> bool:
        with self._lock:
            if self._flight.get(key, 0) >= limit:
                return False
            if complex_call and self._complex.get(key, 0) >= sub_limit:
                return False
            self._flight[key] = self._flight.get(key, 0) + 1
            if complex_call:
                self._complex[key] = self._complex.get(key, 0) + 1
            return True

    def leave(self, key: tuple[str, str], complex_call: bool) -> None:
        with self._lock:
            self._flight[key] -= 1
            if complex_call:
                self._complex[key] -= 1
