"""The canonical model: records and role views that every stage after the mirror reads.

Two roles, not two vendors (docs/architecture.md): **books** (Xero today, QuickBooks later) and **crm** (Zoho
today, Salesforce later). A vendor folder maps its payloads to these records (`xero/mapping.py`,
`zoho/mapping.py`) and its mirror tables to the `canonical.*` views whose columns are fixed here, in
`CANONICAL_VIEWS`. Reconciliation and write-back speak only this language, so swapping a vendor means
writing one mapping module, not touching the stages.

Conventions, checked when a record is built: amounts are `Decimal` (a float is refused: it has already
lost the cents), times are aware and kept in UTC (a naive time is refused: its zone is unknown), and
every record keeps the source's modified time (`source_modified`) apart from our fetch time
(`fetched_at`). Records carry their own id and, where the other system's id is stored in them, the link
(`books_id` / `crm_id`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

import duckdb

from xz_pipeline.core.mirror import MONEY, PRICE, RATE

# ---------------------------------------------------------------------------------------------
# Normalised vocabularies (their values are what the canonical views hold, too)


class Role(StrEnum):
    BOOKS = "books"
    CRM = "crm"


class DocumentType(StrEnum):
    """Which side of the ledger a document sits on: a sale (receivable) or a bill (payable)."""

    SALE = "sale"
    BILL = "bill"


class DocumentStatus(StrEnum):
    """Invoice and credit-note status. `draft` = not yet posted (includes awaiting approval)."""

    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    DELETED = "deleted"


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"
    GDPR_REQUEST = "gdpr_request"  # being erased: never written to


class DealStage(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class PaymentStatus(StrEnum):
    """How far an invoice has been settled, as a deal records it."""

    UNPAID = "unpaid"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    OVERDUE = "overdue"


class PaymentState(StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"


class TaxMode(StrEnum):
    """Whether line amounts include tax."""

    EXCLUSIVE = "exclusive"
    INCLUSIVE = "inclusive"
    NO_TAX = "no_tax"


class AddressKind(StrEnum):
    BILLING = "billing"
    SHIPPING = "shipping"


class PhoneKind(StrEnum):
    MAIN = "main"
    MOBILE = "mobile"
    DIRECT = "direct"
    FAX = "fax"
    OFFICE = "office"


# ---------------------------------------------------------------------------------------------
# Validation shared by every record


def _aware_utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: a naive datetime has no known zone; give an aware one")
    return value.astimezone(UTC)


def _checked(name: str, value: object) -> object:
    if isinstance(value, float):
        raise TypeError(f"{name}: amounts are Decimal, never float (got {value!r})")
    if isinstance(value, datetime):
        return _aware_utc(name, value)
    if isinstance(value, list):
        return tuple(value)
    return value


# Enum-typed fields, coerced from their string values (so a typo fails at construction).
_ENUMS: dict[str, type[StrEnum]] = {
    "role": Role,
    "type": DocumentType,
    "stage": DealStage,
    "payment_status": PaymentStatus,
    "amounts_tax": TaxMode,
}


class _Record:
    """Checks and normalises fields after construction: Decimal amounts, UTC times, tuples, enums."""

    _enums: Mapping[str, type[StrEnum]] = {}

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            new = _checked(f"{type(self).__name__}.{f.name}", value)
            enum = self._enums.get(f.name, _ENUMS.get(f.name))
            if enum is not None and not isinstance(new, enum):
                try:
                    new = enum(new)
                except ValueError:
                    allowed = ", ".join(e.value for e in enum)
                    raise ValueError(
                        f"{type(self).__name__}.{f.name}: {new!r} is not one of {allowed}"
                    ) from None
            if new is not value:
                object.__setattr__(self, f.name, new)


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Address(_Record):
    kind: AddressKind
    lines: tuple[str, ...] = ()
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    attention: str | None = None

    _enums = {"kind": AddressKind}

    @property
    def street(self) -> str | None:
        """All street lines on one line, as the views show them."""
        return ", ".join(line for line in self.lines if line) or None

    @property
    def is_empty(self) -> bool:
        return not (self.street or self.city or self.region or self.postal_code or self.country)


@dataclass(frozen=True)
class Phone(_Record):
    kind: PhoneKind
    number: str
    area_code: str | None = None
    country_code: str | None = None

    _enums = {"kind": PhoneKind}

    @property
    def display(self) -> str:
        return " ".join(p for p in (self.country_code, self.area_code, self.number) if p)


@dataclass(frozen=True)
class Person(_Record):
    """A person at a customer: a CRM contact, or a books contact's primary or additional person."""

    id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    secondary_email: str | None = None
    phone: str | None = None
    mobile: str | None = None
    title: str | None = None
    customer_id: str | None = None  # the account/contact this person belongs to, in the same system
    address: Address | None = None
    is_primary: bool = False
    include_in_emails: bool | None = None
    source_created: datetime | None = None
    source_modified: datetime | None = None
    fetched_at: datetime | None = None

    @property
    def name(self) -> str | None:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or None


def choose_primary(persons: Iterable[Person]) -> Person | None:
    """The person whose email a CRM account shows: the earliest created one that has an email, else the
    earliest created one; ties by id (numerically where ids are digits). `canonical.crm_contacts.is_primary`
    applies the same rule in SQL."""

    def key(p: Person) -> tuple:
        created = p.source_created or datetime.max.replace(tzinfo=UTC)
        pid = p.id or ""
        return (p.email is None, created, len(pid), pid)

    ordered = sorted(persons, key=key)
    return ordered[0] if ordered else None


@dataclass(frozen=True)
class Customer(_Record):
    """A customer (or supplier) as either system holds it. `role` says which; its own id is `id`."""

    role: Role
    books_id: str | None = None
    crm_id: str | None = None
    name: str | None = None
    persons: tuple[Person, ...] = ()
    emails: tuple[str, ...] = ()  # the first is the primary email
    phones: tuple[Phone, ...] = ()
    addresses: tuple[Address, ...] = ()
    tax_number: str | None = None
    currency: str | None = None
    account_number: str | None = None
    website: str | None = None
    status: CustomerStatus | None = None
    is_customer: bool | None = None
    is_supplier: bool | None = None
    outstanding: Decimal | None = None  # receivable still owed
    overdue: Decimal | None = None
    tags: tuple[str, ...] = ()
    owner_id: str | None = None
    source_modified: datetime | None = None
    fetched_at: datetime | None = None

    _enums = {"status": CustomerStatus}

    @property
    def id(self) -> str | None:
        return self.books_id if self.role is Role.BOOKS else self.crm_id

    @property
    def email(self) -> str | None:
        return self.emails[0] if self.emails else None

    @property
    def phone(self) -> Phone | None:
        return next((p for p in self.phones if p.kind is PhoneKind.MAIN), None)

    @property
    def billing_address(self) -> Address | None:
        return next((a for a in self.addresses if a.kind is AddressKind.BILLING), None)

    @property
    def primary_person(self) -> Person | None:
        return next((p for p in self.persons if p.is_primary), None)


@dataclass(frozen=True)
class InvoiceLine(_Record):
    id: str | None = None
    line_no: int | None = None
    description: str | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    discount_rate: Decimal | None = None  # percent
    discount_amount: Decimal | None = None
    line_amount: Decimal | None = (
        None  # after discount; with or without tax as the invoice's amounts_tax says
    )
    tax_amount: Decimal | None = None
    tax_rate: Decimal | None = None  # percent
    tax_code: str | None = None
    item_code: str | None = None
    product_id: str | None = None
    product_name: str | None = None
    account_code: str | None = None


@dataclass(frozen=True)
class Allocation(_Record):
    """Part of a payment or credit note applied to one invoice (or, for refunds, a credit note)."""

    invoice_id: str | None
    amount: Decimal
    date: date | None = None
    currency: str | None = None
    credit_note_id: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class Invoice(_Record):
    role: Role
    books_id: str | None = None
    crm_id: str | None = None
    number: str | None = None
    type: DocumentType = DocumentType.SALE
    status: DocumentStatus | None = None
    status_raw: str | None = None
    customer_id: str | None = None  # in the same system as the invoice
    customer_name: str | None = None
    contact_id: str | None = None
    deal_id: str | None = None  # the CRM deal it was raised for, where known
    reference: str | None = None
    subject: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    paid_date: date | None = None
    currency: str | None = None
    currency_rate: Decimal | None = None
    amounts_tax: TaxMode | None = None
    subtotal: Decimal | None = None
    discount: Decimal | None = None
    tax: Decimal | None = None
    adjustment: Decimal | None = None
    total: Decimal | None = None
    amount_paid: Decimal | None = None
    amount_due: Decimal | None = None
    amount_credited: Decimal | None = None
    sent: bool | None = None
    lines: tuple[InvoiceLine, ...] = ()
    source_modified: datetime | None = None
    fetched_at: datetime | None = None

    _enums = {"status": DocumentStatus}

    @property
    def id(self) -> str | None:
        return self.books_id if self.role is Role.BOOKS else self.crm_id


def payment_status_of(invoice: Invoice, today: date) -> PaymentStatus | None:
    """What a deal's payment status should say about a books invoice on `today`.

    Paid once nothing is due on an open or paid invoice; partially paid once anything was paid or
    credited; overdue when open and due before today; unpaid otherwise. None for drafts, voids and
    deletions (nothing is owed yet, or any more).
    """
    if invoice.status not in (DocumentStatus.OPEN, DocumentStatus.PAID):
        return None
    due = invoice.amount_due or Decimal(0)
    if due <= 0:
        return PaymentStatus.PAID
    if (invoice.amount_paid or 0) + (invoice.amount_credited or 0) > 0:
        return PaymentStatus.PARTIALLY_PAID
    if invoice.due_date is not None and invoice.due_date < today:
        return PaymentStatus.OVERDUE
    return PaymentStatus.UNPAID


@dataclass(frozen=True)
class Payment(_Record):
    role: Role
    id: str
    type: DocumentType = DocumentType.SALE
    status: PaymentState = PaymentState.ACTIVE
    date: date | None = None
    amount: Decimal | None = None
    currency: str | None = None
    currency_rate: Decimal | None = None
    reference: str | None = None
    account_code: str | None = None
    is_reconciled: bool | None = None
    allocations: tuple[Allocation, ...] = ()
    source_modified: datetime | None = None
    fetched_at: datetime | None = None

    _enums = {"status": PaymentState}


@dataclass(frozen=True)
class CreditNote(_Record):
    role: Role
    id: str
    number: str | None = None
    type: DocumentType = DocumentType.SALE
    status: DocumentStatus | None = None
    status_raw: str | None = None
    customer_id: str | None = None
    customer_name: str | None = None
    reference: str | None = None
    issue_date: date | None = None
    currency: str | None = None
    currency_rate: Decimal | None = None
    amounts_tax: TaxMode | None = None
    subtotal: Decimal | None = None
    tax: Decimal | None = None
    total: Decimal | None = None
    remaining_credit: Decimal | None = None
    lines: tuple[InvoiceLine, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    source_modified: datetime | None = None
    fetched_at: datetime | None = None

    _enums = {"status": DocumentStatus}


@dataclass(frozen=True)
class Deal(_Record):
    """A CRM opportunity: stage normalised (the raw stage kept), amount with its currency."""

    id: str
    name: str | None = None
    stage: DealStage | None = None
    stage_raw: str | None = None
    pipeline: str | None = None
    probability: int | None = None
    amount: Decimal | None = None
    currency: str | None = None
    close_date: date | None = None
    account_id: str | None = None
    account_name: str | None = None
    contact_id: str | None = None
    books_invoice_id: str | None = None
    books_invoice_number: str | None = None
    payment_status: PaymentStatus | None = None
    payment_status_raw: str | None = None
    amount_paid: Decimal | None = None
    last_payment_date: date | None = None
    owner_id: str | None = None
    tags: tuple[str, ...] = ()
    source_modified: datetime | None = None
    fetched_at: datetime | None = None


@dataclass(frozen=True)
class Product(_Record):
    role: Role
    id: str
    code: str | None = None
    name: str | None = None
    description: str | None = None
    unit_price: Decimal | None = None
    active: bool | None = None
    taxable: bool | None = None
    is_sold: bool | None = None
    is_purchased: bool | None = None
    source_modified: datetime | None = None
    fetched_at: datetime | None = None


# ---------------------------------------------------------------------------------------------
# The role views: the contract between a vendor's mirror tables and every later stage

VARCHAR = "VARCHAR"
BOOLEAN = "BOOLEAN"
INTEGER = "INTEGER"
DATE = "DATE"
TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
TAGS = "VARCHAR[]"

Columns = list[tuple[str, str]]

_ADDRESS: Columns = [(c, VARCHAR) for c in ("street", "city", "region", "postal_code", "country")]
_TIMES: Columns = [("source_modified", TIMESTAMPTZ), ("fetched_at", TIMESTAMPTZ)]

CANONICAL_VIEWS: dict[str, Columns] = {
    # A books contact: customers and suppliers alike (is_customer / is_supplier say which). The address
    # is the billing one (books' postal address, else its street address). crm_link is the CRM id the
    # books record stores (our write-back sets it), not a guess.
    "books_customers": [
        ("connection", VARCHAR), ("customer_id", VARCHAR), ("name", VARCHAR), ("first_name", VARCHAR),
        ("last_name", VARCHAR), ("email", VARCHAR), ("phone", VARCHAR), ("mobile", VARCHAR),
        ("tax_number", VARCHAR), ("currency", VARCHAR), ("account_number", VARCHAR), *_ADDRESS,
        ("is_customer", BOOLEAN), ("is_supplier", BOOLEAN), ("status", VARCHAR), ("outstanding", MONEY),
        ("overdue", MONEY), ("crm_link", VARCHAR), *_TIMES,
    ],
    # Sales invoices (type 'sale') and bills (type 'bill'); status normalised, the source's kept raw.
    "books_invoices": [
        ("connection", VARCHAR), ("invoice_id", VARCHAR), ("number", VARCHAR), ("type", VARCHAR),
        ("status", VARCHAR), ("status_raw", VARCHAR), ("customer_id", VARCHAR), ("customer_name", VARCHAR),
        ("reference", VARCHAR), ("issue_date", DATE), ("due_date", DATE), ("paid_date", DATE),
        ("currency", VARCHAR), ("currency_rate", RATE), ("amounts_tax", VARCHAR), ("subtotal", MONEY),
        ("tax", MONEY), ("total", MONEY), ("amount_paid", MONEY), ("amount_due", MONEY),
        ("amount_credited", MONEY), ("sent", BOOLEAN), *_TIMES,
    ],
    "books_invoice_lines": [
        ("connection", VARCHAR), ("invoice_id", VARCHAR), ("line_id", VARCHAR), ("line_no", INTEGER),
        ("description", VARCHAR), ("item_code", VARCHAR), ("account_code", VARCHAR), ("tax_code", VARCHAR),
        ("quantity", PRICE), ("unit_price", PRICE), ("discount_rate", MONEY), ("line_amount", MONEY),
        ("tax_amount", MONEY), *_TIMES,
    ],
    # One row per payment; books payments settle one document each (invoice_id or credit_note_id).
    # The currency is the settled document's.
    "books_payments": [
        ("connection", VARCHAR), ("payment_id", VARCHAR), ("type", VARCHAR), ("status", VARCHAR),
        ("invoice_id", VARCHAR), ("credit_note_id", VARCHAR), ("date", DATE), ("amount", MONEY),
        ("currency", VARCHAR), ("currency_rate", RATE), ("reference", VARCHAR), ("account_code", VARCHAR),
        ("is_reconciled", BOOLEAN), *_TIMES,
    ],
    "books_credit_notes": [
        ("connection", VARCHAR), ("credit_note_id", VARCHAR), ("number", VARCHAR), ("type", VARCHAR),
        ("status", VARCHAR), ("status_raw", VARCHAR), ("customer_id", VARCHAR), ("customer_name", VARCHAR),
        ("reference", VARCHAR), ("issue_date", DATE), ("currency", VARCHAR), ("currency_rate", RATE),
        ("amounts_tax", VARCHAR), ("subtotal", MONEY), ("tax", MONEY), ("total", MONEY),
        ("remaining_credit", MONEY), ("amount_applied", MONEY), *_TIMES,
    ],
    # A credit note applied to an invoice; the currency is the credit note's.
    "books_credit_allocations": [
        ("connection", VARCHAR), ("credit_note_id", VARCHAR), ("allocation_id", VARCHAR),
        ("invoice_id", VARCHAR), ("amount", MONEY), ("date", DATE), ("currency", VARCHAR), *_TIMES,
    ],
    "books_items": [
        ("connection", VARCHAR), ("item_id", VARCHAR), ("code", VARCHAR), ("name", VARCHAR),
        ("description", VARCHAR), ("unit_price", PRICE), ("is_sold", BOOLEAN), ("is_purchased", BOOLEAN),
        *_TIMES,
    ],
    # A CRM account. `email` is its primary contact's (see `choose_primary`); the address is billing.
    # books_link is the books id the CRM record stores (our write-back sets it). marked_customer: the
    # CRM's own type says customer (which types do is the org's; a won deal makes one too, see reconcile).
    "crm_accounts": [
        ("connection", VARCHAR), ("account_id", VARCHAR), ("name", VARCHAR), ("email", VARCHAR),
        ("primary_contact_id", VARCHAR), ("phone", VARCHAR), ("website", VARCHAR), ("tax_number", VARCHAR),
        ("currency", VARCHAR), ("account_number", VARCHAR), *_ADDRESS, ("books_link", VARCHAR),
        ("outstanding", MONEY), ("overdue", MONEY), ("tags", TAGS), ("owner_id", VARCHAR),
        ("marked_customer", BOOLEAN), ("source_created", TIMESTAMPTZ),
        ("payment_risk", VARCHAR), ("expected_pay_date", DATE),  # what insights last wrote (NULL: none)
        *_TIMES,
    ],
    "crm_contacts": [
        ("connection", VARCHAR), ("contact_id", VARCHAR), ("account_id", VARCHAR), ("first_name", VARCHAR),
        ("last_name", VARCHAR), ("name", VARCHAR), ("email", VARCHAR), ("secondary_email", VARCHAR),
        ("phone", VARCHAR), ("mobile", VARCHAR), ("title", VARCHAR), *_ADDRESS, ("is_primary", BOOLEAN),
        ("source_created", TIMESTAMPTZ), *_TIMES,
    ],
    # stage: open / won / lost (stage_raw keeps the pipeline's own name); payment_status normalised
    # to unpaid / partially_paid / paid / overdue (NULL when the CRM has none).
    "crm_deals": [
        ("connection", VARCHAR), ("deal_id", VARCHAR), ("name", VARCHAR), ("stage", VARCHAR),
        ("stage_raw", VARCHAR), ("pipeline", VARCHAR), ("probability", INTEGER), ("amount", MONEY),
        ("currency", VARCHAR), ("close_date", DATE), ("account_id", VARCHAR), ("account_name", VARCHAR),
        ("contact_id", VARCHAR), ("books_invoice_id", VARCHAR), ("books_invoice_number", VARCHAR),
        ("payment_status", VARCHAR), ("payment_status_raw", VARCHAR), ("payment_status_tracked", BOOLEAN),
        ("amount_paid", MONEY), ("last_payment_date", DATE), ("owner_id", VARCHAR), ("tags", TAGS),
        ("payment_risk", VARCHAR), ("expected_pay_date", DATE), *_TIMES,
    ],
    # What a deal was sold as: its products (code, quantity, unit price before tax), where the CRM keeps
    # them. Not every deal has lines; the mirror reads them only for won deals not yet invoiced.
    "crm_deal_lines": [
        ("connection", VARCHAR), ("deal_id", VARCHAR), ("line_no", INTEGER), ("product_id", VARCHAR),
        ("product_code", VARCHAR), ("product_name", VARCHAR), ("quantity", PRICE), ("unit_price", PRICE),
        *_TIMES,
    ],
    "crm_invoices": [
        ("connection", VARCHAR), ("invoice_id", VARCHAR), ("number", VARCHAR), ("subject", VARCHAR),
        ("status", VARCHAR), ("status_raw", VARCHAR), ("account_id", VARCHAR), ("account_name", VARCHAR),
        ("contact_id", VARCHAR), ("deal_id", VARCHAR), ("issue_date", DATE), ("due_date", DATE),
        ("currency", VARCHAR), ("subtotal", MONEY), ("discount", MONEY), ("tax", MONEY),
        ("adjustment", MONEY), ("total", MONEY), ("books_invoice_id", VARCHAR), ("payment_status", VARCHAR),
        ("payment_status_raw", VARCHAR), ("amount_paid", MONEY), ("last_payment_date", DATE), *_TIMES,
    ],
    # line_amount is after discount and before tax.
    "crm_invoice_lines": [
        ("connection", VARCHAR), ("invoice_id", VARCHAR), ("line_id", VARCHAR), ("line_no", INTEGER),
        ("product_id", VARCHAR), ("product_name", VARCHAR), ("description", VARCHAR), ("quantity", PRICE),
        ("unit_price", PRICE), ("discount_amount", MONEY), ("line_amount", MONEY), ("tax_rate", PRICE),
        ("total", MONEY), *_TIMES,
    ],
    "crm_products": [
        ("connection", VARCHAR), ("product_id", VARCHAR), ("code", VARCHAR), ("name", VARCHAR),
        ("description", VARCHAR), ("unit_price", PRICE), ("active", BOOLEAN), ("taxable", BOOLEAN),
        *_TIMES,
    ],
    # Projects (time and costs billed to a customer), where the books keep them: see OPTIONAL_VIEWS. Totals
    # are the books' own; status in_progress | closed; minutes are whole minutes.
    "books_projects": [
        ("connection", VARCHAR), ("project_id", VARCHAR), ("customer_id", VARCHAR), ("name", VARCHAR),
        ("currency", VARCHAR), ("status", VARCHAR), ("status_raw", VARCHAR), ("estimate", MONEY),
        ("minutes_logged", INTEGER), ("minutes_to_be_invoiced", INTEGER), ("task_amount", MONEY),
        ("task_amount_invoiced", MONEY), ("task_amount_to_be_invoiced", MONEY), ("expense_amount", MONEY),
        ("expense_amount_invoiced", MONEY), ("expense_amount_to_be_invoiced", MONEY), ("total_invoiced", MONEY),
        ("total_to_be_invoiced", MONEY), ("deadline", TIMESTAMPTZ), *_TIMES,
    ],
    # charge_type time | fixed | non_chargeable; rate is per hour (time) or the fixed amount (fixed).
    "books_project_tasks": [
        ("connection", VARCHAR), ("task_id", VARCHAR), ("project_id", VARCHAR), ("name", VARCHAR),
        ("charge_type", VARCHAR), ("rate", MONEY), ("estimate_minutes", INTEGER), ("total_minutes", INTEGER),
        ("minutes_invoiced", INTEGER), ("amount_invoiced", MONEY), ("amount_to_be_invoiced", MONEY),
        ("status", VARCHAR), *_TIMES,
    ],
    # status active | locked (being invoiced) | invoiced; chargeable: its task is charged (time or fixed).
    "books_time_entries": [
        ("connection", VARCHAR), ("time_entry_id", VARCHAR), ("project_id", VARCHAR), ("task_id", VARCHAR),
        ("user_id", VARCHAR), ("user_name", VARCHAR), ("worked_on", TIMESTAMPTZ), ("minutes", INTEGER),
        ("description", VARCHAR), ("status", VARCHAR), ("chargeable", BOOLEAN), *_TIMES,
    ],
}  # fmt: skip
# Views a vendor may leave out (a books system without projects): made empty when its mapping has none.
OPTIONAL_VIEWS = frozenset({"books_projects", "books_project_tasks", "books_time_entries"})

SCHEMA = "canonical"


class CanonicalViewError(ValueError):
    """A vendor's view does not produce the contract's columns (or names a view the contract lacks)."""


def _norm_type(sql_type: str) -> str:
    t = re.sub(r"\s+", "", sql_type.upper())
    return {"TIMESTAMPTZ": "TIMESTAMPWITHTIMEZONE", "TEXT": "VARCHAR", "STRING": "VARCHAR", "INT": "INTEGER",
            "INT4": "INTEGER", "BOOL": "BOOLEAN", "TEXT[]": "VARCHAR[]"}.get(t, t)  # fmt: skip


def role_of(view: str) -> str:
    return view.split("_", 1)[0]


def empty_select(view: str) -> str:
    """A SELECT with the view's columns and no rows: what a view is when its source is absent."""
    cols = ", ".join(f"cast(null as {sql}) as {name}" for name, sql in CANONICAL_VIEWS[view])
    return f"select {cols} where false"


def _sources(con: duckdb.DuckDBPyConnection, select: str) -> set[tuple[str, str]]:
    """The schema-qualified tables a SELECT reads, from DuckDB's own parser (nothing is bound)."""
    tree = json.loads(con.execute("select json_serialize_sql(?)", [select]).fetchone()[0])
    if tree.get("error"):
        raise CanonicalViewError(f"not a SELECT DuckDB can parse: {tree.get('error_message')}")
    found: set[tuple[str, str]] = set()
    stack: list = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE" and node.get("schema_name"):
                found.add((node["schema_name"], node["table_name"]))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _present(con: duckdb.DuckDBPyConnection, sources: set[tuple[str, str]]) -> bool:
    """Do all these tables exist? Asked of the catalog, not by failing: a failed statement would abort
    the caller's transaction."""
    return all(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
        for schema, table in sources
    )


def _check_columns(con: duckdb.DuckDBPyConnection, view: str) -> None:
    got = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [SCHEMA, view],
    ).fetchall()
    want = CANONICAL_VIEWS[view]
    problems = []
    got_names, want_names = [g[0] for g in got], [w[0] for w in want]
    missing = [n for n in want_names if n not in got_names]
    extra = [n for n in got_names if n not in want_names]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(extra)}")
    types = dict(got)
    for name, sql in want:
        if name in types and _norm_type(types[name]) != _norm_type(sql):
            problems.append(f"column {name} is {types[name]}, the contract says {sql}")
    if not problems and got_names != want_names:
        problems.append(
            f"columns in the order {', '.join(got_names)}; the contract says {', '.join(want_names)}"
        )
    if problems:
        raise CanonicalViewError(f"{SCHEMA}.{view} breaks the canonical contract: " + "; ".join(problems))


def _without_quarantined(con: duckdb.DuckDBPyConnection, view: str, select: str) -> str:
    """`select` less the records with an open ERROR quarantine row (`meta.quarantine`): a record that failed
    typing or a blocking check stays out of every later stage until it is fixed and passes. A view's second
    column is the record it comes from (a line's, its document's), which is what quarantine rows name."""
    has_severity = con.execute(
        "select count(*) from duckdb_columns() where schema_name = 'meta' and table_name = 'quarantine' "
        "and column_name = 'severity'"
    ).fetchone()[0]
    if not has_severity:
        return select
    record = CANONICAL_VIEWS[view][1][0]
    return (
        f"select * from ({select}) v where not exists (select 1 from meta.quarantine q where q.resolved_at is null "
        f"and q.severity = 'ERROR' and q.connection = v.connection and q.record_id = v.{record})"
    )


def install_views(
    con: duckdb.DuckDBPyConnection, vendor_views: Mapping[str, str | Sequence[str]]
) -> dict[str, str]:
    """Create `canonical.<view>` from a vendor's SELECTs and check each against `CANONICAL_VIEWS`.

    A value may be one SELECT or several, tried in order: the first whose source tables exist wins
    (e.g. a full join first, a narrower fallback next). A view none of whose SELECTs has its sources
    (zoho.invoices in an org without the module) is created empty with the contract's columns, so a
    later stage never meets a missing view. A vendor must supply every view of each role it names.
    Returns how each view was made: "source" (its first SELECT), "fallback" or "empty".

    Runs in the caller's transaction, and asks the catalog whether sources exist rather than letting a
    statement fail (a failed statement aborts the transaction). A contract breach, or a SELECT that fails
    for another reason, raises `CanonicalViewError` naming the view (and the column); the caller's
    rollback then leaves the previous views in place.
    """
    unknown = sorted(set(vendor_views) - set(CANONICAL_VIEWS))
    if unknown:
        raise CanonicalViewError(f"not canonical views: {', '.join(unknown)}")
    for role in sorted({role_of(v) for v in vendor_views}):
        wanted = [v for v in CANONICAL_VIEWS if role_of(v) == role and v not in OPTIONAL_VIEWS]
        absent = [v for v in wanted if v not in vendor_views]
        if absent:
            raise CanonicalViewError(f"the {role} views are incomplete: missing {', '.join(absent)}")
    con.execute(f"create schema if not exists {SCHEMA}")
    made: dict[str, str] = {}
    for view, selects in vendor_views.items():
        candidates = [selects] if isinstance(selects, str) else list(selects)
        made[view] = "empty"
        for n, select in enumerate(candidates):
            if not _present(con, _sources(con, select)):
                continue
            try:
                con.execute(
                    f"create or replace view {SCHEMA}.{view} as {_without_quarantined(con, view, select)}"
                )
            except duckdb.Error as exc:
                raise CanonicalViewError(f"{SCHEMA}.{view}: the vendor SELECT fails: {exc}") from exc
            made[view] = "source" if n == 0 else "fallback"
            break
        else:
            con.execute(f"create or replace view {SCHEMA}.{view} as {empty_select(view)}")
        _check_columns(con, view)
    for view in sorted(OPTIONAL_VIEWS):  # left out by this mapping: present and empty, never missing
        if view not in vendor_views and role_of(view) in {role_of(v) for v in vendor_views}:
            con.execute(f"create or replace view {SCHEMA}.{view} as {empty_select(view)}")
    return made


# ---------------------------------------------------------------------------------------------
# Helpers for vendor mapping modules writing their SELECTs


def project(view: str, exprs: Mapping[str, str]) -> str:
    """The select list of `view`: each contract column as `cast(<expr> as <type>)`, in contract order.

    Vendors give one SQL expression per column; a column left out or one the contract lacks fails
    here, at import time of the vendor module, rather than at install time.
    """
    want = [name for name, _ in CANONICAL_VIEWS[view]]
    missing = [n for n in want if n not in exprs]
    extra = [n for n in exprs if n not in want]
    if missing or extra:
        raise CanonicalViewError(
            f"{SCHEMA}.{view}: expressions missing for {', '.join(missing) or '-'}; "
            f"not in the contract: {', '.join(extra) or '-'}"
        )
    return ", ".join(f"cast({exprs[name]} as {sql}) as {name}" for name, sql in CANONICAL_VIEWS[view])


def sql_literal(value: str | None) -> str:
    return "null" if value is None else "'" + value.replace("'", "''") + "'"


def sql_case(expr: str, mapping: Mapping[str, str | None], default: str | None = None) -> str:
    """`case <expr> when 'a' then 'x' ... else <default> end`: one vocabulary table serves both the
    Python mappings and the SQL views, so they cannot drift apart."""
    whens = " ".join(f"when {sql_literal(k)} then {sql_literal(v)}" for k, v in mapping.items())
    return f"(case {expr} {whens} else {sql_literal(default)} end)"
