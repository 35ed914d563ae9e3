"""Xero <-> the canonical model (the **books** role): views over `xero.*`, payloads to records and back.

Only this folder names Xero's fields; everything after the mirror reads `canonical.books_*` and the
records in `core.canonical`. One vocabulary table per Xero enum drives both the SQL views and the
Python mappings, so the two cannot disagree.

Choices worth knowing:
- A books contact's billing address is its POBOX (postal) address — the one Xero prints on invoices —
  else its STREET address; the canonical kinds are billing (POBOX) and shipping (STREET).
- SUBMITTED (awaiting approval) is a draft: nothing is posted until AUTHORISED.
- `ContactNumber` is where our write-back stores the CRM id: it is the customer's `crm_id` link.
- Payloads written back omit fields the record leaves empty (Xero then keeps what it has), and never
  send PAID: Xero sets it itself when the amount due reaches zero.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from xz_pipeline.core.canonical import (
    Address,
    AddressKind,
    Allocation,
    CreditNote,
    Customer,
    CustomerStatus,
    DocumentStatus,
    DocumentType,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentState,
    Person,
    Phone,
    PhoneKind,
    Product,
    Role,
    TaxMode,
    project,
    sql_case,
)
from xz_pipeline.xero.dates import parse_xero_date, parse_xero_datetime, request_date, to_decimal

# ---------------------------------------------------------------------------------------------
# Vocabularies (Xero value -> canonical value)

DOCUMENT_STATUS: dict[str, str] = {
    "DRAFT": DocumentStatus.DRAFT,
    "SUBMITTED": DocumentStatus.DRAFT,
    "AUTHORISED": DocumentStatus.OPEN,
    "PAID": DocumentStatus.PAID,
    "VOIDED": DocumentStatus.VOID,
    "DELETED": DocumentStatus.DELETED,
}
DOCUMENT_TYPE: dict[str, str] = {
    "ACCREC": DocumentType.SALE,
    "ACCPAY": DocumentType.BILL,
    "ACCRECCREDIT": DocumentType.SALE,
    "ACCPAYCREDIT": DocumentType.BILL,
    "AROVERPAYMENT": DocumentType.SALE,
    "ARPREPAYMENT": DocumentType.SALE,
    "APOVERPAYMENT": DocumentType.BILL,
    "APPREPAYMENT": DocumentType.BILL,
}
PAYMENT_TYPE: dict[str, str] = {
    "ACCRECPAYMENT": DocumentType.SALE,
    "ARCREDITPAYMENT": DocumentType.SALE,
    "AROVERPAYMENTPAYMENT": DocumentType.SALE,
    "ARPREPAYMENTPAYMENT": DocumentType.SALE,
    "ACCPAYPAYMENT": DocumentType.BILL,
    "APCREDITPAYMENT": DocumentType.BILL,
    "APOVERPAYMENTPAYMENT": DocumentType.BILL,
    "APPREPAYMENTPAYMENT": DocumentType.BILL,
}
PAYMENT_STATUS: dict[str, str] = {"AUTHORISED": PaymentState.ACTIVE, "DELETED": PaymentState.DELETED}
CONTACT_STATUS: dict[str, str] = {
    "ACTIVE": CustomerStatus.ACTIVE,
    "ARCHIVED": CustomerStatus.ARCHIVED,
    "GDPRREQUEST": CustomerStatus.GDPR_REQUEST,
}
TAX_MODE: dict[str, str] = {
    "Exclusive": TaxMode.EXCLUSIVE,
    "Inclusive": TaxMode.INCLUSIVE,
    "NoTax": TaxMode.NO_TAX,
}
PHONE_KIND: dict[str, str] = {
    "DEFAULT": PhoneKind.MAIN,
    "MOBILE": PhoneKind.MOBILE,
    "DDI": PhoneKind.DIRECT,
    "FAX": PhoneKind.FAX,
    "OFFICE": PhoneKind.OFFICE,
}
ADDRESS_KIND: dict[str, str] = {"POBOX": AddressKind.BILLING, "STREET": AddressKind.SHIPPING}


def _reverse(mapping: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for xero, canonical in mapping.items():
        out.setdefault(canonical, xero)  # the first Xero value listed is the one we write
    return out


# ---------------------------------------------------------------------------------------------
# The canonical views over the mirror's `xero.*` tables


def _address(prefix: str) -> dict[str, str]:
    return {
        "street": f"nullif(concat_ws(', ', {prefix}_line1, {prefix}_line2), '')",
        "city": f"{prefix}_city",
        "region": f"{prefix}_region",
        "postal_code": f"{prefix}_postal_code",
        "country": f"{prefix}_country",
    }


def _billing_address() -> dict[str, str]:
    """POBOX when any of its fields is set, else STREET — one whole address, never a mix of two."""
    postal, street = _address("postal"), _address("street")
    has_postal = "coalesce(" + ", ".join(postal.values()) + ") is not null"
    return {k: f"(case when {has_postal} then {postal[k]} else {street[k]} end)" for k in postal}


_CUSTOMERS = {
    "connection": "connection",
    "customer_id": "contact_id",
    "name": "name",
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "phone",
    "mobile": "mobile",
    "tax_number": "tax_number",
    "currency": "default_currency",
    "account_number": "account_number",
    **_billing_address(),
    "is_customer": "is_customer",
    "is_supplier": "is_supplier",
    "status": sql_case("contact_status", CONTACT_STATUS),
    "outstanding": "ar_outstanding",
    "overdue": "ar_overdue",
    "crm_link": "contact_number",
    "source_modified": "updated_utc",
    "fetched_at": "fetched_at",
}

_INVOICES = {
    "connection": "connection",
    "invoice_id": "invoice_id",
    "number": "number",
    "type": sql_case("type", DOCUMENT_TYPE),
    "status": sql_case("status", DOCUMENT_STATUS),
    "status_raw": "status",
    "customer_id": "contact_id",
    "customer_name": "contact_name",
    "reference": "reference",
    "issue_date": "date",
    "due_date": "due_date",
    "paid_date": "fully_paid_on",
    "currency": "currency_code",
    "currency_rate": "currency_rate",
    "amounts_tax": sql_case("line_amount_types", TAX_MODE),
    "subtotal": "sub_total",
    "tax": "total_tax",
    "total": "total",
    "amount_paid": "amount_paid",
    "amount_due": "amount_due",
    "amount_credited": "amount_credited",
    "sent": "sent_to_contact",
    "source_modified": "updated_utc",
    "fetched_at": "fetched_at",
}


def _lines(parent_modified: str) -> dict[str, str]:
    return {
        "connection": "l.connection",
        "invoice_id": "l.invoice_id",
        "line_id": "l.line_item_id",
        "line_no": "l.line_no",
        "description": "l.description",
        "item_code": "l.item_code",
        "account_code": "l.account_code",
        "tax_code": "l.tax_type",
        "quantity": "l.quantity",
        "unit_price": "l.unit_amount",
        "discount_rate": "l.discount_rate",
        "line_amount": "l.line_amount",
        "tax_amount": "l.tax_amount",
        "source_modified": parent_modified,
        "fetched_at": "l.fetched_at",
    }


def _payments(currency: str) -> dict[str, str]:
    return {
        "connection": "p.connection",
        "payment_id": "p.payment_id",
        "type": sql_case("p.payment_type", PAYMENT_TYPE),
        "status": sql_case("p.status", PAYMENT_STATUS),
        "invoice_id": "p.invoice_id",
        "credit_note_id": "p.credit_note_id",
        "date": "p.date",
        "amount": "p.amount",
        "currency": currency,
        "currency_rate": "p.currency_rate",
        "reference": "p.reference",
        "account_code": "p.account_code",
        "is_reconciled": "p.is_reconciled",
        "source_modified": "p.updated_utc",
        "fetched_at": "p.fetched_at",
    }


_CREDIT_NOTES = {
    "connection": "connection",
    "credit_note_id": "credit_note_id",
    "number": "number",
    "type": sql_case("type", DOCUMENT_TYPE),
    "status": sql_case("status", DOCUMENT_STATUS),
    "status_raw": "status",
    "customer_id": "contact_id",
    "customer_name": "contact_name",
    "reference": "reference",
    "issue_date": "date",
    "currency": "currency_code",
    "currency_rate": "currency_rate",
    "amounts_tax": sql_case("line_amount_types", TAX_MODE),
    "subtotal": "sub_total",
    "tax": "total_tax",
    "total": "total",
    "remaining_credit": "remaining_credit",
    "amount_applied": "applied_amount",
    "source_modified": "updated_utc",
    "fetched_at": "fetched_at",
}


def _allocations(currency: str, modified: str) -> dict[str, str]:
    return {
        "connection": "a.connection",
        "credit_note_id": "a.credit_note_id",
        "allocation_id": "a.allocation_id",
        "invoice_id": "a.invoice_id",
        "amount": "a.amount",
        "date": "a.date",
        "currency": currency,
        "source_modified": modified,
        "fetched_at": "a.fetched_at",
    }


_ITEMS = {
    "connection": "connection",
    "item_id": "item_id",
    "code": "code",
    "name": "name",
    "description": "description",
    "unit_price": "sales_unit_price",
    "is_sold": "is_sold",
    "is_purchased": "is_purchased",
    "source_modified": "updated_utc",
    "fetched_at": "fetched_at",
}

_SAME_INVOICE = "i.connection = l.connection and i.invoice_id = l.invoice_id"
_SAME_NOTE = "n.connection = a.connection and n.credit_note_id = a.credit_note_id"

BOOKS_VIEWS: dict[str, str | list[str]] = {
    "books_customers": f"select {project('books_customers', _CUSTOMERS)} from xero.contacts",
    "books_invoices": f"select {project('books_invoices', _INVOICES)} from xero.invoices",
    "books_invoice_lines": [
        f"select {project('books_invoice_lines', _lines('i.updated_utc'))} "
        f"from xero.invoice_lines l left join xero.invoices i on {_SAME_INVOICE}",
        f"select {project('books_invoice_lines', _lines('null'))} from xero.invoice_lines l",
    ],
    "books_payments": [
        f"select {project('books_payments', _payments('coalesce(i.currency_code, n.currency_code)'))} "
        "from xero.payments p "
        "left join xero.invoices i on i.connection = p.connection and i.invoice_id = p.invoice_id "
        "left join xero.credit_notes n on n.connection = p.connection and n.credit_note_id = p.credit_note_id",
        f"select {project('books_payments', _payments('i.currency_code'))} from xero.payments p "
        "left join xero.invoices i on i.connection = p.connection and i.invoice_id = p.invoice_id",
        f"select {project('books_payments', _payments('null'))} from xero.payments p",
    ],
    "books_credit_notes": f"select {project('books_credit_notes', _CREDIT_NOTES)} from xero.credit_notes",
    "books_credit_allocations": [
        f"select {project('books_credit_allocations', _allocations('n.currency_code', 'n.updated_utc'))} "
        f"from xero.credit_note_allocations a left join xero.credit_notes n on {_SAME_NOTE}",
        f"select {project('books_credit_allocations', _allocations('null', 'null'))} "
        "from xero.credit_note_allocations a",
    ],
    "books_items": f"select {project('books_items', _ITEMS)} from xero.items",
}
"""The SQL of each `canonical.books_*` view; give it to `core.canonical.install_views`."""


# ---------------------------------------------------------------------------------------------
# Payloads -> canonical records


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _phones(payload: dict) -> tuple[Phone, ...]:
    out = []
    for ph in payload.get("Phones") or []:
        kind = PHONE_KIND.get(ph.get("PhoneType") or "")
        if kind and _text(ph.get("PhoneNumber")):
            out.append(
                Phone(
                    kind, ph["PhoneNumber"], _text(ph.get("PhoneAreaCode")), _text(ph.get("PhoneCountryCode"))
                )
            )
    return tuple(out)


def _addresses(payload: dict) -> tuple[Address, ...]:
    out = []
    for a in payload.get("Addresses") or []:
        kind = ADDRESS_KIND.get(a.get("AddressType") or "")
        if kind is None:
            continue
        address = Address(
            kind,
            tuple(a[f"AddressLine{n}"] for n in range(1, 5) if _text(a.get(f"AddressLine{n}"))),
            _text(a.get("City")),
            _text(a.get("Region")),
            _text(a.get("PostalCode")),
            _text(a.get("Country")),
            _text(a.get("AttentionTo")),
        )
        if not address.is_empty:
            out.append(address)
    return tuple(out)


def customer_from_xero(payload: dict, *, fetched_at: datetime | None = None) -> Customer:
    """A Xero Contact as a books customer. Its own name fields and email make the primary person;
    `ContactPersons` are the others."""
    contact_id = payload["ContactID"]
    persons = []
    if any(_text(payload.get(k)) for k in ("FirstName", "LastName", "EmailAddress")):
        persons.append(
            Person(
                first_name=_text(payload.get("FirstName")),
                last_name=_text(payload.get("LastName")),
                email=_text(payload.get("EmailAddress")),
                customer_id=contact_id,
                is_primary=True,
            )
        )
    for p in payload.get("ContactPersons") or []:
        persons.append(
            Person(
                first_name=_text(p.get("FirstName")),
                last_name=_text(p.get("LastName")),
                email=_text(p.get("EmailAddress")),
                customer_id=contact_id,
                include_in_emails=p.get("IncludeInEmails"),
            )
        )
    emails = [_text(payload.get("EmailAddress"))] + [p.email for p in persons if not p.is_primary]
    receivable = (payload.get("Balances") or {}).get("AccountsReceivable") or {}
    status = payload.get("ContactStatus")
    return Customer(
        role=Role.BOOKS,
        books_id=contact_id,
        crm_id=_text(payload.get("ContactNumber")),
        name=_text(payload.get("Name")),
        persons=tuple(persons),
        emails=tuple(dict.fromkeys(e for e in emails if e)),
        phones=_phones(payload),
        addresses=_addresses(payload),
        tax_number=_text(payload.get("TaxNumber")),
        currency=_text(payload.get("DefaultCurrency")),
        account_number=_text(payload.get("AccountNumber")),
        website=_text(payload.get("Website")),
        status=CONTACT_STATUS.get(status) if status else None,
        is_customer=payload.get("IsCustomer"),
        is_supplier=payload.get("IsSupplier"),
        outstanding=to_decimal(receivable.get("Outstanding")),
        overdue=to_decimal(receivable.get("Overdue")),
        source_modified=parse_xero_datetime(payload.get("UpdatedDateUTC")),
        fetched_at=fetched_at,
    )


def _line(n: int, item: dict) -> InvoiceLine:
    return InvoiceLine(
        id=_text(item.get("LineItemID")),
        line_no=n,
        description=_text(item.get("Description")),
        quantity=to_decimal(item.get("Quantity")),
        unit_price=to_decimal(item.get("UnitAmount")),
        discount_rate=to_decimal(item.get("DiscountRate")),
        discount_amount=to_decimal(item.get("DiscountAmount")),
        line_amount=to_decimal(item.get("LineAmount")),
        tax_amount=to_decimal(item.get("TaxAmount")),
        tax_code=_text(item.get("TaxType")),
        item_code=_text(item.get("ItemCode")),
        account_code=_text(item.get("AccountCode")),
    )


def _status(raw: str | None) -> str | None:
    return DOCUMENT_STATUS.get(raw) if raw else None


def invoice_from_xero(payload: dict, *, fetched_at: datetime | None = None) -> Invoice:
    """A Xero Invoice (sale: ACCREC, bill: ACCPAY) as a books invoice."""
    contact = payload.get("Contact") or {}
    return Invoice(
        role=Role.BOOKS,
        books_id=payload["InvoiceID"],
        number=_text(payload.get("InvoiceNumber")),
        type=DOCUMENT_TYPE[payload["Type"]],
        status=_status(payload.get("Status")),
        status_raw=_text(payload.get("Status")),
        customer_id=_text(contact.get("ContactID")),
        customer_name=_text(contact.get("Name")),
        reference=_text(payload.get("Reference")),
        issue_date=parse_xero_date(payload.get("Date")),
        due_date=parse_xero_date(payload.get("DueDate")),
        paid_date=parse_xero_date(payload.get("FullyPaidOnDate")),
        currency=_text(payload.get("CurrencyCode")),
        currency_rate=to_decimal(payload.get("CurrencyRate")),
        amounts_tax=TAX_MODE.get(payload.get("LineAmountTypes") or ""),
        subtotal=to_decimal(payload.get("SubTotal")),
        discount=to_decimal(payload.get("TotalDiscount")),
        tax=to_decimal(payload.get("TotalTax")),
        total=to_decimal(payload.get("Total")),
        amount_paid=to_decimal(payload.get("AmountPaid")),
        amount_due=to_decimal(payload.get("AmountDue")),
        amount_credited=to_decimal(payload.get("AmountCredited")),
        sent=payload.get("SentToContact"),
        lines=tuple(_line(n, item) for n, item in enumerate(payload.get("LineItems") or [], start=1)),
        source_modified=parse_xero_datetime(payload.get("UpdatedDateUTC")),
        fetched_at=fetched_at,
    )


def payment_from_xero(payload: dict, *, fetched_at: datetime | None = None) -> Payment:
    """A Xero Payment: it settles one document, which becomes its one allocation."""
    invoice = payload.get("Invoice") or {}
    note = payload.get("CreditNote") or {}
    currency = _text(invoice.get("CurrencyCode")) or _text(note.get("CurrencyCode"))
    amount = to_decimal(payload.get("Amount"))
    day = parse_xero_date(payload.get("Date"))
    allocations = ()
    if amount is not None and (invoice.get("InvoiceID") or note.get("CreditNoteID")):
        allocations = (
            Allocation(
                invoice_id=_text(invoice.get("InvoiceID")),
                credit_note_id=_text(note.get("CreditNoteID")),
                amount=amount,
                date=day,
                currency=currency,
            ),
        )
    kind = payload.get("PaymentType")
    return Payment(
        role=Role.BOOKS,
        id=payload["PaymentID"],
        type=PAYMENT_TYPE.get(kind) or DOCUMENT_TYPE.get(invoice.get("Type") or "") or DocumentType.SALE,
        status=PAYMENT_STATUS.get(payload.get("Status") or "AUTHORISED", PaymentState.ACTIVE),
        date=day,
        amount=amount,
        currency=currency,
        currency_rate=to_decimal(payload.get("CurrencyRate")),
        reference=_text(payload.get("Reference")),
        account_code=_text((payload.get("Account") or {}).get("Code")),
        is_reconciled=payload.get("IsReconciled"),
        allocations=allocations,
        source_modified=parse_xero_datetime(payload.get("UpdatedDateUTC")),
        fetched_at=fetched_at,
    )


def credit_note_from_xero(payload: dict, *, fetched_at: datetime | None = None) -> CreditNote:
    contact = payload.get("Contact") or {}
    currency = _text(payload.get("CurrencyCode"))
    return CreditNote(
        role=Role.BOOKS,
        id=payload["CreditNoteID"],
        number=_text(payload.get("CreditNoteNumber")),
        type=DOCUMENT_TYPE[payload["Type"]],
        status=_status(payload.get("Status")),
        status_raw=_text(payload.get("Status")),
        customer_id=_text(contact.get("ContactID")),
        customer_name=_text(contact.get("Name")),
        reference=_text(payload.get("Reference")),
        issue_date=parse_xero_date(payload.get("Date")),
        currency=currency,
        currency_rate=to_decimal(payload.get("CurrencyRate")),
        amounts_tax=TAX_MODE.get(payload.get("LineAmountTypes") or ""),
        subtotal=to_decimal(payload.get("SubTotal")),
        tax=to_decimal(payload.get("TotalTax")),
        total=to_decimal(payload.get("Total")),
        remaining_credit=to_decimal(payload.get("RemainingCredit")),
        lines=tuple(_line(n, item) for n, item in enumerate(payload.get("LineItems") or [], start=1)),
        allocations=tuple(
            Allocation(
                invoice_id=_text((a.get("Invoice") or {}).get("InvoiceID")),
                amount=to_decimal(a.get("Amount")),
                date=parse_xero_date(a.get("Date")),
                currency=currency,
                credit_note_id=payload["CreditNoteID"],
                id=_text(a.get("AllocationID")),
            )
            for a in payload.get("Allocations") or []
        ),
        source_modified=parse_xero_datetime(payload.get("UpdatedDateUTC")),
        fetched_at=fetched_at,
    )


def product_from_xero(payload: dict, *, fetched_at: datetime | None = None) -> Product:
    return Product(
        role=Role.BOOKS,
        id=payload["ItemID"],
        code=_text(payload.get("Code")),
        name=_text(payload.get("Name")),
        description=_text(payload.get("Description")),
        unit_price=to_decimal((payload.get("SalesDetails") or {}).get("UnitPrice")),
        is_sold=payload.get("IsSold"),
        is_purchased=payload.get("IsPurchased"),
        source_modified=parse_xero_datetime(payload.get("UpdatedDateUTC")),
        fetched_at=fetched_at,
    )


# ---------------------------------------------------------------------------------------------
# Canonical records -> Xero request payloads


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != [] and v != ()}


_PHONE_TYPE = _reverse(PHONE_KIND)
_ADDRESS_TYPE = _reverse(ADDRESS_KIND)
_CONTACT_STATUS = {CustomerStatus.ACTIVE: "ACTIVE", CustomerStatus.ARCHIVED: "ARCHIVED"}  # GDPR: not writable
_DOCUMENT_TYPE = {DocumentType.SALE: "ACCREC", DocumentType.BILL: "ACCPAY"}
_TAX_MODE = _reverse(TAX_MODE)


def customer_to_xero(customer: Customer) -> dict[str, Any]:
    """A Contact as `POST /Contacts` takes it (inside `{"Contacts": [...]}`).

    `books_id` becomes ContactID (an update), `crm_id` the ContactNumber (our link to the CRM). The
    primary person gives FirstName/LastName, the others ContactPersons (Xero keeps at most 5).
    """
    primary = customer.primary_person
    phones, seen = [], set()
    for ph in customer.phones:
        kind = _PHONE_TYPE.get(ph.kind)
        if kind and kind not in seen:  # one phone per type in Xero
            seen.add(kind)
            phones.append(
                _compact(
                    {
                        "PhoneType": kind,
                        "PhoneNumber": ph.number,
                        "PhoneAreaCode": ph.area_code,
                        "PhoneCountryCode": ph.country_code,
                    }
                )  # fmt: skip
            )
    addresses = []
    for a in customer.addresses:
        lines = {f"AddressLine{n}": line for n, line in enumerate(a.lines[:4], start=1)}
        addresses.append(
            _compact(
                {
                    "AddressType": _ADDRESS_TYPE[a.kind],
                    **lines,
                    "City": a.city,
                    "Region": a.region,
                    "PostalCode": a.postal_code,
                    "Country": a.country,
                    "AttentionTo": a.attention,
                }
            )  # fmt: skip
        )
    others = [p for p in customer.persons if not p.is_primary][:5]
    return _compact(
        {
            "ContactID": customer.books_id,
            "ContactNumber": customer.crm_id,
            "Name": customer.name,
            "FirstName": primary.first_name if primary else None,
            "LastName": primary.last_name if primary else None,
            "EmailAddress": customer.email,
            "AccountNumber": customer.account_number,
            "TaxNumber": customer.tax_number,
            "DefaultCurrency": customer.currency,
            "Website": customer.website,
            "ContactStatus": _CONTACT_STATUS.get(customer.status) if customer.status else None,
            "Phones": phones,
            "Addresses": addresses,
            "ContactPersons": [
                _compact(
                    {
                        "FirstName": p.first_name,
                        "LastName": p.last_name,
                        "EmailAddress": p.email,
                        "IncludeInEmails": p.include_in_emails,
                    }
                )  # fmt: skip
                for p in others
            ],
        }
    )


def _day(value: date | None) -> str | None:
    return request_date(value) if value is not None else None


def _line_to_xero(line: InvoiceLine) -> dict[str, Any]:
    both = line.quantity is not None and line.unit_price is not None
    return _compact(
        {
            "LineItemID": line.id,  # kept: a line sent without its id is deleted and recreated
            "Description": line.description,
            "Quantity": line.quantity,
            "UnitAmount": line.unit_price,
            "ItemCode": line.item_code,
            "AccountCode": line.account_code,
            "TaxType": line.tax_code,
            "DiscountRate": line.discount_rate,
            "DiscountAmount": line.discount_amount if line.discount_rate is None else None,
            "LineAmount": None if both else line.line_amount,  # Xero derives it from quantity x price
        }
    )


def _status_to_xero(invoice: Invoice) -> str | None:
    if invoice.status is DocumentStatus.DRAFT:
        return invoice.status_raw if invoice.status_raw in ("DRAFT", "SUBMITTED") else "DRAFT"
    return {DocumentStatus.OPEN: "AUTHORISED", DocumentStatus.VOID: "VOIDED",
            DocumentStatus.DELETED: "DELETED"}.get(invoice.status)  # fmt: skip  # PAID is Xero's to set


def invoice_to_xero(invoice: Invoice, *, contact_id: str | None = None) -> dict[str, Any]:
    """An Invoice as `POST /Invoices` takes it. `contact_id` (the books contact) overrides the invoice's
    `customer_id` — needed when the invoice comes from the CRM, whose customer ids are not Xero's."""
    return _compact(
        {
            "InvoiceID": invoice.books_id,
            "Type": _DOCUMENT_TYPE[invoice.type],
            "Contact": {"ContactID": contact_id or invoice.customer_id},
            "InvoiceNumber": invoice.number,
            "Reference": invoice.reference,
            "Date": _day(invoice.issue_date),
            "DueDate": _day(invoice.due_date),
            "CurrencyCode": invoice.currency,
            "CurrencyRate": invoice.currency_rate,
            "Status": _status_to_xero(invoice),
            "LineAmountTypes": _TAX_MODE.get(invoice.amounts_tax) if invoice.amounts_tax else None,
            "LineItems": [_line_to_xero(line) for line in invoice.lines],
        }
    )


__all__ = [
    "BOOKS_VIEWS",
    "credit_note_from_xero",
    "customer_from_xero",
    "customer_to_xero",
    "invoice_from_xero",
    "invoice_to_xero",
    "payment_from_xero",
    "product_from_xero",
]
