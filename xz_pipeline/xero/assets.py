"""Xero entities mirrored into DuckDB, one asset per entity, one partition per connection.

(No `from __future__ import annotations` here: Dagster inspects the `context` annotation.)
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import EntityTable, read_sync_state, write_entity
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.sync import MirrorConfig, plan_read
from xz_pipeline.xero import tables
from xz_pipeline.xero.resources import XeroResource

RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

# Collections Xero serves whole in one call: read whole every run (one call), so deletions show at once.
WHOLE = {"Items", "Accounts", "Organisation"}


def mirror_xero_entity(
    context: dg.AssetExecutionContext,
    spec: EntityTable,
    xero: XeroResource,
    mirror: MirrorResource,
    config: MirrorConfig,
    params: dict | None = None,
) -> dg.MaterializeResult:
    connection = context.partition_key
    store = mirror.store()
    now = datetime.now(UTC)
    cursor, last_full = read_sync_state(store, connection, "xero", spec.entity)
    plan = plan_read(
        cursor,
        last_full,
        now=now,
        sweep_every=timedelta(hours=settings.full_sweep_hours()),
        forced=config.full_sweep or spec.entity in WHOLE,
    )
    meter = CallMeter()
    with xero.client(connection, meter=meter) as client:
        payloads = list(client.iter_records(spec.entity, modified_since=plan.since, params=params))
    result = write_entity(
        store,
        spec,
        connection=connection,
        payloads=payloads,
        fetched_at=datetime.now(UTC),
        run_id=context.run_id,
        full=plan.full,
    )
    calls = meter.snapshot()
    context.log.info(
        f"xero {spec.entity} for {connection}: {plan.reason}, fetched {len(payloads)}, "
        f"inserted {result.counts.inserted}, updated {result.counts.updated}, deleted {result.counts.deleted}, "
        f"api calls {calls['calls']}"
    )
    return dg.MaterializeResult(metadata=result_metadata(result, plan.reason, len(payloads), calls))


def result_metadata(result, mode: str, fetched: int, calls: dict) -> dict:
    meta = {
        "dagster/row_count": result.total_rows,
        "mode": mode,
        "fetched": fetched,
        "inserted": result.counts.inserted,
        "updated": result.counts.updated,
        "deleted": result.counts.deleted,
        "unchanged": result.counts.unchanged,
        "quarantined": result.quarantined,
        "api_calls": calls["calls"],
        "api_retries": calls["retries"],
        "api_throttled": calls["throttled"],
        "cursor": result.cursor.isoformat() if result.cursor else "",
    }
    for child, counts in result.child_counts.items():
        meta[f"{child} inserted/updated/deleted"] = f"{counts.inserted}/{counts.updated}/{counts.deleted}"
    return meta


def _xero_asset(name: str, spec: EntityTable, description: str, params: dict | None = None):
    @dg.asset(
        name=name,
        group_name="xero",
        kinds={"duckdb", "python"},
        partitions_def=connections_partitions,
        pool="duckdb",
        retry_policy=RETRY,
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, config: MirrorConfig, xero: XeroResource, mirror: MirrorResource
    ) -> dg.MaterializeResult:
        return mirror_xero_entity(context, spec, xero, mirror, config, params)

    return _asset


xero_contacts = _xero_asset(
    "xero_contacts",
    tables.CONTACTS,
    "Xero contacts, archived included, as `xero.contacts` (+ `_history`): names, email, numbers, tax number, "
    "phones, addresses, AR/AP balances.",
    params={"includeArchived": "true"},
)
xero_invoices = _xero_asset(
    "xero_invoices",
    tables.INVOICES,
    "Sales invoices (ACCREC) and bills (ACCPAY), every status, as `xero.invoices` and `xero.invoice_lines` "
    "(+ `_history`): totals, amounts paid/due/credited, due and paid dates.",
)
xero_payments = _xero_asset(
    "xero_payments",
    tables.PAYMENTS,
    "Payments against invoices and credit notes as `xero.payments` (+ `_history`); deleted payments keep "
    "their row with status DELETED.",
)
xero_credit_notes = _xero_asset(
    "xero_credit_notes",
    tables.CREDIT_NOTES,
    "Credit notes as `xero.credit_notes`, `xero.credit_note_lines` and `xero.credit_note_allocations` "
    "(+ `_history`).",
)
xero_items = _xero_asset(
    "xero_items", tables.ITEMS, "Items (products and services) as `xero.items`; read whole every run."
)
xero_accounts = _xero_asset(
    "xero_accounts", tables.ACCOUNTS, "The chart of accounts as `xero.accounts`; read whole every run."
)
xero_organisation = _xero_asset(
    "xero_organisation",
    tables.ORGANISATION,
    "The organisation (base currency, country, time zone) as `xero.organisation`.",
)

XERO_ASSETS = [
    xero_contacts,
    xero_invoices,
    xero_payments,
    xero_credit_notes,
    xero_items,
    xero_accounts,
    xero_organisation,
]
