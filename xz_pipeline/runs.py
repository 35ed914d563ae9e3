"""`meta.runs`: one row per run and connection (kind, times, API calls, rows written, outcome).

Dagster's run storage already knows every run; this copies what people ask of it into the mirror, beside the
data, so an analyst sees in SQL (and in the snapshot) when each connection last synced and how it went.
Written in two places, both idempotent (an upsert on connection and run id):
- the in-process runner (`xz sync`, `xz demo`) records each run as soon as it ends;
- `runs_sensor`, on in every deployment that runs the daemon (`xz serve`, `xz dev`), records every run
  that finished since its cursor (scheduled, targeted, launched from the UI, and `xz sync` runs the runner
  could not record). It holds the mirror for one short write, only when there is something to record; a
  busy mirror leaves its cursor where it was, so the next tick records the same runs.
A run's row is written when it ends, after the run published the analysts' snapshot: the snapshot holds every
run before the one that published it. A run's kind comes from its tags: `xz/kind` (the runner's sync/demo), `xz/trigger` (targeted), a
schedule's name (scheduled), else manual. A run over every connection (reconcile alone) gets a row per
connection named, with the run's totals.
Each run's API calls per vendor go to `meta.api_calls` beside it (with the lowest day budget left a vendor
reported), so the calls of a day can be set against each vendor's budget (plots.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import DagsterRunStatus

from xz_pipeline import settings
from xz_pipeline.core.resources import TRIGGER_TAG
from xz_pipeline.core.store import Store, StoreBusy

KIND_TAG = "xz/kind"
PARTITION_TAG = "dagster/partition"
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
OUTCOME = {DagsterRunStatus.SUCCESS: "success", DagsterRunStatus.FAILURE: "failed",
           DagsterRunStatus.CANCELED: "canceled"}  # fmt: skip
COLUMNS = ("connection", "run_id", "kind", "job", "started_at", "finished_at", "api_calls", "rows_written",
           "outcome", "error", "recorded_at")  # fmt: skip
WRITTEN_KEYS = ("inserted", "updated", "deleted")  # what an extract reports it changed in the typed tables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    kind: str
    job: str
    connections: tuple[str, ...]
    started_at: datetime | None
    finished_at: datetime | None
    api_calls: int
    rows_written: int
    outcome: str
    error: str | None
    calls_by_vendor: tuple[tuple[str, int, int | None], ...] = ()  # (vendor, calls, day budget left after)

    def rows(self, now: datetime) -> list[tuple]:
        return [
            (c, self.run_id, self.kind, self.job, self.started_at, self.finished_at, self.api_calls,
             self.rows_written, self.outcome, self.error, now)
            for c in self.connections
        ]  # fmt: skip


def run_kind(tags: dict[str, str]) -> str:
    """sync or demo (the runner's tag), targeted (a sensor's change-driven run), scheduled, else manual."""
    if tags.get(KIND_TAG):
        return tags[KIND_TAG]
    if TRIGGER_TAG in tags:
        return "targeted"
    if tags.get("dagster/schedule_name"):
        return "scheduled"
    return "manual"


def _calls(value) -> int:
    """`api_calls` metadata: an int (extracts) or calls per side (write-back: {"books": n, "crm": m})."""
    if isinstance(value, dict):
        return sum(int(v or 0) for v in value.values() if isinstance(v, int | float))
    return int(value or 0) if isinstance(value, int | float) else 0


def _failure_line(data) -> str:
    user = data.user_failure_data
    if user is not None and user.description:
        return user.description.strip().splitlines()[0]
    error = data.error
    while error is not None and error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    if error is None:
        return "the step failed"
    message = (error.message or "").strip().splitlines() or [""]
    return message[0] if message[0].startswith(error.cls_name) else f"{error.cls_name}: {message[0]}"


def _time(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


def summarize(
    instance: dg.DagsterInstance, run_id: str, connections: Sequence[str] = ()
) -> RunSummary | None:
    """What meta.runs keeps of one finished run (None while it is still going)."""
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.dagster_run.status not in FINISHED:
        return None
    run = record.dagster_run
    api_calls = rows_written = 0
    error = None
    by_vendor: dict[str, list] = {}  # vendor -> [calls, lowest day budget left reported]
    wanted = {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.STEP_FAILURE}
    for entry in instance.all_logs(run_id, of_type=wanted):
        event = entry.dagster_event
        if event is None:
            continue
        if event.is_step_failure and event.step_failure_data and error is None:
            error = f"{event.step_key}: {_failure_line(event.step_failure_data)}"
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            meta = materialization.metadata
            if "api_calls" in meta:
                api_calls += _calls(meta["api_calls"].value)
                _add_vendor_calls(
                    by_vendor, materialization.asset_key.path[-1], meta, run.tags.get(PARTITION_TAG)
                )
            rows_written += sum(
                int(meta[k].value or 0) for k in WRITTEN_KEYS if k in meta and isinstance(meta[k].value, int)
            )
    if error is None and run.status == DagsterRunStatus.CANCELED:
        error = "stopped before it finished"
    partition = run.tags.get(PARTITION_TAG)
    names = (partition,) if partition else tuple(connections) or _configured() or ("*",)
    return RunSummary(
        run_id=run_id, kind=run_kind(run.tags), job=run.job_name, connections=names,
        started_at=_time(record.start_time), finished_at=_time(record.end_time) or record.update_timestamp,
        api_calls=api_calls, rows_written=rows_written, outcome=OUTCOME[run.status], error=error,
        calls_by_vendor=tuple((v, c, left) for v, (c, left) in sorted(by_vendor.items())),
    )  # fmt: skip


VENDOR_PREFIXES = ("xero", "zoho", "quickbooks", "salesforce")  # an extract asset is named <vendor>_<entity>


def _add_vendor_calls(by_vendor: dict[str, list], asset: str, meta, partition: str | None) -> None:
    """Count an asset's API calls against its vendor: an extract's by its name, write-back's per role
    (`{"books": n, "crm": m}`) by the connection's pairing."""
    value = meta["api_calls"].value
    left = meta["day_budget_left"].value if "day_budget_left" in meta else None
    if isinstance(value, dict):
        roles = _roles(partition)
        pairs = [
            (roles.get(role, role), int(n or 0)) for role, n in value.items() if isinstance(n, int | float)
        ]
    else:
        vendor = asset.split("_", 1)[0]
        pairs = [(vendor, _calls(value))] if vendor in VENDOR_PREFIXES else []
    for vendor, n in pairs:
        entry = by_vendor.setdefault(vendor, [0, None])
        entry[0] += n
        if isinstance(left, int) and vendor == asset.split("_", 1)[0]:
            entry[1] = left if entry[1] is None else min(entry[1], left)


def _roles(connection: str | None) -> dict[str, str]:
    """{"books": vendor, "crm": vendor} of a connection (Xero and Zoho unless it is paired otherwise)."""
    try:
        c = settings.get_connection(connection) if connection else None
    except settings.SettingsError:
        c = None
    return {"books": getattr(c, "books", None) or "xero", "crm": getattr(c, "crm", None) or "zoho"}


def _configured() -> tuple[str, ...]:
    try:
        return tuple(c.name for c in settings.load_connections())
    except settings.SettingsError:
        return ()


def ensure_table(con) -> None:
    """The table as store.py declares it; an older mirror's never-written per-asset `meta.runs` is replaced."""
    cols = {r[0] for r in con.execute(
        "select column_name from duckdb_columns() where schema_name = 'meta' and table_name = 'runs'").fetchall()}  # fmt: skip
    if cols and "kind" not in cols:
        con.execute("drop table meta.runs")
    Store.ensure_base(con)


CALLS_DDL = """
create table if not exists meta.api_calls (  -- API calls of a run per vendor (runs.py writes it; plots read it)
    connection varchar not null,
    run_id varchar not null,
    vendor varchar not null,
    calls bigint not null,
    day_budget_left bigint,  -- the lowest remaining count the vendor reported during the run, if it did
    finished_at timestamptz,
    primary key (connection, run_id, vendor)
)"""


def _mirror_of(connection: str) -> Store:
    return Store(settings.mirror_path(connection), lock_timeout=5.0)


def write(mirror: Store | Callable[[str], Store], summaries: Iterable[RunSummary]) -> int:
    """Upsert the runs' rows (and their calls per vendor in `meta.api_calls`) into each connection's mirror
    (`mirror(connection)`; one Store: all of them there); returns the meta.runs rows written. A connection
    without a mirror file yet gets none (nothing of it was ever written)."""
    now = datetime.now(UTC)
    summaries = list(summaries)
    rows = [row for s in summaries for row in s.rows(now)]
    calls = [
        (c, s.run_id, vendor, n, left, s.finished_at)
        for s in summaries
        for c in s.connections
        for vendor, n, left in s.calls_by_vendor
    ]
    groups: dict[Path, tuple[Store, list, list]] = {}
    for connection in dict.fromkeys(r[0] for r in rows):
        store = mirror if isinstance(mirror, Store) else mirror(connection)
        group = groups.setdefault(store.path, (store, [], []))
        group[1].extend(r for r in rows if r[0] == connection)
        group[2].extend(c for c in calls if c[0] == connection)
    written = 0
    for store, store_rows, store_calls in groups.values():
        if not store.path.exists():
            continue
        with store.write() as con:
            ensure_table(con)
            con.executemany(
                f"insert or replace into meta.runs ({', '.join(COLUMNS)}) values ({', '.join('?' * len(COLUMNS))})",
                store_rows,
            )
            con.execute(CALLS_DDL)
            if store_calls:
                con.executemany(
                    "insert or replace into meta.api_calls values (?, ?, ?, ?, ?, ?)", store_calls
                )
        written += len(store_rows)
    return written


def record(
    instance: dg.DagsterInstance,
    run_id: str,
    connections: Sequence[str] = (),
    mirror: Store | Callable[[str], Store] = _mirror_of,
) -> int:
    """Record one finished run (the runner, right after it) in its connections' mirrors. A busy mirror is left
    to `runs_sensor`."""
    summary = summarize(instance, run_id, connections)
    if summary is None:
        return 0
    try:
        return write(mirror, [summary])
    except StoreBusy as exc:
        log.warning(f"meta.runs: run {run_id} not recorded now ({exc}); the runs sensor records it later")
        return 0


BATCH = 100


@dg.sensor(
    name="runs_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every finished run in meta.runs (one row per run and connection).",
)
def runs_sensor(context: dg.SensorEvaluationContext):
    since = float(context.cursor) if context.cursor else 0.0
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(statuses=FINISHED, updated_after=_time(since) if since else None),
        order_by="update_timestamp",
        ascending=True,
        limit=BATCH,
    )
    if not records:
        return dg.SkipReason("no run finished since the last tick")
    last = max(r.update_timestamp.timestamp() for r in records)
    if not settings.mirror_connections():
        context.update_cursor(str(last))
        return dg.SkipReason("no mirror yet: nothing to record the runs in")
    summaries = [s for r in records if (s := summarize(context.instance, r.dagster_run.run_id))]
    try:
        written = write(_mirror_of, summaries)
    except StoreBusy as exc:
        return dg.SkipReason(f"mirror busy, the {len(summaries)} run(s) are recorded next tick: {exc}")
    context.update_cursor(str(last))
    return dg.SkipReason(f"recorded {len(summaries)} run(s) in meta.runs ({written} row(s))")
