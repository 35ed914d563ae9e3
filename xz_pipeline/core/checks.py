"""Running the pandera models of `core/schemas.py` as Dagster asset checks, and quarantining failures.

A `Rule` is one asset check: a model run over rows of one connection read from the mirror (a table,
or a query deriving rows such as the sums of invoice lines). `evaluate` turns pandera's
`SchemaErrors` into the failing records, a reason per record naming the fields and their values,
and `AssetCheckResult` metadata (failing keys, 20-row previews). `build_mirror_checks` makes one
`@multi_asset_check` per extract asset: one step reads the partition once and yields a result per
rule; ERROR rules are blocking, so a failure stops write-back downstream, WARN rules only report.

An ERROR rule failing on a few records does not stop the connection: those records are quarantined
(and `canonical.*` leaves them out while their quarantine row is open) and the run goes on for the rest;
the check reports them at WARN severity, so Dagster does not block what follows. It blocks (ERROR) only
when the connection as a whole cannot be trusted: the rows could not be read or no longer fit the model
(a schema change), or more than `UNTRUSTWORTHY_SHARE` (20%) of the table's rows fail — a book where a
fifth of the invoices break an invariant is a broken sync or mapping, not a few bad records.

Quarantine (`meta.quarantine`) keeps history and shows the current state: a failing record gets a
row (rule = the check's name) the first time that record, reason and payload hash fail; while it
keeps failing, reruns add nothing; when it passes (or is fixed upstream, which changes its payload
hash) its open row gets `resolved_at`. So `where resolved_at is null` is what is wrong right now,
and its payload is in `landing.records` under the same payload hash, untouched.

(No `from __future__ import annotations` here: Dagster inspects the `context` annotation.)
"""

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import duckdb
import pandas as pd
import pandera.pandas as pa

from xz_pipeline import settings
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.schemas import ROW_CHECK_FIELDS
from xz_pipeline.core.store import Store

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN
PREVIEW_ROWS = 20
MAX_KEYS = 200  # failing keys listed in metadata (the count is always exact)
MAX_VALUE = 80  # characters of a value quoted in a reason or preview
UNIQUENESS = "multiple_fields_uniqueness"
UNTRUSTWORTHY_SHARE = 0.20  # more failing rows than this share of the table blocks the connection


@dataclass(frozen=True)
class Rule:
    """One asset check: `model` validated over a connection's rows of `table` (or of `sql`)."""

    name: str  # the asset check's name, and the `rule` of its quarantine rows
    model: type[pa.DataFrameModel]
    table: str  # schema.table
    key: tuple[str, ...]  # the columns that identify a row (besides `connection`)
    severity: dg.AssetCheckSeverity = ERROR
    description: str = ""
    sql: str | None = None  # rows to check, with one `?` for the connection; default: the table's rows
    record_id: str | None = None  # the column naming the landing record (default: key[0])

    @property
    def query(self) -> str:
        """The rows to check: by default only the columns the model and the key name (less to read)."""
        if self.sql:
            return self.sql
        columns = dict.fromkeys([*self.model.to_schema().columns, *self.key, self.record_column])
        return f"select {', '.join(_quote(c) for c in columns)} from {self.table} where connection = ?"

    @property
    def record_column(self) -> str:
        return self.record_id or self.key[0]

    @property
    def blocking(self) -> bool:
        return self.severity == ERROR


@dataclass
class Outcome:
    """What one rule found in one connection's rows."""

    rule: Rule
    rows_checked: int
    failure_cases: pd.DataFrame  # pandera's, plus `record_id`
    failing_rows: pd.DataFrame  # the rows with at least one failure
    reasons: dict[tuple[str | None, str | None], str]  # (record id, payload hash) -> reason
    error: str | None = None  # the rows could not be read or validated at all
    quarantine: dict[str, int] = field(default_factory=dict)
    scope: str = "every row of the connection"
    fields: dict[tuple[str | None, str | None], str] = field(default_factory=dict)  # key -> failing fields
    population: int | None = None  # the connection's rows in the table, when only some were checked

    @property
    def blocks(self) -> bool:
        """Does this failure make the whole connection untrustworthy (see the module's docstring)?"""
        if self.passed or not self.rule.blocking:
            return False
        if (
            self.error or not self.quarantine
        ):  # only failures quarantined (kept out of canonical) are isolated
            return True
        return len(self.reasons) > UNTRUSTWORTHY_SHARE * max(self.population or self.rows_checked, 1)

    @property
    def summary(self) -> str | None:
        """One line saying what the failure does to the run."""
        if self.passed:
            return None
        if self.error:
            return self.error
        total = max(self.population or self.rows_checked, 1)
        share = f"{len(self.reasons)} of {total} rows ({len(self.reasons) / total:.0%})"
        if self.blocks:
            # a rule that quarantines blocks past the share; one that does not blocks on any failure
            why = f", more than {UNTRUSTWORTHY_SHARE:.0%}" if self.quarantine else ""
            return (f"{share} fail {self.rule.name}{why}: the connection is "
                    "blocked until the source or the mapping is fixed")  # fmt: skip
        if self.rule.blocking and self.quarantine:
            return f"{share} quarantined by {self.rule.name}: left out of canonical.* until fixed; the rest goes on"
        if self.rule.blocking:
            return f"{share} fail {self.rule.name}"
        return f"{share} fail {self.rule.name} (a warning)"

    @property
    def passed(self) -> bool:
        return self.error is None and self.failure_cases.empty

    @property
    def failing_keys(self) -> list[str | None]:
        return sorted({rid for rid, _ in self.reasons}, key=lambda v: (v is None, v or ""))

    def result(self, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=self.rule.name,
            passed=self.passed,
            severity=ERROR if self.blocks else WARN,
            description=self.summary,
            metadata=self.metadata(),
        )

    def metadata(self) -> dict:
        keys = self.failing_keys
        meta: dict = {
            "table": self.rule.table,
            "rows_checked": self.rows_checked,
            "scope": self.scope,
            "failing_rows": len(self.failing_rows),
            "failure_cases": len(self.failure_cases),
            "failing_keys": dg.MetadataValue.json(keys[:MAX_KEYS]),
        }
        if len(keys) > MAX_KEYS:
            meta["failing_keys_listed"] = f"{MAX_KEYS} of {len(keys)}"
        if not self.failure_cases.empty:
            cases = self.failure_cases[["record_id", "column", "check", "failure_case"]].head(PREVIEW_ROWS)
            meta["failure_cases_preview"] = dg.MetadataValue.md(_markdown(cases))
            meta["failing_rows_preview"] = dg.MetadataValue.md(_markdown(self.preview_rows()))
        meta.update({f"quarantine_{k}": v for k, v in self.quarantine.items()})
        return meta

    def preview_rows(self) -> pd.DataFrame:
        """The first failing rows: their key and the columns that failed (not every column)."""
        failed = [c for c in dict.fromkeys(self.failure_cases["column"].dropna()) if c in self.failing_rows]
        cols = list(dict.fromkeys([*self.rule.key, *failed]))
        return self.failing_rows[[c for c in cols if c in self.failing_rows]].head(PREVIEW_ROWS)


# ---------------------------------------------------------------------------------------------
# Reading


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Rows validated at a time: a check of a 1,000,000-invoice table reads it in slices (40 DuckDB vectors of
# 2,048 rows), so memory stays bounded; each slice's failures are named exactly as a whole read would.
CHECK_VECTORS = 40
# DuckDB's memory for a whole-table check (a rule summing 3,000,000 invoice lines builds its aggregate
# before the first slice): the large organisation's first sync peaked in its checks, 300 MB above the
# writes; DuckDB spills to disk beyond this.
WHOLE_TABLE_MEMORY = "256MB"


def read_frame(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence = ()) -> pd.DataFrame:
    """Rows of `sql` as the schemas expect them: DECIMAL as exact `Decimal`, integers as `Int64`.

    DuckDB's `.df()` turns DECIMAL into float64, which would make a DECIMAL contract unverifiable
    and sums inexact, so decimals travel as text and become `Decimal` here.
    """
    return pd.concat(list(read_frames(con, sql, params, vectors=None)), ignore_index=True)


def read_frames(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence = (), *, vectors: int | None = CHECK_VECTORS
) -> Iterator[pd.DataFrame]:
    """`read_frame` in slices of `vectors` × 2,048 rows (None: one frame); at least one, maybe empty."""
    con.execute("set TimeZone = 'UTC'")
    rel = con.sql(sql, params=list(params))
    types = {name: str(kind) for name, kind in zip(rel.columns, rel.types, strict=True)}
    exprs = [
        f"cast({_quote(n)} as varchar) as {_quote(n)}" if t.startswith("DECIMAL") else _quote(n)
        for n, t in types.items()
    ]
    if vectors is None:
        yield _typed(rel.project(", ".join(exprs)).df(), types)
        return
    con.execute(f"select {', '.join(exprs)} from ({sql}) checked", list(params))
    first = True
    while True:
        frame = con.fetch_df_chunk(vectors)
        if frame.empty and not first:
            return
        yield _typed(frame, types)
        first = False
        if frame.empty:
            return


def _typed(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    for name, kind in types.items():
        if kind.startswith("DECIMAL"):
            frame[name] = pd.Series(
                [None if v is None else Decimal(v) for v in frame[name]], index=frame.index, dtype=object
            )
        elif kind in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"):
            frame[name] = frame[name].astype("Int64")
    return frame


# ---------------------------------------------------------------------------------------------
# Validating


def _show(value, *, quote: bool = True) -> str:
    """A value as a reason or preview shows it: bounded, dates without midnight, text quoted in reasons."""
    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return "null"
    if isinstance(value, pd.Timestamp):
        text = (
            value.date().isoformat() if value.tz is None and value == value.normalize() else value.isoformat()
        )
    else:
        text = str(value)
    text = text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"
    return repr(text) if quote and isinstance(value, str) else text


def evaluate(rule: Rule, frame: pd.DataFrame) -> Outcome:
    """Validate `frame` with the rule's model; name each failing record and why it failed."""
    try:
        rule.model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases.copy()
    else:  # a copy: an empty slice of `frame` is a view that would keep the whole slice alive
        return Outcome(rule, len(frame), _empty_cases(), frame.iloc[0:0].copy(), {})
    cases["check"] = cases["check"].astype(str)
    # A row-level check reports every column of the row: keep the fields it is about.
    about = [ROW_CHECK_FIELDS.get(check) for check in cases["check"]]
    keep = [fields is None or col in fields for col, fields in zip(cases["column"], about, strict=True)]
    cases = cases[keep]
    # Uniqueness is reported per column of the key: the connection adds nothing.
    cases = cases[~((cases["check"] == UNIQUENESS) & (cases["column"] == "connection"))]
    # A DECIMAL column read as anything but Decimal breaks the table's contract, not its records.
    whole_table: list[str] = []
    for column in _not_decimal(frame, cases):
        whole_table.append(f"{column} is {frame[column].dtype}, not DECIMAL")
        cases = cases[~((cases["column"] == column) & cases["check"].str.startswith("dtype("))]
    rows = cases["index"].dropna().astype(int)
    failing = frame.loc[sorted(set(rows))] if len(rows) else frame.iloc[0:0].copy()
    record = rule.record_column
    cases["record_id"] = [
        frame.at[int(i), record] if pd.notna(i) and record in frame else None for i in cases["index"]
    ]
    # One pass over the failure cases (a rule may fail for most of a large table).
    by_row: dict[int, dict[str, list[tuple[str, object]]]] = {}
    for index, column, check, value in zip(
        cases["index"], cases["column"], cases["check"], cases["failure_case"], strict=True
    ):
        if pd.isna(index):
            whole_table.append(f"{column} {check}: {value}")
        else:
            by_row.setdefault(int(index), {}).setdefault(check, []).append((column, value))
    extra = [k for k in rule.key if k != record and k in frame]
    reasons: dict[tuple[str | None, str | None], list[str]] = {}
    fields: dict[tuple[str | None, str | None], set[str]] = {}
    for index, checks in sorted(by_row.items()):
        text = "; ".join(_describe(pairs, check) for check, pairs in checks.items())
        where = ", ".join(f"{k}={_show(frame.at[index, k])}" for k in extra)
        rid = frame.at[index, record] if record in frame else None
        digest = frame.at[index, "payload_hash"] if "payload_hash" in frame else None
        key = (None if pd.isna(rid) else str(rid), None if pd.isna(digest) else str(digest))
        reasons.setdefault(key, []).append(f"{where}: {text}" if where else text)
        fields.setdefault(key, set()).update(str(c) for pairs in checks.values() for c, _ in pairs)
    error = (
        f"{rule.table} does not fit {rule.model.__name__}: " + "; ".join(whole_table) if whole_table else None
    )
    joined = {k: " | ".join(dict.fromkeys(v)) for k, v in reasons.items()}
    named = {k: ", ".join(sorted(v)) for k, v in fields.items()}
    return Outcome(rule, len(frame), cases.reset_index(drop=True), failing, joined, error=error, fields=named)


def _not_decimal(frame: pd.DataFrame, cases: pd.DataFrame) -> list[str]:
    columns = dict.fromkeys(cases.loc[cases["check"].str.startswith("dtype('DECIMAL("), "column"])
    return [c for c in columns if c in frame and not all(isinstance(v, Decimal) for v in frame[c].dropna())]


def _describe(pairs: list[tuple[str, object]], check: str) -> str:
    """One failed check of one row, naming the fields and their values."""
    values = ", ".join(f"{column}={_show(value)}" for column, value in pairs)
    if check in ROW_CHECK_FIELDS:
        return f"{check}: {values}"
    if check == UNIQUENESS:
        return f"{values} is not unique in this connection"
    if check == "not_nullable":
        return f"{', '.join(column for column, _ in pairs)} is null"
    return f"{values} {check if check.startswith(('is ', 'does ')) else 'fails ' + check}"


def _empty_cases() -> pd.DataFrame:
    return pd.DataFrame(columns=["schema_context", "column", "check", "check_number", "failure_case", "index",
                                 "record_id"])  # fmt: skip


def _markdown(frame: pd.DataFrame) -> str:
    """A bounded table for the Dagster UI: values as text (exact decimals, no float re-parsing)."""
    shown = frame.map(lambda v: _show(v, quote=False).replace("|", "\\|"))
    return shown.to_markdown(index=False, disable_numparse=True)


def combine(parts: Sequence[Outcome]) -> Outcome:
    """One rule's outcome over slices of its rows, as if they had been validated at once (the key's
    uniqueness across slices is the table's primary key's job)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    reasons: dict = {}
    fields: dict = {}
    for part in parts:
        reasons.update(part.reasons)
        fields.update(part.fields)
    errors = sorted({p.error for p in parts if p.error})
    return Outcome(
        first.rule,
        sum(p.rows_checked for p in parts),
        pd.concat([p.failure_cases for p in parts], ignore_index=True),
        pd.concat([p.failing_rows for p in parts], ignore_index=True),
        reasons,
        error="; ".join(errors) or None,
        fields=fields,
    )


def _unreadable(rule: Rule, why: str) -> Outcome:
    return Outcome(rule, 0, _empty_cases(), pd.DataFrame(), {}, error=f"cannot read {rule.table}: {why}")


def scoped_query(rule: Rule, ids: Sequence[str] | None) -> tuple[str, list]:
    """The rule's rows and their parameters: all of the connection's, or only those of these records."""
    if ids is None:
        return rule.query, []
    column = _quote(rule.record_column)
    return (
        f"select * from ({rule.query}) scoped where cast(scoped.{column} as varchar) in "
        "(select unnest(?::varchar[]))",
        [list(ids)],
    )


def check_rules(
    store: Store,
    rules: Sequence[Rule],
    connection: str,
    ids: Sequence[str] | None = None,
    scope: str = "a targeted run read",
) -> list[Outcome]:
    """Read and validate each rule's rows for one connection (or only `ids`' rows, which `scope` names),
    on one short read connection."""
    if not store.path.exists():
        why = f"the mirror {store.path} does not exist yet (materialise the asset first)"
        return [_unreadable(rule, why) for rule in rules]
    outcomes = []
    with store.read() as con:
        if ids is None:  # a whole table: DuckDB's share of the step stays small and spills beyond
            con.execute(f"set memory_limit = '{WHOLE_TABLE_MEMORY}'")
        for rule in rules:
            try:
                sql, extra = scoped_query(rule, ids)
                frames = read_frames(con, sql, [connection, *extra], vectors=CHECK_VECTORS)
                parts = [evaluate(rule, frame) for frame in frames]
            except (duckdb.CatalogException, duckdb.BinderException) as exc:  # no such table or column
                outcomes.append(_unreadable(rule, str(exc).splitlines()[0]))
                continue
            outcome = combine(parts)
            if ids is not None:
                outcome.scope = f"the {len(ids)} record(s) {scope}"
                outcome.population = con.execute(
                    f"select count(*) from {rule.table} where connection = ?", [connection]
                ).fetchone()[0]
            outcomes.append(outcome)
    return outcomes


# ---------------------------------------------------------------------------------------------
# Quarantine


def quarantine(
    con: duckdb.DuckDBPyConnection,
    outcome: Outcome,
    *,
    connection: str,
    vendor: str,
    entity: str,
    run_id: str | None,
    now: datetime,
    ids: Sequence[str] | None = None,
) -> dict[str, int]:
    """Bring the rule's open quarantine rows for this connection in line with `outcome`.

    New (record, reason, payload hash) failures are inserted; open rows no longer failing are
    resolved; the rest are left alone, so a rerun changes nothing. A rule that could not run whole
    (`outcome.error`) resolves nothing.
    """
    Store.ensure_base(con)
    scope = [connection, vendor, entity, outcome.rule.name]
    open_rows = con.execute(
        "select record_id, reason, payload_hash from meta.quarantine where connection = ? and vendor = ? "
        "and entity = ? and rule = ? and resolved_at is null",
        scope,
    ).fetchall()
    current = {(rid, reason, digest) for (rid, digest), reason in outcome.reasons.items()}
    named = {
        (rid, reason, digest): outcome.fields.get((rid, digest))
        for (rid, digest), reason in outcome.reasons.items()
    }
    severity = outcome.rule.severity.value
    seen = set(open_rows)
    new = sorted(current - seen, key=str)
    in_scope = seen if ids is None else {row for row in seen if row[0] in set(ids)}
    gone = (
        [] if outcome.error else sorted(in_scope - current, key=str)
    )  # a rule that could not run resolves nothing; a scoped check resolves only its records
    columns = ["record_id", "reason", "payload_hash"]
    if new:
        rows = [(*row, named.get(row)) for row in new]
        con.register("quarantine_new", pd.DataFrame(rows, columns=[*columns, "field"], dtype=object))
        try:
            con.execute(
                "insert into meta.quarantine (connection, vendor, entity, record_id, rule, field, reason, "
                "payload_hash, severity, run_id, quarantined_at) select ?, ?, ?, record_id, ?, field, reason, "
                "payload_hash, ?, ?, ? from quarantine_new",
                [*scope, severity, run_id, now],
            )
        finally:
            con.unregister("quarantine_new")
    if gone:
        con.register("quarantine_gone", pd.DataFrame(gone, columns=columns, dtype=object))
        try:
            con.execute(
                "update meta.quarantine q set resolved_at = ? from quarantine_gone g where q.connection = ? "
                "and q.vendor = ? and q.entity = ? and q.rule = ? and q.resolved_at is null "
                "and q.record_id is not distinct from g.record_id and q.reason = g.reason "
                "and q.payload_hash is not distinct from g.payload_hash",
                [now, *scope],
            )
        finally:
            con.unregister("quarantine_gone")
    con.execute(  # rows opened before severities were recorded
        "update meta.quarantine set severity = ? where connection = ? and vendor = ? and entity = ? and rule = ? "
        "and severity is null",
        [severity, *scope],
    )
    counts = {"new": len(new), "resolved": len(gone), "open": len(seen) - len(gone) + len(new)}
    outcome.quarantine = counts
    return counts


# ---------------------------------------------------------------------------------------------
# Dagster


def run_checks(
    store: Store,
    rules: Sequence[Rule],
    *,
    connection: str,
    vendor: str,
    entity: str,
    run_id: str | None,
    now: datetime | None = None,
    ids: Sequence[str] | None = None,
    scope: str = "a targeted run read",
) -> list[Outcome]:
    """Validate every rule for one connection (or only `ids`' records, which `scope` names), then update
    the quarantine in one write transaction."""
    outcomes = check_rules(store, rules, connection, ids, scope)
    if not store.path.exists():
        return outcomes  # nothing to quarantine, and no reason to create an empty mirror
    now = now or datetime.now(UTC)
    with store.write() as con:
        for outcome in outcomes:
            quarantine(
                con,
                outcome,
                connection=connection,
                vendor=vendor,
                entity=entity,
                run_id=run_id,
                now=now,
                ids=ids,
            )
    return outcomes


def announced_ids(run_config: dict, op_name: str) -> list[str] | None:
    """The records a targeted run read for this asset (`ids` and `deleted_ids` of its config), or None
    for a run that read the table whole or incrementally. A targeted run checks only those: the rest
    was checked when it was written, and whole-table checks run with first syncs and full sweeps."""
    config = (run_config or {}).get("ops", {}).get(op_name, {}).get("config") or {}
    ids = [*config.get("ids", []), *config.get("deleted_ids", [])]
    return [str(i) for i in ids] if ids else None


def selected_rules(context: dg.AssetCheckExecutionContext, rules: Sequence[Rule]) -> list[Rule]:
    """The rules of a multi-check step that this run selected (all of them unless it chose some)."""
    names = {k.name for k in context.selected_asset_check_keys}
    return [rule for rule in rules if rule.name in names]


WRITTEN = "an incremental read of this run wrote"


def written_in_this_run(
    context: dg.AssetCheckExecutionContext, key: dg.AssetKey, store: Store, rules: Sequence[Rule]
) -> list[str] | None:
    """The records an incremental read in this very run wrote (new or changed rows), or None for the
    whole table: after a first sync or a full sweep, or when the asset was not materialised in this run
    (a check launched on its own). Rows a run leaves unchanged keep their `fetched_at`, and were checked
    when they were written; the full sweeps check every row again (a rule added since included)."""
    latest = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[context.partition_key]), limit=1
    ).records
    if not latest or latest[0].run_id != context.run.run_id:
        return None
    mode = latest[0].asset_materialization.metadata.get("mode")
    run = context.instance.get_run_record_by_id(context.run.run_id)
    if mode is None or mode.value != "incremental" or run is None or run.start_time is None:
        return None
    since = datetime.fromtimestamp(run.start_time, UTC)
    ids: set[str] = set()
    with store.read() as con:
        # the tables' own rules name their id column; derived rules rename the same ids
        for table, column in sorted({(rule.table, rule.record_column) for rule in rules if rule.sql is None}):
            ids.update(
                str(r[0])
                for r in con.execute(
                    f"select distinct {_quote(column)} from {table} where connection = ? and fetched_at >= ?",
                    [context.partition_key, since],
                ).fetchall()
            )
    return sorted(ids)


def _spec(key: dg.AssetKey, rule: Rule, partitions_def: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        rule.name,
        asset=key,
        blocking=rule.blocking,
        description=f"{rule.description} ({rule.severity.value}; {rule.model.__name__} over {rule.table})",
        partitions_def=partitions_def,
        metadata={"severity": rule.severity.value, "table": rule.table, "model": rule.model.__name__},
    )


def build_mirror_checks(
    asset: dg.AssetKey | str,
    *,
    vendor: str,
    entity: str,
    rules: Sequence[Rule],
    partitions_def: dg.PartitionsDefinition = connections_partitions,
) -> dg.AssetChecksDefinition:
    """One step checking an extract asset's partition: a result per rule, ERROR rules blocking."""
    key = dg.AssetKey.from_coercible(asset)
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate check names for {key.to_user_string()}: {names}")
    with warnings.catch_warnings():
        # Partitioned checks are "preview" in Dagster 1.13, and exactly what per-connection assets need.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = [_spec(key, rule, partitions_def) for rule in rules]

    @dg.multi_asset_check(
        specs=specs,
        name=f"{key.to_python_identifier()}_checks",
        description=f"pandera models over {key.to_user_string()}'s rows of one connection; failures "
        "are quarantined in meta.quarantine.",
        pool="duckdb",
        can_subset=True,  # a targeted run selects only the blocking rules
    )
    def _checks(context: dg.AssetCheckExecutionContext, mirror: MirrorResource):
        connection = context.partition_key
        skipped = settings.not_paired(connection, vendor)
        if skipped is not None:  # the asset read nothing for this connection: nothing to check either
            for rule in selected_rules(context, rules):
                yield dg.AssetCheckResult(asset_key=key, check_name=rule.name, passed=True,
                                          severity=rule.severity, metadata={"skipped": skipped})  # fmt: skip
            return
        ids = announced_ids(context.run.run_config, key.to_python_identifier())
        store = mirror.store(connection)
        scope = "a targeted run read"
        if ids is None and store.path.exists():
            ids, scope = written_in_this_run(context, key, store, rules), WRITTEN
        with mirror.step_session(context, connection):
            outcomes = run_checks(
                store,
                selected_rules(context, rules),
                connection=connection,
                vendor=vendor,
                entity=entity,
                run_id=context.run.run_id,
                ids=ids,
                scope=scope,
            )
        for outcome in outcomes:
            if not outcome.passed:
                context.log.warning(
                    f"{key.to_user_string()} {outcome.rule.name} for {connection}: "
                    f"{len(outcome.reasons)} failing records ({outcome.rule.severity.value}); {outcome.summary}"
                )
            yield outcome.result(key)

    return _checks
