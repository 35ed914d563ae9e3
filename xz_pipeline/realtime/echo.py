"""Echo suppression: was an announced change our own write-back coming back to us?

The write-back ledger (`writeback.ledger`, one row per API call) says which records we wrote and when. A
notification for such a record within `WINDOW` of the write is an echo: the mirror still reads it (so it
holds what we wrote) but the run it causes must not write again, or two systems would ping-pong forever.
Both the realtime sensor and the write-back stage call `echoes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=2)
_RECORD = ("record_id", "record", "target_id")
_TIME = ("time", "at", "applied_at", "created_at", "written_at")
_OK_STATUS = ("applied", "ok", "success", "succeeded", "done")


def _pick(columns: set[str], names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in columns), None)


def echoes(con, connection: str, system: str, changes: Iterable[tuple[str, datetime]],
           window: timedelta = WINDOW) -> set[str]:  # fmt: skip
    """The record ids among `changes` ((record id, change time) in `system`: books | crm | xero | zoho)
    that our own write-back wrote within `window` of the change. `con` is an open DuckDB connection;
    without a ledger table nothing is an echo."""
    changes = list(changes)
    if not changes:
        return set()
    cols = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'writeback' and table_name = 'ledger'"
        ).fetchall()
    }
    record, at = _pick(cols, _RECORD), _pick(cols, _TIME)
    if not cols or record is None or at is None:
        return set()
    where, params = [f"{record} = ?", f"{at} between ? and ?"], []
    if "connection" in cols:
        where.append("connection = ?")
    if "system" in cols:
        where.append("lower(system) in (?, ?)")
    if "status" in cols:
        where.append("lower(status) in (" + ", ".join("?" * len(_OK_STATUS)) + ")")
    sql = f"select 1 from writeback.ledger where {' and '.join(where)} limit 1"
    aliases = {"xero": "books", "zoho": "crm", "books": "xero", "crm": "zoho"}
    found = set()
    for record_id, when in changes:
        params = [record_id, when - window, when + window]
        if "connection" in cols:
            params.append(connection)
        if "system" in cols:
            params += [system.lower(), aliases.get(system.lower(), system.lower())]
        if "status" in cols:
            params += list(_OK_STATUS)
        if con.execute(sql, params).fetchone():
            found.add(record_id)
    return found
