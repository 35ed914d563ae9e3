"""Salesforce records as typed mirror tables: `salesforce.accounts`, `.contacts`, `.opportunities`,
`.opportunity_line_items`, `.products` (each with `_history`).

Each table is a list of columns read from the record; the verbatim record (its `attributes` included)
always stays in `landing.records`. Parent fields a query reads through a relationship (`Account.Name`)
arrive nested and become `<name>` columns. `SystemModstamp` is the cursor: it moves on every change,
system ones included.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from xz_pipeline.core.mirror import MONEY, PRICE, Col, EntityTable, flag, ident, nested, text
from xz_pipeline.salesforce.dates import parse_sf_date, parse_sf_datetime, to_decimal
from xz_pipeline.salesforce.fieldmap import DEFAULT, FieldMap

VENDOR = "salesforce"
MODIFIED = "SystemModstamp"


def money(name: str) -> Callable[[dict], Any]:
    return lambda p: to_decimal(p.get(name))


def day(name: str) -> Callable[[dict], Any]:
    return lambda p: parse_sf_date(p.get(name))


def instant(name: str) -> Callable[[dict], Any]:
    return lambda p: parse_sf_datetime(p.get(name))


def address(prefix: str, kind: str) -> list[Col]:
    """A compound address (`BillingStreet`, `BillingCity`, …) as five columns."""
    return [
        Col(f"{prefix}_street", "varchar", text(f"{kind}Street")),
        Col(f"{prefix}_city", "varchar", text(f"{kind}City")),
        Col(f"{prefix}_state", "varchar", text(f"{kind}State")),
        Col(f"{prefix}_postal_code", "varchar", text(f"{kind}PostalCode")),
        Col(f"{prefix}_country", "varchar", text(f"{kind}Country")),
    ]


SYSTEM = [
    Col("owner_id", "varchar", text("OwnerId")),
    Col("created_date", "timestamptz", instant("CreatedDate")),
    Col("last_modified_date", "timestamptz", instant("LastModifiedDate")),
    Col("system_modstamp", "timestamptz", instant(MODIFIED)),
]
NO_OWNER = [c for c in SYSTEM if c.name != "owner_id"]  # line items belong to their opportunity's owner


def _object(sobject: str, table: str, cols: list[Col], system: list[Col] = SYSTEM) -> EntityTable:
    return EntityTable(
        vendor=VENDOR,
        entity=sobject,
        schema=VENDOR,
        table=table,
        key=["connection", cols[0].name],
        record_id=lambda p: p.get("Id", ""),
        modified=instant(MODIFIED),
        cols=[*cols, *system],
    )


def _ours(fm: FieldMap, sobject: str, name: str) -> Callable[[dict], Any]:
    """One of our picklist fields, read under the org's name and put back in our words."""
    read = text(fm.api(sobject, name))
    return lambda p: fm.value_in(sobject, name, read(p))


def _build(fm: FieldMap) -> dict[str, EntityTable]:
    accounts = _object("Account", "accounts", [
        Col("account_id", "varchar not null", ident("Id")),
        Col("name", "varchar", text("Name")),
        Col("account_number", "varchar", text("AccountNumber")),
        Col("type", "varchar", text("Type")),
        Col("phone", "varchar", text("Phone")),
        Col("fax", "varchar", text("Fax")),
        Col("website", "varchar", text("Website")),
        *address("billing", "Billing"),
        *address("shipping", "Shipping"),
        Col("currency", "varchar", text("CurrencyIsoCode")),
        Col("books_customer_id", "varchar", text(fm.api("Account", "Books_Customer_Id__c"))),
        Col("tax_number", "varchar", text(fm.api("Account", "Tax_Number__c"))),
        Col("outstanding_balance", MONEY, money(fm.api("Account", "Outstanding_Balance__c"))),
        Col("overdue_balance", MONEY, money(fm.api("Account", "Overdue_Balance__c"))),
        Col("payment_risk", "varchar", _ours(fm, "Account", "Payment_Risk__c")),
        Col("expected_pay_date", "date", day(fm.api("Account", "Expected_Pay_Date__c"))),
    ])  # fmt: skip
    contacts = _object("Contact", "contacts", [
        Col("contact_id", "varchar not null", ident("Id")),
        Col("account_id", "varchar", text("AccountId")),
        Col("first_name", "varchar", text("FirstName")),
        Col("last_name", "varchar", text("LastName")),
        Col("name", "varchar", text("Name")),
        Col("email", "varchar", text("Email")),
        Col("phone", "varchar", text("Phone")),
        Col("mobile_phone", "varchar", text("MobilePhone")),
        Col("title", "varchar", text("Title")),
        *address("mailing", "Mailing"),
    ])  # fmt: skip
    opportunities = _object("Opportunity", "opportunities", [
        Col("opportunity_id", "varchar not null", ident("Id")),
        Col("name", "varchar", text("Name")),
        Col("stage_name", "varchar", text("StageName")),
        Col("is_won", "boolean", flag("IsWon")),
        Col("is_closed", "boolean", flag("IsClosed")),
        Col("probability", PRICE, money("Probability")),
        Col("amount", MONEY, money("Amount")),
        Col("currency", "varchar", text("CurrencyIsoCode")),
        Col("close_date", "date", day("CloseDate")),
        Col("type", "varchar", text("Type")),
        Col("forecast_category", "varchar", text("ForecastCategoryName")),
        Col("account_id", "varchar", text("AccountId")),
        Col("account_name", "varchar", nested("Account.Name")),
        Col("contact_id", "varchar", text("ContactId")),
        Col("books_invoice_id", "varchar", text(fm.api("Opportunity", "Books_Invoice_Id__c"))),
        Col("books_invoice_number", "varchar", text(fm.api("Opportunity", "Books_Invoice_Number__c"))),
        Col("payment_status", "varchar", _ours(fm, "Opportunity", "Payment_Status__c")),
        Col("amount_paid", MONEY, money(fm.api("Opportunity", "Amount_Paid__c"))),
        Col("last_payment_date", "date", day(fm.api("Opportunity", "Last_Payment_Date__c"))),
        Col("payment_risk", "varchar", _ours(fm, "Opportunity", "Payment_Risk__c")),
        Col("expected_pay_date", "date", day(fm.api("Opportunity", "Expected_Pay_Date__c"))),
    ])  # fmt: skip
    return {"Account": accounts, "Contact": contacts, "Opportunity": opportunities}


LINE_ITEMS = _object("OpportunityLineItem", "opportunity_line_items", [
    Col("line_item_id", "varchar not null", ident("Id")),
    Col("opportunity_id", "varchar", text("OpportunityId")),
    Col("sort_order", "integer", lambda p: p.get("SortOrder")),
    Col("product_id", "varchar", text("Product2Id")),
    Col("product_code", "varchar", text("ProductCode")),
    Col("product_name", "varchar", nested("Product2.Name")),
    Col("name", "varchar", text("Name")),
    Col("description", "varchar", text("Description")),
    Col("quantity", PRICE, money("Quantity")),
    Col("unit_price", PRICE, money("UnitPrice")),
    Col("list_price", PRICE, money("ListPrice")),
    Col("discount", PRICE, money("Discount")),
    Col("total_price", MONEY, money("TotalPrice")),
], NO_OWNER)  # fmt: skip

PRODUCTS = _object("Product2", "products", [
    Col("product_id", "varchar not null", ident("Id")),
    Col("name", "varchar", text("Name")),
    Col("code", "varchar", text("ProductCode")),
    Col("description", "varchar", text("Description")),
    Col("family", "varchar", text("Family")),
    Col("is_active", "boolean", flag("IsActive")),
], NO_OWNER)  # fmt: skip

_DEFAULT = _build(DEFAULT)
ACCOUNTS, CONTACTS, OPPORTUNITIES = (_DEFAULT[s] for s in ("Account", "Contact", "Opportunity"))
ENTITIES = [ACCOUNTS, CONTACTS, OPPORTUNITIES, LINE_ITEMS, PRODUCTS]


@lru_cache(maxsize=64)
def specs(fm: FieldMap = DEFAULT) -> dict[str, EntityTable]:
    """Every sObject's typed table for an org mapped as `fm`."""
    built = _build(fm) if fm != DEFAULT else _DEFAULT
    return {**built, "OpportunityLineItem": LINE_ITEMS, "Product2": PRODUCTS}


_SYSTEM_FIELDS = ["CreatedDate", "LastModifiedDate", MODIFIED]
_FIELDS = {
    "Account": ["Name", "AccountNumber", "Type", "Phone", "Fax", "Website", "BillingStreet", "BillingCity",
                "BillingState", "BillingPostalCode", "BillingCountry", "ShippingStreet", "ShippingCity",
                "ShippingState", "ShippingPostalCode", "ShippingCountry", "CurrencyIsoCode", "Books_Customer_Id__c",
                "Tax_Number__c", "Outstanding_Balance__c", "Overdue_Balance__c", "Payment_Risk__c",
                "Expected_Pay_Date__c", "OwnerId"],
    "Contact": ["AccountId", "FirstName", "LastName", "Name", "Email", "Phone", "MobilePhone", "Title",
                "MailingStreet", "MailingCity", "MailingState", "MailingPostalCode", "MailingCountry", "OwnerId"],
    "Opportunity": ["Name", "StageName", "IsWon", "IsClosed", "Probability", "Amount", "CurrencyIsoCode",
                    "CloseDate", "Type", "ForecastCategoryName", "AccountId", "Account.Name", "ContactId",
                    "Books_Invoice_Id__c", "Books_Invoice_Number__c", "Payment_Status__c", "Amount_Paid__c",
                    "Last_Payment_Date__c", "Payment_Risk__c", "Expected_Pay_Date__c", "OwnerId"],
    "OpportunityLineItem": ["OpportunityId", "SortOrder", "Product2Id", "ProductCode", "Product2.Name", "Name",
                            "Description", "Quantity", "UnitPrice", "ListPrice", "Discount", "TotalPrice"],
    "Product2": ["Name", "ProductCode", "Description", "Family", "IsActive"],
}  # fmt: skip
FIELDS = {sobject: [*fields, *_SYSTEM_FIELDS] for sobject, fields in _FIELDS.items()}
"""What each query wants, in our names (the org's schema keeps what it has: `salesforce/schema.py`)."""


def fields(sobject: str, fm: FieldMap = DEFAULT) -> list[str]:
    """The fields a query of `sobject` asks for, in the org's names."""
    return [fm.api(sobject, f) for f in FIELDS[sobject]]
