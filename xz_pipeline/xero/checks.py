"""Data-quality checks on the Xero extract assets: the models of `core/schemas.py` per table.

One multi-check step per asset and connection (`XERO_CHECKS`, gathered by definitions.py). ERROR
rules block what depends on the asset (reconciliation, write-back); WARN rules only report.
"""

from __future__ import annotations

from xz_pipeline.core import schemas as s
from xz_pipeline.core.checks import ERROR, WARN, Rule, build_mirror_checks
from xz_pipeline.core.mirror import EntityTable
from xz_pipeline.xero import tables


def _table(spec: EntityTable, name: str | None = None) -> str:
    return f"{spec.schema}.{name or spec.table}"


def lines_balance_sql(parent: str, lines: str, id_col: str) -> str:
    """Each document with the net sum of its lines, as `LinesBalance` reads it.

    Xero's SubTotal is Σ LineAmount when amounts exclude tax (or there is none), and
    Σ (LineAmount - TaxAmount) when they include it. A document without lines sums to zero.
    """
    return f"""
        select d.connection, d.{id_col} as document_id, d.payload_hash, d.line_amount_types, d.sub_total,
               coalesce(sum(l.line_amount), 0)
                 - case when d.line_amount_types = 'Inclusive' then coalesce(sum(l.tax_amount), 0) else 0 end
                 as lines_sub_total,
               count(l.line_item_id) as line_count
        from {parent} d
        left join {lines} l on l.connection = d.connection and l.{id_col} = d.{id_col}
        where d.connection = ?
        group by d.connection, d.{id_col}, d.payload_hash, d.line_amount_types, d.sub_total
        order by document_id
    """


def dates_sql(table: str, id_col: str) -> str:
    return (
        f"select connection, {id_col} as document_id, payload_hash, date as issued, due_date as due "
        f"from {table} where connection = ? order by document_id"
    )


def _document_rules(spec: EntityTable, model, lines_table: str, lines_model, noun: str) -> list[Rule]:
    id_col = spec.key[-1]
    return [
        Rule(f"{spec.table}_schema", model, _table(spec), (id_col,),
             description=f"{noun}: ids, types, statuses, ISO 4217 currency, non-negative DECIMAL amounts"),
        Rule(f"{lines_table}_schema", lines_model, _table(spec, lines_table), (id_col, "line_item_id"),
             description=f"{noun} lines: ids and DECIMAL amounts"),
        Rule(s.LINES_SUM_TO_SUB_TOTAL, s.LinesBalance, _table(spec), ("document_id",),
             sql=lines_balance_sql(_table(spec), _table(spec, lines_table), id_col),
             description=f"{noun} lines sum to the sub-total within 0.01 per line"),
        Rule("due_not_before_issue", s.DocumentDates, _table(spec), ("document_id",), severity=WARN,
             sql=dates_sql(_table(spec), id_col),
             description=f"{noun}s fall due on or after their date"),
    ]  # fmt: skip


CONTACT_RULES = [
    Rule("contacts_schema", s.XeroContact, _table(tables.CONTACTS), ("contact_id",),
         description="contacts: ids, names, status, ISO 4217 default currency, DECIMAL balances"),
    Rule("emails_plausible", s.XeroContactEmails, _table(tables.CONTACTS), ("contact_id",), severity=WARN,
         description="contact emails look like email addresses"),
]  # fmt: skip

INVOICE_RULES = _document_rules(tables.INVOICES, s.XeroInvoice, "invoice_lines", s.XeroInvoiceLine, "invoice")
CREDIT_NOTE_RULES = [
    *_document_rules(
        tables.CREDIT_NOTES, s.XeroCreditNote, "credit_note_lines", s.XeroCreditNoteLine, "credit note"
    ),
    Rule("credit_note_allocations_schema", s.XeroCreditNoteAllocation,
         _table(tables.CREDIT_NOTES, "credit_note_allocations"), ("credit_note_id", "allocation_id"),
         severity=ERROR, description="allocations: ids, the invoice allocated to, non-negative amounts"),
]  # fmt: skip
PAYMENT_RULES = [
    Rule("payments_schema", s.XeroPayment, _table(tables.PAYMENTS), ("payment_id",),
         description="payments: ids, type, status, non-negative DECIMAL amounts"),
]  # fmt: skip
ITEM_RULES = [
    Rule("items_schema", s.XeroItem, _table(tables.ITEMS), ("item_id",), description="items: ids and codes"),
]
ACCOUNT_RULES = [
    Rule("accounts_schema", s.XeroAccount, _table(tables.ACCOUNTS), ("account_id",),
         description="chart of accounts: ids, types, classes, statuses, ISO 4217 currency"),
]  # fmt: skip
ORGANISATION_RULES = [
    Rule("organisation_schema", s.XeroOrganisation, _table(tables.ORGANISATION), ("organisation_id",),
         description="the organisation: id, name, ISO 4217 base currency"),
]  # fmt: skip

# asset name -> (its entity table, its rules)
RULES: dict[str, tuple[EntityTable, list[Rule]]] = {
    "xero_contacts": (tables.CONTACTS, CONTACT_RULES),
    "xero_invoices": (tables.INVOICES, INVOICE_RULES),
    "xero_payments": (tables.PAYMENTS, PAYMENT_RULES),
    "xero_credit_notes": (tables.CREDIT_NOTES, CREDIT_NOTE_RULES),
    "xero_items": (tables.ITEMS, ITEM_RULES),
    "xero_accounts": (tables.ACCOUNTS, ACCOUNT_RULES),
    "xero_organisation": (tables.ORGANISATION, ORGANISATION_RULES),
}

XERO_CHECKS = [
    build_mirror_checks(asset, vendor=spec.vendor, entity=spec.entity, rules=rules)
    for asset, (spec, rules) in RULES.items()
]
