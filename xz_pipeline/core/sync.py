"""How an extract asset decides between an incremental read and a full sweep, shared by every vendor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg

# Modified-since filters are accurate to the second: re-read one second so a write that shared the
# cursor's second is never missed (re-read rows are recognised by their unchanged payload hash).
CURSOR_OVERLAP = timedelta(seconds=1)


class MirrorConfig(dg.Config):
    """Run-time knobs of the extract assets (the daily schedule sets `full_sweep`)."""

    full_sweep: bool = False


@dataclass(frozen=True)
class ReadPlan:
    full: bool
    since: datetime | None
    reason: str


def plan_read(
    cursor: datetime | None,
    last_full: datetime | None,
    *,
    now: datetime,
    sweep_every: timedelta,
    forced: bool,
) -> ReadPlan:
    if forced:
        return ReadPlan(True, None, "full sweep requested")
    if cursor is None:
        return ReadPlan(True, None, "first sync")
    if sweep_every > timedelta(0) and (last_full is None or now - last_full >= sweep_every):
        return ReadPlan(True, None, f"periodic full sweep (every {sweep_every})")
    return ReadPlan(False, cursor - CURSOR_OVERLAP, "incremental")
