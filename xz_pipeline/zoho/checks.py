"""Data-quality checks on the Zoho CRM extract assets: the models of `core/schemas.py` per table.

One multi-check step per asset and connection (`ZOHO_CHECKS`, gathered by definitions.py). ERROR
rules block what depends on the asset (reconciliation, write-back); WARN rules only report. The
assets are referenced by key, so this module does not need zoho/assets.py.
"""

from __future__ import annotations

from xz_pipeline.core import schemas as s
from xz_pipeline.core.checks import WARN, Rule, build_mirror_checks
from xz_pipeline.core.mirror import EntityTable
from xz_pipeline.zoho import tables


def _table(spec: EntityTable, name: str | None = None) -> str:
    return f"{spec.schema}.{name or spec.table}"


INVOICES = _table(tables.INVOICES)
INVOICE_ITEMS = _table(tables.INVOICES, "invoice_items")

# Zoho's Sub_Total is Σ (Total - Discount) over the invoiced items (tax and the invoice-level
# discount and adjustment come after it). List calls omit the items subform, so only invoices whose
# items the mirror holds are checked (an inner join): a missing subform is not a wrong sum.
LINES_BALANCE_SQL = f"""
    select d.connection, d.invoice_id as document_id, d.payload_hash, d.sub_total,
           sum(l.total - coalesce(l.discount, 0)) as lines_sub_total,
           count(*) as line_count
    from {INVOICES} d
    join {INVOICE_ITEMS} l on l.connection = d.connection and l.invoice_id = d.invoice_id
    where d.connection = ?
    group by d.connection, d.invoice_id, d.payload_hash, d.sub_total
    order by document_id
"""
DATES_SQL = (
    f"select connection, invoice_id as document_id, payload_hash, invoice_date as issued, due_date as due "
    f"from {INVOICES} where connection = ? order by document_id"
)

ACCOUNT_RULES = [
    Rule("accounts_schema", s.ZohoAccount, _table(tables.ACCOUNTS), ("account_id",),
         description="accounts: ids, names, ISO 4217 currency, DECIMAL balances"),
]  # fmt: skip
CONTACT_RULES = [
    Rule("contacts_schema", s.ZohoContact, _table(tables.CONTACTS), ("contact_id",),
         description="contacts: ids and last names"),
    Rule("emails_plausible", s.ZohoContactEmails, _table(tables.CONTACTS), ("contact_id",), severity=WARN,
         description="contact emails look like email addresses"),
]  # fmt: skip
DEAL_RULES = [
    Rule("deals_schema", s.ZohoDeal, _table(tables.DEALS), ("deal_id",),
         description="deals: ids, names, probability, ISO 4217 currency, non-negative DECIMAL amounts, "
                     "payment status"),
    Rule("deal_stages_standard", s.ZohoDealStages, _table(tables.DEALS), ("deal_id",), severity=WARN,
         description="deal stages belong to the standard pipeline (custom pipelines only warn)"),
]  # fmt: skip
INVOICE_RULES = [
    Rule("invoices_schema", s.ZohoInvoice, INVOICES, ("invoice_id",),
         description="invoices: ids, subjects, ISO 4217 currency, non-negative DECIMAL totals"),
    Rule("invoice_items_schema", s.ZohoInvoiceItem, INVOICE_ITEMS, ("invoice_id", "item_id"),
         description="invoiced items: ids and DECIMAL amounts"),
    Rule(s.LINES_SUM_TO_SUB_TOTAL, s.LinesBalance, INVOICES, ("document_id",), sql=LINES_BALANCE_SQL,
         description="invoiced items sum to the sub-total within 0.01 per item"),
    Rule("due_not_before_issue", s.DocumentDates, INVOICES, ("document_id",), severity=WARN, sql=DATES_SQL,
         description="invoices fall due on or after their invoice date"),
]  # fmt: skip
PRODUCT_RULES = [
    Rule("products_schema", s.ZohoProduct, _table(tables.PRODUCTS), ("product_id",),
         description="products: ids, names, non-negative unit prices"),
]  # fmt: skip

# asset name -> (its entity table, its rules)
RULES: dict[str, tuple[EntityTable, list[Rule]]] = {
    "zoho_accounts": (tables.ACCOUNTS, ACCOUNT_RULES),
    "zoho_contacts": (tables.CONTACTS, CONTACT_RULES),
    "zoho_deals": (tables.DEALS, DEAL_RULES),
    "zoho_invoices": (tables.INVOICES, INVOICE_RULES),
    "zoho_products": (tables.PRODUCTS, PRODUCT_RULES),
}

ZOHO_CHECKS = [
    build_mirror_checks(asset, vendor=spec.vendor, entity=spec.entity, rules=rules)
    for asset, (spec, rules) in RULES.items()
]
