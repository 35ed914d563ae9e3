"""Near-real-time sensors: the inbox becomes targeted runs, Xero payments and items are polled, Zoho
channels are kept alive.

`inbox_sensor` keeps one position per connection (the last inbox `seq` it requested a run for). While a
targeted run of a connection is queued, starting or running it requests nothing more for it: the events
that arrive meanwhile wait in the inbox, and the next request covers all of them, from the position to the
newest, in one run (coalescing: under load a run takes many events, not one tick's worth). Requesting the
next run as soon as the current one started was measured and dropped (`bench-latency --daemon`, 20
changes a minute: p95 36 s against 26 s): the events arriving while that next run waited in the queue
then waited for a third run, a whole cycle more. A request keeps per record only the latest announcement
(by the source's change time, so out-of-order deliveries settle on the right operation) and asks for the
mirror assets of exactly those ids (`MirrorConfig.ids` / `deleted_ids`) followed by everything downstream. Its run key is the range,
`inbox:{connection}:{first}-{last}`, so a replayed tick never runs twice and nothing is skipped; a range
whose run failed is asked for once more, under `...:retry`. A batch that only echoes our own writes runs
without the write-back stage. The sensor reads the inbox file and Dagster's run storage, never the mirror
(the runs hold its lock).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.resources import TRIGGER_TAG, connections_partitions
from xz_pipeline.fleet.shards import shard_tag
from xz_pipeline.realtime.channels import zoho_channels_sensor
from xz_pipeline.realtime.echo import echoes
from xz_pipeline.realtime.inbox import Inbox, InboxEvent
from xz_pipeline.realtime.missed import MISSED_EVENT_CHECKS
from xz_pipeline.realtime.polling import xero_polling_sensor
from xz_pipeline.realtime.runs import blocking_checks
from xz_pipeline.xero.resources import XeroResource

# The daemon wakes every 5 s under `dagster dev` (dagster.md §2) and every half second under `xz serve`
# (deploy/daemon.py); at 1 the sensor ticks at most once a second there (a tick row in the instance each).
MIN_INTERVAL = 1
BATCH = 5000
RETAIN = timedelta(
    days=31
)  # as long as Xero keeps undelivered events; the missed-event check looks back this far
WRITEBACK_GROUP = "writeback"
INSIGHTS_GROUP = "insights"
# An invoice changes when a payment lands on it (Xero has no payment webhooks): read payments with it.
ALSO_INCREMENTAL = {"xero_invoices": "xero_payments"}
SYSTEM = {"xero": "xero", "zoho": "zoho", "quickbooks": "books", "salesforce": "crm"}
MAX_RUNTIME = 900  # seconds; a targeted run takes a few
KEY_TAG = "xz/inbox_key"  # the run key of a targeted run, as a tag we can look runs up by
PARTITION_TAG = "dagster/partition"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)

realtime_job = dg.define_asset_job(
    "realtime",
    selection=dg.AssetSelection.groups("xero", "zoho", "quickbooks", "salesforce").downstream(),
    executor_def=dg.in_process_executor,
    description="Targeted near-real-time runs: the announced records, then everything downstream of them.",
)

_tenants: dict[str, str] = {}  # tenant id → connection, learned from /connections once


def _resolve_tenants(inbox: Inbox, xero: XeroResource) -> None:
    """Route events of tenants no connection names: ask each connection without a tenant id once."""
    pending = inbox.unresolved_tenants()
    if not pending:
        return
    connections = settings.load_connections()
    for c in connections:
        if c.xero and c.xero.tenant_id:
            _tenants.setdefault(c.xero.tenant_id, c.name)
    for c in connections:
        if c.xero and not c.xero.tenant_id and c.name not in _tenants.values():
            with xero.client(c.name) as client:
                for t in client.tenants():
                    _tenants.setdefault(str(t.get("tenantId")), c.name)
    for tenant in pending:
        if tenant in _tenants:
            inbox.resolve_tenant(tenant, _tenants[tenant])


def latest_per_record(events: list[InboxEvent]) -> dict[tuple[str, str, str], InboxEvent]:
    """(connection, asset, record id) → the announcement with the latest change time (ties: arrival)."""
    latest: dict[tuple[str, str, str], InboxEvent] = {}
    for e in events:
        key = (e.connection, e.asset, e.record_id)
        if key not in latest or (e.event_time, e.seq) >= (latest[key].event_time, latest[key].seq):
            latest[key] = e
    return latest


def plan_run(
    conn: str, evs: list[InboxEvent], asset_graph, is_echo=None, run_key: str | None = None
) -> dg.RunRequest:
    """The RunRequest for one connection's events (already resolved to it); the key defaults to their range."""
    ids: dict[str, list[str]] = defaultdict(list)
    deleted: dict[str, list[str]] = defaultdict(list)
    for (_, asset, rid), e in sorted(latest_per_record(evs).items()):
        (deleted if e.deleted else ids)[asset].append(rid)
    config: dict[str, dict] = {}
    for asset in sorted(set(ids) | set(deleted)):
        config[asset] = {"config": {"ids": ids.get(asset, []), "deleted_ids": deleted.get(asset, [])}}
    for asset, extra in ALSO_INCREMENTAL.items():
        if asset in config and extra not in config:
            config[extra] = {"config": {}}
    roots = [dg.AssetKey(a) for a in config]
    selection = dg.AssetSelection.assets(*roots).downstream().resolve(asset_graph)
    # Insights (payment risk) are scored by the scheduled runs: a few seconds a model, for nothing a
    # correction waits on. Those tagged `xz/targeted` (reminders: a payment stops them) run here too.
    selection = {k for k in selection if asset_graph.get(k).group_name != INSIGHTS_GROUP
                 or asset_graph.get(k).tags.get("xz/targeted") == "1"}  # fmt: skip
    echo_only = is_echo is not None and all(is_echo(conn, e) for e in evs)
    if echo_only:
        selection = {k for k in selection if asset_graph.get(k).group_name != WRITEBACK_GROUP}
    first, last = min(e.seq for e in evs), max(e.seq for e in evs)
    key = run_key or range_key(conn, first, last)
    return dg.RunRequest(
        run_key=key,
        partition_key=conn,
        asset_selection=sorted(selection, key=lambda k: k.to_user_string()),
        asset_check_keys=blocking_checks(asset_graph, selection),
        run_config={"ops": config},
        tags={
            TRIGGER_TAG: "inbox",
            KEY_TAG: key,
            "dagster/max_runtime": str(
                MAX_RUNTIME
            ),  # run monitoring ends a stuck run: it blocks its connection
            "xz/events": str(len(evs)),
            "xz/echo_only": str(echo_only).lower(),
        },
    )


def plan_runs(events: list[InboxEvent], asset_graph, is_echo=None) -> list[dg.RunRequest]:
    """One RunRequest per connection for a batch of inbox events, keyed by each connection's range."""
    by_conn: dict[str, list[InboxEvent]] = defaultdict(list)
    for e in events:
        if e.connection:
            by_conn[e.connection].append(e)
    return [plan_run(conn, evs, asset_graph, is_echo) for conn, evs in sorted(by_conn.items())]


def range_key(conn: str, first: int, last: int, retry: bool = False) -> str:
    return f"inbox:{conn}:{first}-{last}" + (":retry" if retry else "")


def _echo_checker(inbox: Inbox, events: list[InboxEvent]):
    """A predicate over events, backed by the writes our write-back recorded in the inbox."""
    found: set[tuple[str, str]] = set()
    by: dict[tuple[str, str], list[tuple[str, datetime]]] = defaultdict(list)
    for e in events:
        if e.connection:
            by[(e.connection, e.source)].append((e.record_id, datetime.fromisoformat(e.event_time)))
    for (conn, source), changes in by.items():
        found |= {(conn, r) for r in echoes(inbox, conn, SYSTEM[source], changes)}
    return lambda conn, e: (conn, e.record_id) in found


def read_cursor(raw: str | None) -> tuple[int, dict[str, dict]]:
    """(the position of connections the cursor does not name, per-connection state). A cursor of the
    single-position era ({"seq": n}) is every connection's position; a connection's state of the one-range
    era (its last `key`, `settled` or not) becomes its list of open ranges."""
    data = json.loads(raw) if raw else {}
    state = {c: _open_ranges(st) for c, st in dict(data.get("connections", {})).items()}
    return int(data.get("seq", data.get("floor", 0))), state


def _open_ranges(st: dict) -> dict:
    if "open" in st:
        return st
    rng = {k: st[k] for k in ("key", "first", "last", "retried") if k in st}
    return {"pos": st["pos"], "open": [rng] if st.get("key") and not st.get("settled") else []}


def _in_flight(instance: dg.DagsterInstance, conn: str) -> dg.RunRecord | None:
    records = instance.get_run_records(
        dg.RunsFilter(tags={TRIGGER_TAG: "inbox", PARTITION_TAG: conn}, statuses=IN_FLIGHT), limit=1
    )
    return records[0] if records else None


def _recovered(instance: dg.DagsterInstance, conn: str) -> dict | None:
    """A connection's state from its latest targeted run, when the cursor does not have it (a reset
    sensor, a new cursor format): a replayed tick then asks again for nothing that already ran."""
    records = instance.get_run_records(
        dg.RunsFilter(tags={TRIGGER_TAG: "inbox", PARTITION_TAG: conn}), limit=1
    )
    key = records[0].dagster_run.tags.get(KEY_TAG, "") if records else ""
    found = re.fullmatch(r"inbox:.+:(\d+)-(\d+)(:retry)?", key)
    if not found:
        return None
    first, last = int(found[1]), int(found[2])
    return {"pos": last, "open": [{"key": key, "first": first, "last": last, "retried": bool(found[3])}]}


def _outcome(instance: dg.DagsterInstance, key: str) -> dg.DagsterRunStatus | None:
    """The status of the run launched for `key` (None: not launched, e.g. the key had run before)."""
    records = instance.get_run_records(dg.RunsFilter(tags={KEY_TAG: key}), limit=1)
    return records[0].dagster_run.status if records else None


def _settle(instance: dg.DagsterInstance, open_ranges: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the ranges whose runs are still going, the failed ones to ask for once more). A range whose run
    succeeded, failed after its retry, or was never launched (a key that had run) is done."""
    going, failed = [], []
    for rng in open_ranges:
        outcome = _outcome(instance, rng["key"])
        if outcome in IN_FLIGHT:
            going.append(rng)
        elif outcome in FAILED and not rng.get("retried"):
            failed.append(rng)
    return going, failed


@dg.sensor(
    name="inbox_sensor",
    job=realtime_job,
    minimum_interval_seconds=MIN_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Webhooks and notifications from the inbox → targeted runs of the changed records and "
    "everything downstream (per connection, one run at a time covering every event since the last).",
)
def inbox_sensor(context: dg.SensorEvaluationContext, xero: XeroResource):
    inbox = Inbox()
    _resolve_tenants(inbox, xero)
    floor, state = read_cursor(context.cursor)
    positions = {c: st["pos"] for c, st in state.items()}
    inbox.prune(datetime.now(UTC) - RETAIN, min(positions.values()) if positions else floor)
    pending = inbox.pending(positions, BATCH, default=floor)
    requests, waiting = [], []
    unsettled = {c for c, st in state.items() if st.get("open")}
    for conn in sorted(set(pending) | unsettled):
        st = state.setdefault(conn, _recovered(context.instance, conn) or {"pos": floor, "open": []})
        running = _in_flight(context.instance, conn)
        if running is not None:
            if pending.get(conn):
                waiting.append(
                    f"{conn}: {len(pending[conn])} event(s) wait for run {running.dagster_run.run_id[:8]}"
                )
            continue
        going, failed = _settle(context.instance, st["open"])
        evs = [e for e in pending.get(conn, []) if e.seq > st["pos"]]
        for rng in failed:  # once more, under a key of its own, with whatever came since
            evs = [*inbox.between(conn, rng["first"], rng["last"]), *evs]
        st["open"] = going
        if not evs:
            continue
        first, last = min(e.seq for e in evs), max(e.seq for e in evs)
        key = range_key(conn, first, last, bool(failed))
        requests.append(
            plan_run(conn, evs, context.repository_def.asset_graph, _echo_checker(inbox, evs), key)
        )
        state[conn] = {
            "pos": max(last, st["pos"]),
            "open": [*going, {"key": key, "first": first, "last": last, "retried": bool(failed)}],
        }
    cursor = json.dumps({"floor": floor, "connections": state}, sort_keys=True)
    if not requests:
        reason = "; ".join(waiting) or "inbox: nothing new"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor)
    registered = context.instance.get_dynamic_partitions(connections_partitions.name)
    new = sorted({r.partition_key for r in requests} - set(registered))
    # Each run queues behind its connection's shard batch (fleet/shards.py: one run a shard at a time).
    requests = [r.with_replaced_attrs(tags={**r.tags, **shard_tag(r.partition_key, [*registered, *new])})
                for r in requests]  # fmt: skip
    return dg.SensorResult(
        run_requests=requests,
        cursor=cursor,
        dynamic_partitions_requests=[connections_partitions.build_add_request(new)] if new else None,
    )


REALTIME_SENSORS = [inbox_sensor, xero_polling_sensor, zoho_channels_sensor]
REALTIME_JOBS = [realtime_job]
REALTIME_CHECKS = MISSED_EVENT_CHECKS  # WARN: a periodic read found changes no event announced
