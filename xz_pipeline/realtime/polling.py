"""Polling fallback for what Xero does not announce (payments, items; xero-api.md §10).

One If-Modified-Since call per entity and connection per probe, at an interval derived from the day's
API budget: a probe spends `len(POLLED)` calls, and probes never spend more than `XZ_POLL_SHARE` (default
10 %) of the `XZ_XERO_DAY_LIMIT` (default 5,000) calls a tenant may make a day. The watermark starts at the
mirror's own cursor (read from the published snapshot, never the mirror), so polling only reports what
the mirror has not read. A payment also updates its
invoice, which Xero does announce: the inbox sensor reads payments with every invoice event, so this
probe is the safety net, not the fast path.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb

from xz_pipeline import settings
from xz_pipeline.core.resources import TRIGGER_TAG
from xz_pipeline.core.store import Store, StoreBusy
from xz_pipeline.realtime.runs import blocking_checks
from xz_pipeline.salesforce.dates import parse_sf_datetime
from xz_pipeline.salesforce.resources import SalesforceResource
from xz_pipeline.salesforce.webhooks import ASSET_BY_SOBJECT
from xz_pipeline.xero.dates import parse_xero_datetime
from xz_pipeline.xero.resources import XeroResource

POLLED = {"Payments": "xero_payments", "Items": "xero_items"}
PROBE_PAGE = 100  # a full first page means "many changed": run the incremental read instead of ids


def poll_interval_seconds(
    limit: int | None = None, share: float | None = None, calls_per_probe: int = len(POLLED)
) -> int:
    """Seconds between probes so that a day of probes costs at most share × limit calls per tenant."""
    limit = settings.xero_day_limit() if limit is None else limit
    share = settings.poll_share() if share is None else share
    return max(5, math.ceil(86_400 * calls_per_probe / (limit * share)))


def _mirror_cursor(connection: str, entity: str, vendor: str = "xero") -> datetime | None:
    """The mirror's cursor for `entity`, as the last published snapshot holds it: the sensor never opens
    the mirror (a reader there makes a run's writer fail), and the snapshot trails it by at most a run."""
    path = settings.snapshot_path()
    if not path.exists():
        return None
    try:
        with Store(path, lock_timeout=0).read() as con:
            row = con.execute(
                "select cursor_value from meta.cursors where connection = ? and vendor = ? and entity = ?",
                [connection, vendor, entity],
            ).fetchone()
    except (StoreBusy, duckdb.CatalogException):
        return None  # being replaced this instant, or without cursors yet: the next probe reads it
    return row[0].astimezone(UTC) if row and row[0] is not None else None


def probe(client, entity: str, since: datetime) -> tuple[list[str], datetime | None, bool]:
    """One call: (ids changed after `since`, their latest UpdatedDateUTC, whether the page was full)."""
    pages = client.iter_pages(entity, modified_since=since, page_size=PROBE_PAGE)
    rows = next(iter(pages), [])
    changed, newest = [], None
    for row in rows:
        updated = parse_xero_datetime(row.get("UpdatedDateUTC"))
        if updated is None or updated <= since:
            continue  # If-Modified-Since is inclusive to the second
        changed.append(str(row.get("PaymentID") or row.get("ItemID")))
        newest = updated if newest is None or updated > newest else newest
    return changed, newest, len(rows) >= PROBE_PAGE


def _requests_for(context, xero: XeroResource, conn: str, state: dict, now: datetime):
    requests = []
    with xero.client(conn) as client:
        for entity, asset in POLLED.items():
            mark = state.get(entity)
            since = datetime.fromisoformat(mark) if mark else None
            mirrored = _mirror_cursor(conn, entity)
            if mirrored is not None and (since is None or mirrored > since):
                since = mirrored
            if since is None:
                continue  # never mirrored: the schedule's first sync comes first
            ids, newest, full = probe(client, entity, since)
            if not ids:
                state[entity] = since.isoformat()
                continue
            state[entity] = newest.isoformat()
            config = {} if full else {"ids": ids}
            graph = context.repository_def.asset_graph
            selection = dg.AssetSelection.assets(asset).downstream().resolve(graph)
            requests.append(
                dg.RunRequest(
                    run_key=f"poll:{conn}:{entity}:{newest.isoformat()}",
                    partition_key=conn,
                    asset_selection=sorted(selection, key=lambda k: k.to_user_string()),
                    asset_check_keys=blocking_checks(graph, selection),
                    run_config={"ops": {asset: {"config": config}}},
                    tags={TRIGGER_TAG: "poll", "xz/events": str(len(ids))},
                )
            )
    return requests


@dg.sensor(
    name="xero_polling_sensor",
    job_name="realtime",
    minimum_interval_seconds=poll_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Probes Xero payments and items (no webhooks) with If-Modified-Since, one call per entity, "
    "within a set share of the day's API budget (XZ_POLL_SHARE of XZ_XERO_DAY_LIMIT).",
)
def xero_polling_sensor(context: dg.SensorEvaluationContext, xero: XeroResource):
    now = datetime.now(UTC)
    cursor = json.loads(context.cursor) if context.cursor else {}
    interval = timedelta(seconds=poll_interval_seconds())
    requests, probed = [], 0
    for conn in settings.load_connections():
        if conn.xero is None:
            continue
        state = cursor.setdefault(conn.name, {})
        last = state.get("at")
        if last and now - datetime.fromisoformat(last) < interval:
            continue  # the budget says not yet (settings may have changed since the sensor was defined)
        requests += _requests_for(context, xero, conn.name, state, now)
        state["at"] = now.isoformat()
        probed += 1
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"probed {probed} connection(s): no change"), cursor=json.dumps(cursor)
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))


# -- Salesforce: SystemModstamp polling (Outbound Messages need a workflow per object; polling needs nothing) --

SF_POLLED = ASSET_BY_SOBJECT
SF_DAY_LIMIT = 15_000  # the smallest org's allocation (Developer Edition): probes stay within its share


def _sf_requests(context, salesforce: SalesforceResource, conn: str, state: dict) -> list:
    """One SOQL call per object: the records changed after the watermark (the mirror's cursor, or the last
    probe's newest change), as a targeted run of exactly those ids (a full page: an incremental run)."""
    requests = []
    with salesforce.client(conn) as client:
        for sobject, asset in SF_POLLED.items():
            mark = state.get(sobject)
            since = datetime.fromisoformat(mark) if mark else None
            mirrored = _mirror_cursor(conn, sobject, "salesforce")
            if mirrored is not None and (since is None or mirrored > since):
                since = mirrored
            if since is None:
                continue  # never mirrored: the schedule's first sync comes first
            rows = client.changed_since(sobject, since, PROBE_PAGE)
            if not rows:
                state[sobject] = since.isoformat()
                continue
            newest = max(parse_sf_datetime(r.get("SystemModstamp")) or since for r in rows)
            state[sobject] = newest.isoformat()
            config = {} if len(rows) >= PROBE_PAGE else {"ids": [str(r["Id"]) for r in rows]}
            graph = context.repository_def.asset_graph
            selection = dg.AssetSelection.assets(asset).downstream().resolve(graph)
            requests.append(
                dg.RunRequest(
                    run_key=f"poll:{conn}:{sobject}:{newest.isoformat()}",
                    partition_key=conn,
                    asset_selection=sorted(selection, key=lambda k: k.to_user_string()),
                    asset_check_keys=blocking_checks(graph, selection),
                    run_config={"ops": {asset: {"config": config}}},
                    tags={TRIGGER_TAG: "poll", "xz/events": str(len(rows))},
                )
            )
    return requests


@dg.sensor(
    name="salesforce_polling_sensor",
    job_name="realtime",
    minimum_interval_seconds=poll_interval_seconds(SF_DAY_LIMIT, None, len(SF_POLLED)),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Probes each mirrored Salesforce object for records whose SystemModstamp moved past the mirror's "
    "cursor (one SOQL call each), within XZ_POLL_SHARE of a Developer Edition's day allocation.",
)
def salesforce_polling_sensor(context: dg.SensorEvaluationContext, salesforce: SalesforceResource):
    now = datetime.now(UTC)
    cursor = json.loads(context.cursor) if context.cursor else {}
    interval = timedelta(seconds=poll_interval_seconds(SF_DAY_LIMIT, None, len(SF_POLLED)))
    requests, probed = [], 0
    for conn in settings.load_connections():
        if conn.crm != "salesforce" or conn.salesforce is None:
            continue
        state = cursor.setdefault(conn.name, {})
        last = state.get("at")
        if last and now - datetime.fromisoformat(last) < interval:
            continue
        requests += _sf_requests(context, salesforce, conn.name, state)
        state["at"] = now.isoformat()
        probed += 1
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"probed {probed} Salesforce connection(s): no change"),
            cursor=json.dumps(cursor),
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))
