"""Zoho CRM <-> the canonical model (the **crm** role): views over `zoho.*`, records and back.

Only this folder names Zoho's fields; everything after the mirror reads `canonical.crm_*` and the
records in `core.canonical`. One vocabulary table per Zoho picklist drives both the SQL views and the
Python mappings, so the two cannot disagree.

Choices worth knowing:
- A Zoho account has no email of its own: its email is its primary contact's, the earliest created
  contact of the account that has an email (`core.canonical.choose_primary`; the views apply the same
  order: email present, Created_Time, then id numerically).
- Deal stages: "Closed Won" -> won; "Closed Lost" and "Closed Lost to Competition" -> lost; any other
  stage -> open. The pipeline's own stage stays in `stage_raw`.
- Invoice statuses (a picklist orgs may extend, matched case-insensitively): Created/Draft -> draft;
  Approved, Delivered, Sent, Unpaid, Partially Paid, Overdue -> open; Paid -> paid; Cancelled/Void ->
  void; anything else -> NULL (raw kept), for the checks to flag rather than a guess.
- `Xero_Contact_ID` / `Xero_Invoice_ID` are where our write-back stores the books ids: the records'
  `books_id` links.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from xz_pipeline.core.canonical import (
    Address,
    AddressKind,
    Customer,
    Deal,
    DealStage,
    DocumentStatus,
    Invoice,
    InvoiceLine,
    PaymentStatus,
    Person,
    Phone,
    PhoneKind,
    Product,
    Role,
    TaxMode,
    choose_primary,
    project,
    sql_case,
)
from xz_pipeline.zoho.dates import format_zoho_date, parse_zoho_date, parse_zoho_datetime, to_decimal

# ---------------------------------------------------------------------------------------------
# Vocabularies (Zoho value -> canonical value)

WON_STAGES = ("Closed Won",)
LOST_STAGES = ("Closed Lost", "Closed Lost to Competition")

PAYMENT_STATUS: dict[str, str] = {  # keys lower-cased
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
INVOICE_STATUS: dict[str, str] = {  # keys lower-cased
    "created": DocumentStatus.DRAFT,
    "draft": DocumentStatus.DRAFT,
    "approved": DocumentStatus.OPEN,
    "delivered": DocumentStatus.OPEN,
    "sent": DocumentStatus.OPEN,
    "unpaid": DocumentStatus.OPEN,
    "partially paid": DocumentStatus.OPEN,
    "overdue": DocumentStatus.OPEN,
    "paid": DocumentStatus.PAID,
    "cancelled": DocumentStatus.VOID,
    "canceled": DocumentStatus.VOID,
    "void": DocumentStatus.VOID,
}


def deal_stage(stage: str | None) -> DealStage | None:
    if stage is None or stage == "":
        return None
    if stage in WON_STAGES:
        return DealStage.WON
    if stage in LOST_STAGES:
        return DealStage.LOST
    return DealStage.OPEN


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


_STAGE_SQL = (
    f"(case when stage is null then null when stage in ({_sql_list(WON_STAGES)}) then 'won' "
    f"when stage in ({_sql_list(LOST_STAGES)}) then 'lost' else 'open' end)"
)

# ---------------------------------------------------------------------------------------------
# The canonical views over the mirror's `zoho.*` tables

_TAGS = "coalesce(from_json({col}, '[\"VARCHAR\"]'), []::varchar[])"

# Contacts ranked within their account by the primary-person rule (see `choose_primary`).
_RANKED_CONTACTS = (
    "select *, row_number() over (partition by connection, account_id "
    "order by email is null, created_time asc nulls last, length(contact_id), contact_id) as _rank "
    "from zoho.contacts"
)


# What the org's schema (meta.vendor_schema, zoho/schema.py) says, for the row of table alias `{t}`:
# its home currency (a record without a currency is in it), the forecast type of a deal's stage (orgs
# rename stages: "Closed Won" is the forecast type, not a label), the Account_Type values that mean customer.
_HOME = (
    "(select v.value from meta.vendor_schema v where v.connection = {t}.connection and v.vendor = 'zoho' "
    "and v.module = '@org' and v.field = 'home_currency')"
)
_FORECAST = (
    "(select p.forecast_type from (select v.connection, unnest(from_json(v.picklist, "
    '\'[{{"actual_value":"VARCHAR","forecast_type":"VARCHAR"}}]\'), recursive := true) '
    "from meta.vendor_schema v where v.vendor = 'zoho' and v.module = 'Deals' and v.field = 'Stage') p "
    "where p.connection = {t}.connection and p.actual_value = {t}.stage)"
)
_CUSTOMER_TYPES = (
    "coalesce((select from_json(v.picklist, '[\"VARCHAR\"]') from meta.vendor_schema v "
    "where v.connection = {t}.connection and v.vendor = 'zoho' and v.module = '@mapping' "
    "and v.field = 'customer_types'), ['Customer'])"
)


def _with_schema(t: str) -> dict[str, str]:
    """Currency, stage and customer-type expressions for alias `t`: from the org's schema when the mirror
    has one (`meta`), else (an older mirror) as the records say."""
    return {
        "currency": f"coalesce({t}.currency, {_HOME.format(t=t)})",
        "stage": (
            f"(case when {t}.stage is null then null when {_FORECAST.format(t=t)} is not null then "
            f"(case {_FORECAST.format(t=t)} when 'Closed Won' then 'won' when 'Closed Lost' then 'lost' "
            f"else 'open' end) else {_STAGE_SQL.replace('stage', t + '.stage')} end)"
        ),
        "marked_customer": f"coalesce(list_contains({_CUSTOMER_TYPES.format(t=t)}, {t}.account_type), false)",
    }


_PLAIN = {
    "currency": "{t}.currency",
    "stage": None,
    "marked_customer": "coalesce({t}.account_type = 'Customer', false)",
}


def _accounts(email: str, primary: str, meta: bool = True) -> dict[str, str]:
    schema = _with_schema("a") if meta else {k: (v or "").format(t="a") for k, v in _PLAIN.items()}
    return {
        "connection": "a.connection",
        "account_id": "a.account_id",
        "name": "a.name",
        "email": email,
        "primary_contact_id": primary,
        "phone": "a.phone",
        "website": "a.website",
        "tax_number": "a.tax_number",
        "currency": schema["currency"],
        "account_number": "a.account_number",
        "street": "a.billing_street",
        "city": "a.billing_city",
        "region": "a.billing_state",
        "postal_code": "a.billing_code",
        "country": "a.billing_country",
        "books_link": "a.xero_contact_id",
        "outstanding": "a.outstanding_balance",
        "overdue": "a.overdue_balance",
        "tags": _TAGS.format(col="a.tags"),
        "owner_id": "a.owner_id",
        "marked_customer": schema["marked_customer"],
        "source_created": "a.created_time",
        "source_modified": "a.modified_time",
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
    "name": "coalesce(full_name, nullif(concat_ws(' ', first_name, last_name), ''))",
    "email": "email",
    "secondary_email": "secondary_email",
    "phone": "phone",
    "mobile": "mobile",
    "title": "title",
    "street": "mailing_street",
    "city": "mailing_city",
    "region": "mailing_state",
    "postal_code": "mailing_code",
    "country": "mailing_country",
    "is_primary": "(account_id is not null and _rank = 1)",
    "source_created": "created_time",
    "source_modified": "modified_time",
    "fetched_at": "fetched_at",
}

_DEALS = {
    "connection": "connection",
    "deal_id": "deal_id",
    "name": "name",
    "stage": _STAGE_SQL,
    "stage_raw": "stage",
    "pipeline": "pipeline",
    "probability": "probability",
    "amount": "amount",
    "currency": "currency",
    "close_date": "closing_date",
    "account_id": "account_id",
    "account_name": "account_name",
    "contact_id": "contact_id",
    "books_invoice_id": "xero_invoice_id",
    "books_invoice_number": "xero_invoice_number",
    "payment_status": sql_case("lower(trim(payment_status))", PAYMENT_STATUS),
    "payment_status_raw": "payment_status",
    "payment_status_tracked": "null",
    "amount_paid": "amount_paid",
    "last_payment_date": "last_payment_date",
    "owner_id": "owner_id",
    "tags": _TAGS.format(col="tags"),
    "source_modified": "modified_time",
    "fetched_at": "fetched_at",
    "payment_risk": "lower(payment_risk)",
    "expected_pay_date": "expected_pay_date",
}

_INVOICES = {
    "connection": "connection",
    "invoice_id": "invoice_id",
    "number": "invoice_number",
    "subject": "subject",
    "status": sql_case("lower(trim(status))", INVOICE_STATUS),
    "status_raw": "status",
    "account_id": "account_id",
    "account_name": "account_name",
    "contact_id": "contact_id",
    "deal_id": "deal_id",
    "issue_date": "invoice_date",
    "due_date": "due_date",
    "currency": "currency",
    "subtotal": "sub_total",
    "discount": "discount",
    "tax": "tax",
    "adjustment": "adjustment",
    "total": "grand_total",
    "books_invoice_id": "xero_invoice_id",
    "payment_status": sql_case("lower(trim(payment_status))", PAYMENT_STATUS),
    "payment_status_raw": "payment_status",
    "amount_paid": "amount_paid",
    "last_payment_date": "last_payment_date",
    "source_modified": "modified_time",
    "fetched_at": "fetched_at",
}


# Whether the org keeps a payment status on deals (our Payment_Status, or the field it is mapped to): NULL when the
# org's schema was never read (an older mirror), so reconciliation compares as before.
_PAYMENT_STATUS_TRACKED = (
    "(case when not exists (select 1 from meta.vendor_schema v where v.connection = {t}.connection "
    "and v.vendor = 'zoho' and v.module = 'Deals') then null "
    "else exists (select 1 from meta.vendor_schema v where v.connection = {t}.connection and v.vendor = 'zoho' "
    "and v.module = 'Deals' and v.field = coalesce((select m.value from meta.vendor_schema m "
    "where m.connection = {t}.connection and m.vendor = 'zoho' and m.module = '@mapping' "
    "and m.field = 'Deals.Payment_Status'), 'Payment_Status')) end)"
)


def _deal_schema(t: str) -> dict[str, str]:
    schema = _with_schema(t)
    return {
        "stage": schema["stage"],
        "currency": schema["currency"],
        "payment_status_tracked": _PAYMENT_STATUS_TRACKED.format(t=t),
    }


def _deal_lines(modified: str) -> dict[str, str]:
    return {
        "connection": "l.connection",
        "deal_id": "l.deal_id",
        "line_no": "l.line_no",
        "product_id": "l.product_id",
        "product_code": "l.product_code",
        "product_name": "l.product_name",
        "quantity": "coalesce(l.quantity, 1)",  # an org without the relation's Quantity sells one
        "unit_price": "coalesce(l.list_price, l.unit_price)",  # else the product's own price
        "source_modified": modified,
        "fetched_at": "l.fetched_at",
    }


def _invoice_lines(modified: str) -> dict[str, str]:
    return {
        "connection": "l.connection",
        "invoice_id": "l.invoice_id",
        "line_id": "l.item_id",
        "line_no": "l.line_no",
        "product_id": "l.product_id",
        "product_name": "l.product_name",
        "description": "l.description",
        "quantity": "l.quantity",
        "unit_price": "l.list_price",
        "discount_amount": "l.discount",
        "line_amount": "l.total - coalesce(l.discount, 0)",
        "tax_rate": "l.tax_percent",
        "total": "l.net_total",
        "source_modified": modified,
        "fetched_at": "l.fetched_at",
    }


_PRODUCTS = {
    "connection": "connection",
    "product_id": "product_id",
    "code": "code",
    "name": "name",
    "description": "description",
    "unit_price": "unit_price",
    "active": "active",
    "taxable": "taxable",
    "source_modified": "modified_time",
    "fetched_at": "fetched_at",
}

CRM_VIEWS: dict[str, str | list[str]] = {
    "crm_accounts": [
        f"select {project('crm_accounts', _accounts('p.email', 'p.contact_id'))} from zoho.accounts a "
        f"left join ({_RANKED_CONTACTS}) p "
        "on p.connection = a.connection and p.account_id = a.account_id and p._rank = 1",
        f"select {project('crm_accounts', _accounts('null', 'null'))} from zoho.accounts a",
        f"select {project('crm_accounts', _accounts('p.email', 'p.contact_id', False))} from zoho.accounts a "
        f"left join ({_RANKED_CONTACTS}) p "
        "on p.connection = a.connection and p.account_id = a.account_id and p._rank = 1",
        f"select {project('crm_accounts', _accounts('null', 'null', False))} from zoho.accounts a",
    ],
    "crm_contacts": f"select {project('crm_contacts', _CONTACTS)} from ({_RANKED_CONTACTS})",
    "crm_deals": [
        f"select {project('crm_deals', {**_DEALS, **_deal_schema('d')})} from zoho.deals d",
        f"select {project('crm_deals', _DEALS)} from zoho.deals",
    ],
    "crm_deal_lines": [
        f"select {project('crm_deal_lines', _deal_lines('d.modified_time'))} from zoho.deal_products l "
        "left join zoho.deals d on d.connection = l.connection and d.deal_id = l.deal_id",
        f"select {project('crm_deal_lines', _deal_lines('null'))} from zoho.deal_products l",
    ],
    "crm_invoices": [
        f"select {project('crm_invoices', {**_INVOICES, 'currency': _with_schema('i')['currency']})} "
        "from zoho.invoices i",
        f"select {project('crm_invoices', _INVOICES)} from zoho.invoices",
    ],
    "crm_invoice_lines": [
        f"select {project('crm_invoice_lines', _invoice_lines('i.modified_time'))} from zoho.invoice_items l "
        "left join zoho.invoices i on i.connection = l.connection and i.invoice_id = l.invoice_id",
        f"select {project('crm_invoice_lines', _invoice_lines('null'))} from zoho.invoice_items l",
    ],
    "crm_products": f"select {project('crm_products', _PRODUCTS)} from zoho.products",
}
"""The SQL of each `canonical.crm_*` view; give it to `core.canonical.install_views`."""


# ---------------------------------------------------------------------------------------------
# Records -> canonical


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _lookup_id(payload: dict, field: str) -> str | None:
    ref = payload.get(field)
    return _text(ref.get("id")) if isinstance(ref, dict) else None


def _lookup_name(payload: dict, field: str) -> str | None:
    ref = payload.get(field)
    return _text(ref.get("name")) if isinstance(ref, dict) else None


def _tags(payload: dict) -> tuple[str, ...]:
    return tuple(sorted(t["name"] for t in payload.get("Tag") or [] if t.get("name")))


def _address(kind: AddressKind, payload: dict, street: str, city: str, state: str, code: str, country: str):
    """Zoho keeps the street in one field: it stays one line (nothing is split or re-joined)."""
    address = Address(
        kind,
        (payload[street],) if _text(payload.get(street)) else (),
        _text(payload.get(city)),
        _text(payload.get(state)),
        _text(payload.get(code)),
        _text(payload.get(country)),
    )
    return None if address.is_empty else address


_BILLING = ("Billing_Street", "Billing_City", "Billing_State", "Billing_Code", "Billing_Country")
_SHIPPING = ("Shipping_Street", "Shipping_City", "Shipping_State", "Shipping_Code", "Shipping_Country")
_MAILING = ("Mailing_Street", "Mailing_City", "Mailing_State", "Mailing_Zip", "Mailing_Country")


def contact_from_zoho(payload: dict, *, fetched_at: datetime | None = None) -> Person:
    return Person(
        id=str(payload["id"]),
        first_name=_text(payload.get("First_Name")),
        last_name=_text(payload.get("Last_Name")),
        email=_text(payload.get("Email")),
        secondary_email=_text(payload.get("Secondary_Email")),
        phone=_text(payload.get("Phone")),
        mobile=_text(payload.get("Mobile")),
        title=_text(payload.get("Title")),
        customer_id=_lookup_id(payload, "Account_Name"),
        address=_address(AddressKind.BILLING, payload, *_MAILING),
        source_created=parse_zoho_datetime(payload.get("Created_Time")),
        source_modified=parse_zoho_datetime(payload.get("Modified_Time")),
        fetched_at=fetched_at,
    )


def account_from_zoho(
    payload: dict, contacts: Iterable[dict | Person] = (), *, fetched_at: datetime | None = None
) -> Customer:
    """A Zoho Account as a CRM customer, with its contacts (records or Persons; others' are ignored) as
    persons. The primary person (`choose_primary`) gives the account its email."""
    account_id = str(payload["id"])
    people = [c if isinstance(c, Person) else contact_from_zoho(c, fetched_at=fetched_at) for c in contacts]
    people = [p for p in people if p.customer_id == account_id]
    primary = choose_primary(people)
    persons = tuple(replace(p, is_primary=p is primary) for p in people)
    phones = [
        Phone(kind, payload[field])
        for kind, field in ((PhoneKind.MAIN, "Phone"), (PhoneKind.FAX, "Fax"))
        if _text(payload.get(field))
    ]
    addresses = [
        a
        for a in (
            _address(AddressKind.BILLING, payload, *_BILLING),
            _address(AddressKind.SHIPPING, payload, *_SHIPPING),
        )
        if a
    ]
    return Customer(
        role=Role.CRM,
        crm_id=account_id,
        books_id=_text(payload.get("Xero_Contact_ID")),
        name=_text(payload.get("Account_Name")),
        persons=persons,
        emails=(primary.email,) if primary and primary.email else (),
        phones=tuple(phones),
        addresses=tuple(addresses),
        tax_number=_text(payload.get("Tax_Number")),
        currency=_text(payload.get("Currency")),
        account_number=_text(payload.get("Account_Number")),
        website=_text(payload.get("Website")),
        outstanding=to_decimal(payload.get("Outstanding_Balance")),
        overdue=to_decimal(payload.get("Overdue_Balance")),
        tags=_tags(payload),
        owner_id=_lookup_id(payload, "Owner"),
        source_modified=parse_zoho_datetime(payload.get("Modified_Time")),
        fetched_at=fetched_at,
    )


def deal_from_zoho(payload: dict, *, fetched_at: datetime | None = None) -> Deal:
    raw_status = _text(payload.get("Payment_Status"))
    return Deal(
        id=str(payload["id"]),
        name=_text(payload.get("Deal_Name")),
        stage=deal_stage(_text(payload.get("Stage"))),
        stage_raw=_text(payload.get("Stage")),
        pipeline=_text(payload.get("Pipeline")),
        probability=payload.get("Probability"),
        amount=to_decimal(payload.get("Amount")),
        currency=_text(payload.get("Currency")),
        close_date=parse_zoho_date(payload.get("Closing_Date")),
        account_id=_lookup_id(payload, "Account_Name"),
        account_name=_lookup_name(payload, "Account_Name"),
        contact_id=_lookup_id(payload, "Contact_Name"),
        books_invoice_id=_text(payload.get("Xero_Invoice_ID")),
        books_invoice_number=_text(payload.get("Xero_Invoice_Number")),
        payment_status=PAYMENT_STATUS.get(raw_status.strip().lower()) if raw_status else None,
        payment_status_raw=raw_status,
        amount_paid=to_decimal(payload.get("Amount_Paid")),
        last_payment_date=parse_zoho_date(payload.get("Last_Payment_Date")),
        owner_id=_lookup_id(payload, "Owner"),
        tags=_tags(payload),
        source_modified=parse_zoho_datetime(payload.get("Modified_Time")),
        fetched_at=fetched_at,
    )


def _item(n: int, item: dict) -> InvoiceLine:
    total, discount = to_decimal(item.get("Total")), to_decimal(item.get("Discount"))
    taxes = item.get("Line_Tax") or []
    return InvoiceLine(
        id=_text(item.get("id")),
        line_no=n,
        description=_text(item.get("Description")),
        quantity=to_decimal(item.get("Quantity")),
        unit_price=to_decimal(item.get("List_Price")),
        discount_amount=discount,
        line_amount=None if total is None else total - (discount or 0),
        tax_amount=to_decimal(item.get("Tax")),
        tax_rate=sum((to_decimal(t.get("percentage")) or Decimal(0) for t in taxes), Decimal(0))
        if taxes
        else None,
        product_id=_lookup_id(item, "Product_Name"),
        product_name=_lookup_name(item, "Product_Name"),
    )


def invoice_from_zoho(payload: dict, *, fetched_at: datetime | None = None) -> Invoice:
    """A Zoho invoice (always a sale; line prices exclude tax). Lines come only with a GET by id."""
    raw = _text(payload.get("Status"))
    return Invoice(
        role=Role.CRM,
        crm_id=str(payload["id"]),
        books_id=_text(payload.get("Xero_Invoice_ID")),
        number=_text(payload.get("Invoice_Number")),
        subject=_text(payload.get("Subject")),
        status=INVOICE_STATUS.get(raw.strip().lower()) if raw else None,
        status_raw=raw,
        customer_id=_lookup_id(payload, "Account_Name"),
        customer_name=_lookup_name(payload, "Account_Name"),
        contact_id=_lookup_id(payload, "Contact_Name"),
        deal_id=_lookup_id(payload, "Deal_Name"),
        issue_date=parse_zoho_date(payload.get("Invoice_Date")),
        due_date=parse_zoho_date(payload.get("Due_Date")),
        currency=_text(payload.get("Currency")),
        amounts_tax=TaxMode.EXCLUSIVE,
        subtotal=to_decimal(payload.get("Sub_Total")),
        discount=to_decimal(payload.get("Discount")),
        tax=to_decimal(payload.get("Tax")),
        adjustment=to_decimal(payload.get("Adjustment")),
        total=to_decimal(payload.get("Grand_Total")),
        lines=tuple(_item(n, item) for n, item in enumerate(payload.get("Invoiced_Items") or [], start=1)),
        source_modified=parse_zoho_datetime(payload.get("Modified_Time")),
        fetched_at=fetched_at,
    )


def product_from_zoho(payload: dict, *, fetched_at: datetime | None = None) -> Product:
    return Product(
        role=Role.CRM,
        id=str(payload["id"]),
        code=_text(payload.get("Product_Code")),
        name=_text(payload.get("Product_Name")),
        description=_text(payload.get("Description")),
        unit_price=to_decimal(payload.get("Unit_Price")),
        active=payload.get("Product_Active"),
        taxable=payload.get("Taxable"),
        source_modified=parse_zoho_datetime(payload.get("Modified_Time")),
        fetched_at=fetched_at,
    )


# ---------------------------------------------------------------------------------------------
# Canonical -> Zoho record dicts (the items of `{"data": [...]}`)


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _address_fields(address: Address | None, names: tuple[str, ...]) -> dict[str, Any]:
    if address is None:
        return {}
    values = (address.street, address.city, address.region, address.postal_code, address.country)
    return dict(zip(names, values, strict=True))


def account_to_zoho(customer: Customer) -> dict[str, Any]:
    """An Accounts record for insert/update/upsert. `crm_id` becomes `id` (an update); `books_id` the
    Xero_Contact_ID link. Empty fields are left out (Zoho keeps what it has); the balances are the books'
    figures, which the write-back keeps in the CRM."""
    shipping = next((a for a in customer.addresses if a.kind is AddressKind.SHIPPING), None)
    fax = next((p for p in customer.phones if p.kind is PhoneKind.FAX), None)
    main = customer.phone
    return _compact(
        {
            "id": customer.crm_id,
            "Account_Name": customer.name,
            "Account_Number": customer.account_number,
            "Phone": main.display if main else None,
            "Fax": fax.display if fax else None,
            "Website": customer.website,
            **_address_fields(customer.billing_address, _BILLING),
            **_address_fields(shipping, _SHIPPING),
            "Currency": customer.currency,
            "Tax_Number": customer.tax_number,
            "Xero_Contact_ID": customer.books_id,
            "Outstanding_Balance": customer.outstanding,
            "Overdue_Balance": customer.overdue,
        }
    )


def contact_to_zoho(person: Person, *, account_id: str | None = None) -> dict[str, Any]:
    """A Contacts record. `account_id` (the CRM account) overrides the person's `customer_id` — needed
    when the person comes from the books, whose customer ids are not Zoho's."""
    account = account_id or person.customer_id
    return _compact(
        {
            "id": person.id,
            "First_Name": person.first_name,
            "Last_Name": person.last_name,
            "Email": person.email,
            "Secondary_Email": person.secondary_email,
            "Phone": person.phone,
            "Mobile": person.mobile,
            "Title": person.title,
            "Account_Name": {"id": account} if account else None,
            **_address_fields(person.address, _MAILING),
        }
    )


def _stage(value: Any) -> str:
    stage = DealStage(value)
    if stage is DealStage.WON:
        return WON_STAGES[0]
    if stage is DealStage.LOST:
        return LOST_STAGES[0]
    raise ValueError("an open deal's stage is pipeline-specific: give stage_raw")


def _payment_status(value: Any) -> str | None:
    return None if value is None else PAYMENT_STATUS_LABEL[PaymentStatus(value)]


def _day(value: date | None) -> str | None:
    return None if value is None else format_zoho_date(value)


def _ref(value: str | None) -> dict | None:
    return None if value is None else {"id": value}


# canonical Deal field -> (Zoho API name, how a value is written). None clears the field in Zoho.
DEAL_FIELDS: dict[str, tuple[str, Any]] = {
    "name": ("Deal_Name", lambda v: v),
    "stage": ("Stage", _stage),
    "stage_raw": ("Stage", lambda v: v),
    "pipeline": ("Pipeline", lambda v: v),
    "probability": ("Probability", lambda v: v),
    "amount": ("Amount", lambda v: v),
    "currency": ("Currency", lambda v: v),
    "close_date": ("Closing_Date", _day),
    "account_id": ("Account_Name", _ref),
    "contact_id": ("Contact_Name", _ref),
    "books_invoice_id": ("Xero_Invoice_ID", lambda v: v),
    "books_invoice_number": ("Xero_Invoice_Number", lambda v: v),
    "payment_status": ("Payment_Status", _payment_status),
    "amount_paid": ("Amount_Paid", lambda v: v),
    "last_payment_date": ("Last_Payment_Date", _day),
}


def deal_update_to_zoho(deal_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """A Deals update record: `{"id": deal_id, <Zoho field>: value, ...}` from canonical field changes
    (e.g. `{"payment_status": "paid", "amount_paid": Decimal("10.00")}`), as a write-back plan holds them.
    A None value clears the field; a field the mapping does not know is an error, never dropped."""
    if "stage" in changes and "stage_raw" in changes:
        raise ValueError("give stage or stage_raw, not both")
    return _update_record(deal_id, changes, DEAL_FIELDS, "deal")


def _update_record(
    record_id: str, changes: Mapping[str, Any], fields: Mapping[str, tuple[str, Any]], what: str
) -> dict[str, Any]:
    """`{"id": record_id, <Zoho field>: value, ...}`: unknown fields and float amounts are errors."""
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise KeyError(f"{what} fields not writable to Zoho: {', '.join(unknown)}")
    record: dict[str, Any] = {"id": record_id}
    for name, value in changes.items():
        api_name, write = fields[name]
        if isinstance(value, float):
            raise TypeError(f"{name}: amounts are Decimal, never float")
        record[api_name] = None if value is None else write(value)
    return record


# canonical CRM invoice field -> (Zoho API name, how a value is written): what write-back keeps on them.
INVOICE_FIELDS: dict[str, tuple[str, Any]] = {
    "books_invoice_id": ("Xero_Invoice_ID", lambda v: v),
    "payment_status": ("Payment_Status", _payment_status),
    "amount_paid": ("Amount_Paid", lambda v: v),
    "last_payment_date": ("Last_Payment_Date", _day),
}


def invoice_update_to_zoho(invoice_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """An Invoices update record from canonical field changes (the payment fields write-back keeps).
    A None value clears the field; a field the mapping does not know is an error, never dropped."""
    return _update_record(invoice_id, changes, INVOICE_FIELDS, "CRM invoice")


__all__ = [
    "CRM_VIEWS",
    "account_from_zoho",
    "account_to_zoho",
    "contact_from_zoho",
    "contact_to_zoho",
    "deal_from_zoho",
    "deal_update_to_zoho",
    "invoice_from_zoho",
    "invoice_update_to_zoho",
    "product_from_zoho",
]
