"""`writeback.plan` and `writeback.ledger`: what we mean to change, and every call we made to do it.

The plan keeps its rows across runs (keyed by `change_id`, a hash of what the change is): a row applied
stays as history, a rejected row keeps the API's reason and is not sent again by itself (the API refused
that very request; a retry cannot heal it): a person fixes what the reason names and asks for it once more
(`xz apply --retry-rejected`) or skips it (`status = 'skipped'`). A pending row whose cause went away
becomes 'obsolete'; a change with another value is another row, sent as planned.
The ledger has one row per API call, inserted (and committed) *before* the call as an intent and
completed after it: an intent never completed is a call whose outcome is unknown, and its changes are
looked up by reference before anything is sent again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import duckdb
import pandas as pd

from xz_pipeline.core.store import Store

DDL = """
create schema if not exists writeback;
create table if not exists writeback.plan (
    connection varchar not null, change_id varchar not null, system varchar not null, entity varchar not null,
    op varchar not null, record varchar not null, ref varchar not null, field varchar not null,
    old varchar, new varchar, policy varchar not null, reason varchar, source varchar,
    idempotency_key varchar, status varchar not null, error varchar, attempts integer not null default 0,
    result_id varchar, planned_at timestamptz not null, updated_at timestamptz not null,
    applied_at timestamptz, primary key (connection, change_id)
);
create table if not exists writeback.ledger (
    call_id varchar primary key, connection varchar not null, run_id varchar, system varchar not null,
    entity varchar not null, op varchar not null, idempotency_key varchar not null, request_hash varchar not null,
    change_ids varchar[] not null, records integer not null, status varchar not null,
    response_code integer, failed integer, error varchar, started_at timestamptz not null,
    finished_at timestamptz
);
"""

PLAN_COLUMNS = [
    "connection", "change_id", "system", "entity", "op", "record", "ref", "field", "old", "new", "policy",
    "reason", "source", "idempotency_key",
]  # fmt: skip
PENDING = (
    "planned",
    "rejected",
)  # what is still to do (`xz plan` lists both; apply sends rejected on request)


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:32]


def now() -> datetime:
    return datetime.now(UTC)


def merge_plan(
    con: duckdb.DuckDBPyConnection, connection: str, changes: pd.DataFrame, suppressed: set[str]
) -> dict:
    """Bring the stored plan of `connection` in line with this run's changes.

    New changes are inserted as planned; pending ones refresh their old value and reason; applied ones
    proposed again (the state we wrote was changed back, or the mirror is stale) are planned again unless
    `suppressed` (echoes: see plan.echoes); pending rows (planned or rejected) no longer proposed become
    obsolete: their cause went away, and retrying them would write a stale value.
    """
    ensure(con)
    t = now()
    frame = changes[PLAN_COLUMNS] if len(changes) else pd.DataFrame(columns=PLAN_COLUMNS)
    con.register("wb_incoming", frame)
    try:
        con.execute(
            "update writeback.plan p set old = i.old, reason = i.reason, source = i.source, "
            "idempotency_key = i.idempotency_key, updated_at = ? from wb_incoming i "
            "where p.connection = i.connection and p.change_id = i.change_id and p.status in ('planned', 'rejected')",
            [t],
        )
        replan = con.execute(
            "select p.change_id from writeback.plan p join wb_incoming i using (connection, change_id) "
            "where p.status in ('applied', 'obsolete')"
        ).fetchall()
        again = [c for (c,) in replan if c not in suppressed]
        if again:
            con.execute(
                "update writeback.plan set status = 'planned', error = null, updated_at = ? "
                "where connection = ? and change_id in (select unnest(?))",
                [t, connection, again],
            )
        inserted = con.execute(
            "insert into writeback.plan by name select i.*, 'planned' as status, 0 as attempts, "
            "? as planned_at, ? as updated_at from wb_incoming i "
            "where not exists (select 1 from writeback.plan p where p.connection = i.connection "
            "and p.change_id = i.change_id)",
            [t, t],
        ).fetchone()[0]
        obsolete = con.execute(
            "update writeback.plan p set status = 'obsolete', updated_at = ? where p.connection = ? "
            "and p.status in ('planned', 'rejected') and not exists (select 1 from wb_incoming i where i.change_id = p.change_id)",
            [t, connection],
        ).fetchone()[0]
    finally:
        con.unregister("wb_incoming")
    return {"new": int(inserted), "replanned": len(again), "obsolete": int(obsolete)}


def pending(store: Store, connection: str, *, rejected: bool = True) -> pd.DataFrame:
    """The changes still to do: planned ones, and (unless `rejected` is False) those the API refused."""
    statuses = list(PENDING) if rejected else ["planned"]
    with store.read() as con:
        if not _exists(con, "plan"):
            return pd.DataFrame(columns=[*PLAN_COLUMNS, "status", "attempts", "error"])
        return con.execute(
            "select * from writeback.plan where connection = ? and status in (select unnest(?)) "
            "order by change_id",
            [connection, statuses],
        ).df()


def plan_rows(con: duckdb.DuckDBPyConnection, connection: str | None = None) -> pd.DataFrame:
    if not _exists(con, "plan"):
        return pd.DataFrame(columns=[*PLAN_COLUMNS, "status", "attempts", "error"])
    where, args = ("where connection = ?", [connection]) if connection else ("", [])
    return con.execute(f"select * from writeback.plan {where} order by connection, change_id", args).df()


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = 'writeback' and table_name = ?",
            [table],
        ).fetchone()[0]
    )


def unknown_changes(store: Store, connection: str) -> set[str]:
    """Change ids carried by a call whose outcome never came back (an intent never completed)."""
    with store.read() as con:
        if not _exists(con, "ledger"):
            return set()
        rows = con.execute(
            "select unnest(change_ids) from writeback.ledger where connection = ? and status in ('intent', 'unknown')",
            [connection],
        ).fetchall()
    return {r[0] for r in rows}


def open_calls(store: Store, connection: str) -> list[tuple[str, list[str]]]:
    """(call id, change ids) of every call whose outcome never came back (killed, dropped), oldest first."""
    with store.read() as con:
        if not _exists(con, "ledger"):
            return []
        rows = con.execute(
            "select call_id, change_ids from writeback.ledger where connection = ? and status in ('intent', 'unknown') "
            "order by started_at",
            [connection],
        ).fetchall()
    return [(cid, list(ids)) for cid, ids in rows]


def rows_of(store: Store, connection: str, change_ids: Iterable[str]) -> pd.DataFrame:
    """The plan rows of these changes, whatever their status (an obsolete one too)."""
    with store.read() as con:
        return con.execute(
            "select * from writeback.plan where connection = ? and change_id in (select unnest(?)) order by change_id",
            [connection, list(change_ids)],
        ).df()


def settle_calls(store: Store, call_ids: Iterable[str], how: str) -> None:
    """Close calls whose outcome was unknown once each of their changes was looked up remotely."""
    ids = list(call_ids)
    if not ids:
        return
    with store.write() as con:
        con.execute(
            "update writeback.ledger set status = 'settled', finished_at = coalesce(finished_at, ?), "
            "error = coalesce(error || '; ', '') || ? where call_id in (select unnest(?))",
            [now(), f"outcome unknown; settled by lookup: {how}", ids],
        )


def record_intent(
    store: Store, connection: str, run_id: str | None, system: str, entity: str, op: str, key: str,
    request_hash: str, change_ids: Sequence[str], records: int,
) -> str:  # fmt: skip
    """Insert (and commit) the call's intent before it is made; returns the call id."""
    call_id = digest(connection, run_id, key, now().isoformat())
    with store.write() as con:
        ensure(con)
        con.execute(
            "insert into writeback.ledger (call_id, connection, run_id, system, entity, op, idempotency_key, "
            "request_hash, change_ids, records, status, started_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?)",
            [
                call_id,
                connection,
                run_id,
                system,
                entity,
                op,
                key,
                request_hash,
                list(change_ids),
                records,
                now(),
            ],
        )
    return call_id


def settle_unknown(store: Store, connection: str, change_ids: Iterable[str], how: str) -> None:
    """Close intents whose outcome was unknown once a lookup settled them ('found' or 'absent')."""
    ids = list(change_ids)
    if not ids:
        return
    with store.write() as con:
        con.execute(
            "update writeback.ledger set status = 'unknown', error = coalesce(error, '') || ? "
            "where connection = ? and status = 'intent' and len(list_intersect(change_ids, ?)) > 0",
            [f"outcome unknown; settled by lookup: {how}", connection, ids],
        )
        con.execute(
            "update writeback.ledger set status = 'settled' where connection = ? and status = 'unknown' "
            "and len(list_intersect(change_ids, ?)) > 0",
            [connection, ids],
        )


def complete_call(
    store: Store, call_id: str, *, status: str, code: int | None, failed: int, error: str,
    results: Sequence[tuple[Sequence[str], bool, str | None, str]],
) -> None:  # fmt: skip
    """Record the call's outcome and each change's: (change ids, ok, result id, error)."""
    t = now()
    with store.write() as con:
        con.execute(
            "update writeback.ledger set status = ?, response_code = ?, failed = ?, error = ?, finished_at = ? "
            "where call_id = ?",
            [status, code, failed, error[:2000] or None, t, call_id],
        )
        ok_rows = [(cid, rid) for ids, ok, rid, _ in results if ok for cid in ids]
        bad_rows = [(cid, err) for ids, ok, _, err in results if not ok for cid in ids]
        if ok_rows:
            frame = pd.DataFrame(ok_rows, columns=["change_id", "result_id"])
            con.register("wb_ok", frame)
            con.execute(
                "update writeback.plan p set status = 'applied', error = null, attempts = attempts + 1, "
                "result_id = o.result_id, applied_at = ?, updated_at = ? from wb_ok o where p.change_id = o.change_id",
                [t, t],
            )
            con.unregister("wb_ok")
        if bad_rows:
            frame = pd.DataFrame(bad_rows, columns=["change_id", "error"])
            con.register("wb_bad", frame)
            con.execute(
                "update writeback.plan p set status = 'rejected', error = b.error, attempts = attempts + 1, "
                "updated_at = ? from wb_bad b where p.change_id = b.change_id",
                [t],
            )
            con.unregister("wb_bad")


def set_status(store: Store, connection: str, change_ids: Iterable[str], status: str, error: str | None,
               result_ids: dict[str, str] | None = None) -> None:  # fmt: skip
    """Mark changes without a call of their own (refused by a guard, found by lookup, skipped)."""
    ids = list(change_ids)
    if not ids:
        return
    t = now()
    with store.write() as con:
        con.execute(
            "update writeback.plan set status = ?, error = ?, updated_at = ?, "
            "applied_at = case when ? = 'applied' then ? else applied_at end "
            "where connection = ? and change_id in (select unnest(?))",
            [status, error, t, status, t, connection, ids],
        )
        for cid, rid in (result_ids or {}).items():
            con.execute(
                "update writeback.plan set result_id = ? where connection = ? and change_id = ?",
                [rid, connection, cid],
            )


def skip(
    store: Store, connection: str, change_ids: Iterable[str], reason: str = "skipped by a person"
) -> int:
    """A person gives up on pending changes (e.g. rejected ones that can never succeed): never retried."""
    ids = list(change_ids)
    with store.write() as con:
        ensure(con)
        return con.execute(
            "update writeback.plan set status = 'skipped', error = coalesce(error || '; ', '') || ?, updated_at = ? "
            "where connection = ? and status in ('planned', 'rejected') and change_id in (select unnest(?))",
            [reason, now(), connection, ids],
        ).fetchone()[0]


def request_hash(body: object) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
