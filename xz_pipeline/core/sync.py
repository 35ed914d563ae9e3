"""How an extract asset runs, the same for every vendor: plan the read (incremental or full sweep),
fetch through the vendor's client, write to the mirror, report what it cost.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from xz_pipeline import settings
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import EntityTable, MirrorResult, delete_records, read_sync_state, write_entity
from xz_pipeline.core.resources import MirrorResource

# Modified-since filters are accurate to the second: re-read one second so a write that shared the
# cursor's second is never missed (re-read rows are recognised by their unchanged payload hash).
CURSOR_OVERLAP = timedelta(seconds=1)

RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


class MirrorConfig(dg.Config):
    """Run-time knobs of the extract assets (the daily schedule sets `full_sweep`)."""

    full_sweep: bool = False


@dataclass(frozen=True)
class ReadPlan:
    full: bool
    since: datetime | None
    cursor: datetime | None  # the cursor before this run
    reason: str


def plan_read(
    cursor: datetime | None,
    last_full: datetime | None,
    *,
    now: datetime,
    sweep_every: timedelta,
    forced: bool,
) -> ReadPlan:
    if forced:
        return ReadPlan(True, None, cursor, "full sweep requested")
    if cursor is None:
        return ReadPlan(True, None, cursor, "first sync")
    if sweep_every > timedelta(0) and (last_full is None or now - last_full >= sweep_every):
        return ReadPlan(True, None, cursor, f"periodic full sweep (every {sweep_every})")
    return ReadPlan(False, cursor - CURSOR_OVERLAP, cursor, "incremental")


@dataclass
class Fetched:
    payloads: list[dict]
    deleted: list[tuple[str, dict]]  # (record id, the source's deletion notice)
    note: str = ""


def run_extract(
    context: dg.AssetExecutionContext,
    spec: EntityTable,
    mirror: MirrorResource,
    config: MirrorConfig,
    fetch: Callable[[ReadPlan, CallMeter], Fetched],
    *,
    always_full: bool = False,
) -> dg.MaterializeResult:
    """Plan, fetch, write; the MaterializeResult says rows inserted/updated/deleted and API calls spent."""
    connection = context.partition_key
    store = mirror.store()
    cursor, last_full = read_sync_state(store, connection, spec.vendor, spec.entity)
    plan = plan_read(
        cursor,
        last_full,
        now=datetime.now(UTC),
        sweep_every=timedelta(hours=settings.full_sweep_hours()),
        forced=config.full_sweep or always_full,
    )
    meter = CallMeter()
    fetched = fetch(plan, meter)
    fetched_at = datetime.now(UTC)
    result = write_entity(
        store, spec, connection=connection, payloads=fetched.payloads, fetched_at=fetched_at,
        run_id=context.run_id, full=plan.full,
    )  # fmt: skip
    removed = delete_records(
        store,
        spec,
        connection=connection,
        deleted=fetched.deleted,
        fetched_at=fetched_at,
        run_id=context.run_id,
    )
    calls = meter.snapshot()
    context.log.info(
        f"{spec.vendor} {spec.entity} for {connection}: {plan.reason}, fetched {len(fetched.payloads)}, "
        f"inserted {result.counts.inserted}, updated {result.counts.updated}, "
        f"deleted {result.counts.deleted + removed}, api calls {calls['calls']}{fetched.note}"
    )
    return dg.MaterializeResult(metadata=_metadata(result, removed, plan, fetched, calls))


def _metadata(result: MirrorResult, removed: int, plan: ReadPlan, fetched: Fetched, calls: dict) -> dict:
    meta = {
        "dagster/row_count": result.total_rows - removed,
        "mode": plan.reason,
        "fetched": len(fetched.payloads),
        "inserted": result.counts.inserted,
        "updated": result.counts.updated,
        "deleted": result.counts.deleted + removed,
        "unchanged": result.counts.unchanged,
        "quarantined": result.quarantined,
        "api_calls": calls["calls"],
        "api_retries": calls["retries"],
        "api_throttled": calls["throttled"],
        "cursor": result.cursor.isoformat() if result.cursor else "",
    }
    if fetched.note:
        meta["note"] = fetched.note.strip(" ;")
    if result.preview:
        meta["preview"] = dg.MetadataValue.md(pd.DataFrame(result.preview).to_markdown(index=False))
    for child, counts in result.child_counts.items():
        meta[f"{child} inserted/updated/deleted"] = f"{counts.inserted}/{counts.updated}/{counts.deleted}"
    return meta
