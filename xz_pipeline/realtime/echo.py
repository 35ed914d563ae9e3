"""Echo suppression: was an announced change our own write-back coming back to us?

The write-back stage records every record it wrote (system, record id — the created id for a record it
created — and when the answer came back) in the inbox database (`remember_writes`). A webhook or
notification for such a record within `WINDOW` of the write is an echo: the mirror still reads it (so it
holds what we wrote), but the run it causes must not reach the write-back stage again, or two systems
would ping-pong forever. The sensors answer this from the inbox file alone: they never open the mirror,
whose lock belongs to the runs. The write-back stage has its own guard against re-proposing applied
changes (writeback/plan.py `echoes`); this one keeps the near-real-time loop from even asking.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from xz_pipeline.realtime.inbox import Inbox

WINDOW = timedelta(minutes=2)
ROLE = {"xero": "books", "zoho": "crm", "books": "books", "crm": "crm"}
log = logging.getLogger("xz.realtime")


def remember_writes(connection: str, written: Mapping[tuple[str, str], Iterable[str]],
                    at: datetime | None = None, inbox: Inbox | None = None) -> int:  # fmt: skip
    """Record what a write-back pass wrote: `written` maps (system, entity) to record ids. Never fails the
    write-back: a write not remembered only costs one more (guarded) pass through the stage."""
    pairs = [(ROLE.get(system, system), rid) for (system, _), ids in written.items() for rid in ids]
    if not pairs:
        return 0
    try:
        return (inbox or Inbox()).record_writes(connection, pairs, at or datetime.now(UTC))
    except Exception as exc:  # the inbox file is unwritable: say so, keep the writes
        log.warning("could not record %d write(s) for echo suppression: %s", len(pairs), type(exc).__name__)
        return 0


def echoes(inbox: Inbox, connection: str, system: str, changes: Iterable[tuple[str, datetime]],
           window: timedelta = WINDOW) -> set[str]:  # fmt: skip
    """The record ids among `changes` ((record id, change time) in `system`: xero | zoho | books | crm)
    that our write-back wrote within `window` of the change."""
    changes = list(changes)
    if not changes:
        return set()
    lo = min(when for _, when in changes) - window
    hi = max(when for _, when in changes) + window
    written: dict[str, list[datetime]] = {}
    for rid, at in inbox.writes_between(connection, ROLE.get(system.lower(), system.lower()), lo, hi):
        written.setdefault(rid, []).append(datetime.fromisoformat(at))
    return {rid for rid, when in changes if any(abs(when - at) <= window for at in written.get(rid, ()))}
