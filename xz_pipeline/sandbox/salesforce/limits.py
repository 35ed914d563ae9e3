"""The org's daily API request allocation (a rolling 24 hours) and the Sforce-Limit-Info header.

Facts (notes B.6): allocation = 100,000 + per-licence adder (1,000 for Enterprise) x licences; usage is
reported on every answer as `Sforce-Limit-Info: api-usage=N/M`; a spent allocation answers 403
REQUEST_LIMIT_EXCEEDED "TotalRequests Limit exceeded."; `/limits` reports DailyApiRequests {Max, Remaining}.
A collections or composite call counts once. OAuth calls do not count. Windows run on the sandbox clock.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from xz_pipeline.sandbox.clock import Clock

DAY = 86_400.0


@dataclass
class SalesforceLimits:
    """Real figures by default; tests shrink them. `daily` None: 100,000 + 1,000 per user licence."""

    daily: int | None = None
    batch_size: int = 2000  # records per query batch unless the client asks for fewer (Sforce-Query-Options)
    collection_records: int = 200
    composite_subrequests: int = 25


class DailyBudget:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = {}
        self.max: dict[str, int] = {}

    def _window(self, org_id: str) -> deque[float]:
        calls = self._calls.setdefault(org_id, deque())
        now = self.clock.now().timestamp()
        while calls and calls[0] <= now - DAY:
            calls.popleft()
        return calls

    def spend(self, org_id: str) -> bool:
        """Count one call; False (and nothing counted) when the allocation is spent."""
        with self._lock:
            calls = self._window(org_id)
            if len(calls) >= self.max[org_id]:
                return False
            calls.append(self.clock.now().timestamp())
            return True

    def used(self, org_id: str) -> int:
        with self._lock:
            return len(self._window(org_id))

    def header(self, org_id: str) -> str:
        return f"api-usage={self.used(org_id)}/{self.max[org_id]}"

    def report(self, org_id: str) -> dict:
        """`/limits`: DailyApiRequests as counted here, the other allocations at their documented sizes."""
        used, top = self.used(org_id), self.max[org_id]

        def fixed(n: int) -> dict:
            return {"Max": n, "Remaining": n}

        return {
            "DailyApiRequests": {"Max": top, "Remaining": max(0, top - used)},
            "DailyBulkApiBatches": fixed(15_000),
            "DailyBulkV2QueryJobs": fixed(10_000),
            "DailyBulkV2QueryFileStorageMB": fixed(976_562),
            "DailyAsyncApexExecutions": fixed(250_000),
            "DailyWorkflowEmails": fixed(1_000_000),
            "ConcurrentSyncLongRunningRequests": fixed(25),
            "DataStorageMB": fixed(1024),
            "FileStorageMB": fixed(1024),
        }
