"""The generated world: one books organisation and one CRM organisation per connection.

The world is deliberately independent of either API's shape: plain records with Python types
(Decimal amounts, aware UTC datetimes, dates). Each emulator turns it into its own wire format.
Only ids follow each vendor's id format (Xero: UUIDs; Zoho: 19-digit strings), because the
ground-truth manifest must name the records as each system knows them.
"""

from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

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
    "demo": Size(customers=300, invoices=3_000, suppliers=30),
    "medium": Size(customers=6_000, invoices=100_000, suppliers=300),
    "large": Size(customers=40_000, invoices=1_000_000, suppliers=1_500),
}


def generate(seed: int = 7, size: str = "demo", index: int = 0) -> World:
    """The world for (seed, size, index): the same arguments always give the same records.

    `index` is the connection number: worlds of different indexes are different organisations
    whose ids never collide.

    Every created/updated/payment/invoice time is before `as_of`; only plans (due dates, open
    deals' closing dates) may lie after it. The manifest lists each root cause once: the invoices
    of a customer missing in the CRM are not also listed as invoice_without_deal, nor the won
    deals of a customer missing in the books as deal_not_invoiced. Invoices VOIDED or DELETED
    take part in nothing. `world.truth` also lists prospects (CRM-only accounts that never
    bought: hard_case "prospect"), which no books contact should be matched to.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    from xz_pipeline.sandbox.world_build import build  # the builders import the records above

    # Millions of small records and no reference cycles: the cyclic collector would only rescan
    # the growing heap again and again (a third of the time at large size).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return build(seed, size, SIZES[size], index)
    finally:
        if was_enabled:
            gc.enable()


def timed_generate(size: str, seed: int = 7) -> tuple[World, float]:
    """The world and the seconds it took to generate (for bench/bench_sandbox.py)."""
    start = time.perf_counter()
    world = generate(seed, size)
    return world, time.perf_counter() - start


def record_counts(world: World) -> dict[str, int]:
    """Records per entity on each side, injections per kind, hard cases per label."""
    b, c = world.books, world.crm
    counts = {
        "books.accounts": len(b.accounts),
        "books.tax_rates": len(b.tax_rates),
        "books.items": len(b.items),
        "books.contacts": len(b.contacts),
        "books.invoices": sum(1 for i in b.invoices if i.type == "ACCREC"),
        "books.bills": sum(1 for i in b.invoices if i.type == "ACCPAY"),
        "books.invoice_lines": sum(len(i.lines) for i in b.invoices),
        "books.payments": len(b.payments),
        "books.credit_notes": len(b.credit_notes),
        "crm.users": len(c.users),
        "crm.accounts": len(c.accounts),
        "crm.contacts": len(c.contacts),
        "crm.products": len(c.products),
        "crm.deals": len(c.deals),
        "crm.invoices": len(c.invoices),
        "truth.customers": len(world.truth),
    }
    for kind in DISCREPANCY_KINDS:
        counts[f"manifest.{kind}"] = sum(1 for m in world.manifest if m.kind == kind)
    for t in world.truth:
        if t.hard_case:
            key = f"hard_case.{t.hard_case}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def generation_stats(size: str, seed: int = 7) -> dict[str, object]:
    """Seconds to generate `size` and the record counts (what the benchmark prints)."""
    world, seconds = timed_generate(size, seed)
    return {"size": size, "seed": seed, "seconds": round(seconds, 3), "counts": record_counts(world)}


def manifest_document(world: World) -> dict[str, object]:
    """The manifest as plain JSON-able data: injections, customer truth and counts."""
    return {
        "seed": world.seed,
        "size": world.size,
        "index": world.index,
        "as_of": world.as_of.isoformat(),
        "books_tenant_id": world.books.tenant_id,
        "crm_org_id": world.crm.org_id,
        "counts": record_counts(world),
        "manifest": [
            {
                "kind": m.kind,
                "books_id": m.books_id,
                "crm_id": m.crm_id,
                "field": m.field,
                "books_value": m.books_value,
                "crm_value": m.crm_value,
                "note": m.note,
            }
            for m in world.manifest
        ],
        "truth": [
            {
                "customer_key": t.customer_key,
                "books_ids": t.books_ids,
                "crm_ids": t.crm_ids,
                "hard_case": t.hard_case,
            }
            for t in world.truth
        ],
    }


def write_manifest(world: World, path: str | Path) -> Path:
    """Write the ground truth as JSON; the same world always gives byte-identical files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(manifest_document(world), ensure_ascii=False, indent=1, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":  # python -m xz_pipeline.sandbox.world [size ...]
    import sys

    for name in sys.argv[1:] or ["demo"]:
        stats = generation_stats(name)
        print(json.dumps(stats, indent=1))
