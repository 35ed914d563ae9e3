"""Zoho CRM modules mirrored into DuckDB, one asset per module, one partition per connection.

(No `from __future__ import annotations` here: Dagster inspects the `context` annotation.)
"""

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import EntityTable
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.sync import Fetched, MirrorConfig, ReadPlan, extract_asset, run_extract
from xz_pipeline.zoho import fieldmap, tables
from xz_pipeline.zoho import schema as schema_mod
from xz_pipeline.zoho.fieldmap import DEFAULT, FieldMap
from xz_pipeline.zoho.lines import InvoiceLines
from xz_pipeline.zoho.resources import ZohoResource


def fetch_module(client, spec: EntityTable, plan: ReadPlan, fm: FieldMap = DEFAULT) -> Fetched:
    """Changed records (all on a full sweep), page by page, and when incremental the deletions since the
    cursor (the `/deleted` probe: one call when nothing was deleted).

    Zoho lists no subforms: the line items of each page's new or changed invoices are read after it, 50
    invoices a COQL call or one GET by id each (`lines.py` chooses). Deals' Products related lists are not
    read here (one call per deal): write-back reads them for the deals it is about to invoice
    (`ZohoCrmWriter.read_deal_products`).
    """

    def pages():
        if client.schema is not None and not client.schema.has_module(spec.entity):
            fetched.note = f"; module not available in this org ({client.schema.absent.get(spec.entity, '')})"
            return
        try:
            listing = client.iter_pages(
                spec.entity,
                fields=tables.fields(spec.entity, fm),
                modified_since=plan.since,
                ids=plan.ids or None,  # a targeted read: exactly the announced records
            )
            for page in listing:
                if lines is not None:
                    page = lines.attach(page)
                    fetched.note = lines.note
                yield page
        except ApiError as exc:
            if not schema_mod.not_offered(exc):  # e.g. Invoices in an edition without inventory modules
                raise
            fetched.note = "; module not available in this org"

    def deleted():
        if plan.full or plan.ids or fetched.note:
            return []
        return [(str(d["id"]), d) for d in client.deleted(spec.entity, since=plan.cursor)]

    lines = InvoiceLines(client, plan) if spec.entity == "Invoices" and settings.zoho_subforms() else None
    fetched = Fetched(pages(), deleted)
    return fetched


def _with_schema(result: dg.MaterializeResult, schema, module: str, fm: FieldMap) -> dg.MaterializeResult:
    """The extract's metadata plus each wanted field the org lacks and what that disables."""
    missing = schema_mod.missing_report(schema, {module: tables.FIELDS[module]}, fm)
    extra = {
        "missing_fields": dg.MetadataValue.json(missing),
        "mapped_fields": dg.MetadataValue.json(
            {k: v for k, v in fm.mapped().items() if k.startswith(module)}
        ),
    }
    if schema.home_currency:
        extra["home_currency"] = schema.home_currency
    return dg.MaterializeResult(asset_key=result.asset_key, metadata={**(result.metadata or {}), **extra},
                                check_results=result.check_results, data_version=result.data_version,
                                tags=result.tags)  # fmt: skip


def _zoho_asset(name: str, spec: EntityTable, description: str):
    @extract_asset(name, "zoho", description)
    def _asset(
        context: dg.AssetExecutionContext, config: MirrorConfig, zoho: ZohoResource, mirror: MirrorResource
    ) -> dg.MaterializeResult:
        meter = CallMeter()
        connection = context.partition_key
        fm = fieldmap.load(connection)
        org_spec = tables.specs(fm)[spec.entity]
        with zoho.client(connection, meter=meter) as client:
            with mirror.step_session(context, connection):
                schema = schema_mod.ensure(client, mirror.store(connection), connection, fm)
            result = run_extract(
                context,
                org_spec,
                mirror,
                config,
                meter,
                lambda plan: fetch_module(client, org_spec, plan, fm),
            )
        return _with_schema(result, schema, spec.entity, fm)

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
    "invoice it became and its payment status. (`zoho.deal_products`, the Products related list of the won "
    "deals write-back invoices, is filled by write-back when it needs them.)",
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
