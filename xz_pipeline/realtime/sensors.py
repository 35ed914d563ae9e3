"""Near-real-time sensors: the inbox becomes targeted runs, Xero payments and items are polled, Zoho
channels are kept alive.

`inbox_sensor` reads what arrived after its cursor (the inbox `seq`), keeps per connection and record
only the latest announcement (by the source's change time, so out-of-order deliveries settle on the
right operation), and asks for one run per connection: the mirror assets for exactly those ids
(`MirrorConfig.ids` / `deleted_ids`) followed by everything downstream (canonical views, reconcile,
write-back, the snapshot). The run key is the inbox range, so a replayed tick never runs twice; a
redelivered event is already deduplicated by the inbox. A batch that only echoes our own writes runs
without the write-back stage.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.resources import TRIGGER_TAG, MirrorResource, connections_partitions
from xz_pipeline.realtime.channels import zoho_channels_sensor
from xz_pipeline.realtime.echo import echoes
from xz_pipeline.realtime.inbox import Inbox, InboxEvent
from xz_pipeline.realtime.missed import MISSED_EVENT_CHECKS
from xz_pipeline.realtime.polling import xero_polling_sensor
from xz_pipeline.realtime.runs import blocking_checks
from xz_pipeline.xero.resources import XeroResource

# The daemon wakes every 5 s (dagster.md §2) and measures the interval from the end of the last tick: at 5
# a tick that took 0.8 s was skipped at the next wake, and the sensor ran every 5 or 10 s (measured with
# `bench-latency --daemon`). At 4 it runs at every wake: every 5 s.
MIN_INTERVAL = 4
BATCH = 5000
RETAIN = timedelta(
    days=31
)  # as long as Xero keeps undelivered events; the missed-event check looks back this far
WRITEBACK_GROUP = "writeback"
# An invoice changes when a payment lands on it (Xero has no payment webhooks): read payments with it.
ALSO_INCREMENTAL = {"xero_invoices": "xero_payments"}
SYSTEM = {"xero": "xero", "zoho": "zoho"}

realtime_job = dg.define_asset_job(
    "realtime",
    selection=dg.AssetSelection.groups("xero", "zoho").downstream(),
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


def plan_runs(events: list[InboxEvent], asset_graph, is_echo=None) -> list[dg.RunRequest]:
    """One RunRequest per connection for a batch of inbox events (already resolved to connections)."""
    by_conn: dict[str, list[InboxEvent]] = defaultdict(list)
    for e in events:
        if e.connection:
            by_conn[e.connection].append(e)
    requests = []
    for conn, evs in sorted(by_conn.items()):
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
        echo_only = is_echo is not None and all(is_echo(conn, e) for e in evs)
        if echo_only:
            selection = {k for k in selection if asset_graph.get(k).group_name != WRITEBACK_GROUP}
        first, last = min(e.seq for e in evs), max(e.seq for e in evs)
        requests.append(
            dg.RunRequest(
                run_key=f"inbox:{conn}:{first}-{last}",
                partition_key=conn,
                asset_selection=sorted(selection, key=lambda k: k.to_user_string()),
                asset_check_keys=blocking_checks(asset_graph, selection),
                run_config={"ops": config},
                tags={
                    TRIGGER_TAG: "inbox",
                    "xz/events": str(len(evs)),
                    "xz/echo_only": str(echo_only).lower(),
                },
            )
        )
    return requests


def _echo_checker(mirror: MirrorResource, events: list[InboxEvent]):
    """A predicate over events, backed by one read of `writeback.plan` (none yet → never an echo)."""
    store = mirror.store()
    if not store.path.exists():
        return None
    found: set[tuple[str, str]] = set()
    with store.read() as con:
        by: dict[tuple[str, str], list[tuple[str, datetime]]] = defaultdict(list)
        for e in events:
            if e.connection:
                by[(e.connection, e.source)].append((e.record_id, datetime.fromisoformat(e.event_time)))
        for (conn, source), changes in by.items():
            found |= {(conn, r) for r in echoes(con, conn, SYSTEM[source], changes)}
    return lambda conn, e: (conn, e.record_id) in found


@dg.sensor(
    name="inbox_sensor",
    job=realtime_job,
    minimum_interval_seconds=MIN_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Webhooks and notifications from the inbox → targeted runs of the changed records and "
    "everything downstream (one run per connection and inbox range).",
)
def inbox_sensor(context: dg.SensorEvaluationContext, xero: XeroResource, mirror: MirrorResource):
    inbox = Inbox()
    _resolve_tenants(inbox, xero)
    after = json.loads(context.cursor)["seq"] if context.cursor else 0
    inbox.prune(datetime.now(UTC) - RETAIN, after)
    events = inbox.after(after, BATCH)
    if not events:
        return dg.SensorResult(skip_reason=dg.SkipReason("inbox: nothing new"), cursor=context.cursor)
    cursor = json.dumps({"seq": events[-1].seq})
    routed = [e for e in events if e.connection]
    if not routed:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"{len(events)} event(s) of unknown tenants"), cursor=cursor
        )
    try:
        is_echo = _echo_checker(mirror, routed)
    except Exception as exc:  # the mirror is busy or absent: act as if nothing is an echo, say so
        context.log.warning(f"echo check skipped: {type(exc).__name__}")
        is_echo = None
    requests = plan_runs(routed, context.repository_def.asset_graph, is_echo)
    known = set(context.instance.get_dynamic_partitions(connections_partitions.name))
    new = sorted({r.partition_key for r in requests} - known)
    return dg.SensorResult(
        run_requests=requests,
        cursor=cursor,
        dynamic_partitions_requests=[connections_partitions.build_add_request(new)] if new else None,
    )


REALTIME_SENSORS = [inbox_sensor, xero_polling_sensor, zoho_channels_sensor]
REALTIME_JOBS = [realtime_job]
REALTIME_CHECKS = MISSED_EVENT_CHECKS  # WARN: a periodic read found changes no event announced
