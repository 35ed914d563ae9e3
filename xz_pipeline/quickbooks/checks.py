"""Data-quality checks on the QuickBooks extract assets: pandera models per table, as the Xero ones.

One multi-check step per asset and connection (`QUICKBOOKS_CHECKS`, gathered by definitions.py). ERROR
rules block what depends on the asset (reconciliation, write-back); WARN rules only report. The models are
QBO's own (its tables differ from Xero's); they reuse the shared column types of `core.schemas`.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from xz_pipeline.core import schemas as s
from xz_pipeline.core.checks import WARN, Rule, build_mirror_checks
from xz_pipeline.core.mirror import EntityTable
from xz_pipeline.quickbooks import tables


def _id() -> pa.Field:
    return pa.Field(nullable=False, str_length={"min_value": 1})


def _opt(**kw) -> pa.Field:
    return pa.Field(nullable=True, **kw)


def _req(**kw) -> pa.Field:
    return pa.Field(nullable=False, **kw)


def _day() -> pa.Field:
    return pa.Field(nullable=True, dtype_kwargs={"unit": "us"})


class QboCustomer(s.MirrorRow):
    customer_id: Series[str] = _id()
    display_name: Series[str] = _req()
    currency: Series[str] = _opt()
    balance: Series[s.Money] = _opt()

    _currency = s.iso_currency("currency")

    class Config:
        unique = ["connection", "customer_id"]


class QboCustomerEmails(s.MirrorRow):
    """WARN: a customer's email should at least look like one."""

    customer_id: Series[str] = _id()
    email: Series[str] = _opt()

    _email = s.plausible_email("email")


class QboDocument(s.MirrorRow):
    """Invoices, credit memos and bills: amounts that cannot be negative, ISO currencies."""

    txn_date: Series[s.Day] = _day()
    currency: Series[str] = _opt()
    exchange_rate: Series[s.Rate] = _opt(gt=0)
    total_amt: Series[s.Money] = _req(ge=0)
    total_tax: Series[s.Money] = _opt(ge=0)
    balance: Series[s.Money] = _opt(ge=0)

    _currency = s.iso_currency("currency")

    @s.row_check("balance", "total_amt", name="balance_within_total", error="balance exceeds the total")
    def _balance(cls, df: pd.DataFrame) -> Series[bool]:
        return df["balance"].isna() | (df["balance"] <= df["total_amt"])


class QboInvoice(QboDocument):
    invoice_id: Series[str] = _id()
    customer_id: Series[str] = _req()

    class Config:
        unique = ["connection", "invoice_id"]


class QboEstimate(QboDocument):
    estimate_id: Series[str] = _id()
    customer_id: Series[str] = _req()

    class Config:
        unique = ["connection", "estimate_id"]


class QboCreditMemo(QboDocument):
    credit_memo_id: Series[str] = _id()
    customer_id: Series[str] = _req()

    class Config:
        unique = ["connection", "credit_memo_id"]


class QboBill(QboDocument):
    bill_id: Series[str] = _id()
    vendor_id: Series[str] = _req()

    class Config:
        unique = ["connection", "bill_id"]


class QboLine(s.MirrorRow):
    line_id: Series[str] = _id()
    detail_type: Series[str] = _opt()
    amount: Series[s.Money] = _opt()
    quantity: Series[s.Price] = _opt()
    unit_price: Series[s.Price] = _opt()


class QboPayment(s.MirrorRow):
    payment_id: Series[str] = _id()
    customer_id: Series[str] = _req()
    total_amt: Series[s.Money] = _req(ge=0)
    unapplied_amt: Series[s.Money] = _opt(ge=0)
    currency: Series[str] = _opt()

    _currency = s.iso_currency("currency")

    class Config:
        unique = ["connection", "payment_id"]


class QboPaymentLine(s.MirrorRow):
    payment_id: Series[str] = _id()
    line_id: Series[str] = _id()
    txn_id: Series[str] = _req()
    txn_type: Series[str] = _req()
    amount: Series[s.Money] = _opt(ge=0)

    class Config:
        unique = ["connection", "payment_id", "line_id"]


class QboItem(s.MirrorRow):
    item_id: Series[str] = _id()
    name: Series[str] = _req(str_length={"min_value": 1, "max_value": 100})

    class Config:
        unique = ["connection", "item_id"]


class QboAccount(s.MirrorRow):
    account_id: Series[str] = _id()
    name: Series[str] = _req()
    account_type: Series[str] = _req()
    currency: Series[str] = _opt()

    _currency = s.iso_currency("currency")

    class Config:
        unique = ["connection", "account_id"]


class QboCompany(s.MirrorRow):
    company_id: Series[str] = _id()
    company_name: Series[str] = _req()

    class Config:
        unique = ["connection", "company_id"]


class QboPreferences(s.MirrorRow):
    preferences_id: Series[str] = _id()
    home_currency: Series[str] = _opt()

    _currency = s.iso_currency("home_currency")


def _t(spec: EntityTable, name: str | None = None) -> str:
    return f"{spec.schema}.{name or spec.table}"


def _lines_balance_sql(parent: str, lines: str, id_col: str) -> str:
    """Each document with the sum of its own lines (not SubTotalLineDetail, a discount subtracts), as
    `LinesBalance` reads it: QBO's net is TotalAmt - TotalTax."""
    return f"""
        select d.connection, d.{id_col} as document_id, d.payload_hash,
               cast(d.total_amt - coalesce(d.total_tax, 0) as decimal(18, 2)) as sub_total,
               coalesce(sum(case when l.detail_type = 'DiscountLineDetail' then -l.amount else l.amount end)
                        filter (where l.detail_type <> 'SubTotalLineDetail'), 0) as lines_sub_total,
               count(l.line_id) filter (where l.detail_type <> 'SubTotalLineDetail') as line_count
        from {parent} d left join {lines} l on l.connection = d.connection and l.{id_col} = d.{id_col}
        where d.connection = ? and (d.global_tax_calculation is distinct from 'TaxInclusive')
        group by d.connection, d.{id_col}, d.payload_hash, d.total_amt, d.total_tax order by document_id
    """


def _dates_sql(table: str, id_col: str) -> str:
    return (f"select connection, {id_col} as document_id, payload_hash, txn_date as issued, due_date as due "
            f"from {table} where connection = ? order by document_id")  # fmt: skip


def _document_rules(spec: EntityTable, model, lines_table: str, noun: str, dated: bool = True) -> list[Rule]:
    id_col = spec.key[-1]
    rules = [
        Rule(f"{spec.table}_schema", model, _t(spec), (id_col,),
             description=f"{noun}s: ids, ISO 4217 currency, non-negative DECIMAL totals, balance within total"),
        Rule(f"{lines_table}_schema", QboLine, _t(spec, lines_table), (id_col, "line_id"),
             description=f"{noun} lines: ids and DECIMAL amounts"),
        Rule(s.LINES_SUM_TO_SUB_TOTAL, s.LinesBalance, _t(spec), ("document_id",),
             sql=_lines_balance_sql(_t(spec), _t(spec, lines_table), id_col),
             description=f"{noun} lines sum to TotalAmt less tax within 0.01 per line (tax-exclusive documents)"),
    ]  # fmt: skip
    if dated:
        rules.append(Rule("due_not_before_issue", s.DocumentDates, _t(spec), ("document_id",), severity=WARN,
                          sql=_dates_sql(_t(spec), id_col), description=f"{noun}s fall due on or after their date"))  # fmt: skip
    return rules


RULES: dict[str, tuple[EntityTable, list[Rule]]] = {
    "quickbooks_customers": (tables.CUSTOMERS, [
        Rule("customers_schema", QboCustomer, _t(tables.CUSTOMERS), ("customer_id",),
             description="customers: ids, display names, ISO 4217 currency, DECIMAL balances"),
        Rule("emails_plausible", QboCustomerEmails, _t(tables.CUSTOMERS), ("customer_id",), severity=WARN,
             description="customer emails look like email addresses"),
    ]),
    "quickbooks_invoices": (tables.INVOICES, _document_rules(tables.INVOICES, QboInvoice, "invoice_lines", "invoice")),
    "quickbooks_estimates": (tables.ESTIMATES, _document_rules(tables.ESTIMATES, QboEstimate, "estimate_lines", "estimate",
                                                               dated=False)),
    "quickbooks_credit_memos": (tables.CREDIT_MEMOS, _document_rules(tables.CREDIT_MEMOS, QboCreditMemo,
                                                                     "credit_memo_lines", "credit memo", dated=False)),
    "quickbooks_bills": (tables.BILLS, _document_rules(tables.BILLS, QboBill, "bill_lines", "bill")),
    "quickbooks_payments": (tables.PAYMENTS, [
        Rule("payments_schema", QboPayment, _t(tables.PAYMENTS), ("payment_id",),
             description="payments: ids, customer, non-negative DECIMAL amounts"),
        Rule("payment_lines_schema", QboPaymentLine, _t(tables.PAYMENTS, "payment_lines"), ("payment_id", "line_id"),
             description="what each payment settles: the transaction and a non-negative amount"),
    ]),
    "quickbooks_items": (tables.ITEMS, [Rule("items_schema", QboItem, _t(tables.ITEMS), ("item_id",),
                                             description="items: ids and names")]),
    "quickbooks_accounts": (tables.ACCOUNTS, [Rule("accounts_schema", QboAccount, _t(tables.ACCOUNTS), ("account_id",),
                                                   description="chart of accounts: ids, names, types, ISO 4217 currency")]),
    "quickbooks_company_info": (tables.COMPANY_INFO, [Rule("company_info_schema", QboCompany, _t(tables.COMPANY_INFO),
                                                           ("company_id",), description="the company: id and name")]),
    "quickbooks_preferences": (tables.PREFERENCES, [Rule("preferences_schema", QboPreferences, _t(tables.PREFERENCES),
                                                         ("preferences_id",), description="ISO 4217 home currency")]),
}  # fmt: skip

QUICKBOOKS_CHECKS = [
    build_mirror_checks(asset, vendor=spec.vendor, entity=spec.entity, rules=rules)
    for asset, (spec, rules) in RULES.items()
]
