"""The only code that opens DuckDB: short-lived connections, one writer at a time, fail fast.

DuckDB admits one writing process and a reader blocks a writer, so writers take a file lock
(`mirror.duckdb.lock`) before connecting — a cron `xz sync` and a Dagster run queue instead of
colliding — and a lock held by someone else ends in a clear `StoreBusy` after `lock_timeout`
seconds, never in a silent 100-second retry. Connections are closed in `finally`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import duckdb
import pandas as pd
from filelock import FileLock, Timeout

from xz_pipeline.core.attached import connect_writing

SCHEMA_VERSION = 1

BASE_DDL = """
create schema if not exists landing;
create schema if not exists meta;
create table if not exists landing.records (
    connection varchar not null,
    vendor varchar not null,
    entity varchar not null,
    record_id varchar not null,
    source_modified timestamptz,
    fetched_at timestamptz not null,
    payload_hash varchar not null,
    run_id varchar,
    payload json not null
);
create table if not exists meta.cursors (
    connection varchar not null,
    vendor varchar not null,
    entity varchar not null,
    cursor_value timestamptz,
    last_full_sweep timestamptz,
    updated_at timestamptz not null,
    primary key (connection, vendor, entity)
);
create table if not exists meta.quarantine (
    connection varchar not null,
    vendor varchar not null,
    entity varchar not null,
    record_id varchar,
    rule varchar not null,
    reason varchar not null,
    payload_hash varchar,
    run_id varchar,
    quarantined_at timestamptz not null
);
create table if not exists meta.runs (  -- one row per run and connection (xz_pipeline/runs.py writes it)
    connection varchar not null,
    run_id varchar not null,
    kind varchar not null,  -- sync, demo, scheduled, targeted, manual
    job varchar,
    started_at timestamptz,
    finished_at timestamptz,
    api_calls bigint,
    rows_written bigint,
    outcome varchar not null,  -- success, failed, canceled
    error varchar,  -- the first failed step and why, one line
    recorded_at timestamptz not null,
    primary key (connection, run_id)
);
create table if not exists meta.schema_version (
    version integer not null,
    applied_at timestamptz not null,
    change varchar
);
create table if not exists meta.vendor_schema (
    connection varchar not null,
    vendor varchar not null,
    module varchar not null,  -- a module, or '@org' (org facts), '@endpoint' (not offered), '@mapping'
    field varchar not null,  -- '' for the module's own row
    type varchar,
    picklist json,  -- [{actual_value, display_value, forecast_type, forecast_category}, ...]
    value varchar,
    read_at timestamptz not null,
    primary key (connection, vendor, module, field)
);
"""

# Columns added to the meta tables after mirrors existed: each is added once, and recorded.
ADDED_META_COLUMNS = (
    ("quarantine", "resolved_at", "timestamptz"),
    ("quarantine", "field", "varchar"),  # the field at fault (a typing failure, or the columns a check names)
    # ERROR: kept out of the canonical views while open; WARN, NOTE: not
    ("quarantine", "severity", "varchar"),
    ("cursors", "sweep_started_at", "timestamptz"),  # a full sweep cut short: when it started
    ("cursors", "sweep_position", "timestamptz"),  # and the last source-modified time it had read
    ("cursors", "caught_up_at", "timestamptz"),  # when a read last reached the end with the cursor as it is
)


class SyncState(NamedTuple):
    """Where an entity's reads stand (one row of `meta.cursors`)."""

    cursor: datetime | None = None
    last_full: datetime | None = None
    sweep: tuple[datetime, datetime | None] | None = None  # a full sweep cut short: (started, position)
    caught_up: datetime | None = None  # when a read last reached the end with the cursor as it is


class StoreBusy(RuntimeError):
    """Another process holds the mirror for writing (or an analyst holds it open)."""


# -- who holds a lock: written beside it, so a waiting process can name the holder ---------------------


def process_start(pid: int) -> str:
    """The kernel's start time of `pid` (Linux), "" where unknown: with the pid, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19] if ")" in stat else ""


def process_alive(pid: int, start: str = "") -> bool:
    """Whether the process `pid` (started at `start`, when known) still runs: a reused pid is another one."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return not start or not process_start(pid) or process_start(pid) == start


def process_command(pid: int) -> str:
    """The command line of `pid` as a person would type it ("" when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    parts = [p for p in raw.decode("utf-8", "replace").split("\0") if p]
    if len(parts) > 1 and Path(parts[0]).name.startswith("python") and parts[1].endswith("/xz"):
        parts = parts[1:]  # `python .venv/bin/xz sync` reads better as `xz sync`
    if parts:
        parts[0] = Path(parts[0]).name
    return " ".join(parts)[:200]


def describe_process(pid: int) -> str:
    command = process_command(pid)
    return f"`{command}` (pid {pid})" if command else f"pid {pid}"


class HeldLock:
    """A file lock that records its holder (pid, start time, command line) in `<lock>.holder`, so whoever
    waits can say who it waits for; the record is removed on release."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.holder_path = self.path.with_name(self.path.name + ".holder")
        self._lock = FileLock(str(self.path))

    def holder(self) -> str:
        """ "`xz sync` (pid 123)" for a live holder that recorded itself, "" otherwise."""
        try:
            data = json.loads(self.holder_path.read_text())
            pid, start = int(data["pid"]), str(data.get("start", ""))
        except (OSError, ValueError, KeyError, TypeError):
            return ""
        if not process_alive(pid, start):
            return ""
        return f"`{data.get('command') or 'another process'}` (pid {pid})"

    def acquire(self, timeout: float) -> None:
        """Raises filelock.Timeout after `timeout` seconds (negative: wait forever)."""
        self._lock.acquire(timeout=timeout)
        if self._lock.lock_counter == 1:
            pid = os.getpid()
            record = {"pid": pid, "start": process_start(pid), "command": process_command(pid)}
            tmp = self.holder_path.with_name(f"{self.holder_path.name}.{pid}.tmp")
            try:
                tmp.write_text(json.dumps(record))
                os.replace(tmp, self.holder_path)
            except OSError:
                pass  # the record is a courtesy to whoever waits; the lock itself holds

    def release(self) -> None:
        if self._lock.lock_counter == 1:
            with suppress(OSError):
                self.holder_path.unlink()
        self._lock.release()

    @property
    def is_locked(self) -> bool:
        return self._lock.is_locked


def _duckdb_holder(message: str) -> str:
    """DuckDB names the process holding its file ("... (PID 1234)"): describe it by its command line."""
    found = re.search(r"PID (\d+)", message)
    return describe_process(int(found.group(1))) if found else ""


# The oldest storage format that holds every type the mirror uses: DuckDB 1.0 and later read it.
SNAPSHOT_STORAGE = "v1.0.0"


def _sql_path(path: Path) -> str:
    """A file path as a SQL string literal's body."""
    return str(path).replace("'", "''")


@dataclass(frozen=True)
class MergeCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    @property
    def fetched(self) -> int:
        return self.inserted + self.updated + self.unchanged


# One encoder for every payload: `json.dumps` with non-default options builds a new one per call.
_JSON = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=False)


def payload_json(payload: dict) -> str:
    """The payload as stored in `landing`: compact JSON in the API's own key order."""
    return _JSON.encode(payload)


def payload_hash(payload: dict | str) -> str:
    """The hash of a payload's JSON (APIs send keys in a stable order, so equal content hashes equal)."""
    text = payload if isinstance(payload, str) else payload_json(payload)
    return hashlib.sha256(text.encode()).hexdigest()


def row_hash(row: dict) -> str:
    """The hash of a typed row's values (repr of Decimal, date and datetime is exact and stable)."""
    return hashlib.sha1(repr(tuple(row.values())).encode()).hexdigest()


def _config() -> dict[str, str]:
    """DuckDB caches up to 80% of RAM by default; the pipeline shares a machine, so bound it
    (`XZ_DUCKDB_MEMORY`, default 1GB; DuckDB spills to disk beyond)."""
    return {"memory_limit": os.environ.get("XZ_DUCKDB_MEMORY", "1GB")}


def _exact_decimals(frame: pd.DataFrame) -> pd.DataFrame:
    """Decimal columns as text: DuckDB would infer a DECIMAL width from the first rows and fail on wider
    later values; the insert into the typed table casts the text to its DECIMAL(p, s) exactly."""
    out = frame
    for column in frame.columns:
        if frame[column].dtype == object and any(isinstance(v, Decimal) for v in frame[column].head(1000)):
            if out is frame:
                out = frame.copy()
            out[column] = [str(v) if isinstance(v, Decimal) else v for v in frame[column]]
    return out


def _declared_columns(columns: str) -> list[tuple[str, str]]:
    """(name, type) of each column in a `name type [not null]` list; NOT NULL dropped for added columns."""
    out = []
    depth, start = 0, 0
    parts = []
    for i, ch in enumerate(columns):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(columns[start:i])
            start = i + 1
    parts.append(columns[start:])
    for part in parts:
        name, _, sql_type = part.strip().partition(" ")
        out.append((name, sql_type.replace("not null", "").strip()))
    return out


# A targeted run's waits for the mirror, in its Dagster log: loggers under "dagster.builtin" are the ones
# Dagster captures into a run's event log (what `dagster.get_dagster_logger` returns), and propagate to
# the root logger elsewhere (`xz` writes it to $XZ_HOME/logs).
_wait_log = logging.getLogger("dagster.builtin.xz_pipeline.store")

# The session (`Store.session`) each thread holds open, by mirror path.
_sessions = threading.local()


class Store:
    """The DuckDB mirror at `path`."""

    def __init__(self, path: Path | str, *, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    def _session(self) -> duckdb.DuckDBPyConnection | None:
        return getattr(_sessions, "open", {}).get(str(self.path))

    @contextmanager
    def _locked_connection(
        self, wait: bool = False, attach: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection under the writers' file lock, both released on exit. A mirror held open
        outside the lock (a reader: another run's check, a report) is waited for too, all bounded by
        `lock_timeout` and each wait logged: the run waits its turn instead of failing. `wait` (a targeted
        run's session) logs the wait for the lock as well."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = HeldLock(str(self.path) + ".lock")
        started = time.monotonic()
        try:
            try:
                lock.acquire(timeout=0 if wait else self.lock_timeout)
            except Timeout:
                if not wait:
                    raise
                _wait_log.info(
                    f"waiting up to {self.lock_timeout:.0f}s for the mirror: {lock.holder() or 'another writer'} holds it"
                )
                lock.acquire(timeout=self.lock_timeout)
                _wait_log.info(f"got the mirror after {time.monotonic() - started:.1f}s")
        except Timeout:
            raise self._writer_busy(lock) from None
        try:
            try:
                con, release = self._connect_waiting(started, attach)
            except duckdb.IOException as exc:
                holder = _duckdb_holder(str(exc)) or "another process"
                raise StoreBusy(
                    f"the mirror {self.path} is busy: held open by {holder}, outside the pipeline's lock; "
                    "close it there (analysts read the snapshot snapshot.duckdb instead)"
                ) from None
            try:
                yield con
            finally:
                release()
        finally:
            lock.release()

    def _writer_busy(self, lock: HeldLock) -> StoreBusy:
        holder = lock.holder()
        return StoreBusy(
            f"the mirror {self.path} is being written by another process"
            + (f", {holder}" if holder else "")
            + f" (waited {self.lock_timeout:.0f}s); try again when it finishes"
        )

    def _connect_waiting(
        self, started: float, attach: bool = False
    ) -> tuple[duckdb.DuckDBPyConnection, Callable[[], None]]:
        """Connect read-write (`attach`: to the thread's DuckDB, `core/attached.py`), waiting (bounded by
        `lock_timeout` from `started`) while a reader holds the file; the connection and its release."""
        told = False
        while True:
            try:
                opened = connect_writing(self.path, _config(), attach=attach)
            except duckdb.IOException as exc:
                if time.monotonic() - started >= self.lock_timeout:
                    raise
                if not told:
                    holder = _duckdb_holder(str(exc)) or "another process"
                    _wait_log.info(
                        f"waiting up to {self.lock_timeout:.0f}s for the mirror: {holder} has it open"
                    )
                    told = True
                time.sleep(0.1)
                continue
            if told:
                _wait_log.info(f"got the mirror after {time.monotonic() - started:.1f}s")
            return opened

    @contextmanager
    def session(self, attach: bool = False) -> Iterator[None]:
        """One connection for all of this thread's reads and writes inside the block, for a short step.

        Opening the mirror costs 10-30 ms (its catalogue is read, and a close checkpoints): a targeted run
        made some 45 such openings. A session holds the writers' lock for its whole duration, so it is for
        steps of seconds; a long sync writes chunk by chunk, releasing the lock in between. Nested
        sessions are the outer one; before the mirror exists there is none (so none creates it)."""
        if self._session() is not None or not self.path.exists():
            yield
            return
        with self._locked_connection(wait=True, attach=attach) as con:
            sessions = _sessions.__dict__.setdefault("open", {})
            sessions[str(self.path)] = con
            try:
                yield
            finally:
                del sessions[str(self.path)]

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, serialised across processes by a file lock; committed on success."""
        held = self._session()
        with nullcontext(held) if held is not None else self._locked_connection() as con:
            con.execute("begin transaction")
            try:
                yield con
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection (several may coexist; none while a writer holds the file); inside a
        session, the session's connection."""
        held = self._session()
        if held is not None:
            yield held
            return
        con = self._connect_reading()
        try:
            yield con
        finally:
            con.close()

    def _connect_reading(self) -> duckdb.DuckDBPyConnection:
        """Open read-only, waiting up to `lock_timeout` while a writer has the file (another step or run
        writing this connection: extract steps of different connections run side by side, so a check's read
        can meet its own connection's writer), then a clear StoreBusy."""
        started = time.monotonic()
        told = False
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=True, config=_config())
            except duckdb.IOException as exc:
                waited = time.monotonic() - started
                if waited >= self.lock_timeout:
                    holder = (
                        _duckdb_holder(str(exc))
                        or HeldLock(str(self.path) + ".lock").holder()
                        or "another process"
                    )
                    raise StoreBusy(
                        f"the mirror {self.path} is busy: held by {holder}"
                        + (f" (waited {waited:.0f}s)" if waited >= 1 else "")
                    ) from None
                if not told:
                    _wait_log.info(
                        f"waiting up to {self.lock_timeout:.0f}s to read the mirror: a writer has it"
                    )
                    told = True
                time.sleep(0.1)
                continue
            if told:
                _wait_log.info(f"read the mirror after {time.monotonic() - started:.1f}s")
            return con

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The writers' lock alone, no connection: no writer changes the file inside the block, while it is
        read through a read-only attachment (the snapshot's copy)."""
        held = self._session()
        if held is not None:  # this thread's session holds the lock and the file open read-write
            raise StoreBusy(f"the mirror {self.path} is open in this thread's session; copy it outside one")
        lock = HeldLock(str(self.path) + ".lock")
        try:
            lock.acquire(timeout=self.lock_timeout)
        except Timeout:
            raise self._writer_busy(lock) from None
        try:
            yield
        finally:
            lock.release()

    # ---------------------------------------------------------------------------------------
    # What a vendor org offers (meta.vendor_schema), as each CRM's schema module reads and saves it

    def vendor_schema_rows(self, connection: str, vendor: str) -> list[tuple]:
        """(module, field, type, picklist, value, read_at) rows saved for this connection and vendor."""
        if not self.path.exists():
            return []
        with self.read() as con:
            present = con.execute(
                "select count(*) from duckdb_tables() where schema_name = 'meta' and table_name = 'vendor_schema'"
            ).fetchone()[0]
            if not present:
                return []
            return con.execute(
                "select module, field, type, picklist, value, read_at from meta.vendor_schema "
                "where connection = ? and vendor = ?",
                [connection, vendor],
            ).fetchall()

    def replace_vendor_schema(self, connection: str, vendor: str, rows: list[tuple], read_at) -> None:
        """Replace this connection's rows of `vendor` with (module, field, type, picklist, value) rows."""
        with self.write() as con:
            self.ensure_base(con)
            con.execute(
                "delete from meta.vendor_schema where connection = ? and vendor = ?", [connection, vendor]
            )
            con.executemany(
                "insert into meta.vendor_schema values (?, ?, ?, ?, ?, ?, ?, ?)",
                [(connection, vendor, m, f, ty, p, v, read_at) for m, f, ty, p, v in rows],
            )

    # ---------------------------------------------------------------------------------------
    # Schema

    @staticmethod
    def ensure_base(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(BASE_DDL)
        if not con.execute("select count(*) from meta.schema_version").fetchone()[0]:
            con.execute(
                "insert into meta.schema_version values (?, ?, ?)",
                [SCHEMA_VERSION, datetime.now(UTC), "created"],
            )
        present = set(
            con.execute(
                "select table_name, column_name from duckdb_columns() where schema_name = 'meta'"
            ).fetchall()
        )
        for table, column, sql_type in ADDED_META_COLUMNS:
            if (table, column) not in present:
                con.execute(f"alter table meta.{table} add column {column} {sql_type}")
                con.execute(
                    "insert into meta.schema_version values (?, ?, ?)",
                    [SCHEMA_VERSION, datetime.now(UTC), f"added meta.{table}.{column}"],
                )

    @staticmethod
    def ensure_table(
        con: duckdb.DuckDBPyConnection, schema: str, table: str, columns: str, key: list[str]
    ) -> None:
        """A typed current-state table and its `_history` twin (valid_from/valid_to).

        Additive schema evolution: a column the code declares and the file lacks is added to both tables
        (NULL for rows fetched before), and the change is recorded in `meta.schema_version`.
        """
        con.execute(f"create schema if not exists {schema}")
        con.execute(
            f"create table if not exists {schema}.{table} ({columns}, primary key ({', '.join(key)}))"
        )
        con.execute(
            f"create table if not exists {schema}.{table}_history "
            f"({columns}, valid_from timestamptz not null, valid_to timestamptz)"
        )
        declared = _declared_columns(columns)
        for target in (table, f"{table}_history"):
            present = {
                r[0]
                for r in con.execute(
                    "select column_name from duckdb_columns() where schema_name = ? and table_name = ?",
                    [schema, target],
                ).fetchall()
            }
            for name, sql_type in declared:
                if name not in present:
                    con.execute(f"alter table {schema}.{target} add column {name} {sql_type}")
                    con.execute(
                        "insert into meta.schema_version values (?, ?, ?)",
                        [SCHEMA_VERSION, datetime.now(UTC), f"added {schema}.{target}.{name}"],
                    )

    # ---------------------------------------------------------------------------------------
    # Writes

    @staticmethod
    def append_landing(
        con: duckdb.DuckDBPyConnection,
        *,
        connection: str,
        vendor: str,
        entity: str,
        rows: Iterable[tuple[str, datetime | None, str, str]],
        fetched_at: datetime,
        run_id: str | None,
    ) -> int:
        """Append verbatim payloads (record id, source-modified time, payload JSON, its hash). Nothing is ever
        lost."""
        rows = list(rows)
        if not rows:
            return 0
        record_ids, modified, payloads, digests = (list(c) for c in zip(*rows, strict=True))
        frame = pd.DataFrame(
            {
                "connection": connection,
                "vendor": vendor,
                "entity": entity,
                "record_id": record_ids,
                # times pandas cannot hold (Xero's year-0001 "no date") land as NULL, never abort the batch
                "source_modified": pd.to_datetime(
                    pd.Series(modified, dtype=object), utc=True, errors="coerce"
                ),
                "fetched_at": pd.to_datetime(fetched_at, utc=True),
                "payload_hash": digests,
                "run_id": run_id,
                "payload": payloads,
            }
        )
        con.register("incoming_landing", frame)
        try:
            con.execute("insert into landing.records by name select * from incoming_landing")
        finally:
            con.unregister("incoming_landing")
        return len(frame)

    @staticmethod
    def merge_current(
        con: duckdb.DuckDBPyConnection,
        schema: str,
        table: str,
        frame: pd.DataFrame,
        key: list[str],
        *,
        valid_from: datetime,
    ) -> MergeCounts:
        """Upsert typed rows by key; changed rows close their history row and open a new one.

        `frame` must carry a `row_hash` column: a row whose hash is unchanged is not rewritten.
        """
        if frame.empty:
            return MergeCounts()
        target = f"{schema}.{table}"
        on = " and ".join(f"t.{k} = i.{k}" for k in key)
        con.register("incoming_rows", _exact_decimals(frame))
        try:
            con.execute(
                "create or replace temp table merge_status as "
                f"select i.*, case when t.{key[0]} is null then 'insert' "
                "when t.row_hash = i.row_hash then 'same' else 'update' end as _status "
                f"from incoming_rows i left join {target} t on {on}"
            )
            counts = dict(con.execute("select _status, count(*) from merge_status group by 1").fetchall())
            # Only what changed is written; statements with nothing to do are not run (a first sync only
            # inserts, an idle re-read only matches).
            changed = "(select * exclude (_status) from merge_status where _status <> 'same')"
            updated = "(select * from merge_status where _status = 'update')"
            if counts.get("update"):
                con.execute(f"delete from {target} t using {updated} i where {on}")
                con.execute(
                    f"update {target}_history t set valid_to = ? from {updated} i where {on} and t.valid_to is null",
                    [valid_from],
                )
            if counts.get("update") or counts.get("insert"):
                con.execute(f"insert into {target} by name select * from {changed}")
                con.execute(
                    f"insert into {target}_history by name "
                    f"select *, ?::timestamptz as valid_from, null::timestamptz as valid_to from {changed}",
                    [valid_from],
                )
        finally:
            con.unregister("incoming_rows")
            con.execute("drop table if exists merge_status")
        return MergeCounts(
            inserted=counts.get("insert", 0), updated=counts.get("update", 0), unchanged=counts.get("same", 0)
        )

    @classmethod
    def replace_children(
        cls,
        con: duckdb.DuckDBPyConnection,
        schema: str,
        table: str,
        frame: pd.DataFrame,
        key: list[str],
        *,
        parents: pd.DataFrame,
        valid_from: datetime,
    ) -> MergeCounts:
        """Merge rows (e.g. invoice lines) and drop the rows the fetched parents no longer have.

        `parents` holds the parent keys (e.g. `connection` and `invoice_id`) that were fetched whole, so
        a row of theirs missing from `frame` is gone: it leaves the current table and its history row is
        closed. With `parents` holding only `connection`, this is a full sweep's deletion check.
        """
        counts = cls.merge_current(con, schema, table, frame, key, valid_from=valid_from)
        present = frame[key] if not frame.empty else pd.DataFrame()
        deleted = cls.delete_missing(
            con, schema, table, key, present=present, parents=parents, valid_from=valid_from
        )
        return MergeCounts(counts.inserted, counts.updated, counts.unchanged, deleted)

    @staticmethod
    def delete_missing(
        con: duckdb.DuckDBPyConnection,
        schema: str,
        table: str,
        match: list[str],
        *,
        present: pd.DataFrame,
        parents: pd.DataFrame,
        valid_from: datetime,
    ) -> int:
        """Within `parents`, rows whose `match` columns are not among `present` leave the current table;
        their open history rows are closed at `valid_from`. Returns how many left."""
        if parents.empty:
            return 0
        target = f"{schema}.{table}"
        join = " and ".join(f"t.{c} = p.{c}" for c in parents.columns)
        on = " and ".join(f"t.{k} = i.{k}" for k in match)
        con.register("parents_in", parents)
        try:
            if present.empty:
                missing = "true"
            else:
                con.register("present_in", present[match])
                missing = f"not exists (select 1 from present_in i where {on})"
            con.execute(
                f"create or replace temp table stale_rows as select distinct t.{', t.'.join(match)} from {target} t "
                f"join parents_in p on {join} where {missing}"
            )
            deleted = con.execute(f"select count(*) from {target} t join stale_rows i on {on}").fetchall()[0][
                0
            ]
            if deleted:
                con.execute(f"delete from {target} t using stale_rows i where {on}")
                con.execute(
                    f"update {target}_history t set valid_to = ? from stale_rows i where {on} and t.valid_to is null",
                    [valid_from],
                ).fetchall()
        finally:
            con.unregister("parents_in")
            if not present.empty:
                con.unregister("present_in")
            con.execute("drop table if exists stale_rows")
        return deleted

    # ---------------------------------------------------------------------------------------
    # Cursors

    @staticmethod
    def get_cursor(
        con: duckdb.DuckDBPyConnection, connection: str, vendor: str, entity: str
    ) -> datetime | None:
        return Store.get_sync_state(con, connection, vendor, entity)[0]

    def state(self, connection: str, vendor: str, entity: str) -> SyncState:
        """Where an entity's reads stand; all None before its first run or before the file exists. Read as
        the file is: the meta tables are made or brought up to date only when the read finds them missing
        or old (that DDL pass costs 5-15 ms, and an idle batch reads 13 entities' state a connection)."""
        if not self.path.exists():
            return SyncState()
        try:
            with self.read() as con:
                return self.get_state(con, connection, vendor, entity)
        except (duckdb.CatalogException, duckdb.BinderException):
            pass  # no meta.cursors yet, or one without the columns added since
        with self.write() as con:
            self.ensure_base(con)
            return self.get_state(con, connection, vendor, entity)

    @staticmethod
    def get_state(con: duckdb.DuckDBPyConnection, connection: str, vendor: str, entity: str) -> SyncState:
        """Where an entity's reads stand; all None before its first run."""
        row = con.execute(
            "select cursor_value, last_full_sweep, sweep_started_at, sweep_position, caught_up_at from meta.cursors "
            "where connection = ? and vendor = ? and entity = ?",
            [connection, vendor, entity],
        ).fetchone()
        if row is None:
            return SyncState()
        cursor, last_full, started, position, caught_up = row
        return SyncState(cursor, last_full, (started, position) if started is not None else None, caught_up)

    @staticmethod
    def get_sync_state(
        con: duckdb.DuckDBPyConnection, connection: str, vendor: str, entity: str
    ) -> tuple[datetime | None, datetime | None]:
        """(cursor, time of the last full sweep) of an entity; (None, None) before its first run."""
        state = Store.get_state(con, connection, vendor, entity)
        return state.cursor, state.last_full

    @staticmethod
    def set_caught_up(
        con: duckdb.DuckDBPyConnection, connection: str, vendor: str, entity: str, at: datetime
    ) -> None:
        """A read reached the end of what changed: every record up to the cursor has been read."""
        con.execute(
            "update meta.cursors set caught_up_at = ? where connection = ? and vendor = ? and entity = ?",
            [at, connection, vendor, entity],
        )

    @staticmethod
    def set_sweep(
        con: duckdb.DuckDBPyConnection,
        connection: str,
        vendor: str,
        entity: str,
        sweep: tuple[datetime, datetime | None] | None,
    ) -> None:
        """Record how far a full sweep cut short got (None: no sweep in progress)."""
        started, position = sweep or (None, None)
        con.execute(
            "update meta.cursors set sweep_started_at = ?, sweep_position = ? where connection = ? and vendor = ? "
            "and entity = ?",
            [started, position, connection, vendor, entity],
        )

    @staticmethod
    def set_cursor(
        con: duckdb.DuckDBPyConnection,
        connection: str,
        vendor: str,
        entity: str,
        value: datetime | None,
        *,
        full_sweep_at: datetime | None = None,
    ) -> None:
        con.execute(
            "insert into meta.cursors (connection, vendor, entity, cursor_value, last_full_sweep, updated_at) "
            "values (?, ?, ?, ?, ?, ?) on conflict (connection, vendor, entity) do update set "
            "caught_up_at = case when meta.cursors.cursor_value is not distinct from excluded.cursor_value "
            "then meta.cursors.caught_up_at end, "
            "cursor_value = excluded.cursor_value, updated_at = excluded.updated_at, "
            "last_full_sweep = coalesce(excluded.last_full_sweep, meta.cursors.last_full_sweep)",
            [connection, vendor, entity, value, full_sweep_at, datetime.now(UTC)],
        )


# ---------------------------------------------------------------------------------------------
# The analysts' snapshot: every connection's mirror in one self-contained file


def _quoted(*names: str) -> str:
    return ".".join('"' + n.replace('"', '""') + '"' for n in names)


def publish_snapshot(
    sources: Iterable[Store],
    target: Path | str,
    finish: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> Path:
    """Copy every mirror in `sources` into one new file and move it to `target` atomically.

    Each mirror is attached READ_ONLY under its own writers' lock, held only while its tables are copied,
    so the other connections' writers go on meanwhile and no file is copied half-written. A table several
    mirrors have is their rows together (UNION ALL BY NAME: a column one file lacks reads NULL). Views are
    not copied from the mirrors (each holds its own connection's rendering): `finish`, given a connection
    whose default catalog is the new file, installs them over the union (the canonical and analytics views);
    any other view is copied from the first mirror that has it.

    Analysts open the snapshot, never a mirror: an open notebook then blocks no pipeline run, and a
    connection open on the old snapshot keeps reading it (os.replace swaps the name, not the file). The new
    file is in DuckDB's v1.0.0 storage format (SNAPSHOT_STORAGE), so a DuckDB 1.x CLI or notebook opens it
    too, whatever DuckDB version writes the mirrors, and it stands alone (no attachment survives in it).
    """
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:", config=_config())
    try:
        con.execute(f"attach '{_sql_path(tmp)}' as xz_snapshot (storage_version '{SNAPSHOT_STORAGE}')")
        con.execute("use xz_snapshot")
        columns: dict[tuple[str, str], set[str]] = {}
        views: dict[tuple[str, str], str] = {}
        for store in sources:
            if not store.path.exists():
                continue
            with store.locked():
                con.execute(f"attach '{_sql_path(store.path)}' as xz_source (read_only)")
                try:
                    _copy_tables(con, columns)
                    for schema, name, sql in con.execute(
                        "select schema_name, view_name, sql from duckdb_views() where database_name = 'xz_source' "
                        "and not internal and schema_name not in ('canonical', 'analytics')"
                    ).fetchall():
                        views.setdefault((schema, name), sql)
                finally:
                    con.execute("detach xz_source")
        for schema, _ in views:
            con.execute(f"create schema if not exists {_quoted(schema)}")
        for sql in views.values():
            con.execute(sql)
        if finish is not None:
            finish(con)
        con.execute("checkpoint xz_snapshot")
        con.execute("use memory")
        con.execute("detach xz_snapshot")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(tmp, target)
    return target


def _copy_tables(con: duckdb.DuckDBPyConnection, columns: dict[tuple[str, str], set[str]]) -> None:
    """Append every table of the attached `xz_source` to the same table of the snapshot (created on first
    sight, without keys: the snapshot is read, never merged into; a column first seen later is added)."""
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, data_type in con.execute(
        "select c.schema_name, c.table_name, c.column_name, c.data_type from duckdb_columns() c "
        "join duckdb_tables() t on t.database_name = c.database_name and t.schema_name = c.schema_name "
        "and t.table_name = c.table_name where c.database_name = 'xz_source' "
        "order by c.schema_name, c.table_name, c.column_index"
    ).fetchall():
        found.setdefault((schema, table), []).append((column, data_type))
    for (schema, table), cols in found.items():
        name = _quoted(schema, table)
        if (schema, table) not in columns:
            con.execute(f"create schema if not exists {_quoted(schema)}")
            con.execute(f"create table {name} as select * from xz_source.{name}")
            columns[(schema, table)] = {c for c, _ in cols}
            continue
        for column, data_type in cols:
            if column not in columns[(schema, table)]:
                con.execute(f"alter table {name} add column {_quoted(column)} {data_type}")
                columns[(schema, table)].add(column)
        con.execute(f"insert into {name} by name select * from xz_source.{name}")


# ---------------------------------------------------------------------------------------------
# `xz migrate`: the single mirror file of earlier versions, split into one file per connection

VENDOR_SCHEMAS = ("xero", "quickbooks", "zoho", "salesforce")


def split_mirror(
    legacy: Path,
    directory: Path,
    *,
    check_name: Callable[[str], str] = lambda name: name,
    finish: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    lock_timeout: float = 30.0,
) -> dict[str, dict[str, int]]:
    """Split `legacy` (every connection in one file) into `directory/<connection>.duckdb` by the `connection`
    column of every table; returns {connection: {schema.table: rows}}.

    Each table is created from its own DDL (keys included), so merges and upserts work on the new files as on
    the old. A vendor's tables go into a connection's file only when that vendor holds rows of the connection
    (a Xero connection's file has no QuickBooks tables); every other table (landing, meta, recon, writeback,
    insights...) is in every file, and a table without a `connection` column (meta.schema_version) is copied
    whole into each. Views are not copied (they were installed for the union): `finish` installs them in each
    new file. The old file is read under its writers' lock, the new files are written beside their final
    names and moved there only when all are complete; the caller renames the old file afterwards.
    """
    lock = HeldLock(str(legacy) + ".lock")
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout:
        raise StoreBusy(
            f"the mirror {legacy} is being written by {lock.holder() or 'another process'}; "
            "try again when it finishes"
        ) from None
    con = duckdb.connect(":memory:", config=_config())
    done: dict[str, Path] = {}
    try:
        con.execute(f"attach '{_sql_path(legacy)}' as xz_legacy (read_only)")
        tables = con.execute(
            "select t.schema_name, t.table_name, t.sql, exists (select 1 from duckdb_columns() c where "
            "c.database_name = 'xz_legacy' and c.schema_name = t.schema_name and c.table_name = t.table_name "
            "and c.column_name = 'connection') from duckdb_tables() t where t.database_name = 'xz_legacy' "
            "order by 1, 2"
        ).fetchall()
        present: dict[str, dict[str, int]] = {}
        for schema, table, _, has_connection in tables:
            if has_connection:
                name = _quoted(schema, table)
                for connection, n in con.execute(
                    f"select connection, count(*) from xz_legacy.{name} group by 1"
                ).fetchall():
                    present.setdefault(connection, {})[f"{schema}.{table}"] = n
        for connection in present:
            check_name(connection)
        directory.mkdir(parents=True, exist_ok=True)
        out: dict[str, dict[str, int]] = {}
        for connection in sorted(present):
            tmp = directory / f"{connection}.duckdb.migrating"
            tmp.unlink(missing_ok=True)
            con.execute(f"attach '{_sql_path(tmp)}' as xz_new")
            con.execute("use xz_new")
            counts: dict[str, int] = {}
            vendors = {key.split(".")[0] for key in present[connection]} & set(VENDOR_SCHEMAS)
            for schema, table, sql, has_connection in tables:
                key = f"{schema}.{table}"
                if schema in VENDOR_SCHEMAS and schema not in vendors:
                    continue
                con.execute(f"create schema if not exists {_quoted(schema)}")
                con.execute(sql)
                name = _quoted(schema, table)
                where = " where connection = ?" if has_connection else ""
                con.execute(
                    f"insert into {name} select * from xz_legacy.{name}{where}",
                    [connection] if has_connection else [],
                )
                counts[key] = present[connection].get(key, 0) if has_connection else _count(con, name)
            con.execute("use memory")
            con.execute("detach xz_new")
            done[connection] = tmp
            out[connection] = counts
        con.execute("detach xz_legacy")
        for tmp in done.values() if finish is not None else ():
            new = duckdb.connect(str(tmp), config=_config())  # alone: the views see only this file
            try:
                new.execute("begin transaction")
                finish(new)
                new.execute("commit")
            finally:
                new.close()
        for connection, tmp in done.items():
            os.replace(tmp, directory / f"{connection}.duckdb")
        done.clear()
        return out
    finally:
        con.close()
        for tmp in done.values():
            tmp.unlink(missing_ok=True)
        lock.release()


def _count(con: duckdb.DuckDBPyConnection, name: str) -> int:
    return con.execute(f"select count(*) from {name}").fetchone()[0]
