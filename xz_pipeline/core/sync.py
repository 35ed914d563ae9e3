"""How an extract asset runs, the same for every vendor: plan the read (incremental or full sweep),
fetch through the vendor's client, write to the mirror, report what it cost.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from xz_pipeline import settings
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import (
    EntityTable,
    MirrorResult,
    delete_records,
    finish_full_sweep,
    read_sync_state,
    write_entity,
)
from xz_pipeline.core.resources import MirrorResource, connections_partitions

# Modified-since filters are accurate to the second: re-read one second so a write that shared the
# cursor's second is never missed (re-read rows are recognised by their unchanged payload hash).
CURSOR_OVERLAP = timedelta(seconds=1)

RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def extract_asset(name: str, group: str, description: str):
    """The decorator of an extract asset: one per entity, partitioned per connection, one DuckDB writer
    at a time (pool `duckdb`), retried on transient failures."""
    return dg.asset(
        name=name,
        group_name=group,
        kinds={"duckdb", "python"},
        partitions_def=connections_partitions,
        pool="duckdb",
        retry_policy=RETRY,
        description=description,
    )


class MirrorConfig(dg.Config):
    """Run-time knobs of the extract assets: the daily schedule sets `full_sweep`; the near-real-time
    sensors set `ids` (read exactly these records) and `deleted_ids` (the source announced their deletion)."""

    full_sweep: bool = False
    ids: list[str] = []
    deleted_ids: list[str] = []

    @property
    def targeted(self) -> bool:
        return bool(self.ids or self.deleted_ids)


# Rows written per transaction: big first syncs resume where they stopped, and memory stays bounded.
CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class ReadPlan:
    full: bool  # read everything (no modified-since filter); records not seen are deleted at the source
    since: datetime | None
    cursor: datetime | None  # the cursor before this run
    reason: str
    completes_sweep: bool = False  # record a full sweep when this read ends (first sync, resumed or not)
    ids: tuple[str, ...] = ()  # a targeted read: exactly these records, cursor left alone


def plan_read(
    cursor: datetime | None,
    last_full: datetime | None,
    *,
    now: datetime,
    sweep_every: timedelta,
    forced: bool,
) -> ReadPlan:
    if forced:
        return ReadPlan(True, None, cursor, "full sweep requested", True)
    if cursor is None:
        return ReadPlan(True, None, cursor, "first sync", True)
    if last_full is None:
        # A first sync stopped midway: its chunks are written and the cursor says how far it got
        # (reads go in modified order), so carry on from there instead of starting over.
        return ReadPlan(False, cursor - CURSOR_OVERLAP, cursor, "resuming the first sync", True)
    if sweep_every > timedelta(0) and now - last_full >= sweep_every:
        return ReadPlan(True, None, cursor, f"periodic full sweep (every {sweep_every})", True)
    return ReadPlan(False, cursor - CURSOR_OVERLAP, cursor, "incremental")


@dataclass
class Fetched:
    pages: Iterable[list[dict]]  # read lazily, in modified order, and written chunk by chunk
    deleted: Callable[[], list[tuple[str, dict]]] = lambda: []  # (record id, the source's deletion notice)
    note: str = ""


@dataclass
class _Totals:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    fetched: int = 0
    total_rows: int = 0
    cursor: datetime | None = None
    children: dict = field(default_factory=dict)
    preview: list = field(default_factory=list)

    def add(self, result: MirrorResult, fetched: int) -> None:
        self.inserted += result.counts.inserted
        self.updated += result.counts.updated
        self.unchanged += result.counts.unchanged
        self.deleted += result.counts.deleted
        self.quarantined += result.quarantined
        self.fetched += fetched
        self.total_rows, self.cursor = result.total_rows, result.cursor
        self.preview = self.preview or result.preview
        for name, c in result.child_counts.items():
            acc = self.children.setdefault(name, [0, 0, 0])
            acc[0], acc[1], acc[2] = acc[0] + c.inserted, acc[1] + c.updated, acc[2] + c.deleted


def _chunks(pages: Iterable[list[dict]], size: int) -> Iterator[list[dict]]:
    buffer: list[dict] = []
    for page in pages:
        buffer.extend(page)
        if len(buffer) >= size:
            yield buffer
            buffer = []
    yield buffer  # possibly empty: the tables and the cursor row exist after every run


def run_extract(
    context: dg.AssetExecutionContext,
    spec: EntityTable,
    mirror: MirrorResource,
    config: MirrorConfig,
    meter: CallMeter,
    fetch: Callable[[ReadPlan], Fetched],
    *,
    always_full: bool = False,
) -> dg.MaterializeResult:
    """Plan, fetch, write chunk by chunk; the MaterializeResult says rows inserted/updated/deleted and
    API calls spent."""
    connection = context.partition_key
    store = mirror.store()
    cursor, last_full = read_sync_state(store, connection, spec.vendor, spec.entity)
    if config.targeted:
        plan = ReadPlan(False, None, cursor, f"targeted: {len(config.ids)} id(s)", ids=tuple(config.ids))
    else:
        plan = plan_read(
            cursor,
            last_full,
            now=datetime.now(UTC),
            sweep_every=timedelta(hours=settings.full_sweep_hours()),
            forced=config.full_sweep or always_full,
        )
    fetched = fetch(plan) if plan.ids or not config.targeted else Fetched([])
    if config.deleted_ids:
        announced = [(i, {"id": i, "announced": "deleted"}) for i in config.deleted_ids]
        fetched.deleted = lambda: announced
    totals, seen_ids = _Totals(), []
    for chunk in _chunks(fetched.pages, CHUNK_ROWS):
        result = write_entity(
            store,
            spec,
            connection=connection,
            payloads=chunk,
            fetched_at=datetime.now(UTC),
            run_id=context.run_id,
            advance_cursor=not config.targeted,
        )
        totals.add(result, len(chunk))
        if plan.full:
            seen_ids.extend(str(spec.record_id(p)) for p in chunk)
    now = datetime.now(UTC)
    if plan.completes_sweep:
        totals.deleted += finish_full_sweep(
            store, spec, connection=connection, seen_ids=seen_ids, fetched_at=now, detect_deletions=plan.full
        )
    totals.deleted += delete_records(
        store, spec, connection=connection, deleted=fetched.deleted(), fetched_at=now, run_id=context.run_id
    )
    calls = meter.snapshot()
    context.log.info(
        f"{spec.vendor} {spec.entity} for {connection}: {plan.reason}, fetched {totals.fetched}, "
        f"inserted {totals.inserted}, updated {totals.updated}, deleted {totals.deleted}, "
        f"api calls {calls['calls']}{fetched.note}"
    )
    return dg.MaterializeResult(
        metadata=_metadata(store, spec, connection, totals, plan, fetched.note, calls)
    )


def _metadata(
    store, spec: EntityTable, connection: str, t: _Totals, plan: ReadPlan, note: str, calls: dict
) -> dict:
    with store.read() as con:
        rows = con.execute(
            f"select count(*) from {spec.schema}.{spec.table} where connection = ?", [connection]
        ).fetchall()[0][0]
    meta = {
        "dagster/row_count": rows,
        "mode": plan.reason,
        "fetched": t.fetched,
        "inserted": t.inserted,
        "updated": t.updated,
        "deleted": t.deleted,
        "unchanged": t.unchanged,
        "quarantined": t.quarantined,
        "api_calls": calls["calls"],
        "api_seconds": calls["seconds"],
        "api_retries": calls["retries"],
        "api_throttled": calls["throttled"],
        "cursor": t.cursor.isoformat() if t.cursor else "",
    }
    if note:
        meta["note"] = note.strip(" ;")
    if t.preview:
        meta["preview"] = dg.MetadataValue.md(pd.DataFrame(t.preview).to_markdown(index=False))
    for child, (ins, upd, dele) in t.children.items():
        meta[f"{child} inserted/updated/deleted"] = f"{ins}/{upd}/{dele}"
    return meta
