"""Xero payloads as typed mirror tables: `xero.contacts`, `xero.invoices`, `xero.invoice_lines`, ...

Each table is a list of columns read from the payload (docs/architecture.md, the mirror); the verbatim payload always
stays in `landing.records`. Amounts are DECIMAL(18, 2) (unit prices 18, 4), times UTC.
"""

from __future__ import annotations

import json
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
    Nulled,
    flag,
    ident,
    nested,
    scalar,
    text,
)
from xz_pipeline.xero.dates import is_no_date, parse_xero_date, parse_xero_datetime, to_decimal


def money(field: str) -> Callable[[dict], Decimal | None]:
    return lambda p: to_decimal(p.get(field))  # a list or an object is "not an amount" there


def _no_date(value: Any) -> Any:
    """Xero sends .NET's DateTime.MinValue (`/Date(-62135596800000)/`, year 0001) for "no date"."""
    if is_no_date(value):
        raise Nulled("year 0001 is Xero's 'no date': stored as NULL")
    return value


def day(field: str) -> Callable[[dict], Any]:
    return lambda p: parse_xero_date(_no_date(p.get(field)))


def instant(field: str) -> Callable[[dict], Any]:
    return lambda p: parse_xero_datetime(_no_date(p.get(field)))


def modified(field: str) -> Callable[[dict], Any]:
    """The source-modified time; "no date" is none (so it never moves a cursor)."""
    return lambda p: None if is_no_date(p.get(field)) else parse_xero_datetime(p.get(field))


# ---------------------------------------------------------------------------------------------
# Contacts


def _phone(kind: str) -> Callable[[dict], str | None]:
    def get(payload: dict) -> str | None:
        for phone in payload.get("Phones") or []:
            if phone.get("PhoneType") == kind and phone.get("PhoneNumber"):
                parts = [phone.get("PhoneCountryCode"), phone.get("PhoneAreaCode"), phone.get("PhoneNumber")]
                return " ".join(str(scalar(p)) for p in parts if p)
        return None

    return get


def _address(kind: str, field: str) -> Callable[[dict], str | None]:
    def get(payload: dict) -> str | None:
        for address in payload.get("Addresses") or []:
            if address.get("AddressType") == kind:
                value = address.get(field)
                return str(scalar(value)) if value not in (None, "") else None
        return None

    return get


def _balance(side: str, which: str) -> Callable[[dict], Decimal | None]:
    return lambda p: to_decimal(((p.get("Balances") or {}).get(side) or {}).get(which))


def _address_cols(prefix: str, kind: str) -> list[Col]:
    fields = [("line1", "AddressLine1"), ("line2", "AddressLine2"), ("city", "City"), ("region", "Region"),
              ("postal_code", "PostalCode"), ("country", "Country")]  # fmt: skip
    return [Col(f"{prefix}_{name}", "varchar", _address(kind, field)) for name, field in fields]


CONTACTS = EntityTable(
    vendor="xero",
    entity="Contacts",
    schema="xero",
    table="contacts",
    key=["connection", "contact_id"],
    record_id=lambda p: p.get("ContactID", ""),
    modified=modified("UpdatedDateUTC"),
    cols=[
        Col("contact_id", "varchar not null", ident("ContactID")),
        Col("name", "varchar", text("Name")),
        Col("first_name", "varchar", text("FirstName")),
        Col("last_name", "varchar", text("LastName")),
        Col("email", "varchar", text("EmailAddress")),
        Col("contact_number", "varchar", text("ContactNumber")),
        Col("account_number", "varchar", text("AccountNumber")),
        Col("tax_number", "varchar", text("TaxNumber")),
        Col("contact_status", "varchar", text("ContactStatus")),
        Col("is_customer", "boolean", flag("IsCustomer")),
        Col("is_supplier", "boolean", flag("IsSupplier")),
        Col("default_currency", "varchar", text("DefaultCurrency")),
        Col("phone", "varchar", _phone("DEFAULT")),
        Col("mobile", "varchar", _phone("MOBILE")),
        *_address_cols("street", "STREET"),
        *_address_cols("postal", "POBOX"),
        Col("ar_outstanding", MONEY, _balance("AccountsReceivable", "Outstanding")),
        Col("ar_overdue", MONEY, _balance("AccountsReceivable", "Overdue")),
        Col("ap_outstanding", MONEY, _balance("AccountsPayable", "Outstanding")),
        Col("ap_overdue", MONEY, _balance("AccountsPayable", "Overdue")),
        Col("persons", "json", lambda p: _json_list(p.get("ContactPersons"))),
        Col("updated_utc", "timestamptz", instant("UpdatedDateUTC")),
    ],
)


def _json_list(value: Any) -> str | None:
    return json.dumps(value, separators=(",", ":")) if value else None


# ---------------------------------------------------------------------------------------------
# Invoices and their lines (also the shape of credit notes)


def _line_cols(parent_col: str, parent_field: str) -> list[Col]:
    return [
        Col(parent_col, "varchar not null", ident(parent_field)),
        Col("line_item_id", "varchar not null", lambda p: p.get("LineItemID") or f"line-{p['_line_no']}"),
        Col("line_no", "integer", lambda p: p["_line_no"]),
        Col("description", "varchar", text("Description")),
        Col("item_code", "varchar", text("ItemCode")),
        Col("account_code", "varchar", text("AccountCode")),
        Col("tax_type", "varchar", text("TaxType")),
        Col("quantity", PRICE, money("Quantity")),
        Col("unit_amount", PRICE, money("UnitAmount")),
        Col("discount_rate", MONEY, money("DiscountRate")),
        Col("line_amount", MONEY, money("LineAmount")),
        Col("tax_amount", MONEY, money("TaxAmount")),
    ]


def _lines(parent_field: str) -> Callable[[dict], list[dict]]:
    def items(payload: dict) -> list[dict]:
        return [
            {**line, parent_field: payload[parent_field], "_line_no": n}
            for n, line in enumerate(payload.get("LineItems") or [], start=1)
        ]

    return items


def _document_cols(id_col: str, id_field: str, number_field: str) -> list[Col]:
    return [
        Col(id_col, "varchar not null", ident(id_field)),
        Col("number", "varchar", text(number_field)),
        Col("type", "varchar", text("Type")),
        Col("status", "varchar", text("Status")),
        Col("contact_id", "varchar", nested("Contact.ContactID")),
        Col("contact_name", "varchar", nested("Contact.Name")),
        Col("reference", "varchar", text("Reference")),
        Col("date", "date", day("Date")),
        Col("due_date", "date", day("DueDate")),
        Col("currency_code", "varchar", text("CurrencyCode")),
        Col("currency_rate", RATE, money("CurrencyRate")),
        Col("line_amount_types", "varchar", text("LineAmountTypes")),
        Col("sub_total", MONEY, money("SubTotal")),
        Col("total_tax", MONEY, money("TotalTax")),
        Col("total", MONEY, money("Total")),
        Col("fully_paid_on", "date", day("FullyPaidOnDate")),
        Col("updated_utc", "timestamptz", instant("UpdatedDateUTC")),
    ]


INVOICES = EntityTable(
    vendor="xero",
    entity="Invoices",
    schema="xero",
    table="invoices",
    key=["connection", "invoice_id"],
    record_id=lambda p: p.get("InvoiceID", ""),
    modified=modified("UpdatedDateUTC"),
    cols=[
        *_document_cols("invoice_id", "InvoiceID", "InvoiceNumber"),
        Col("amount_due", MONEY, money("AmountDue")),
        Col("amount_paid", MONEY, money("AmountPaid")),
        Col("amount_credited", MONEY, money("AmountCredited")),
        Col("sent_to_contact", "boolean", flag("SentToContact")),
    ],
    children=[
        ChildTable(
            table="invoice_lines",
            cols=_line_cols("invoice_id", "InvoiceID"),
            key=["connection", "invoice_id", "line_item_id"],
            parent_column="invoice_id",
            items=_lines("InvoiceID"),
        )
    ],
)


def _allocations(payload: dict) -> list[dict]:
    return [
        {**a, "CreditNoteID": payload["CreditNoteID"], "_n": n}
        for n, a in enumerate(payload.get("Allocations") or [], start=1)
    ]


CREDIT_NOTES = EntityTable(
    vendor="xero",
    entity="CreditNotes",
    schema="xero",
    table="credit_notes",
    key=["connection", "credit_note_id"],
    record_id=lambda p: p.get("CreditNoteID", ""),
    modified=modified("UpdatedDateUTC"),
    cols=[
        *_document_cols("credit_note_id", "CreditNoteID", "CreditNoteNumber"),
        Col("remaining_credit", MONEY, money("RemainingCredit")),
        Col("applied_amount", MONEY, money("AppliedAmount")),
    ],
    children=[
        ChildTable(
            table="credit_note_lines",
            cols=_line_cols("credit_note_id", "CreditNoteID"),
            key=["connection", "credit_note_id", "line_item_id"],
            parent_column="credit_note_id",
            items=_lines("CreditNoteID"),
        ),
        ChildTable(
            table="credit_note_allocations",
            cols=[
                Col("credit_note_id", "varchar not null", ident("CreditNoteID")),
                Col(
                    "allocation_id", "varchar not null", lambda p: p.get("AllocationID") or f"alloc-{p['_n']}"
                ),
                Col("invoice_id", "varchar", nested("Invoice.InvoiceID")),
                Col("amount", MONEY, money("Amount")),
                Col("date", "date", day("Date")),
            ],
            key=["connection", "credit_note_id", "allocation_id"],
            parent_column="credit_note_id",
            items=_allocations,
        ),
    ],
)

PAYMENTS = EntityTable(
    vendor="xero",
    entity="Payments",
    schema="xero",
    table="payments",
    key=["connection", "payment_id"],
    record_id=lambda p: p.get("PaymentID", ""),
    modified=modified("UpdatedDateUTC"),
    cols=[
        Col("payment_id", "varchar not null", ident("PaymentID")),
        Col("invoice_id", "varchar", nested("Invoice.InvoiceID")),
        Col("credit_note_id", "varchar", nested("CreditNote.CreditNoteID")),
        Col("account_id", "varchar", nested("Account.AccountID")),
        Col("account_code", "varchar", nested("Account.Code")),
        Col("payment_type", "varchar", text("PaymentType")),
        Col("status", "varchar", text("Status")),
        Col("date", "date", day("Date")),
        Col("amount", MONEY, money("Amount")),
        Col("bank_amount", MONEY, money("BankAmount")),
        Col("currency_rate", RATE, money("CurrencyRate")),
        Col("reference", "varchar", text("Reference")),
        Col("is_reconciled", "boolean", flag("IsReconciled")),
        Col("updated_utc", "timestamptz", instant("UpdatedDateUTC")),
    ],
)

ITEMS = EntityTable(
    vendor="xero",
    entity="Items",
    schema="xero",
    table="items",
    key=["connection", "item_id"],
    record_id=lambda p: p.get("ItemID", ""),
    modified=modified("UpdatedDateUTC"),
    cols=[
        Col("item_id", "varchar not null", ident("ItemID")),
        Col("code", "varchar", text("Code")),
        Col("name", "varchar", text("Name")),
        Col("description", "varchar", text("Description")),
        Col("is_sold", "boolean", flag("IsSold")),
        Col("is_purchased", "boolean", flag("IsPurchased")),
        Col("sales_unit_price", PRICE, lambda p: to_decimal((p.get("SalesDetails") or {}).get("UnitPrice"))),
        Col("sales_account_code", "varchar", nested("SalesDetails.AccountCode")),
        Col("sales_tax_type", "varchar", nested("SalesDetails.TaxType")),
        Col("updated_utc", "timestamptz", instant("UpdatedDateUTC")),
    ],
)

ACCOUNTS = EntityTable(
    vendor="xero",
    entity="Accounts",
    schema="xero",
    table="accounts",
    key=["connection", "account_id"],
    record_id=lambda p: p.get("AccountID", ""),
    modified=modified("UpdatedDateUTC"),
    cols=[
        Col("account_id", "varchar not null", ident("AccountID")),
        Col("code", "varchar", text("Code")),
        Col("name", "varchar", text("Name")),
        Col("type", "varchar", text("Type")),
        Col("class", "varchar", text("Class")),
        Col("status", "varchar", text("Status")),
        Col("tax_type", "varchar", text("TaxType")),
        Col("currency_code", "varchar", text("CurrencyCode")),
        Col("system_account", "varchar", text("SystemAccount")),
        Col("enable_payments", "boolean", flag("EnablePaymentsToAccount")),
        Col("updated_utc", "timestamptz", instant("UpdatedDateUTC")),
    ],
)

ORGANISATION = EntityTable(
    vendor="xero",
    entity="Organisation",
    schema="xero",
    table="organisation",
    key=["connection", "organisation_id"],
    record_id=lambda p: p.get("OrganisationID", ""),
    modified=lambda p: None,  # Organisation has no UpdatedDateUTC: it is read whole every run
    cols=[
        Col("organisation_id", "varchar not null", ident("OrganisationID")),
        Col("name", "varchar", text("Name")),
        Col("legal_name", "varchar", text("LegalName")),
        Col("short_code", "varchar", text("ShortCode")),
        Col("base_currency", "varchar", text("BaseCurrency")),
        Col("country_code", "varchar", text("CountryCode")),
        Col("timezone", "varchar", text("Timezone")),
        Col("organisation_type", "varchar", text("OrganisationType")),
        Col("is_demo_company", "boolean", flag("IsDemoCompany")),
        Col("created_utc", "timestamptz", instant("CreatedDateUTC")),
    ],
)

ENTITIES = [CONTACTS, INVOICES, PAYMENTS, CREDIT_NOTES, ITEMS, ACCOUNTS, ORGANISATION]
