"""Missed-event detection: what a periodic read changed that no webhook or notification announced.

After a scheduled (non-targeted) read of an announced entity, the check lists the records that run
wrote to `landing` with a source change time after the inbox became active for that connection and
source, and looks for an announcement of each at or after its change (less `TOLERANCE`). Changes newer
than `GRACE` may still be in flight and are not judged. Missed ones give a WARN with the ids, which is
how a silent channel, a disabled Xero webhook or a receiver outage shows up.

(No `from __future__ import annotations`: Dagster inspects the `context` annotation.)
"""

import warnings
from datetime import UTC, datetime, timedelta

import dagster as dg

from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.realtime.inbox import Inbox
from xz_pipeline.xero import tables as xero_tables
from xz_pipeline.zoho import tables as zoho_tables

TOLERANCE = timedelta(minutes=1)  # source change time vs the event's own clock
GRACE = timedelta(minutes=2)  # a change this recent may still be on its way
ANNOUNCED = {
    "xero_contacts": xero_tables.CONTACTS,
    "xero_invoices": xero_tables.INVOICES,
    "xero_credit_notes": xero_tables.CREDIT_NOTES,
    "zoho_accounts": zoho_tables.ACCOUNTS,
    "zoho_contacts": zoho_tables.CONTACTS,
    "zoho_deals": zoho_tables.DEALS,
    "zoho_invoices": zoho_tables.INVOICES,
    "zoho_products": zoho_tables.PRODUCTS,
}


def missed_changes(mirror: MirrorResource, inbox: Inbox, connection: str, asset: str, run_id: str,
                   now: datetime) -> tuple[list[str], int, str]:  # fmt: skip
    """(missed record ids, changes judged, note) for one run's read of `asset`."""
    spec = ANNOUNCED[asset]
    active_since = inbox.first_event(connection, spec.vendor)
    if active_since is None:
        return [], 0, f"no {spec.vendor} events received for {connection}: near-real-time is off"
    store = mirror.store(connection)
    if not store.path.exists():
        return [], 0, "the mirror does not exist yet"
    with store.read() as con:
        rows = con.execute(
            "select record_id, max(source_modified) from landing.records where connection = ? and vendor = ?"
            " and entity = ? and run_id = ? and source_modified >= ? and source_modified <= ? group by record_id",
            [connection, spec.vendor, spec.entity, run_id, active_since, now - GRACE],
        ).fetchall()
    if not rows:
        return [], 0, "nothing changed since events became active"
    announced = inbox.announced(connection, asset, active_since - TOLERANCE)
    missed = []
    for record_id, modified in rows:
        seen = announced.get(record_id)
        if seen is None or datetime.fromisoformat(seen) < modified.astimezone(UTC) - TOLERANCE:
            missed.append(record_id)
    return sorted(missed), len(rows), ""


def _check(asset: str):
    @dg.asset_check(
        asset=asset,
        name="no_missed_events",
        partitions_def=connections_partitions,
        description="Warns when this read found changes that no webhook/notification announced.",
    )
    def _no_missed_events(
        context: dg.AssetCheckExecutionContext, mirror: MirrorResource
    ) -> dg.AssetCheckResult:
        missed, judged, note = missed_changes(
            mirror, Inbox(), context.partition_key, asset, context.run.run_id, datetime.now(UTC)
        )
        meta = {"changes_judged": judged, "missed": len(missed)}
        if note:
            meta["note"] = note
        if missed:
            meta["missed_ids"] = dg.MetadataValue.json(missed[:20])
        return dg.AssetCheckResult(passed=not missed, severity=dg.AssetCheckSeverity.WARN, metadata=meta)

    return _no_missed_events


with warnings.catch_warnings():  # partitioned asset checks are "preview" in 1.13; they are what we need
    warnings.simplefilter("ignore", dg.PreviewWarning)
    MISSED_EVENT_CHECKS = [_check(asset) for asset in ANNOUNCED]
