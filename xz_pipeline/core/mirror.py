"""Writing one fetched entity into the mirror: landing, typed current state, history, cursor.

Vendor assets fetch; this module decides how fetched payloads become rows, the same way for every
entity of every vendor. A table is declared once as a list of `Col`s (name, SQL type, how to read it
from the payload), which gives both its DDL and its rows. A payload that cannot be typed goes to
`meta.quarantine` naming the record, the column and the reason, and its raw payload still lands:
nothing fetched is ever lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from xz_pipeline.core.store import MergeCounts, Store, SyncState, payload_hash, payload_json, row_hash

MONEY = "decimal(18, 2)"
PRICE = "decimal(18, 4)"  # quantities and unit prices
RATE = "decimal(18, 6)"  # currency rates

PREVIEW_ROWS, PREVIEW_COLUMNS = 10, 6

# Columns every typed table carries after its own.
# `payload_hash` names the landed payload a row came from; `row_hash` is the hash of the typed values,
# which decides whether a re-read row changed (a list payload and a full GET of the same unchanged
# record type the same, although their payloads differ).
SYSTEM_COLUMNS = "fetched_at timestamptz not null, payload_hash varchar not null, row_hash varchar not null"


@dataclass(frozen=True)
class Col:
    """One typed column: its name, its DuckDB type, and how to read it from a payload."""

    name: str
    sql: str
    get: Callable[[dict], Any]


def text(field: str) -> Callable[[dict], str | None]:
    """A payload field as text; empty strings become NULL."""
    return lambda p: str(p[field]) if p.get(field) not in (None, "") else None


def flag(field: str) -> Callable[[dict], bool | None]:
    return lambda p: p.get(field)


def nested(path: str) -> Callable[[dict], str | None]:
    """A value inside a nested object, e.g. `Contact.ContactID` or a lookup's `Account_Name.id`."""
    head, tail = path.split(".", 1)
    return lambda p: (p.get(head) or {}).get(tail) or None


def ddl(cols: Sequence[Col]) -> str:
    return ", ".join(["connection varchar not null", *(f"{c.name} {c.sql}" for c in cols), SYSTEM_COLUMNS])


class RowError(ValueError):
    """A payload that does not fit its table: names the column and the cause."""

    def __init__(self, column: str, cause: Exception) -> None:
        super().__init__(f"field {column}: {type(cause).__name__}: {cause}")
        self.column = column


_TYPING_ERRORS = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError)


def typed_row(cols: Sequence[Col], payload: dict) -> dict:
    try:
        return {col.name: col.get(payload) for col in cols}  # the common case, without a try per column
    except _TYPING_ERRORS:
        pass
    row = {}
    for col in cols:  # again, column by column, to name the one at fault
        try:
            row[col.name] = col.get(payload)
        except _TYPING_ERRORS as exc:
            raise RowError(col.name, exc) from exc
    return row


@dataclass(frozen=True)
class ChildTable:
    """Rows nested in a parent payload (invoice lines, allocations): replaced whenever the parent is fetched."""

    table: str
    cols: Sequence[Col]
    key: Sequence[str]  # includes `connection` and the parent's id column
    parent_column: str
    items: Callable[[dict], list[dict]]  # the child payloads of a parent, each carrying what `cols` read
    present: Callable[[dict], bool] = lambda p: True  # does this parent payload carry its children at all?


@dataclass(frozen=True)
class EntityTable:
    """Where an entity lands: `schema.table` with its columns and key, and its nested children."""

    vendor: str
    entity: str
    schema: str
    table: str
    cols: Sequence[Col]
    key: Sequence[str]
    record_id: Callable[[dict], str]
    modified: Callable[[dict], datetime | None]
    children: Sequence[ChildTable] = field(default_factory=tuple)


@dataclass(frozen=True)
class MirrorResult:
    counts: MergeCounts
    landed: int
    quarantined: int
    cursor: datetime | None
    total_rows: int
    latest: datetime | None = None  # the latest source-modified time among the payloads written
    child_counts: dict[str, MergeCounts] = field(default_factory=dict)
    preview: list[dict] = field(default_factory=list)  # a few fetched rows, a few columns, for the UI


def ensure_tables(store: Store, con, spec: EntityTable) -> None:
    store.ensure_base(con)
    store.ensure_table(con, spec.schema, spec.table, ddl(spec.cols), list(spec.key))
    for child in spec.children:
        store.ensure_table(con, spec.schema, child.table, ddl(child.cols), list(child.key))


def write_entity(
    store: Store,
    spec: EntityTable,
    *,
    connection: str,
    payloads: list[dict],
    fetched_at: datetime,
    run_id: str | None,
    full: bool = False,
    advance_cursor: bool = True,
) -> MirrorResult:
    """Land, type, merge and advance the cursor in one transaction.

    `advance_cursor=False` for targeted reads (records by id, after a webhook): they must not move the
    cursor past changes nobody announced, or the next incremental read would skip them.

    `full` says the payloads are the whole entity (a first sync or a full sweep): rows of this
    connection that were not fetched are gone at the source, so they leave the current table and
    their history rows are closed — reflected, never silently kept or dropped.
    """
    rows: list[dict] = []
    children: dict[str, list[dict]] = {c.table: [] for c in spec.children}
    whole: dict[str, list[str]] = {c.table: [] for c in spec.children}  # parents whose children were sent
    quarantine, landing = [], []
    for payload in payloads:
        record_id = str(spec.record_id(payload) or "")
        try:
            modified = spec.modified(payload)
        except (TypeError, ValueError):
            modified = None
        text = payload_json(payload)
        digest = payload_hash(text)
        landing.append((record_id, modified, text, digest))
        try:
            row = typed_row(spec.cols, payload)
            kids = {c.table: [typed_row(c.cols, item) for item in c.items(payload)] for c in spec.children}
        except RowError as exc:
            quarantine.append(
                (record_id, f"typed:{spec.table}.{exc.column}", f"{spec.entity} {record_id}: {exc}", digest)
            )
            continue
        row.update(connection=connection, row_hash=row_hash(row), fetched_at=fetched_at, payload_hash=digest)
        rows.append(row)
        for child in spec.children:
            if child.present(payload):
                whole[child.table].append(row[spec.key[-1]])
            for item in kids[child.table]:
                item.update(
                    connection=connection,
                    row_hash=row_hash(item),
                    fetched_at=fetched_at,
                    payload_hash=digest,
                )
            children[child.table].extend(kids[child.table])

    with store.write() as con:
        ensure_tables(store, con, spec)
        landed = store.append_landing(
            con, connection=connection, vendor=spec.vendor, entity=spec.entity, rows=landing,
            fetched_at=fetched_at, run_id=run_id,
        )  # fmt: skip
        for record_id, rule, reason, digest in quarantine:
            con.execute(
                "insert into meta.quarantine (connection, vendor, entity, record_id, rule, reason, "
                "payload_hash, run_id, quarantined_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [connection, spec.vendor, spec.entity, record_id, rule, reason, digest, run_id, fetched_at],
            )
        frame = pd.DataFrame(rows)
        if full:
            everything = pd.DataFrame({"connection": [connection]})
            counts = store.replace_children(
                con, spec.schema, spec.table, frame, list(spec.key), parents=everything, valid_from=fetched_at
            )
        else:
            counts = store.merge_current(
                con, spec.schema, spec.table, frame, list(spec.key), valid_from=fetched_at
            )
        child_counts = {}
        for child in spec.children:
            parents = pd.DataFrame({"connection": connection, child.parent_column: whole[child.table]})
            child_counts[child.table] = store.replace_children(
                con, spec.schema, child.table, pd.DataFrame(children[child.table]), list(child.key),
                parents=parents, valid_from=fetched_at,
            )  # fmt: skip
        previous = store.get_cursor(con, connection, spec.vendor, spec.entity)
        cursor = previous
        seen = [m for _, m, _, _ in landing if m is not None]
        if advance_cursor:
            cursor = max([*seen, *([previous] if previous else [])], default=None)
            store.set_cursor(
                con, connection, spec.vendor, spec.entity, cursor, full_sweep_at=fetched_at if full else None
            )
        total = con.execute(
            f"select count(*) from {spec.schema}.{spec.table} where connection = ?", [connection]
        ).fetchone()[0]
    preview = [{c.name: row[c.name] for c in spec.cols[:PREVIEW_COLUMNS]} for row in rows[:PREVIEW_ROWS]]
    return MirrorResult(
        counts=counts, landed=landed, quarantined=len(quarantine), cursor=cursor, total_rows=total,
        latest=max(seen, default=None), child_counts=child_counts, preview=preview,
    )  # fmt: skip


def finish_full_sweep(
    store: Store,
    spec: EntityTable,
    *,
    connection: str,
    started: datetime,
    fetched_at: datetime,
    detect_deletions: bool,
) -> int:
    """Close a full read written in chunks, in one run or several: records (and their children) that did
    not land since the sweep `started` are gone at the source (when `detect_deletions`), and the sweep's
    time is recorded so the next one is planned from it. Landing keeps every payload read, so a sweep
    resumed the next day knows what its first part saw without keeping the ids anywhere else."""
    id_col = spec.key[-1]
    deleted = 0
    with store.write() as con:
        ensure_tables(store, con, spec)
        if detect_deletions:
            everything = pd.DataFrame({"connection": [connection]})
            seen = con.execute(
                f"select distinct connection, record_id as {id_col} from landing.records where connection = ? "
                "and vendor = ? and entity = ? and fetched_at >= ?",
                [connection, spec.vendor, spec.entity, started],
            ).df()
            deleted = store.delete_missing(
                con, spec.schema, spec.table, ["connection", id_col], present=seen, parents=everything,
                valid_from=fetched_at,
            )  # fmt: skip
            for child in spec.children:
                store.delete_missing(
                    con, spec.schema, child.table, ["connection", child.parent_column],
                    present=seen.rename(columns={id_col: child.parent_column}), parents=everything,
                    valid_from=fetched_at,
                )  # fmt: skip
        cursor = store.get_cursor(con, connection, spec.vendor, spec.entity)
        store.set_cursor(con, connection, spec.vendor, spec.entity, cursor, full_sweep_at=fetched_at)
        store.set_sweep(con, connection, spec.vendor, spec.entity, None)
    return deleted


def read_state(store: Store, connection: str, vendor: str, entity: str) -> SyncState:
    """Where an entity's reads stand; all None before its first run or before the mirror exists."""
    if not store.path.exists():
        return SyncState()
    with store.write() as con:
        store.ensure_base(con)
        return store.get_state(con, connection, vendor, entity)


def read_sync_state(
    store: Store, connection: str, vendor: str, entity: str
) -> tuple[datetime | None, datetime | None]:
    """(cursor, last full sweep) of an entity; (None, None) before its first run or before the mirror exists."""
    state = read_state(store, connection, vendor, entity)
    return state.cursor, state.last_full


def read_progress(
    store: Store, connection: str, vendor: str, entity: str
) -> tuple[tuple[datetime, datetime | None] | None, datetime | None]:
    """(the full sweep cut short, if one is waiting to be resumed; when a read last caught up)."""
    state = read_state(store, connection, vendor, entity)
    return state.sweep, state.caught_up


def record_caught_up(store: Store, spec: EntityTable, *, connection: str, at: datetime) -> None:
    """An incremental or full read reached its end: what changed up to the cursor has all been read."""
    with store.write() as con:
        ensure_tables(store, con, spec)
        store.set_caught_up(con, connection, spec.vendor, spec.entity, at)


def record_sweep_progress(
    store: Store, spec: EntityTable, *, connection: str, started: datetime, position: datetime | None
) -> None:
    """A full sweep stopped before its end (the day's budget): where the next run carries on from."""
    with store.write() as con:
        ensure_tables(store, con, spec)
        store.set_sweep(con, connection, spec.vendor, spec.entity, (started, position))


def delete_records(
    store: Store,
    spec: EntityTable,
    *,
    connection: str,
    deleted: list[tuple[str, dict]],
    fetched_at: datetime,
    run_id: str | None,
) -> int:
    """Records the source reports deleted (id, its deletion payload): they leave the current table, their
    history rows are closed, and the deletion notice itself lands — reflected, never silently dropped."""
    if not deleted:
        return 0
    id_col = spec.key[-1]
    with store.write() as con:
        ensure_tables(store, con, spec)
        store.append_landing(
            con, connection=connection, vendor=spec.vendor, entity=f"{spec.entity}:deleted",
            rows=[(rid, None, payload_json(p), payload_hash(p)) for rid, p in deleted], fetched_at=fetched_at,
            run_id=run_id,
        )  # fmt: skip
        gone = pd.DataFrame({"connection": connection, id_col: [rid for rid, _ in deleted]})
        counts = store.replace_children(
            con, spec.schema, spec.table, pd.DataFrame(), list(spec.key), parents=gone, valid_from=fetched_at
        )
        for child in spec.children:
            parents = gone.rename(columns={id_col: child.parent_column})
            store.replace_children(
                con,
                spec.schema,
                child.table,
                pd.DataFrame(),
                list(child.key),
                parents=parents,
                valid_from=fetched_at,
            )
    return counts.deleted
