"""QuickBooks Online payloads as typed mirror tables: `quickbooks.customers`, `quickbooks.invoices`, ...

Each table is a list of columns read from the payload; the verbatim payload always stays in
`landing.records` (nothing fetched is lost). Amounts are DECIMAL(18, 2) (quantities and unit prices 18, 4),
times UTC. QBO references (`CustomerRef`, `ItemRef`, ...) are `{"value": id, "name": ...}`: both are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from xz_pipeline.core.mirror import (
    MONEY,
    PRICE,
    RATE,
    ChildTable,
    Col,
    EntityTable,
    flag,
    ident,
    scalar,
    text,
)
from xz_pipeline.quickbooks.dates import parse_qbo_date, parse_qbo_datetime, to_decimal

VENDOR = "quickbooks"


def _at(payload: dict, path: str) -> Any:
    value: Any = payload
    for part in path.split("."):
        if value is None:
            return None
        if not isinstance(value, dict):
            raise TypeError(f"{part} is inside a {type(value).__name__}, not an object")
        value = value.get(part)
    return value


def path(field: str) -> Callable[[dict], str | None]:
    """Text at a dotted path (`CustomerRef.value`, `PrimaryEmailAddr.Address`); a list or object is refused."""

    def get(p: dict) -> str | None:
        value = _at(p, field)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise TypeError(f"{field} is a boolean")
        return str(scalar(value))

    get.gives_text = True  # type: ignore[attr-defined]
    return get


def money(field: str) -> Callable[[dict], Decimal | None]:
    return lambda p: to_decimal(scalar(_at(p, field), "an amount"))


def day(field: str) -> Callable[[dict], Any]:
    return lambda p: parse_qbo_date(_at(p, field))


def instant(field: str) -> Callable[[dict], Any]:
    return lambda p: parse_qbo_datetime(_at(p, field))


def modified(p: dict) -> Any:
    """The source-modified time every QBO entity carries (what cursors and CDC compare)."""
    return parse_qbo_datetime(_at(p, "MetaData.LastUpdatedTime"))


def _record_id(p: dict) -> str:
    return str(p.get("Id", ""))


def _common(id_col: str) -> list[Col]:
    return [Col(id_col, "varchar not null", ident("Id")), Col("sync_token", "varchar", text("SyncToken"))]


_TIMES = [
    Col("created_utc", "timestamptz", instant("MetaData.CreateTime")),
    Col("updated_utc", "timestamptz", instant("MetaData.LastUpdatedTime")),
]


def _address_cols(prefix: str, field: str) -> list[Col]:
    parts = [("line1", "Line1"), ("line2", "Line2"), ("city", "City"), ("region", "CountrySubDivisionCode"),
             ("postal_code", "PostalCode"), ("country", "Country")]  # fmt: skip
    return [Col(f"{prefix}_{name}", "varchar", path(f"{field}.{key}")) for name, key in parts]


# ---------------------------------------------------------------------------------------------
# Customers

CUSTOMERS = EntityTable(
    vendor=VENDOR,
    entity="Customer",
    schema=VENDOR,
    table="customers",
    key=["connection", "customer_id"],
    record_id=_record_id,
    modified=modified,
    cols=[
        *_common("customer_id"),
        Col("display_name", "varchar", text("DisplayName")),
        Col("company_name", "varchar", text("CompanyName")),
        Col("given_name", "varchar", text("GivenName")),
        Col("family_name", "varchar", text("FamilyName")),
        Col("email", "varchar", path("PrimaryEmailAddr.Address")),
        Col("phone", "varchar", path("PrimaryPhone.FreeFormNumber")),
        Col("mobile", "varchar", path("Mobile.FreeFormNumber")),
        Col("website", "varchar", path("WebAddr.URI")),
        Col("acct_num", "varchar", text("AcctNum")),
        Col("tax_identifier", "varchar", text("PrimaryTaxIdentifier")),
        Col("resale_num", "varchar", text("ResaleNum")),
        Col("currency", "varchar", path("CurrencyRef.value")),
        Col("active", "boolean", flag("Active")),
        Col("is_job", "boolean", flag("Job")),
        Col("parent_id", "varchar", path("ParentRef.value")),
        Col("taxable", "boolean", flag("Taxable")),
        Col("balance", MONEY, money("Balance")),
        Col("balance_with_jobs", MONEY, money("BalanceWithJobs")),
        Col("overdue_balance", MONEY, money("OverDueBalance")),
        *_address_cols("bill", "BillAddr"),
        *_address_cols("ship", "ShipAddr"),
        Col("notes", "varchar", text("Notes")),
        *_TIMES,
    ],
)


# ---------------------------------------------------------------------------------------------
# Sales documents (invoices, credit memos) and bills: header + lines


def _lines(parent_col: str) -> Callable[[dict], list[dict]]:
    def items(payload: dict) -> list[dict]:
        lines = payload.get("Line") or []
        if not isinstance(lines, list):
            raise TypeError("Line is not a list")
        return [{**line, "_parent": payload["Id"], "_n": n} for n, line in enumerate(lines, start=1)]

    return items


def _detail(p: dict) -> dict:
    detail = p.get(p.get("DetailType") or "") or {}
    return detail if isinstance(detail, dict) else {}


def _from_detail(field: str, sub: str | None = None) -> Callable[[dict], Any]:
    def get(p: dict) -> Any:
        value = _detail(p).get(field)
        if sub is not None:
            value = value.get(sub) if isinstance(value, dict) else None
        if value in (None, ""):
            return None
        return str(scalar(value))

    get.gives_text = True  # type: ignore[attr-defined]
    return get


def _detail_money(field: str) -> Callable[[dict], Decimal | None]:
    return lambda p: to_decimal(scalar(_detail(p).get(field), "an amount"))


def _line_cols(parent_col: str) -> list[Col]:
    return [
        Col(parent_col, "varchar not null", lambda p: str(p["_parent"])),
        Col("line_id", "varchar not null", lambda p: str(p.get("Id") or f"line-{p['_n']}")),
        Col("line_no", "integer", lambda p: p["_n"]),
        Col("detail_type", "varchar", text("DetailType")),
        Col("description", "varchar", text("Description")),
        Col("amount", MONEY, money("Amount")),
        Col("item_id", "varchar", _from_detail("ItemRef", "value")),
        Col("item_name", "varchar", _from_detail("ItemRef", "name")),
        Col(
            "account_id",
            "varchar",
            lambda p: _from_detail("ItemAccountRef", "value")(p) or _from_detail("AccountRef", "value")(p),
        ),  # fmt: skip
        Col("tax_code", "varchar", _from_detail("TaxCodeRef", "value")),
        Col("quantity", PRICE, _detail_money("Qty")),
        Col("unit_price", PRICE, _detail_money("UnitPrice")),
        Col("discount_rate", MONEY, _detail_money("DiscountRate")),
        Col("discount_amount", MONEY, _detail_money("DiscountAmt")),
        Col("tax_inclusive_amount", MONEY, _detail_money("TaxInclusiveAmt")),
    ]


def _document_cols(id_col: str, party: str) -> list[Col]:
    return [
        *_common(id_col),
        Col("doc_number", "varchar", text("DocNumber")),
        Col("txn_date", "date", day("TxnDate")),
        Col(f"{party}_id", "varchar", path(f"{party.title()}Ref.value")),
        Col(f"{party}_name", "varchar", path(f"{party.title()}Ref.name")),
        Col("currency", "varchar", path("CurrencyRef.value")),
        Col("exchange_rate", RATE, money("ExchangeRate")),
        Col("total_amt", MONEY, money("TotalAmt")),
        Col("total_tax", MONEY, money("TxnTaxDetail.TotalTax")),
        Col("global_tax_calculation", "varchar", text("GlobalTaxCalculation")),
        Col("private_note", "varchar", text("PrivateNote")),
        Col("txn_status", "varchar", text("TxnStatus")),
    ]


INVOICES = EntityTable(
    vendor=VENDOR,
    entity="Invoice",
    schema=VENDOR,
    table="invoices",
    key=["connection", "invoice_id"],
    record_id=_record_id,
    modified=modified,
    cols=[
        *_document_cols("invoice_id", "customer"),
        Col("due_date", "date", day("DueDate")),
        Col("balance", MONEY, money("Balance")),
        Col("deposit", MONEY, money("Deposit")),
        Col("customer_memo", "varchar", path("CustomerMemo.value")),
        Col("email_status", "varchar", text("EmailStatus")),
        Col("print_status", "varchar", text("PrintStatus")),
        Col("bill_email", "varchar", path("BillEmail.Address")),
        *_TIMES,
    ],
    children=[
        ChildTable(
            table="invoice_lines",
            cols=_line_cols("invoice_id"),
            key=["connection", "invoice_id", "line_id"],
            parent_column="invoice_id",
            items=_lines("invoice_id"),
        )
    ],
)

ESTIMATES = EntityTable(
    vendor=VENDOR,
    entity="Estimate",
    schema=VENDOR,
    table="estimates",
    key=["connection", "estimate_id"],
    record_id=_record_id,
    modified=modified,
    cols=[
        *_document_cols("estimate_id", "customer"),
        Col("expiration_date", "date", day("ExpirationDate")),
        Col("due_date", "date", day("DueDate")),
        Col("accepted_date", "date", day("AcceptedDate")),
        Col("balance", MONEY, money("Balance")),  # an estimate posts nothing: QBO leaves it out
        Col("email_status", "varchar", text("EmailStatus")),
        *_TIMES,
    ],
    children=[
        ChildTable(
            table="estimate_lines",
            cols=_line_cols("estimate_id"),
            key=["connection", "estimate_id", "line_id"],
            parent_column="estimate_id",
            items=_lines("estimate_id"),
        )
    ],
)
"""QBO's unposted sales documents (Pending, Accepted; Closed once converted to an invoice, or Rejected): what
a Xero draft invoice is in QuickBooks (see mapping.py)."""

CREDIT_MEMOS = EntityTable(
    vendor=VENDOR,
    entity="CreditMemo",
    schema=VENDOR,
    table="credit_memos",
    key=["connection", "credit_memo_id"],
    record_id=_record_id,
    modified=modified,
    cols=[
        *_document_cols("credit_memo_id", "customer"),
        Col("remaining_credit", MONEY, money("RemainingCredit")),
        Col("balance", MONEY, money("Balance")),
        *_TIMES,
    ],
    children=[
        ChildTable(
            table="credit_memo_lines",
            cols=_line_cols("credit_memo_id"),
            key=["connection", "credit_memo_id", "line_id"],
            parent_column="credit_memo_id",
            items=_lines("credit_memo_id"),
        )
    ],
)

BILLS = EntityTable(
    vendor=VENDOR,
    entity="Bill",
    schema=VENDOR,
    table="bills",
    key=["connection", "bill_id"],
    record_id=_record_id,
    modified=modified,
    cols=[
        *_document_cols("bill_id", "vendor"),
        Col("due_date", "date", day("DueDate")),
        Col("balance", MONEY, money("Balance")),
        *_TIMES,
    ],
    children=[
        ChildTable(
            table="bill_lines",
            cols=_line_cols("bill_id"),
            key=["connection", "bill_id", "line_id"],
            parent_column="bill_id",
            items=_lines("bill_id"),
        )
    ],
)


# ---------------------------------------------------------------------------------------------
# Payments: a header and the documents each line settles (LinkedTxn)


def _linked(payload: dict) -> list[dict]:
    """One row per (payment line, linked transaction): what the payment settles."""
    out = []
    for n, line in enumerate(payload.get("Line") or [], start=1):
        if not isinstance(line, dict):
            raise TypeError("a payment line is not an object")
        for m, txn in enumerate(line.get("LinkedTxn") or [], start=1):
            if not isinstance(txn, dict):
                raise TypeError("a LinkedTxn is not an object")
            out.append({**txn, "Amount": line.get("Amount"), "_parent": payload["Id"], "_n": n, "_m": m})
    return out


PAYMENTS = EntityTable(
    vendor=VENDOR,
    entity="Payment",
    schema=VENDOR,
    table="payments",
    key=["connection", "payment_id"],
    record_id=_record_id,
    modified=modified,
    cols=[
        *_common("payment_id"),
        Col("txn_date", "date", day("TxnDate")),
        Col("customer_id", "varchar", path("CustomerRef.value")),
        Col("customer_name", "varchar", path("CustomerRef.name")),
        Col("currency", "varchar", path("CurrencyRef.value")),
        Col("exchange_rate", RATE, money("ExchangeRate")),
        Col("total_amt", MONEY, money("TotalAmt")),
        Col("unapplied_amt", MONEY, money("UnappliedAmt")),
        Col("payment_ref_num", "varchar", text("PaymentRefNum")),
        Col("deposit_account_id", "varchar", path("DepositToAccountRef.value")),
        Col("payment_method_id", "varchar", path("PaymentMethodRef.value")),
        Col("private_note", "varchar", text("PrivateNote")),
        Col("txn_status", "varchar", text("TxnStatus")),
        *_TIMES,
    ],
    children=[
        ChildTable(
            table="payment_lines",
            cols=[
                Col("payment_id", "varchar not null", lambda p: str(p["_parent"])),
                Col("line_id", "varchar not null", lambda p: f"{p['_n']}.{p['_m']}"),
                Col("line_no", "integer", lambda p: p["_n"]),
                Col("txn_id", "varchar", text("TxnId")),
                Col("txn_type", "varchar", text("TxnType")),
                Col("amount", MONEY, money("Amount")),
            ],
            key=["connection", "payment_id", "line_id"],
            parent_column="payment_id",
            items=_linked,
        )
    ],
)


# ---------------------------------------------------------------------------------------------
# Items, accounts, the company and its preferences

ITEMS = EntityTable(
    vendor=VENDOR,
    entity="Item",
    schema=VENDOR,
    table="items",
    key=["connection", "item_id"],
    record_id=_record_id,
    modified=modified,
    cols=[
        *_common("item_id"),
        Col("name", "varchar", text("Name")),
        Col("sku", "varchar", text("Sku")),
        Col("description", "varchar", text("Description")),
        Col("type", "varchar", text("Type")),
        Col("active", "boolean", flag("Active")),
        Col("taxable", "boolean", flag("Taxable")),
        Col("unit_price", PRICE, money("UnitPrice")),
        Col("purchase_cost", PRICE, money("PurchaseCost")),
        Col("income_account_id", "varchar", path("IncomeAccountRef.value")),
        Col("expense_account_id", "varchar", path("ExpenseAccountRef.value")),
        Col("sales_tax_code", "varchar", path("SalesTaxCodeRef.value")),
        *_TIMES,
    ],
)

ACCOUNTS = EntityTable(
    vendor=VENDOR,
    entity="Account",
    schema=VENDOR,
    table="accounts",
    key=["connection", "account_id"],
    record_id=_record_id,
    modified=modified,
    cols=[
        *_common("account_id"),
        Col("name", "varchar", text("Name")),
        Col("acct_num", "varchar", text("AcctNum")),
        Col("fully_qualified_name", "varchar", text("FullyQualifiedName")),
        Col("account_type", "varchar", text("AccountType")),
        Col("account_sub_type", "varchar", text("AccountSubType")),
        Col("classification", "varchar", text("Classification")),
        Col("active", "boolean", flag("Active")),
        Col("currency", "varchar", path("CurrencyRef.value")),
        Col("current_balance", MONEY, money("CurrentBalance")),
        Col("tax_code_id", "varchar", path("TaxCodeRef.value")),
        *_TIMES,
    ],
)

COMPANY_INFO = EntityTable(
    vendor=VENDOR,
    entity="CompanyInfo",
    schema=VENDOR,
    table="company_info",
    key=["connection", "company_id"],
    record_id=_record_id,
    modified=lambda p: None,  # read whole every run: it never moves a cursor
    cols=[
        *_common("company_id"),
        Col("company_name", "varchar", text("CompanyName")),
        Col("legal_name", "varchar", text("LegalName")),
        Col("country", "varchar", text("Country")),
        Col("email", "varchar", path("Email.Address")),
        Col("fiscal_year_start_month", "varchar", text("FiscalYearStartMonth")),
        Col("default_timezone", "varchar", text("DefaultTimeZone")),
        Col("company_start_date", "date", day("CompanyStartDate")),
        *_TIMES,
    ],
)

PREFERENCES = EntityTable(
    vendor=VENDOR,
    entity="Preferences",
    schema=VENDOR,
    table="preferences",
    key=["connection", "preferences_id"],
    record_id=_record_id,
    modified=lambda p: None,
    cols=[
        *_common("preferences_id"),
        Col("home_currency", "varchar", path("CurrencyPrefs.HomeCurrency.value")),
        Col("multi_currency", "boolean", lambda p: _at(p, "CurrencyPrefs.MultiCurrencyEnabled")),
        Col("default_item_id", "varchar", path("SalesFormsPrefs.DefaultItem.value")),
        Col("custom_txn_numbers", "boolean", lambda p: _at(p, "SalesFormsPrefs.CustomTxnNumbers")),
        Col("tax_enabled", "boolean", lambda p: _at(p, "TaxPrefs.UsingSalesTax")),
        *_TIMES,
    ],
)

ENTITIES = [
    CUSTOMERS,
    INVOICES,
    ESTIMATES,
    PAYMENTS,
    CREDIT_MEMOS,
    ITEMS,
    ACCOUNTS,
    COMPANY_INFO,
    PREFERENCES,
    BILLS,
]
