"""QuickBooks Online entities mirrored into DuckDB, one asset per entity, one partition per connection.

Incremental reads use CDC (deletions included) while the cursor is within its 30 days, else a query;
first syncs and full sweeps read by query in modified order. A connection whose books are not QuickBooks
is skipped by `core.sync.extract_asset`, which says so in the step's metadata.

(No `from __future__ import annotations` here: Dagster inspects the `context` annotation.)
"""

from datetime import datetime, timedelta

import dagster as dg

from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import EntityTable, read_state
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.sync import Fetched, MirrorConfig, ReadPlan, extract_asset, run_extract
from xz_pipeline.quickbooks import tables
from xz_pipeline.quickbooks.client import QuickBooksClient
from xz_pipeline.quickbooks.resources import QuickBooksResource

# Small lists read whole every run (one call each), so deletions show at once.
WHOLE = {"Item", "Account", "CompanyInfo", "Preferences"}


# QBO's clock against ours, and a change committed just before a read ended: read this much again.
CAUGHT_UP_MARGIN = timedelta(minutes=5)


def fetch_for(
    client: QuickBooksClient, spec: EntityTable, plan: ReadPlan, caught_up: datetime | None = None
) -> Fetched:
    """How one read plan becomes pages of payloads (and CDC's deletions).

    An incremental read asks for what changed since the later of the cursor and the last time a read
    reached the end (`caught_up`): a quiet company's cursor is its last change, maybe months old, while
    CDC, the only reader of deletions, reaches back 30 days."""
    if plan.ids:
        rows = client.by_ids(spec.entity, list(plan.ids))
        return Fetched([rows] if rows else [])
    if spec.entity == "CompanyInfo":
        return Fetched([[client.company_info()]])
    if spec.entity == "Preferences":
        return Fetched([[client.preferences()]])
    if plan.full or plan.since is None:
        return Fetched(client.iter_query(spec.entity))
    since = plan.since
    if caught_up is not None and not plan.completes_sweep:
        since = max(since, caught_up - CAUGHT_UP_MARGIN)
    changes = client.changes(spec.entity, since)
    note = "; cursor older than CDC's 30 days: read by query" if changes.how == "query" else ""
    return Fetched(changes.pages, deleted=lambda: changes.deleted, note=note)


def _qbo_asset(name: str, spec: EntityTable, description: str):
    @extract_asset(name, "quickbooks", description)
    def _asset(
        context: dg.AssetExecutionContext,
        config: MirrorConfig,
        quickbooks: QuickBooksResource,
        mirror: MirrorResource,
    ) -> dg.MaterializeResult:
        meter = CallMeter()
        with quickbooks.client(context.partition_key, meter=meter) as client:

            def fetch(plan: ReadPlan) -> Fetched:
                state = read_state(
                    mirror.store(context.partition_key), context.partition_key, spec.vendor, spec.entity
                )
                return fetch_for(client, spec, plan, state.caught_up)

            whole = spec.entity in WHOLE and not config.targeted
            return run_extract(context, spec, mirror, config, meter, fetch, always_full=whole)

    return _asset


quickbooks_customers = _qbo_asset(
    "quickbooks_customers",
    tables.CUSTOMERS,
    "QuickBooks customers, inactive included, as `quickbooks.customers` (+ `_history`): names, email, phones, "
    "addresses, account number, balances.",
)
quickbooks_invoices = _qbo_asset(
    "quickbooks_invoices",
    tables.INVOICES,
    "Sales invoices as `quickbooks.invoices` and `quickbooks.invoice_lines` (+ `_history`): totals, tax, "
    "balance, due dates; CDC deletions remove them.",
)
quickbooks_estimates = _qbo_asset(
    "quickbooks_estimates",
    tables.ESTIMATES,
    "Estimates (unposted sales documents: the books' drafts) as `quickbooks.estimates` and "
    "`quickbooks.estimate_lines` (+ `_history`).",
)
quickbooks_payments = _qbo_asset(
    "quickbooks_payments",
    tables.PAYMENTS,
    "Customer payments as `quickbooks.payments` and the documents each settles as `quickbooks.payment_lines`.",
)
quickbooks_credit_memos = _qbo_asset(
    "quickbooks_credit_memos",
    tables.CREDIT_MEMOS,
    "Credit memos as `quickbooks.credit_memos` and `quickbooks.credit_memo_lines` (+ `_history`).",
)
quickbooks_bills = _qbo_asset(
    "quickbooks_bills", tables.BILLS, "Supplier bills as `quickbooks.bills` and `quickbooks.bill_lines`."
)
quickbooks_items = _qbo_asset(
    "quickbooks_items",
    tables.ITEMS,
    "Items (products and services) as `quickbooks.items`; read whole every run.",
)
quickbooks_accounts = _qbo_asset(
    "quickbooks_accounts",
    tables.ACCOUNTS,
    "The chart of accounts as `quickbooks.accounts`; read whole every run.",
)
quickbooks_company_info = _qbo_asset(
    "quickbooks_company_info",
    tables.COMPANY_INFO,
    "The company (name, country) as `quickbooks.company_info`.",
)
quickbooks_preferences = _qbo_asset(
    "quickbooks_preferences",
    tables.PREFERENCES,
    "The company's preferences (home currency, multicurrency, sales form settings) as `quickbooks.preferences`.",
)

QUICKBOOKS_ASSETS = [
    quickbooks_customers,
    quickbooks_invoices,
    quickbooks_estimates,
    quickbooks_payments,
    quickbooks_credit_memos,
    quickbooks_bills,
    quickbooks_items,
    quickbooks_accounts,
    quickbooks_company_info,
    quickbooks_preferences,
]
