"""Xero entities mirrored into DuckDB, one asset per entity, one partition per connection.

(No `from __future__ import annotations` here: Dagster inspects the `context` annotation.)
"""

import dagster as dg

from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import EntityTable
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.sync import Fetched, MirrorConfig, ReadPlan, extract_asset, run_extract
from xz_pipeline.xero import tables
from xz_pipeline.xero.resources import XeroResource

# Collections Xero serves whole in one call: read whole every run (one call), so deletions show at once.
WHOLE = {"Items", "Accounts", "Organisation"}


def _xero_asset(name: str, spec: EntityTable, description: str, params: dict | None = None):
    @extract_asset(name, "xero", description)
    def _asset(
        context: dg.AssetExecutionContext, config: MirrorConfig, xero: XeroResource, mirror: MirrorResource
    ) -> dg.MaterializeResult:
        meter = CallMeter()
        with xero.client(context.partition_key, meter=meter) as client:

            def fetch(plan: ReadPlan) -> Fetched:
                if plan.ids:
                    return Fetched(client.iter_pages(spec.entity, ids=list(plan.ids), params=params))
                return Fetched(client.iter_pages(spec.entity, modified_since=plan.since, params=params))

            whole = spec.entity in WHOLE and not config.targeted
            return run_extract(context, spec, mirror, config, meter, fetch, always_full=whole)

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
