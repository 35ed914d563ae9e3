"""The generated world: one books organisation and one CRM organisation per connection.

The world is deliberately independent of either API's shape: plain records with Python types
(Decimal amounts, aware UTC datetimes, dates). Each emulator turns it into its own wire format.
Only ids follow each vendor's id format (Xero: UUIDs; Zoho: 19-digit strings), because the
ground-truth manifest must name the records as each system knows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xz_pipeline.sandbox.world.projects import ProjectsBook

# --------------------------------------------------------------------------------------------
# Shared pieces


@dataclass(slots=True)
class Address:
    line1: str
    line2: str
    city: str
    region: str
    postal_code: str
    country: str  # country name as people type it ("New Zealand", "United Kingdom")


@dataclass(slots=True)
class Person:
    first_name: str
    last_name: str
    email: str
    phone: str  # as typed in that system: "+64 9 555 0100", "(09) 555-0100", ...


# --------------------------------------------------------------------------------------------
# Books side (the accounting system)


@dataclass(slots=True)
class LedgerAccount:
    id: str
    code: str
    name: str
    type: str  # BANK, REVENUE, SALES, EXPENSE, CURRLIAB, ...
    tax_type: str
    currency: str = ""  # bank accounts only
    system_account: str = ""  # DEBTORS, CREDITORS, ... (read-only)


@dataclass(slots=True)
class TaxRate:
    tax_type: str  # OUTPUT2, INPUT2, NONE, ...
    name: str
    rate: Decimal  # percent, e.g. Decimal("15")


@dataclass(slots=True)
class Item:
    id: str
    code: str
    name: str
    description: str
    unit_price: Decimal
    account_code: str
    tax_type: str
    updated: datetime


@dataclass(slots=True)
class Line:
    description: str
    quantity: Decimal
    unit_amount: Decimal
    account_code: str
    tax_type: str
    tax_rate: Decimal  # percent
    item_code: str = ""
    discount_rate: Decimal = Decimal("0")  # percent, ACCREC only

    @property
    def line_amount(self) -> Decimal:
        gross = self.quantity * self.unit_amount
        return (gross * (100 - self.discount_rate) / 100).quantize(Decimal("0.01"))

    @property
    def tax_amount(self) -> Decimal:
        return (self.line_amount * self.tax_rate / 100).quantize(Decimal("0.01"))


@dataclass(slots=True)
class BooksContact:
    id: str
    name: str
    email: str
    phone: str
    address: Address | None
    tax_number: str
    currency: str
    persons: list[Person]
    created: datetime
    updated: datetime
    first_name: str = ""
    last_name: str = ""
    account_number: str = ""
    contact_number: str = ""  # an external key; our write-back stores the CRM id here
    status: str = "ACTIVE"  # ACTIVE | ARCHIVED


@dataclass(slots=True)
class BooksInvoice:
    """A sales invoice (ACCREC) or a supplier bill (ACCPAY).

    `status` is what a person set: DRAFT, SUBMITTED, AUTHORISED, VOIDED or DELETED. PAID,
    AmountPaid, AmountDue and FullyPaidOnDate are derived by the emulator from payments and
    credit-note allocations, as Xero derives them.
    """

    id: str
    number: str
    type: str  # ACCREC | ACCPAY
    contact_id: str
    date: date
    due_date: date
    currency: str
    status: str
    lines: list[Line]
    created: datetime
    updated: datetime
    reference: str = ""
    currency_rate: Decimal = Decimal("1")
    line_amount_types: str = "Exclusive"

    @property
    def sub_total(self) -> Decimal:
        return sum((ln.line_amount for ln in self.lines), Decimal("0"))

    @property
    def total_tax(self) -> Decimal:
        return sum((ln.tax_amount for ln in self.lines), Decimal("0"))

    @property
    def total(self) -> Decimal:
        return self.sub_total + self.total_tax


@dataclass(slots=True)
class BooksPayment:
    id: str
    invoice_id: str
    date: date
    amount: Decimal
    account_code: str  # the bank account paid into (or out of)
    created: datetime
    updated: datetime
    reference: str = ""
    currency_rate: Decimal = Decimal("1")
    status: str = "AUTHORISED"  # AUTHORISED | DELETED


@dataclass(slots=True)
class Allocation:
    invoice_id: str
    amount: Decimal
    date: date


@dataclass(slots=True)
class BooksCreditNote:
    id: str
    number: str
    type: str  # ACCRECCREDIT | ACCPAYCREDIT
    contact_id: str
    date: date
    currency: str
    status: str  # DRAFT | AUTHORISED | VOIDED (PAID derived when fully allocated)
    lines: list[Line]
    allocations: list[Allocation]
    created: datetime
    updated: datetime
    reference: str = ""

    @property
    def total(self) -> Decimal:
        return sum((ln.line_amount + ln.tax_amount for ln in self.lines), Decimal("0"))


@dataclass(slots=True)
class BooksOrg:
    tenant_id: str
    name: str
    legal_name: str
    short_code: str
    base_currency: str
    country_code: str  # ISO 3166 alpha-2
    timezone: str  # IANA name
    created: datetime
    accounts: list[LedgerAccount] = field(default_factory=list)
    tax_rates: list[TaxRate] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    contacts: list[BooksContact] = field(default_factory=list)
    invoices: list[BooksInvoice] = field(default_factory=list)
    payments: list[BooksPayment] = field(default_factory=list)
    credit_notes: list[BooksCreditNote] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# CRM side


@dataclass(slots=True)
class CrmUser:
    id: str
    name: str
    email: str


@dataclass(slots=True)
class CrmAccount:
    id: str
    name: str
    phone: str
    website: str
    billing: Address | None
    currency: str
    owner_id: str
    created: datetime
    modified: datetime
    account_number: str = ""
    xero_contact_id: str = ""  # custom external-id field Xero_Contact_ID; "" when not linked
    tax_number: str = ""
    outstanding_balance: Decimal | None = None  # custom fields the write-back keeps current
    overdue_balance: Decimal | None = None
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CrmContact:
    id: str
    account_id: str  # "" when the contact has no account
    first_name: str
    last_name: str
    email: str
    phone: str
    owner_id: str
    created: datetime
    modified: datetime
    mobile: str = ""
    title: str = ""
    mailing: Address | None = None


@dataclass(slots=True)
class CrmProduct:
    id: str
    code: str  # Product_Code; mirrors the books Item code where the product is sold through Xero
    name: str
    unit_price: Decimal
    description: str
    owner_id: str
    created: datetime
    modified: datetime
    tax_percent: Decimal = Decimal("0")
    active: bool = True


@dataclass(slots=True)
class DealLine:
    product_id: str
    quantity: Decimal
    list_price: Decimal


@dataclass(slots=True)
class Deal:
    id: str
    name: str
    account_id: str
    contact_id: str  # "" when none
    stage: str  # Zoho standard pipeline actual values: Qualification ... Closed Won, Closed Lost
    amount: Decimal
    currency: str
    closing_date: date
    owner_id: str
    created: datetime
    modified: datetime
    probability: int = 10
    products: list[DealLine] = field(default_factory=list)  # its Products related list ([] when none)
    xero_invoice_id: str = ""  # custom fields the write-back keeps
    xero_invoice_number: str = ""
    payment_status: str = ""  # "", Unpaid, Partially Paid, Paid, Overdue
    amount_paid: Decimal | None = None
    last_payment_date: date | None = None


@dataclass(slots=True)
class CrmInvoiceLine:
    product_id: str
    quantity: Decimal
    list_price: Decimal
    tax_percent: Decimal
    description: str = ""
    discount: Decimal = Decimal("0")  # an amount, as Zoho's line Discount

    @property
    def total(self) -> Decimal:
        return (self.quantity * self.list_price).quantize(Decimal("0.01"))

    @property
    def net_total(self) -> Decimal:
        taxable = self.total - self.discount
        return (taxable + taxable * self.tax_percent / 100).quantize(Decimal("0.01"))


@dataclass(slots=True)
class CrmInvoice:
    id: str
    subject: str
    number: str
    account_id: str
    contact_id: str
    deal_id: str  # "" when none (Zoho has no standard Deal lookup on Invoices; kept as a custom lookup)
    date: date
    due_date: date
    status: str  # Created | Approved | Delivered | Cancelled | Paid (picklist)
    currency: str
    lines: list[CrmInvoiceLine]
    owner_id: str
    created: datetime
    modified: datetime
    xero_invoice_id: str = ""
    payment_status: str = ""  # custom fields the write-back keeps, as on deals
    amount_paid: Decimal | None = None
    last_payment_date: date | None = None

    @property
    def grand_total(self) -> Decimal:
        return sum((ln.net_total for ln in self.lines), Decimal("0"))


@dataclass(slots=True)
class CrmOrg:
    org_id: str
    company_name: str
    currency: str
    timezone: str  # IANA name: the emulator renders DateTimes with this zone's offset
    edition: str  # Free | Standard | Professional | Enterprise | Ultimate
    created: datetime
    users: list[CrmUser] = field(default_factory=list)
    accounts: list[CrmAccount] = field(default_factory=list)
    contacts: list[CrmContact] = field(default_factory=list)
    products: list[CrmProduct] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    invoices: list[CrmInvoice] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Ground truth

# The kind names of the reconciliation stage (recon.discrepancies.kind).
DISCREPANCY_KINDS = (
    "customer_missing_in_crm",
    "customer_missing_in_books",
    "customer_duplicate",
    "customer_field_mismatch",
    "deal_not_invoiced",
    "invoice_without_deal",
    "amount_mismatch",
    "currency_mismatch",
    "payment_status_stale",
    "balance_mismatch",
    "invoice_missing_in_crm",
    "time_not_invoiced",  # Xero Projects (world/projects.py): chargeable time left ACTIVE past the billing cycle
    "project_over_budget",
)


@dataclass(slots=True)
class Injection:
    """One deliberate disagreement between the two sides, as reconciliation should find it."""

    kind: str  # one of DISCREPANCY_KINDS
    books_id: str  # Xero id ("" when the record exists only in the CRM)
    crm_id: str  # Zoho id ("" when the record exists only in the books)
    field: str = ""  # for field mismatches: email | phone | billing_address | amount | currency | ...
    books_value: str = ""
    crm_value: str = ""
    note: str = ""


@dataclass(slots=True)
class Anomaly:
    """A billing anomaly planted in the books (`world.anomalies`), or a hard negative that only looks like one.

    The insights stage should report each `duplicate_invoice` and none of the negatives (`negative` True)."""

    kind: str  # duplicate_invoice | recurring | void_reissue | other_job | other_customer
    books_id: str  # the later invoice
    related_id: str  # the earlier invoice
    negative: bool = False
    note: str = ""


@dataclass(slots=True)
class CustomerTruth:
    """Which records on each side are truly the same customer (for precision/recall of matching)."""

    customer_key: str
    books_ids: list[str]
    crm_ids: list[str]
    hard_case: str = ""  # "", lookalike, free_mail, typo, transliteration, accent, ...


@dataclass
class World:
    seed: int
    size: str
    index: int  # the connection number, 0-based: several worlds side by side never share ids
    as_of: datetime  # the generator's "now": every generated time is at or before it
    books: BooksOrg
    crm: CrmOrg
    manifest: list[Injection] = field(default_factory=list)
    truth: list[CustomerTruth] = field(default_factory=list)
    profile: str = "full"  # the organisation profile (sandbox.profiles) the records were drawn for
    anomalies: list[Anomaly] = field(default_factory=list)  # billing anomalies and their hard negatives
    projects: ProjectsBook | None = None  # the books' Xero Projects (world/projects.py)


# --------------------------------------------------------------------------------------------
# Generation


@dataclass(frozen=True, slots=True)
class Size:
    """How big a world is: customers on the books side, sales invoices, suppliers, days of history."""

    customers: int
    invoices: int
    suppliers: int
    window_days: int = 1095


SIZES: dict[str, Size] = {
    # a whole pipeline cycle per profile in seconds: enough customers for every hard case and injection
    "tiny": Size(customers=60, invoices=400, suppliers=8, window_days=730),
    "demo": Size(customers=300, invoices=3_000, suppliers=30),
    "medium": Size(customers=6_000, invoices=100_000, suppliers=300),
    "large": Size(customers=40_000, invoices=1_000_000, suppliers=1_500),
}
