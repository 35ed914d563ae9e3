"""Writing one fetched entity into the mirror: landing, typed current state, history, cursor.

Vendor assets fetch; this module decides how fetched payloads become rows, the same way for every
entity of every vendor. A table is declared once as a list of `Col`s (name, SQL type, how to read it
from the payload), which gives both its DDL and its rows. A payload that cannot be typed goes to
`meta.quarantine` naming the record, the column and the reason, and its raw payload still lands:
nothing fetched is ever lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
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


class Nulled(ValueError):  # noqa: N818 (a signal, not a failure)
    """A value the vendor sends to mean "none" (Xero's year-0001 date): stored as NULL, with a note."""


def scalar(value: Any, what: str = "text") -> Any:
    """`value` if it is a JSON scalar; a list or an object where a scalar belongs is refused, never
    stringified (its repr would land in the mirror as if it were data)."""
    if isinstance(value, (list, dict, tuple, set)):
        raise TypeError(f"{type(value).__name__} where {what} belongs")
    return value


def text(field: str) -> Callable[[dict], str | None]:
    """A payload field as text; empty strings become NULL; a list, object or boolean is refused."""

    def get(p: dict) -> str | None:
        value = p.get(field)
        if type(value) is str:  # the common case first: a million rows ask
            return value or None
        if value is None:
            return None
        if isinstance(value, bool):
            raise TypeError("a boolean where text belongs")
        return str(scalar(value))

    get.gives_text = True  # type: ignore[attr-defined]
    return get


def ident(field: str) -> Callable[[dict], str]:
    """A record's id: present, a string or a number, never empty, never an object."""

    def get(p: dict) -> str:
        value = p[field]
        if value is None or isinstance(value, bool):
            raise TypeError(f"id is {value!r}")
        value = str(scalar(value, "an id"))
        if not value.strip():
            raise ValueError("id is empty")
        return value

    get.gives_text = True  # type: ignore[attr-defined]
    return get


def flag(field: str) -> Callable[[dict], bool | None]:
    """A JSON boolean as it was sent (the column's type check refuses anything else: "yes" is not True)."""
    return lambda p: p.get(field)


def nested(path: str) -> Callable[[dict], str | None]:
    """A value inside a nested object, e.g. `Contact.ContactID` or a lookup's `Account_Name.id`."""
    head, tail = path.split(".", 1)

    def get(p: dict) -> Any:
        outer = p.get(head)
        if outer is None:
            return None
        if not isinstance(outer, dict):
            raise TypeError(f"{head} is a {type(outer).__name__}, not an object")
        value = outer.get(tail)
        if type(value) is str:
            return value or None
        if value is None:
            return None
        if isinstance(value, bool):
            raise TypeError(f"{path} is a boolean")
        return str(scalar(value))

    get.gives_text = True  # type: ignore[attr-defined]
    return get


def ddl(cols: Sequence[Col]) -> str:
    return ", ".join(["connection varchar not null", *(f"{c.name} {c.sql}" for c in cols), SYSTEM_COLUMNS])


class RowError(ValueError):
    """A payload that does not fit its table: names the column and the cause."""

    def __init__(self, column: str, cause: Exception | str) -> None:
        why = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"field {column}: {why}")
        self.column = column


# -- What each DuckDB type admits, checked in Python before DuckDB sees the row: one value DuckDB
# refuses would abort the whole entity's transaction. Times are bounded by pandas' nanoseconds too
# (1677-09-22 .. 2262-04-11), since later stages read the mirror through pandas.

EARLIEST = datetime(1677, 9, 22, tzinfo=UTC)
LATEST = datetime(2262, 4, 11, tzinfo=UTC)
INT32 = 2**31
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)")


def _check_text(value: Any) -> Any:
    if value is not None and type(value) is not str:
        raise TypeError(f"{type(value).__name__} where text belongs")
    return value


def _check_bool(value: Any) -> Any:
    if value is not None and type(value) is not bool:
        raise TypeError(f"{value!r} is not a boolean")
    return value


def _check_int(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        raise TypeError(f"{value!r} is not an integer")
    if not -INT32 <= value < INT32:
        raise ValueError(f"{value} is out of range for INTEGER")
    return value


def _decimal_check(precision: int, scale: int) -> Callable[[Any], Any]:
    limit = Decimal(10) ** (precision - scale)
    step = Decimal(1).scaleb(-scale)

    def check(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is Decimal and value.is_finite() and value.adjusted() < precision - scale - 1:
            return value  # the common case, well inside the range
        if type(value) is int:
            value = Decimal(value)
        elif type(value) is float:
            value = Decimal(repr(value))
        elif type(value) is not Decimal:
            raise TypeError(f"{value!r} is not an amount")
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite amount")
        if value.adjusted() >= precision - scale - 1:  # near or past the limit: as DuckDB rounds it
            try:
                rounded = value.quantize(step, rounding=ROUND_HALF_UP)
            except InvalidOperation:
                rounded = None
            if rounded is None or abs(rounded) >= limit:
                raise ValueError(f"{value} is out of range for DECIMAL({precision}, {scale})")
        return value

    return check


def _check_date(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is not date:
        raise TypeError(f"{value!r} is not a date")
    if not EARLIEST.date() <= value <= LATEST.date():
        raise ValueError(f"{value.isoformat()} is outside the dates the mirror holds")
    return value


def _check_instant(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TypeError(f"{value!r} is not an aware time")
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"{value.isoformat()} is outside the times the mirror holds")
    return value


@cache
def _checker(sql: str, gives_text: bool = False) -> tuple[Callable[[Any], Any] | None, bool]:
    """(the check for a column of this SQL type, whether it is NOT NULL); none for a text column whose
    getter (`text`, `ident`, `nested`) gives only text or None already."""
    kind = sql.lower()
    required = "not null" in kind
    if kind.startswith(("varchar", "json")):
        return (None if gives_text else _check_text), required
    if kind.startswith("boolean"):
        return _check_bool, required
    if kind.startswith("integer"):
        return _check_int, required
    if kind.startswith("timestamptz"):
        return _check_instant, required
    if kind.startswith("date"):
        return _check_date, required
    m = _DECIMAL.match(kind)
    if m:
        return _decimal_check(int(m[1]), int(m[2])), required
    raise ValueError(f"no Python check for SQL type {sql!r}")


_TYPING_ERRORS = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, IndexError)


def typed_row(cols: Sequence[Col], payload: dict, notes: list[tuple[str, str]] | None = None) -> dict:
    """The payload as a row of `cols`, every value checked against its column's type; raises `RowError`
    naming the first column at fault. A vendor's "none" value (`Nulled`) becomes NULL and, when `notes`
    is given, a (column, reason) note."""
    if not isinstance(payload, dict):
        raise RowError("*", TypeError(f"the record is a {type(payload).__name__}, not an object"))
    row = {}
    for name, get, check, required in _plan(cols):
        try:
            value = get(payload) if check is None else check(get(payload))
        except Nulled as exc:
            value = None
            if notes is not None:
                notes.append((name, str(exc)))
        except _TYPING_ERRORS as exc:
            raise RowError(name, exc) from exc
        if required and (value is None or value == ""):
            raise RowError(name, "a required field is null")
        row[name] = value
    return row


_PLANS: dict[int, tuple[Sequence[Col], list[tuple]]] = {}


def _plan(cols: Sequence[Col]) -> list[tuple]:
    """(name, getter, check, required) per column, worked out once per table (a million rows ask)."""
    hit = _PLANS.get(id(cols))
    if hit is None or hit[0] is not cols:
        hit = (cols, [(c.name, c.get, *_checker(c.sql, getattr(c.get, "gives_text", False))) for c in cols])
        _PLANS[id(cols)] = hit
    return hit[1]


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
    notes: int = 0  # values stored as NULL because the vendor meant "none" (Xero's year-0001 date)


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
    typed = _type_payloads(spec, payloads)
    rows, children, whole, landing = typed.rows, typed.children, typed.whole, typed.landing
    for row, digest in zip(rows, typed.digests, strict=True):
        row.update(connection=connection, row_hash=row_hash(row), fetched_at=fetched_at, payload_hash=digest)
    for items in children.values():
        for item, digest in items:
            item.update(
                connection=connection, row_hash=row_hash(item), fetched_at=fetched_at, payload_hash=digest
            )

    with store.write() as con:
        ensure_tables(store, con, spec)
        landed = store.append_landing(
            con, connection=connection, vendor=spec.vendor, entity=spec.entity, rows=landing,
            fetched_at=fetched_at, run_id=run_id,
        )  # fmt: skip
        record_quarantine(con, spec, connection=connection, typed=typed, run_id=run_id, now=fetched_at)
        frame = pd.DataFrame(rows)
        if full:
            # Quarantined records exist at the source: their last good row stays (hidden from the
            # canonical views while their quarantine row is open), it is not deleted as gone.
            id_col = spec.key[-1]
            present = pd.DataFrame(
                {"connection": connection, id_col: [*(r[id_col] for r in rows), *typed.quarantined_ids]},
                columns=["connection", id_col],
            )
            merged = store.merge_current(
                con, spec.schema, spec.table, frame, list(spec.key), valid_from=fetched_at
            )
            deleted = store.delete_missing(
                con, spec.schema, spec.table, list(spec.key), present=present,
                parents=pd.DataFrame({"connection": [connection]}), valid_from=fetched_at,
            )  # fmt: skip
            counts = MergeCounts(merged.inserted, merged.updated, merged.unchanged, deleted)
        else:
            counts = store.merge_current(
                con, spec.schema, spec.table, frame, list(spec.key), valid_from=fetched_at
            )
        child_counts = {}
        for child in spec.children:
            parents = pd.DataFrame({"connection": connection, child.parent_column: whole[child.table]})
            child_counts[child.table] = store.replace_children(
                con, spec.schema, child.table, pd.DataFrame([i for i, _ in children[child.table]]),
                list(child.key), parents=parents, valid_from=fetched_at,
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
        counts=counts, landed=landed, quarantined=len(typed.failures), cursor=cursor, total_rows=total,
        latest=max(seen, default=None), child_counts=child_counts, preview=preview, notes=len(typed.notes),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Typing a batch of payloads, record by record


@dataclass
class Typed:
    """A batch of payloads as rows, with what could not be typed: one bad record never stops the rest."""

    rows: list[dict] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)  # the payload hash of each row
    children: dict[str, list[tuple[dict, str]]] = field(default_factory=dict)  # table -> (row, payload hash)
    whole: dict[str, list[str]] = field(default_factory=dict)  # table -> parents whose children were sent
    landing: list[tuple[str, datetime | None, str, str]] = field(default_factory=list)
    failures: list[tuple[str, str, str, str, str]] = field(
        default_factory=list
    )  # id, rule, field, reason, hash
    notes: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # same shape, not blocking
    typed_ids: list[str] = field(default_factory=list)  # records that typed cleanly

    @property
    def quarantined_ids(self) -> list[str]:
        return sorted({f[0] for f in self.failures})


def _record_id(spec: EntityTable, payload: Any) -> str:
    try:
        value = spec.record_id(payload)
    except _TYPING_ERRORS:
        return ""
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


def _modified(spec: EntityTable, payload: Any) -> datetime | None:
    """The source-modified time for landing and the cursor; None when absent, garbage or out of range."""
    try:
        value = spec.modified(payload)
    except _TYPING_ERRORS:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or not EARLIEST <= value <= LATEST:
        return None
    return value


def _type_payloads(spec: EntityTable, payloads: Sequence[Any]) -> Typed:
    out = Typed(children={c.table: [] for c in spec.children}, whole={c.table: [] for c in spec.children})
    by_key: dict[tuple, int] = {}  # the same record twice in one read: the later version wins
    versions: list[datetime | None] = []
    for payload in payloads:
        record_id = _record_id(spec, payload)
        modified = _modified(spec, payload)
        raw = payload_json(payload)
        digest = payload_hash(raw)
        out.landing.append((record_id, modified, raw, digest))
        notes: list[tuple[str, str]] = []
        try:
            row = typed_row(spec.cols, payload, notes)
            kids = {c.table: _typed_children(c, payload, notes) for c in spec.children}
        except RowError as exc:
            out.failures.append((record_id, f"typed:{spec.table}.{exc.column}", exc.column,
                                 f"{spec.entity} {record_id or '(no id)'}: {exc}", digest))  # fmt: skip
            continue
        for column, why in notes:
            out.notes.append((record_id, f"note:{spec.table}.{column}", column,
                              f"{spec.entity} {record_id}: field {column}: {why}", digest))  # fmt: skip
        key = tuple(row[k] for k in spec.key if k != "connection")
        earlier = by_key.get(key)
        if earlier is not None:
            if versions[earlier] is not None and modified is not None and modified < versions[earlier]:
                continue  # an older version read after a newer one: keep the newer
            _drop(out, spec, earlier)
        by_key[key] = len(out.rows)
        versions.append(modified)
        out.rows.append(row)
        out.digests.append(digest)
        out.typed_ids.append(record_id)
        for child in spec.children:
            if child.present(payload):
                out.whole[child.table].append(row[spec.key[-1]])
            out.children[child.table].extend((item, digest) for item in kids[child.table])
    if any(r is None for r in out.rows):  # rows dropped for a later version of the same record
        keep = [i for i, r in enumerate(out.rows) if r is not None]
        out.rows = [out.rows[i] for i in keep]
        out.digests = [out.digests[i] for i in keep]
    return out


def _drop(out: Typed, spec: EntityTable, index: int) -> None:
    """Forget the row at `index` (and its children): a later version of the record replaces it."""
    row = out.rows[index]
    parent = row[spec.key[-1]]
    for child in spec.children:
        out.children[child.table] = [
            (i, d) for i, d in out.children[child.table] if i[child.parent_column] != parent
        ]
        out.whole[child.table] = [p for p in out.whole[child.table] if p != parent]
    out.rows[index] = None  # type: ignore[call-overload]


def _typed_children(child: ChildTable, payload: dict, notes: list[tuple[str, str]]) -> list[dict]:
    """A parent's nested rows; a malformed or repeated one quarantines the parent (its key names the field)."""
    try:
        items = child.items(payload)
    except _TYPING_ERRORS as exc:
        raise RowError(child.table, exc) from exc
    rows, seen = [], set()
    for n, item in enumerate(items, start=1):
        try:
            row = typed_row(child.cols, item, notes)
        except RowError as exc:
            raise RowError(f"{child.table}[{n}].{exc.column}", str(exc).split(": ", 1)[1]) from exc
        key = tuple(row[k] for k in child.key if k != "connection")
        if key in seen:
            raise RowError(f"{child.table}[{n}]", f"{key[-1]!r} appears twice in one record")
        seen.add(key)
        rows.append(row)
    return rows


def record_quarantine(con, spec: EntityTable, *, connection: str, typed: Typed, run_id: str | None,
                      now: datetime) -> None:  # fmt: skip
    """Bring the `typed:` quarantine rows of the records read in line with how they typed now.

    A failure opens a row (once per record, rule and payload hash); a record that now types cleanly, or
    fails otherwise, has its earlier rows released (`resolved_at`). Notes are kept already resolved:
    something to know, nothing to fix.
    """
    scope = [connection, spec.vendor, spec.entity]
    read = sorted({*typed.typed_ids, *(f[0] for f in typed.failures)})
    if read:
        failing = pd.DataFrame([(f[0], f[1], f[4]) for f in typed.failures],
                               columns=["record_id", "rule", "payload_hash"], dtype=object)  # fmt: skip
        con.register("typed_failing", failing)
        try:
            con.execute(
                "update meta.quarantine q set resolved_at = ? where q.connection = ? and q.vendor = ? "
                "and q.entity = ? and q.rule like 'typed:%' and q.resolved_at is null "
                "and q.record_id in (select unnest(?::varchar[])) and not exists (select 1 from typed_failing f "
                "where f.record_id = q.record_id and f.rule = q.rule and f.payload_hash = q.payload_hash)",
                [now, *scope, read],
            )
        finally:
            con.unregister("typed_failing")
    rows = [(*f, "ERROR", None) for f in typed.failures] + [(*n, "NOTE", now) for n in typed.notes]
    if not rows:
        return
    frame = pd.DataFrame(rows, columns=["record_id", "rule", "field", "reason", "payload_hash", "severity",
                                        "resolved_at"], dtype=object)  # fmt: skip
    frame["resolved_at"] = pd.to_datetime(frame["resolved_at"], utc=True)
    con.register("typed_new", frame)
    try:
        con.execute(
            "insert into meta.quarantine (connection, vendor, entity, record_id, rule, field, reason, payload_hash, "
            "severity, run_id, quarantined_at, resolved_at) select distinct ?, ?, ?, n.record_id, n.rule, n.field, "
            "n.reason, n.payload_hash, n.severity, ?, ?, n.resolved_at from typed_new n where not exists ("
            "select 1 from meta.quarantine q where q.connection = ? and q.vendor = ? and q.entity = ? "
            "and q.record_id = n.record_id and q.rule = n.rule and q.payload_hash = n.payload_hash "
            "and (q.resolved_at is null or n.severity = 'NOTE'))",
            [*scope, run_id, now, *scope],
        )
    finally:
        con.unregister("typed_new")


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
    return store.state(connection, vendor, entity)


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
    """An incremental or full read reached its end: what changed up to the cursor has all been read. One
    statement: the entity's cursor row, if it has one, exists only once its tables do."""
    with store.write() as con:
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
