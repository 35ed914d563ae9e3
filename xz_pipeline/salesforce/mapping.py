"""Salesforce <-> the canonical model (the **crm** role): views over `salesforce.*`, records and back.

Only this folder names Salesforce's fields. The same canonical columns as Zoho's rendering, with these
choices:
- Won is `IsWon` (and lost `IsClosed and not IsWon`), never the stage's label: orgs rename stages, and
  "Closed Won" is only the default label of a stage whose OpportunityStage says IsWon. `stage_raw` keeps
  the org's StageName.
- An account's email is its primary contact's (`core.canonical.choose_primary`: the earliest created contact
  with an email; the views order the same way).
- An account is marked a customer when its Type is one of the customer types ("Customer - Direct",
  "Customer - Channel", or any value starting "Customer").
- Salesforce has no CRM invoices: `crm_invoices` and `crm_invoice_lines` get no rows from it (the views are
  left to the other CRM's rendering, empty for Salesforce connections), so the discrepancy kinds that
  compare CRM invoices do not apply to them (declared in `writer.py`'s capabilities).
- No pipeline (NULL), no secondary email (NULL), no taxable flag on products (NULL); a product's price
  lives in price books, not on Product2 (NULL: a deal's line carries its own unit price).
- `Books_Customer_Id__c` / `Books_Invoice_Id__c` are where write-back stores the books ids: the links.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from xz_pipeline.core.canonical import (
    Address,
    AddressKind,
    Customer,
    Deal,
    DealStage,
    PaymentStatus,
    Person,
    Phone,
    PhoneKind,
    Product,
    Role,
    choose_primary,
    project,
    sql_case,
)
from xz_pipeline.salesforce.dates import format_sf_date, parse_sf_date, parse_sf_datetime, to_decimal

# ---------------------------------------------------------------------------------------------
# Vocabularies

PAYMENT_STATUS: dict[str, str] = {  # Payment_Status__c values, lower-cased
    "unpaid": PaymentStatus.UNPAID,
    "partially paid": PaymentStatus.PARTIALLY_PAID,
    "paid": PaymentStatus.PAID,
    "overdue": PaymentStatus.OVERDUE,
}
PAYMENT_STATUS_LABEL: dict[str, str] = {
    PaymentStatus.UNPAID: "Unpaid",
    PaymentStatus.PARTIALLY_PAID: "Partially Paid",
    PaymentStatus.PAID: "Paid",
    PaymentStatus.OVERDUE: "Overdue",
}
RISK_LABEL = {"low": "Low", "medium": "Medium", "high": "High"}


def deal_stage(stage: str | None, is_won: bool | None, is_closed: bool | None) -> DealStage | None:
    """Won by IsWon, lost by IsClosed without IsWon, else open; None when the record has no stage."""
    if not stage:
        return None
    if is_won:
        return DealStage.WON
    if is_closed:
        return DealStage.LOST
    return DealStage.OPEN


def is_customer_type(value: str | None) -> bool:
    return bool(value) and str(value).lower().startswith("customer")


# ---------------------------------------------------------------------------------------------
# The canonical views over `salesforce.*`

_TAGS = "[]::varchar[]"  # Salesforce records carry no tags (Topics are another object)
# A compound street holds its lines separated by newlines: one line, joined as `Address.street` joins them.
_STREET = "nullif(regexp_replace(trim({col}), '\\s*\\n\\s*', ', ', 'g'), '')"
_STAGE = (
    "(case when {t}.stage_name is null then null when {t}.is_won then 'won' "
    "when {t}.is_closed then 'lost' else 'open' end)"
)
_RANKED_CONTACTS = (
    "select *, row_number() over (partition by connection, account_id "
    "order by email is null, created_date asc nulls last, contact_id) as _rank from salesforce.contacts"
)
_HOME = (
    "(select v.value from meta.vendor_schema v where v.connection = {t}.connection and v.vendor = 'salesforce' "
    "and v.module = '@org' and v.field = 'home_currency')"
)
# Whether the org keeps a payment status on opportunities: ours, or the field the connection maps it to (the
# `@mapping` rows schema.save keeps); NULL when the org's schema was never read.
_TRACKED = (
    "(case when not exists (select 1 from meta.vendor_schema v where v.connection = {t}.connection "
    "and v.vendor = 'salesforce' and v.module = 'Opportunity') then null "
    "else exists (select 1 from meta.vendor_schema v where v.connection = {t}.connection "
    "and v.vendor = 'salesforce' and v.module = 'Opportunity' and v.field = coalesce((select m.value "
    "from meta.vendor_schema m where m.connection = {t}.connection and m.vendor = 'salesforce' "
    "and m.module = '@mapping' and m.field = 'Opportunity.Payment_Status__c'), 'Payment_Status__c')) end)"
)


def _accounts(email: str, primary: str, meta: bool) -> dict[str, str]:
    return {
        "connection": "a.connection",
        "account_id": "a.account_id",
        "name": "a.name",
        "email": email,
        "primary_contact_id": primary,
        "phone": "a.phone",
        "website": "a.website",
        "tax_number": "a.tax_number",
        "currency": f"coalesce(a.currency, {_HOME.format(t='a')})" if meta else "a.currency",
        "account_number": "a.account_number",
        "street": _STREET.format(col="a.billing_street"),
        "city": "a.billing_city",
        "region": "a.billing_state",
        "postal_code": "a.billing_postal_code",
        "country": "a.billing_country",
        "books_link": "a.books_customer_id",
        "outstanding": "a.outstanding_balance",
        "overdue": "a.overdue_balance",
        "tags": _TAGS,
        "owner_id": "a.owner_id",
        "marked_customer": "coalesce(lower(a.type) like 'customer%', false)",
        "source_created": "a.created_date",
        "source_modified": "a.system_modstamp",
        "fetched_at": "a.fetched_at",
        "payment_risk": "lower(a.payment_risk)",
        "expected_pay_date": "a.expected_pay_date",
    }


_CONTACTS = {
    "connection": "connection",
    "contact_id": "contact_id",
    "account_id": "account_id",
    "first_name": "first_name",
    "last_name": "last_name",
    "name": "coalesce(name, nullif(concat_ws(' ', first_name, last_name), ''))",
    "email": "email",
    "secondary_email": "null",
    "phone": "phone",
    "mobile": "mobile_phone",
    "title": "title",
    "street": _STREET.format(col="mailing_street"),
    "city": "mailing_city",
    "region": "mailing_state",
    "postal_code": "mailing_postal_code",
    "country": "mailing_country",
    "is_primary": "(account_id is not null and _rank = 1)",
    "source_created": "created_date",
    "source_modified": "system_modstamp",
    "fetched_at": "fetched_at",
}


def _deals(meta: bool) -> dict[str, str]:
    return {
        "connection": "d.connection",
        "deal_id": "d.opportunity_id",
        "name": "d.name",
        "stage": _STAGE.format(t="d"),
        "stage_raw": "d.stage_name",
        "pipeline": "null",
        "probability": "round(d.probability)",
        "amount": "d.amount",
        "currency": f"coalesce(d.currency, {_HOME.format(t='d')})" if meta else "d.currency",
        "close_date": "d.close_date",
        "account_id": "d.account_id",
        "account_name": "d.account_name",
        "contact_id": "d.contact_id",
        "books_invoice_id": "d.books_invoice_id",
        "books_invoice_number": "d.books_invoice_number",
        "payment_status": sql_case("lower(trim(d.payment_status))", PAYMENT_STATUS),
        "payment_status_raw": "d.payment_status",
        "payment_status_tracked": _TRACKED.format(t="d") if meta else "null",
        "amount_paid": "d.amount_paid",
        "last_payment_date": "d.last_payment_date",
        "owner_id": "d.owner_id",
        "tags": _TAGS,
        "source_modified": "d.system_modstamp",
        "fetched_at": "d.fetched_at",
        "payment_risk": "lower(d.payment_risk)",
        "expected_pay_date": "d.expected_pay_date",
    }


_DEAL_LINES = {
    "connection": "l.connection",
    "deal_id": "l.opportunity_id",
    "line_no": "coalesce(l.sort_order, row_number() over (partition by l.connection, l.opportunity_id "
    "order by l.line_item_id))",
    "product_id": "l.product_id",
    "product_code": "l.product_code",
    "product_name": "coalesce(l.product_name, l.name)",
    "quantity": "coalesce(l.quantity, 1)",
    "unit_price": "coalesce(l.unit_price, l.list_price)",
    "source_modified": "l.system_modstamp",
    "fetched_at": "l.fetched_at",
}

_PRODUCTS = {
    "connection": "connection",
    "product_id": "product_id",
    "code": "code",
    "name": "name",
    "description": "description",
    "unit_price": "null",
    "active": "is_active",
    "taxable": "null",
    "source_modified": "system_modstamp",
    "fetched_at": "fetched_at",
}

_PRIMARY_JOIN = f"left join ({_RANKED_CONTACTS}) p on p.connection = a.connection and p.account_id = a.account_id and p._rank = 1"

CRM_VIEWS: dict[str, str | list[str]] = {
    "crm_accounts": [
        f"select {project('crm_accounts', _accounts('p.email', 'p.contact_id', True))} from salesforce.accounts a "
        f"{_PRIMARY_JOIN}",
        f"select {project('crm_accounts', _accounts('null', 'null', True))} from salesforce.accounts a",
    ],
    "crm_contacts": f"select {project('crm_contacts', _CONTACTS)} from ({_RANKED_CONTACTS})",
    "crm_deals": f"select {project('crm_deals', _deals(True))} from salesforce.opportunities d",
    "crm_deal_lines": f"select {project('crm_deal_lines', _DEAL_LINES)} from salesforce.opportunity_line_items l",
    "crm_products": f"select {project('crm_products', _PRODUCTS)} from salesforce.products",
}
"""Salesforce's SELECT of each `canonical.crm_*` view it has rows for (no CRM invoices: see above); the
definitions union them with Zoho's (`views.combine_views`)."""


# ---------------------------------------------------------------------------------------------
# Records -> canonical


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _parent(payload: dict, path: str) -> str | None:
    head, _, tail = path.partition(".")
    ref = payload.get(head)
    return _text(ref.get(tail)) if isinstance(ref, dict) else None


def _address(kind: AddressKind, payload: dict, prefix: str) -> Address | None:
    address = Address(
        kind,
        tuple(line for line in str(payload.get(f"{prefix}Street") or "").splitlines() if line.strip()),
        _text(payload.get(f"{prefix}City")),
        _text(payload.get(f"{prefix}State")),
        _text(payload.get(f"{prefix}PostalCode")),
        _text(payload.get(f"{prefix}Country")),
    )
    return None if address.is_empty else address


def contact_from_salesforce(payload: dict, *, fetched_at: datetime | None = None) -> Person:
    return Person(
        id=str(payload["Id"]),
        first_name=_text(payload.get("FirstName")),
        last_name=_text(payload.get("LastName")),
        email=_text(payload.get("Email")),
        phone=_text(payload.get("Phone")),
        mobile=_text(payload.get("MobilePhone")),
        title=_text(payload.get("Title")),
        customer_id=_text(payload.get("AccountId")),
        address=_address(AddressKind.BILLING, payload, "Mailing"),
        source_created=parse_sf_datetime(payload.get("CreatedDate")),
        source_modified=parse_sf_datetime(payload.get("SystemModstamp")),
        fetched_at=fetched_at,
    )


def account_from_salesforce(
    payload: dict, contacts: Iterable[dict | Person] = (), *, fetched_at: datetime | None = None
) -> Customer:
    """An Account as a CRM customer with its contacts as persons; the primary person gives its email."""
    account_id = str(payload["Id"])
    people = [
        c if isinstance(c, Person) else contact_from_salesforce(c, fetched_at=fetched_at) for c in contacts
    ]
    people = [p for p in people if p.customer_id == account_id]
    primary = choose_primary(people)
    phones = [Phone(kind, payload[f]) for kind, f in ((PhoneKind.MAIN, "Phone"), (PhoneKind.FAX, "Fax"))
              if _text(payload.get(f))]  # fmt: skip
    addresses = [a for a in (_address(AddressKind.BILLING, payload, "Billing"),
                             _address(AddressKind.SHIPPING, payload, "Shipping")) if a]  # fmt: skip
    return Customer(
        role=Role.CRM,
        crm_id=account_id,
        books_id=_text(payload.get("Books_Customer_Id__c")),
        name=_text(payload.get("Name")),
        persons=tuple(replace(p, is_primary=p is primary) for p in people),
        emails=(primary.email,) if primary and primary.email else (),
        phones=tuple(phones),
        addresses=tuple(addresses),
        tax_number=_text(payload.get("Tax_Number__c")),
        currency=_text(payload.get("CurrencyIsoCode")),
        account_number=_text(payload.get("AccountNumber")),
        website=_text(payload.get("Website")),
        outstanding=to_decimal(payload.get("Outstanding_Balance__c")),
        overdue=to_decimal(payload.get("Overdue_Balance__c")),
        owner_id=_text(payload.get("OwnerId")),
        source_modified=parse_sf_datetime(payload.get("SystemModstamp")),
        fetched_at=fetched_at,
    )


def deal_from_salesforce(payload: dict, *, fetched_at: datetime | None = None) -> Deal:
    raw_status = _text(payload.get("Payment_Status__c"))
    probability = to_decimal(payload.get("Probability"))
    return Deal(
        id=str(payload["Id"]),
        name=_text(payload.get("Name")),
        stage=deal_stage(_text(payload.get("StageName")), payload.get("IsWon"), payload.get("IsClosed")),
        stage_raw=_text(payload.get("StageName")),
        probability=None if probability is None else int(round(probability)),
        amount=to_decimal(payload.get("Amount")),
        currency=_text(payload.get("CurrencyIsoCode")),
        close_date=parse_sf_date(payload.get("CloseDate")),
        account_id=_text(payload.get("AccountId")),
        account_name=_parent(payload, "Account.Name"),
        contact_id=_text(payload.get("ContactId")),
        books_invoice_id=_text(payload.get("Books_Invoice_Id__c")),
        books_invoice_number=_text(payload.get("Books_Invoice_Number__c")),
        payment_status=PAYMENT_STATUS.get(raw_status.strip().lower()) if raw_status else None,
        payment_status_raw=raw_status,
        amount_paid=to_decimal(payload.get("Amount_Paid__c")),
        last_payment_date=parse_sf_date(payload.get("Last_Payment_Date__c")),
        owner_id=_text(payload.get("OwnerId")),
        source_modified=parse_sf_datetime(payload.get("SystemModstamp")),
        fetched_at=fetched_at,
    )


def product_from_salesforce(payload: dict, *, fetched_at: datetime | None = None) -> Product:
    return Product(
        role=Role.CRM,
        id=str(payload["Id"]),
        code=_text(payload.get("ProductCode")),
        name=_text(payload.get("Name")),
        description=_text(payload.get("Description")),
        active=payload.get("IsActive"),
        source_modified=parse_sf_datetime(payload.get("SystemModstamp")),
        fetched_at=fetched_at,
    )


# ---------------------------------------------------------------------------------------------
# Canonical -> Salesforce records (our field names; `fieldmap.outgoing` renames them for the org)


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _address_fields(address: Address | None, prefix: str) -> dict[str, Any]:
    if address is None:
        return {}
    return {f"{prefix}Street": address.street, f"{prefix}City": address.city, f"{prefix}State": address.region,
            f"{prefix}PostalCode": address.postal_code, f"{prefix}Country": address.country}  # fmt: skip


def account_to_salesforce(customer: Customer) -> dict[str, Any]:
    """An Account record; `crm_id` becomes `id` (an update), `books_id` the external id it is upserted on.
    Empty fields are left out (Salesforce keeps what it has)."""
    shipping = next((a for a in customer.addresses if a.kind is AddressKind.SHIPPING), None)
    fax = next((p for p in customer.phones if p.kind is PhoneKind.FAX), None)
    main = customer.phone
    return _compact({
        "id": customer.crm_id,
        "Name": customer.name,
        "AccountNumber": customer.account_number,
        "Phone": main.display if main else None,
        "Fax": fax.display if fax else None,
        "Website": customer.website,
        **_address_fields(customer.billing_address, "Billing"),
        **_address_fields(shipping, "Shipping"),
        "CurrencyIsoCode": customer.currency,
        "Tax_Number__c": customer.tax_number,
        "Books_Customer_Id__c": customer.books_id,
        "Outstanding_Balance__c": customer.outstanding,
        "Overdue_Balance__c": customer.overdue,
    })  # fmt: skip


def contact_to_salesforce(person: Person, *, account_id: str | None = None) -> dict[str, Any]:
    """A Contact record (`LastName` is required by Salesforce: a person without one is named by email)."""
    account = account_id or person.customer_id
    last = person.last_name or (None if person.first_name else (person.email or "").split("@")[0] or None)
    return _compact({
        "id": person.id,
        "FirstName": person.first_name,
        "LastName": last,
        "Email": person.email,
        "Phone": person.phone,
        "MobilePhone": person.mobile,
        "Title": person.title,
        "AccountId": account,
        **_address_fields(person.address, "Mailing"),
    })  # fmt: skip


def _payment_status(value: Any) -> str | None:
    return None if value is None else PAYMENT_STATUS_LABEL[PaymentStatus(value)]


def _day(value: date | str | None) -> str | None:
    if value is None:
        return None
    return format_sf_date(value) if isinstance(value, date) else str(value)[:10]


def _stage(value: Any) -> str:
    raise ValueError(
        "a stage is written by its name in the org (give stage_raw): won is the org's IsWon stage"
    )


# canonical Deal field -> (our Opportunity API name, how a value is written). None clears the field.
DEAL_FIELDS: dict[str, tuple[str, Any]] = {
    "name": ("Name", lambda v: v),
    "stage": ("StageName", _stage),
    "stage_raw": ("StageName", lambda v: v),
    "probability": ("Probability", lambda v: v),
    "amount": ("Amount", lambda v: v),
    "currency": ("CurrencyIsoCode", lambda v: v),
    "close_date": ("CloseDate", _day),
    "account_id": ("AccountId", lambda v: v),
    "contact_id": ("ContactId", lambda v: v),
    "books_invoice_id": ("Books_Invoice_Id__c", lambda v: v),
    "books_invoice_number": ("Books_Invoice_Number__c", lambda v: v),
    "payment_status": ("Payment_Status__c", _payment_status),
    "amount_paid": ("Amount_Paid__c", lambda v: v),
    "last_payment_date": ("Last_Payment_Date__c", _day),
    "payment_risk": ("Payment_Risk__c", lambda v: RISK_LABEL.get(str(v), str(v))),
    "expected_pay_date": ("Expected_Pay_Date__c", _day),
}
ACCOUNT_FIELDS: dict[str, tuple[str, Any]] = {
    "payment_risk": ("Payment_Risk__c", lambda v: RISK_LABEL.get(str(v), str(v))),
    "expected_pay_date": ("Expected_Pay_Date__c", _day),
}


def update_record(
    record_id: str, changes: Mapping[str, Any], fields: Mapping[str, tuple[str, Any]], what: str
) -> dict:
    """`{"id": record_id, <field>: value, ...}`; unknown fields and float amounts are errors, never dropped."""
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise KeyError(f"{what} fields not writable to Salesforce: {', '.join(unknown)}")
    if "stage" in changes and "stage_raw" in changes:
        raise ValueError("give stage or stage_raw, not both")
    record: dict[str, Any] = {"id": record_id}
    for name, value in changes.items():
        api_name, write = fields[name]
        if isinstance(value, float):
            raise TypeError(f"{name}: amounts are Decimal, never float")
        record[api_name] = None if value is None else write(value)
    return record


def deal_update_to_salesforce(deal_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    return update_record(deal_id, changes, DEAL_FIELDS, "deal")


__all__ = [
    "CRM_VIEWS",
    "account_from_salesforce",
    "account_to_salesforce",
    "contact_from_salesforce",
    "contact_to_salesforce",
    "deal_from_salesforce",
    "deal_update_to_salesforce",
    "product_from_salesforce",
]
