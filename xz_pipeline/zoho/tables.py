"""Zoho CRM records as typed mirror tables: `zoho.accounts`, `zoho.contacts`, `zoho.deals`, ...

Each table is a list of columns read from the record (docs/architecture.md, the mirror); the verbatim record always stays
in `landing.records`. Lookups (`{"id", "name"}`) become `<name>_id` / `<name>_name` columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from xz_pipeline.core.mirror import (
    MONEY,
    PRICE,
    ChildTable,
    Col,
    EntityTable,
    flag,
    ident,
    nested,
    scalar,
    text,
)
from xz_pipeline.zoho.dates import parse_zoho_date, parse_zoho_datetime, to_decimal
from xz_pipeline.zoho.fieldmap import DEFAULT, FieldMap


def money(field: str) -> Callable[[dict], Any]:
    return lambda p: to_decimal(p.get(field))  # a list or an object is "not an amount" there


def integer(field: str) -> Callable[[dict], Any]:
    """A whole number as sent (the column's type check refuses "high", and "50" too: Zoho sends numbers)."""
    return lambda p: p.get(field)


def day(field: str) -> Callable[[dict], Any]:
    return lambda p: parse_zoho_date(p.get(field))


def instant(field: str) -> Callable[[dict], Any]:
    return lambda p: parse_zoho_datetime(p.get(field))


def tags(payload: dict) -> str | None:
    names = [str(scalar(t.get("name"))) for t in payload.get("Tag") or [] if t.get("name")]
    return json.dumps(sorted(names)) if names else None


def lookup(field: str) -> list[Col]:
    """A lookup field as two columns: the related record's id and its name."""
    base = field.lower().removesuffix("_name") if field != "Owner" else "owner"
    return [
        Col(f"{base}_id", "varchar", nested(f"{field}.id")),
        Col(f"{base}_name", "varchar", nested(f"{field}.name")),
    ]


def address(prefix: str, street: str, city: str, state: str, code: str, country: str) -> list[Col]:
    return [
        Col(f"{prefix}_street", "varchar", text(street)),
        Col(f"{prefix}_city", "varchar", text(city)),
        Col(f"{prefix}_state", "varchar", text(state)),
        Col(f"{prefix}_code", "varchar", text(code)),
        Col(f"{prefix}_country", "varchar", text(country)),
    ]


SYSTEM = [
    *lookup("Owner"),
    Col("tags", "json", tags),
    Col("created_time", "timestamptz", instant("Created_Time")),
    Col("modified_time", "timestamptz", instant("Modified_Time")),
]


def _module(module: str, table: str, cols: list[Col], children=()) -> EntityTable:
    id_col = cols[0].name
    return EntityTable(
        vendor="zoho",
        entity=module,
        schema="zoho",
        table=table,
        key=["connection", id_col],
        record_id=lambda p: p.get("id", ""),
        modified=instant("Modified_Time"),
        cols=[*cols, *SYSTEM],
        children=children,
    )


def _ours(fm: FieldMap, module: str, field: str) -> Callable[[dict], Any]:
    """One of our picklist fields, read under the org's name and put back in our words."""
    read = text(fm.api(module, field))
    return lambda p: fm.value_in(module, field, read(p))


# A Closed Won deal's Products related list, read by the extract (zoho/assets.py) and carried in the deal's
# landed payload under this key (Zoho's own keys never start with `$related`).
RELATED_PRODUCTS = "$related_products"
DEAL_PRODUCT_FIELDS = ["Product_Name", "Product_Code", "Unit_Price", "Quantity", "List_Price"]


def _deal_products(payload: dict) -> list[dict]:
    return [
        {**item, "_deal_id": str(payload["id"]), "_n": n}
        for n, item in enumerate(payload.get(RELATED_PRODUCTS) or [], start=1)
    ]


def _invoice_items(payload: dict) -> list[dict]:
    return [
        {**item, "_invoice_id": str(payload["id"]), "_n": n}
        for n, item in enumerate(payload.get("Invoiced_Items") or [], start=1)
    ]


def _line_tax_percent(item: dict) -> Any:
    taxes = item.get("Line_Tax") or []
    return sum((to_decimal(t.get("percentage")) or 0 for t in taxes), start=to_decimal(0)) if taxes else None


def _build(fm: FieldMap) -> dict[str, EntityTable]:
    """The typed tables of an org whose own fields are named as `fm` says (ours by default)."""
    accounts = _module(
        "Accounts",
        "accounts",
        [
            Col("account_id", "varchar not null", ident("id")),
            Col("name", "varchar", text("Account_Name")),
            Col("account_number", "varchar", text("Account_Number")),
            Col("phone", "varchar", text("Phone")),
            Col("website", "varchar", text("Website")),
            Col("account_type", "varchar", text("Account_Type")),
            *address(
                "billing",
                "Billing_Street",
                "Billing_City",
                "Billing_State",
                "Billing_Code",
                "Billing_Country",
            ),
            *address(
                "shipping",
                "Shipping_Street",
                "Shipping_City",
                "Shipping_State",
                "Shipping_Code",
                "Shipping_Country",
            ),
            Col("currency", "varchar", text("Currency")),
            Col("xero_contact_id", "varchar", text(fm.api("Accounts", "Xero_Contact_ID"))),
            Col("tax_number", "varchar", text(fm.api("Accounts", "Tax_Number"))),
            Col("outstanding_balance", MONEY, money(fm.api("Accounts", "Outstanding_Balance"))),
            Col("overdue_balance", MONEY, money(fm.api("Accounts", "Overdue_Balance"))),
            Col("payment_risk", "varchar", _ours(fm, "Accounts", "Payment_Risk")),
            Col("expected_pay_date", "date", day(fm.api("Accounts", "Expected_Pay_Date"))),
        ],
    )

    contacts = _module(
        "Contacts",
        "contacts",
        [
            Col("contact_id", "varchar not null", ident("id")),
            *lookup("Account_Name"),
            Col("first_name", "varchar", text("First_Name")),
            Col("last_name", "varchar", text("Last_Name")),
            Col("full_name", "varchar", text("Full_Name")),
            Col("email", "varchar", text("Email")),
            Col("secondary_email", "varchar", text("Secondary_Email")),
            Col("phone", "varchar", text("Phone")),
            Col("mobile", "varchar", text("Mobile")),
            Col("title", "varchar", text("Title")),
            *address(
                "mailing", "Mailing_Street", "Mailing_City", "Mailing_State", "Mailing_Zip", "Mailing_Country"
            ),
        ],
    )

    deals = _module(
        "Deals",
        "deals",
        [
            Col("deal_id", "varchar not null", ident("id")),
            Col("name", "varchar", text("Deal_Name")),
            Col("stage", "varchar", text("Stage")),
            Col("pipeline", "varchar", text("Pipeline")),
            Col("closing_date", "date", day("Closing_Date")),
            Col("amount", MONEY, money("Amount")),
            Col("probability", "integer", integer("Probability")),
            Col("currency", "varchar", text("Currency")),
            *lookup("Account_Name"),
            *lookup("Contact_Name"),
            Col("xero_invoice_id", "varchar", text(fm.api("Deals", "Xero_Invoice_ID"))),
            Col("xero_invoice_number", "varchar", text(fm.api("Deals", "Xero_Invoice_Number"))),
            Col("payment_status", "varchar", _ours(fm, "Deals", "Payment_Status")),
            Col("amount_paid", MONEY, money(fm.api("Deals", "Amount_Paid"))),
            Col("last_payment_date", "date", day(fm.api("Deals", "Last_Payment_Date"))),
            Col("payment_risk", "varchar", _ours(fm, "Deals", "Payment_Risk")),
            Col("expected_pay_date", "date", day(fm.api("Deals", "Expected_Pay_Date"))),
        ],
        children=[
            ChildTable(
                table="deal_products",
                cols=[
                    Col("deal_id", "varchar not null", ident("_deal_id")),
                    Col("product_id", "varchar not null", ident("id")),
                    Col("line_no", "integer", lambda p: p["_n"]),
                    Col("product_name", "varchar", text("Product_Name")),
                    Col("product_code", "varchar", text("Product_Code")),
                    Col("quantity", PRICE, money("Quantity")),
                    Col("list_price", PRICE, money("List_Price")),
                    Col("unit_price", PRICE, money("Unit_Price")),
                ],
                key=["connection", "deal_id", "product_id"],
                parent_column="deal_id",
                items=_deal_products,
                present=lambda p: RELATED_PRODUCTS in p,  # read only for the deals that need it
            )
        ],
    )

    invoices = _module(
        "Invoices",
        "invoices",
        [
            Col("invoice_id", "varchar not null", ident("id")),
            Col("subject", "varchar", text("Subject")),
            Col("invoice_number", "varchar", text("Invoice_Number")),
            Col("invoice_date", "date", day("Invoice_Date")),
            Col("due_date", "date", day("Due_Date")),
            Col("status", "varchar", text("Status")),
            *lookup("Account_Name"),
            *lookup("Contact_Name"),
            *lookup("Deal_Name"),
            Col("currency", "varchar", text("Currency")),
            Col("sub_total", MONEY, money("Sub_Total")),
            Col("discount", MONEY, money("Discount")),
            Col("tax", MONEY, money("Tax")),
            Col("adjustment", MONEY, money("Adjustment")),
            Col("grand_total", MONEY, money("Grand_Total")),
            Col("xero_invoice_id", "varchar", text(fm.api("Invoices", "Xero_Invoice_ID"))),
            Col("payment_status", "varchar", _ours(fm, "Invoices", "Payment_Status")),
            Col("amount_paid", MONEY, money(fm.api("Invoices", "Amount_Paid"))),
            Col("last_payment_date", "date", day(fm.api("Invoices", "Last_Payment_Date"))),
        ],
        children=[
            ChildTable(
                table="invoice_items",
                cols=[
                    Col("invoice_id", "varchar not null", ident("_invoice_id")),
                    Col(
                        "item_id",
                        "varchar not null",
                        lambda p: ident("id")(p) if p.get("id") else f"item-{p['_n']}",
                    ),
                    Col("line_no", "integer", lambda p: p["_n"]),
                    *lookup("Product_Name"),
                    Col("description", "varchar", text("Description")),
                    Col("quantity", PRICE, money("Quantity")),
                    Col("list_price", PRICE, money("List_Price")),
                    Col("discount", MONEY, money("Discount")),
                    Col("total", MONEY, money("Total")),
                    Col("net_total", MONEY, money("Net_Total")),
                    Col("tax_percent", PRICE, _line_tax_percent),
                ],
                key=["connection", "invoice_id", "item_id"],
                parent_column="invoice_id",
                items=_invoice_items,
                present=lambda p: (
                    "Invoiced_Items" in p
                ),  # list calls omit subforms: only a GET by id has them
            )
        ],
    )
    return {"Accounts": accounts, "Contacts": contacts, "Deals": deals, "Invoices": invoices}


PRODUCTS = _module(
    "Products",
    "products",
    [
        Col("product_id", "varchar not null", ident("id")),
        Col("name", "varchar", text("Product_Name")),
        Col("code", "varchar", text("Product_Code")),
        Col("active", "boolean", flag("Product_Active")),
        Col("unit_price", PRICE, money("Unit_Price")),
        Col("taxable", "boolean", flag("Taxable")),
        Col("description", "varchar", text("Description")),
    ],
)

_DEFAULT = _build(DEFAULT)
ACCOUNTS, CONTACTS, DEALS, INVOICES = (_DEFAULT[m] for m in ("Accounts", "Contacts", "Deals", "Invoices"))
ENTITIES = [ACCOUNTS, CONTACTS, DEALS, INVOICES, PRODUCTS]


@lru_cache(maxsize=64)
def specs(fm: FieldMap = DEFAULT) -> dict[str, EntityTable]:
    """Every module's typed table for an org mapped as `fm` (the same tables; the org's names read)."""
    return {**_build(fm), "Products": PRODUCTS} if fm != DEFAULT else {e.entity: e for e in ENTITIES}


# The API fields a list call asks for (`fields` is mandatory on Zoho lists), system fields added below.
_FIELDS = {
    "Accounts": ["Account_Name", "Account_Number", "Phone", "Website", "Account_Type", "Billing_Street",
                 "Billing_City", "Billing_State", "Billing_Code", "Billing_Country", "Shipping_Street",
                 "Shipping_City", "Shipping_State", "Shipping_Code", "Shipping_Country", "Currency",
                 "Xero_Contact_ID", "Tax_Number", "Outstanding_Balance", "Overdue_Balance", "Payment_Risk",
                 "Expected_Pay_Date"],
    "Contacts": ["Account_Name", "First_Name", "Last_Name", "Full_Name", "Email", "Secondary_Email", "Phone",
                 "Mobile", "Title", "Mailing_Street", "Mailing_City", "Mailing_State", "Mailing_Zip",
                 "Mailing_Country"],
    "Deals": ["Deal_Name", "Stage", "Pipeline", "Closing_Date", "Amount", "Probability", "Currency",
              "Account_Name", "Contact_Name", "Xero_Invoice_ID", "Xero_Invoice_Number", "Payment_Status",
              "Amount_Paid", "Last_Payment_Date", "Payment_Risk", "Expected_Pay_Date"],
    "Invoices": ["Subject", "Invoice_Number", "Invoice_Date", "Due_Date", "Status", "Account_Name",
                 "Contact_Name", "Deal_Name", "Currency", "Sub_Total", "Discount", "Tax", "Adjustment",
                 "Grand_Total", "Xero_Invoice_ID", "Payment_Status", "Amount_Paid", "Last_Payment_Date"],
    "Products": ["Product_Name", "Product_Code", "Product_Active", "Unit_Price", "Taxable", "Description"],
}  # fmt: skip
SYSTEM_FIELDS = ["Owner", "Tag", "Created_Time", "Modified_Time"]
FIELDS = {module: [*fields, *SYSTEM_FIELDS] for module, fields in _FIELDS.items()}
"""What each list call wants, in our names (an org's schema keeps what it has: `zoho/schema.py`)."""


def fields(module: str, fm: FieldMap = DEFAULT) -> list[str]:
    """The fields a list call of `module` asks for, in the org's names."""
    return [fm.api(module, f) for f in FIELDS[module]]
