"""Zoho CRM modules mirrored into DuckDB, one asset per module, one partition per connection.

(No `from __future__ import annotations` here: Dagster inspects the `context` annotation.)
"""

import dagster as dg

from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import EntityTable
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.sync import RETRY, Fetched, MirrorConfig, ReadPlan, run_extract
from xz_pipeline.zoho import tables
from xz_pipeline.zoho.resources import ZohoResource


def fetch_module(client, spec: EntityTable, plan: ReadPlan) -> Fetched:
    """Changed records (all on a full sweep) and, when incremental, the deletions since the cursor.

    Modules with subforms (Invoices' Invoiced_Items) are listed, then each new or changed record is read by
    id, because Zoho returns subforms only on a single-record GET.
    """
    try:
        payloads = list(
            client.iter_records(spec.entity, fields=tables.FIELDS[spec.entity], modified_since=plan.since)
        )
    except ApiError as exc:
        if exc.code == "INVALID_MODULE":  # e.g. Invoices in an edition without inventory modules
            return Fetched([], [], note="; module not available in this org")
        raise
    if spec.children:
        changed = [p for p in payloads if plan.cursor is None or _modified_after(p, plan.cursor)]
        full = {str(p["id"]): p for p in (client.get(spec.entity, str(p["id"])) for p in changed) if p}
        payloads = [full.get(str(p["id"]), p) for p in payloads]
    deleted = []
    if not plan.full:
        deleted = [(str(d["id"]), d) for d in client.deleted(spec.entity, since=plan.cursor)]
    return Fetched(payloads, deleted)


def _modified_after(payload: dict, cursor) -> bool:
    modified = tables.instant("Modified_Time")(payload)
    return modified is None or modified > cursor


def _zoho_asset(name: str, spec: EntityTable, description: str):
    @dg.asset(
        name=name,
        group_name="zoho",
        kinds={"duckdb", "python"},
        partitions_def=connections_partitions,
        pool="duckdb",
        retry_policy=RETRY,
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, config: MirrorConfig, zoho: ZohoResource, mirror: MirrorResource
    ) -> dg.MaterializeResult:
        def fetch(plan: ReadPlan, meter: CallMeter) -> Fetched:
            with zoho.client(context.partition_key, meter=meter) as client:
                return fetch_module(client, spec, plan)

        return run_extract(context, spec, mirror, config, fetch)

    return _asset


zoho_accounts = _zoho_asset(
    "zoho_accounts",
    tables.ACCOUNTS,
    "CRM accounts as `zoho.accounts` (+ `_history`): name, phone, website, billing and shipping address, "
    "Xero link, balances, tags. Deleted accounts leave the table (their history is closed).",
)
zoho_contacts = _zoho_asset(
    "zoho_contacts",
    tables.CONTACTS,
    "CRM contacts as `zoho.contacts` (+ `_history`): the person, their account, email, phones, mailing address.",
)
zoho_deals = _zoho_asset(
    "zoho_deals",
    tables.DEALS,
    "Deals as `zoho.deals` (+ `_history`): stage, amount and currency, closing date, account, the Xero "
    "invoice it became and its payment status.",
)
zoho_invoices = _zoho_asset(
    "zoho_invoices",
    tables.INVOICES,
    "CRM invoices as `zoho.invoices` and `zoho.invoice_items` (+ `_history`), when the org has the Invoices "
    "module.",
)
zoho_products = _zoho_asset(
    "zoho_products", tables.PRODUCTS, "Products as `zoho.products` (+ `_history`): code, name, unit price."
)

ZOHO_ASSETS = [zoho_accounts, zoho_contacts, zoho_deals, zoho_invoices, zoho_products]
