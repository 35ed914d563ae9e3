"""Xero payloads as typed mirror rows: one function per entity, one column list per table.

These are the `xero.*` current-state tables analysts query (DESIGN.md §3); the verbatim payload
always stays in `landing.records`.
"""

from __future__ import annotations

from decimal import Decimal

from xz_pipeline.xero.dates import parse_xero_datetime, to_decimal

CONTACTS_COLUMNS = """
    connection varchar not null,
    contact_id varchar not null,
    name varchar,
    first_name varchar,
    last_name varchar,
    email varchar,
    contact_number varchar,
    account_number varchar,
    tax_number varchar,
    contact_status varchar,
    is_customer boolean,
    is_supplier boolean,
    default_currency varchar,
    phone varchar,
    mobile varchar,
    street_line1 varchar,
    street_city varchar,
    street_region varchar,
    street_postal_code varchar,
    street_country varchar,
    postal_line1 varchar,
    postal_city varchar,
    postal_region varchar,
    postal_postal_code varchar,
    postal_country varchar,
    ar_outstanding decimal(18, 2),
    ar_overdue decimal(18, 2),
    ap_outstanding decimal(18, 2),
    ap_overdue decimal(18, 2),
    person_count integer,
    updated_utc timestamptz,
    fetched_at timestamptz not null,
    payload_hash varchar not null
"""
CONTACTS_KEY = ["connection", "contact_id"]


def _phone(payload: dict, kind: str) -> str | None:
    for phone in payload.get("Phones") or []:
        if phone.get("PhoneType") == kind and phone.get("PhoneNumber"):
            parts = [phone.get("PhoneCountryCode"), phone.get("PhoneAreaCode"), phone.get("PhoneNumber")]
            return " ".join(p for p in parts if p)
    return None


def _address(payload: dict, kind: str) -> dict:
    for address in payload.get("Addresses") or []:
        if address.get("AddressType") == kind:
            return address
    return {}


def _balance(payload: dict, side: str, which: str) -> Decimal | None:
    value = ((payload.get("Balances") or {}).get(side) or {}).get(which)
    return to_decimal(value) if value is not None else None


def contact_row(payload: dict) -> dict:
    """The typed row of one Contact payload (without connection/fetched_at/payload_hash)."""
    street, postal = _address(payload, "STREET"), _address(payload, "POBOX")
    return {
        "contact_id": payload["ContactID"],
        "name": payload.get("Name"),
        "first_name": payload.get("FirstName") or None,
        "last_name": payload.get("LastName") or None,
        "email": payload.get("EmailAddress") or None,
        "contact_number": payload.get("ContactNumber") or None,
        "account_number": payload.get("AccountNumber") or None,
        "tax_number": payload.get("TaxNumber") or None,
        "contact_status": payload.get("ContactStatus"),
        "is_customer": payload.get("IsCustomer"),
        "is_supplier": payload.get("IsSupplier"),
        "default_currency": payload.get("DefaultCurrency") or None,
        "phone": _phone(payload, "DEFAULT"),
        "mobile": _phone(payload, "MOBILE"),
        "street_line1": street.get("AddressLine1") or None,
        "street_city": street.get("City") or None,
        "street_region": street.get("Region") or None,
        "street_postal_code": street.get("PostalCode") or None,
        "street_country": street.get("Country") or None,
        "postal_line1": postal.get("AddressLine1") or None,
        "postal_city": postal.get("City") or None,
        "postal_region": postal.get("Region") or None,
        "postal_postal_code": postal.get("PostalCode") or None,
        "postal_country": postal.get("Country") or None,
        "ar_outstanding": _balance(payload, "AccountsReceivable", "Outstanding"),
        "ar_overdue": _balance(payload, "AccountsReceivable", "Overdue"),
        "ap_outstanding": _balance(payload, "AccountsPayable", "Outstanding"),
        "ap_overdue": _balance(payload, "AccountsPayable", "Overdue"),
        "person_count": len(payload.get("ContactPersons") or []),
        "updated_utc": parse_xero_datetime(payload.get("UpdatedDateUTC")),
    }
