"""The inbox: every announced change, stored durably before the receiver answers (`$XZ_HOME/inbox.sqlite`).

SQLite in WAL mode with `synchronous=FULL`: the receiver's insert is on disk when it says 200, readers (the
sensors) never block it, and each operation opens its own short connection so threads and processes share
the file safely. A content hash is unique, so a redelivered event is stored once; `seq` orders arrival and
is the sensors' cursor (one position per connection). The `writes` table holds what our own write-back
wrote, so echo suppression reads this file and never the mirror.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from xz_pipeline import settings

DDL = """
create table if not exists events (
    seq integer primary key autoincrement,
    dedupe text not null unique,
    received_at text not null,
    source text not null,          -- xero | zoho
    connection text,               -- null until a Xero tenant is resolved to a connection
    tenant_id text,
    asset text not null,           -- the mirror asset that holds the record
    record_id text not null,
    deleted integer not null default 0,
    event_time text not null       -- when the source says the change happened (ISO, UTC)
);
create index if not exists events_lookup on events (connection, asset, record_id);
create index if not exists events_received on events (received_at);
create index if not exists events_position on events (connection, seq);
-- what our write-back wrote: the sensors tell echoes from people's edits without opening the mirror
create table if not exists writes (
    connection text not null,
    system text not null,          -- books | crm
    record_id text not null,
    written_at text not null,      -- when the write's answer came back (ISO, UTC)
    primary key (connection, system, record_id, written_at)
);
create index if not exists writes_time on writes (written_at);
"""


def inbox_path() -> Path:
    return settings.xz_home() / "inbox.sqlite"


def iso(dt: datetime) -> str:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class InboxEvent:
    dedupe: str
    source: str
    connection: str | None
    tenant_id: str | None
    asset: str
    record_id: str
    deleted: bool
    event_time: str
    seq: int = 0
    received_at: str = ""


class Inbox:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else inbox_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("pragma journal_mode=wal")
            con.executescript(DDL)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            con.execute("pragma synchronous=full")
            yield con
        finally:
            con.close()

    def add(self, events: Iterable[InboxEvent], *, now: datetime | None = None) -> int:
        """Store events in one durable transaction; returns how many were new (duplicates are ignored)."""
        received = iso(now or datetime.now(UTC))
        rows = [
            (
                e.dedupe,
                received,
                e.source,
                e.connection,
                e.tenant_id,
                e.asset,
                e.record_id,
                int(e.deleted),
                e.event_time,
            )
            for e in events
        ]
        if not rows:
            return 0
        with self._connect() as con:
            con.execute("begin immediate")
            before = con.total_changes
            con.executemany(
                "insert or ignore into events (dedupe, received_at, source, connection, tenant_id, asset,"
                " record_id, deleted, event_time) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            added = con.total_changes - before
            con.execute("commit")
        return added

    def after(self, seq: int, limit: int = 5000) -> list[InboxEvent]:
        """Events stored after `seq`, in arrival order (at most `limit`, so a sensor tick stays short)."""
        with self._connect() as con:
            rows = con.execute(
                "select dedupe, source, connection, tenant_id, asset, record_id, deleted, event_time, seq,"
                " received_at from events where seq > ? order by seq limit ?",
                [seq, limit],
            ).fetchall()
        return [InboxEvent(*r[:6], bool(r[6]), *r[7:]) for r in rows]

    def pending(
        self, positions: dict[str, int], limit: int = 5000, default: int = 0
    ) -> dict[str, list[InboxEvent]]:
        """Per connection, the events stored after its position (`default` for a connection not in
        `positions`), in arrival order, at most `limit` each: one connection's backlog never hides another's."""
        low = min([*positions.values(), default])
        with self._connect() as con:
            names = [r[0] for r in con.execute(
                "select distinct connection from events where connection is not null and seq > ?", [low]
            ).fetchall()]  # fmt: skip
            out = {}
            for name in sorted(names):
                rows = con.execute(
                    "select dedupe, source, connection, tenant_id, asset, record_id, deleted, event_time, seq,"
                    " received_at from events where connection = ? and seq > ? order by seq limit ?",
                    [name, positions.get(name, default), limit],
                ).fetchall()
                if rows:
                    out[name] = [InboxEvent(*r[:6], bool(r[6]), *r[7:]) for r in rows]
        return out

    def between(self, connection: str, first: int, last: int) -> list[InboxEvent]:
        """A connection's events with `first` <= seq <= `last` (a range to request again)."""
        with self._connect() as con:
            rows = con.execute(
                "select dedupe, source, connection, tenant_id, asset, record_id, deleted, event_time, seq,"
                " received_at from events where connection = ? and seq between ? and ? order by seq",
                [connection, first, last],
            ).fetchall()
        return [InboxEvent(*r[:6], bool(r[6]), *r[7:]) for r in rows]

    def last_seq(self) -> int:
        with self._connect() as con:
            return con.execute("select coalesce(max(seq), 0) from events").fetchone()[0]

    def record_writes(self, connection: str, writes: Iterable[tuple[str, str]], at: datetime) -> int:
        """Remember (system, record id) pairs our write-back wrote at `at`."""
        rows = [(connection, system, str(rid), iso(at)) for system, rid in writes if rid]
        if not rows:
            return 0
        with self._connect() as con:
            con.execute("begin immediate")
            con.executemany("insert or ignore into writes values (?, ?, ?, ?)", rows)
            con.execute("commit")
        return len(rows)

    def writes_between(
        self, connection: str, system: str, lo: datetime, hi: datetime
    ) -> list[tuple[str, str]]:
        """(record id, written at) of our writes to `system` between `lo` and `hi`."""
        with self._connect() as con:
            return con.execute(
                "select record_id, written_at from writes where connection = ? and system = ?"
                " and written_at between ? and ?",
                [connection, system, iso(lo), iso(hi)],
            ).fetchall()

    def unresolved_tenants(self) -> list[str]:
        with self._connect() as con:
            rows = con.execute("select distinct tenant_id from events where connection is null").fetchall()
        return [r[0] for r in rows if r[0]]

    def resolve_tenant(self, tenant_id: str, connection: str) -> None:
        with self._connect() as con:
            con.execute("update events set connection = ? where tenant_id = ? and connection is null",
                        [connection, tenant_id])  # fmt: skip

    def announced(self, connection: str, asset: str, since: datetime) -> dict[str, str]:
        """Record id → latest announced change time, for changes announced at or after `since`."""
        with self._connect() as con:
            rows = con.execute(
                "select record_id, max(event_time) from events where connection = ? and asset = ?"
                " and event_time >= ? group by record_id",
                [connection, asset, iso(since)],
            ).fetchall()
        return dict(rows)

    def first_event(self, connection: str, source: str) -> datetime | None:
        """When this connection's source first announced something (None: never, realtime is off)."""
        with self._connect() as con:
            row = con.execute(
                "select min(received_at) from events where connection = ? and source = ?",
                [connection, source],
            ).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def prune(self, before: datetime, upto_seq: int) -> int:
        """Forget events received before `before` that the sensor has consumed (<= `upto_seq`)."""
        with self._connect() as con:
            cur = con.execute(
                "delete from events where received_at < ? and seq <= ?", [iso(before), upto_seq]
            )
            con.execute("delete from writes where written_at < ?", [iso(before)])
            return cur.rowcount

    def count(self) -> int:
        with self._connect() as con:
            return con.execute("select count(*) from events").fetchone()[0]
