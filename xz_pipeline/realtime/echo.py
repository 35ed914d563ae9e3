"""Echo suppression: was an announced change our own write-back coming back to us?

`writeback.plan` keeps every change we applied: the system (books | crm), the record written (`record`,
or `result_id` for a record we created) and `applied_at`. A webhook or notification for such a record
within `WINDOW` of the write is an echo: the mirror still reads it (so it holds what we wrote), but the
run it causes must not reach the write-back stage again, or two systems would ping-pong forever. The
write-back stage has its own guard against re-proposing applied changes (writeback/plan.py `echoes`);
this one keeps the near-real-time loop from even asking.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=2)
ROLE = {"xero": "books", "zoho": "crm", "books": "books", "crm": "crm"}


def echoes(con, connection: str, system: str, changes: Iterable[tuple[str, datetime]],
           window: timedelta = WINDOW) -> set[str]:  # fmt: skip
    """The record ids among `changes` ((record id, change time) in `system`: xero | zoho | books | crm)
    that our write-back applied within `window` of the change. `con` is an open DuckDB connection;
    before the write-back stage has run there is nothing to echo."""
    changes = list(changes)
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'writeback' and table_name = 'plan'"
    ).fetchone()[0]
    if not changes or not exists:
        return set()
    lo = min(when for _, when in changes) - window
    hi = max(when for _, when in changes) + window
    applied: dict[str, list[datetime]] = {}
    for record, result_id, at in con.execute(
        "select record, result_id, applied_at from writeback.plan where connection = ? and system = ?"
        " and status = 'applied' and applied_at between ? and ?",
        [connection, ROLE.get(system.lower(), system.lower()), lo, hi],
    ).fetchall():
        # A created invoice's result is "<id>|<number>": the id is what the webhook names.
        for rid in {record, *(str(result_id).split("|")[:1] if result_id else ())} - {None, ""}:
            applied.setdefault(str(rid), []).append(at)
    return {rid for rid, when in changes if any(abs(when - at) <= window for at in applied.get(rid, ()))}
