"""Renders the books organisation (Xero-like) from the customer plan and the ledger's numbers."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np

from xz_pipeline.sandbox.world.customers import Customer
from xz_pipeline.sandbox.world.ids import XeroIds
from xz_pipeline.sandbox.world.ledger import (
    AUTHORISED,
    CN_ALLOCATED,
    CN_DRAFT,
    CN_NONE,
    STATUS_NAMES,
    Bills,
    Ledger,
    Lines,
)
from xz_pipeline.sandbox.world.model import (
    Address,
    Allocation,
    BooksContact,
    BooksCreditNote,
    BooksInvoice,
    BooksOrg,
    BooksPayment,
    Item,
    LedgerAccount,
    Line,
    Person,
    TaxRate,
)
from xz_pipeline.sandbox.world.text import render_phone, street_line, subscriber_length
from xz_pipeline.sandbox.world.timeline import BUSINESS_SPAN, BUSINESS_START, Timeline
from xz_pipeline.sandbox.world.vocab import EXPENSE_ACCOUNTS, SUPPLIER_NAMES, Country


@dataclass(frozen=True, slots=True)
class TaxScheme:
    """The tax rates of one organisation's country and which of them sales and purchases use."""

    rates: tuple[TaxRate, ...]
    sales: str  # domestic sales
    export: str  # sales to foreign customers
    purchases: str
    untaxed: str  # bank, receivables, payables, equity

    def rate(self, tax_type: str) -> Decimal:
        return next(r.rate for r in self.rates if r.tax_type == tax_type)

    def pcm(self, tax_type: str) -> int:
        return int(self.rate(tax_type) * 1000)  # thousandths of a percent: exact for 8.875%


def tax_scheme(country: str) -> TaxScheme:
    d = Decimal
    if country == "NZ":
        rates = (
            TaxRate("OUTPUT2", "15% GST on Income", d("15")),
            TaxRate("INPUT2", "15% GST on Expenses", d("15")),
            TaxRate("ZERORATED", "Zero Rated", d("0")),
            TaxRate("EXEMPTOUTPUT", "Exempt Income", d("0")),
            TaxRate("NONE", "No GST", d("0")),
        )
        return TaxScheme(rates, "OUTPUT2", "ZERORATED", "INPUT2", "NONE")
    if country == "AU":
        rates = (
            TaxRate("OUTPUT", "GST on Income", d("10")),
            TaxRate("INPUT", "GST on Expenses", d("10")),
            TaxRate("EXEMPTOUTPUT", "GST Free Income", d("0")),
            TaxRate("EXEMPTEXPORT", "GST Free Exports", d("0")),
            TaxRate("EXEMPTEXPENSES", "GST Free Expenses", d("0")),
            TaxRate("BASEXCLUDED", "BAS Excluded", d("0")),
        )
        return TaxScheme(rates, "OUTPUT", "EXEMPTEXPORT", "INPUT", "BASEXCLUDED")
    if country == "GB":
        rates = (
            TaxRate("OUTPUT2", "20% (VAT on Income)", d("20")),
            TaxRate("INPUT2", "20% (VAT on Expenses)", d("20")),
            TaxRate("RROUTPUT", "5% (VAT on Income)", d("5")),
            TaxRate("ZERORATEDOUTPUT", "Zero Rated Income", d("0")),
            TaxRate("EXEMPTOUTPUT", "Exempt Income", d("0")),
            TaxRate("NONE", "No VAT", d("0")),
        )
        return TaxScheme(rates, "OUTPUT2", "ZERORATEDOUTPUT", "INPUT2", "NONE")
    rates = (
        TaxRate("TAX001", "Sales Tax", d("8.875")),
        TaxRate("NONE", "Tax Exempt", d("0")),
    )
    return TaxScheme(rates, "TAX001", "NONE", "NONE", "NONE")


def chart_of_accounts(ids: XeroIds, country: Country, scheme: TaxScheme) -> list[LedgerAccount]:
    tax_word = {"NZ": "GST", "AU": "GST", "GB": "VAT"}.get(country.code, "Sales Tax")
    u = scheme.untaxed
    accounts = [
        LedgerAccount(ids.one(), "090", "Business Bank Account", "BANK", u, country.currency),
        LedgerAccount(ids.one(), "091", "Business Savings Account", "BANK", u, country.currency),
        LedgerAccount(ids.one(), "200", "Sales", "REVENUE", scheme.sales),
        LedgerAccount(ids.one(), "260", "Other Revenue", "REVENUE", scheme.sales),
        LedgerAccount(ids.one(), "270", "Interest Income", "REVENUE", u),
        LedgerAccount(ids.one(), "310", "Cost of Goods Sold", "DIRECTCOSTS", scheme.purchases),
    ]
    accounts += [
        LedgerAccount(ids.one(), code, name, "EXPENSE", scheme.purchases) for code, name in EXPENSE_ACCOUNTS
    ]
    accounts += [
        LedgerAccount(ids.one(), "477", "Wages and Salaries", "EXPENSE", u),
        LedgerAccount(ids.one(), "610", "Accounts Receivable", "CURRENT", u, "", "DEBTORS"),
        LedgerAccount(ids.one(), "620", "Prepayments", "CURRENT", u),
        LedgerAccount(ids.one(), "710", "Office Equipment", "FIXED", scheme.purchases),
        LedgerAccount(ids.one(), "800", "Accounts Payable", "CURRLIAB", u, "", "CREDITORS"),
        LedgerAccount(ids.one(), "820", tax_word, "CURRLIAB", u, "", "GST"),
        LedgerAccount(ids.one(), "825", "Employee Tax Payable", "CURRLIAB", u),
        LedgerAccount(ids.one(), "860", "Rounding", "CURRLIAB", u, "", "ROUNDING"),
        LedgerAccount(ids.one(), "960", "Retained Earnings", "EQUITY", u, "", "RETAINEDEARNINGS"),
        LedgerAccount(ids.one(), "970", "Owner A Funds Introduced", "EQUITY", u),
    ]
    return accounts


class _Cents:
    """Decimal amounts from integer cents, memoised: most prices repeat."""

    def __init__(self) -> None:
        self._cache: dict[int, Decimal] = {}

    def __call__(self, cents: int) -> Decimal:
        d = self._cache.get(cents)
        if d is None:
            d = Decimal(cents).scaleb(-2)
            if len(self._cache) < 200_000:
                self._cache[cents] = d
        return d


CENTS = _Cents()
QUANTITY = [Decimal(q) / 2 for q in range(0, 2_000)]
DISCOUNT = {p: Decimal(p) for p in (0, 5, 10, 15, 20)}
CN_REASONS = ("Pricing adjustment", "Goods returned", "Service credit", "Duplicate charge", "Goodwill credit")


def _contact(
    cid: str,
    name: str,
    person: Person,
    phone: str,
    address: Address,
    c: Customer,
    created: datetime,
    updated: datetime,
    contact_number: str,
) -> BooksContact:
    return BooksContact(
        cid, name, person.email, phone, address, c.tax_number, c.currency,
        list(c.persons), created, updated, person.first_name, person.last_name,
        c.account_number, contact_number, "ACTIVE",
    )  # fmt: skip


def build_contacts(
    customers: list[Customer], ids: XeroIds, tl: Timeline, rng: random.Random, first_day: list[int]
) -> list[BooksContact]:
    """Customer contacts (and the second contact of a books-side duplicate), in creation order."""
    out: list[BooksContact] = []
    for c, first in zip(customers, first_day, strict=True):
        c.books_id = ids.one()
        created = tl.at(first - rng.randrange(0, 40), BUSINESS_START + rng.randrange(BUSINESS_SPAN))
        updated = created
        if rng.random() < 0.3:
            updated = tl.at(
                rng.randrange(max(first, 0), tl.end + 1), BUSINESS_START + rng.randrange(BUSINESS_SPAN)
            )
            updated = max(updated, created)
        number = c.crm_id if c.number_link else ""
        out.append(
            _contact(
                c.books_id, c.books_name, c.person, c.books_phone, c.address, c, created, updated, number
            )
        )
        if c.duplicate == "books":
            c.books_dup_id = ids.one()
            dup_created = tl.at(first + 2, BUSINESS_START + rng.randrange(BUSINESS_SPAN))
            out.append(
                _contact(
                    c.books_dup_id,
                    c.dup_name,
                    c.person,
                    c.books_phone,
                    c.address,
                    c,
                    dup_created,
                    dup_created,
                    "",
                )
            )
    return out


def decimals(cents: np.ndarray) -> list[Decimal]:
    """Decimal amounts for an array of cents: each distinct value is converted once and shared."""
    if len(cents) == 0:
        return []
    uniq, inverse = np.unique(cents, return_inverse=True)
    table = [Decimal(v).scaleb(-2) for v in uniq.tolist()]
    return [table[k] for k in inverse.ravel().tolist()]


def line_units(lines: Lines) -> list[Decimal]:
    """Unit prices of every line as Decimals, converted once and reused by both sides."""
    if lines.unit_dec is None:
        lines.unit_dec = decimals(lines.unit)
    return lines.unit_dec


def build_sales(
    customers: list[Customer],
    ledger: Ledger,
    references: list[str],
    items: list[Item],
    scheme: TaxScheme,
    org_code: str,
    base_currency: str,
    ids: XeroIds,
    tl: Timeline,
    np_rng: np.random.Generator,
) -> tuple[list[BooksInvoice], list[BooksPayment], list[BooksCreditNote]]:
    """ACCREC invoices, their payments and credit notes, straight from the ledger arrays.

    Payments are listed first payments, then second instalments, then the deleted entries; the
    invoices in number order (which is date order).
    """
    n = ledger.n
    inv_ids = ids.many(n)
    secs = BUSINESS_START + np_rng.integers(0, BUSINESS_SPAN, (n, 4))
    ln = ledger.lines
    domestic = np.array([c.country.code == org_code for c in customers], dtype=bool)
    tax_types = (scheme.export, scheme.sales)
    tax_rates = (scheme.rate(scheme.export), scheme.rate(scheme.sales))
    desc = [it.description for it in items]
    code = [it.code for it in items]
    account = [it.account_code for it in items]
    all_lines = [
        Line(desc[it], QUANTITY[q], u, account[it], tax_types[d], tax_rates[d], code[it], DISCOUNT[dc])
        for it, q, u, d, dc in zip(
            ln.item.tolist(),
            ln.q2.tolist(),
            line_units(ln),
            domestic[ledger.cust][ln.doc].tolist(),
            ln.disc.tolist(),
            strict=True,
        )
    ]
    one = Decimal("1")
    base = np.array([c.currency == base_currency for c in customers], dtype=bool)[ledger.cust]
    fx = [one if b else Decimal(f"{r:.6f}") for b, r in zip(base.tolist(), ledger.rate.tolist(), strict=True)]
    at, date_of = tl.at, tl.date

    # the last moment each invoice changed: entered, voided/deleted, credited, paid
    def key(day: np.ndarray, sec: np.ndarray) -> np.ndarray:
        return day.astype(np.int64) * 86_400 + sec

    void_day = np.minimum(ledger.day + 1 + secs[:, 1] % 20, tl.end)
    last = key(ledger.day, secs[:, 0])
    last = np.where(ledger.status > AUTHORISED, key(void_day, secs[:, 1]), last)
    last = np.where(ledger.cn_state == CN_ALLOCATED, np.maximum(last, key(ledger.cn_day, secs[:, 2])), last)
    last = np.where(ledger.p1_day >= 0, np.maximum(last, key(ledger.p1_day, secs[:, 1])), last)
    last = np.where(ledger.p2_day >= 0, np.maximum(last, key(ledger.p2_day, secs[:, 2])), last)
    created = [at(d, x) for d, x in zip(ledger.day.tolist(), secs[:, 0].tolist(), strict=True)]
    updated = [at(k // 86_400, k % 86_400) for k in last.tolist()]

    contact_of = [c.books_id for c in customers]
    currency_of = [c.currency for c in customers]
    contact = [contact_of[c] for c in ledger.cust.tolist()]
    for i in np.flatnonzero(ledger.forced).tolist():  # the duplicate books contact holds this one
        dup = customers[ledger.cust[i]].books_dup_id
        contact[i] = dup or contact[i]
    starts, counts = ln.start.tolist(), ln.count.tolist()
    invoices = [
        BooksInvoice(
            inv_ids[i],
            f"INV-{i + 1:04d}",
            "ACCREC",
            contact[i],
            date_of(d),
            date_of(dd),
            currency_of[c],
            STATUS_NAMES[st],
            all_lines[starts[i] : starts[i] + counts[i]],
            created[i],
            updated[i],
            references[i],
            fx[i],
        )  # fmt: skip
        for i, c, d, dd, st in zip(
            range(n),
            ledger.cust.tolist(),
            ledger.day.tolist(),
            ledger.due_day.tolist(),
            ledger.status.tolist(),
            strict=True,
        )
    ]

    payments: list[BooksPayment] = []
    for day_arr, amt_arr, sec_col in ((ledger.p1_day, ledger.p1_amt, 1), (ledger.p2_day, ledger.p2_amt, 2)):
        idx = np.flatnonzero(day_arr >= 0)
        pay_ids = ids.many(len(idx))
        amounts = decimals(amt_arr[idx])
        for k, (i, d, x) in enumerate(
            zip(idx.tolist(), day_arr[idx].tolist(), secs[idx, sec_col].tolist(), strict=True)
        ):
            moment = at(d, x)
            payments.append(
                BooksPayment(pay_ids[k], inv_ids[i], date_of(d), amounts[k], "090", moment, moment, "", fx[i])
            )
    idx = np.flatnonzero(ledger.del_day >= 0)
    amounts = decimals(ledger.p1_amt[idx])
    for k, (i, d, x) in enumerate(
        zip(idx.tolist(), ledger.del_day[idx].tolist(), secs[idx, 3].tolist(), strict=True)
    ):
        moment = at(d, x)
        payments.append(
            BooksPayment(
                ids.one(),
                inv_ids[i],
                date_of(d),
                amounts[k],
                "090",
                moment,
                tl.later(moment, 600 + x % 3000),
                "Duplicate entry",
                fx[i],
                "DELETED",
            )  # fmt: skip
        )

    credit_notes: list[BooksCreditNote] = []
    cn_total = ledger.cn_line + ledger.cn_tax
    for number, i in enumerate(np.flatnonzero(ledger.cn_state != CN_NONE).tolist(), start=1):
        c = int(ledger.cust[i])
        d = int(ledger.cn_day[i])
        moment = at(d, int(secs[i, 2]))
        dom = bool(domestic[c])
        lines = [Line(CN_REASONS[i % len(CN_REASONS)], QUANTITY[2], CENTS(int(ledger.cn_line[i])), "200",
                      tax_types[dom], tax_rates[dom])]  # fmt: skip
        state = int(ledger.cn_state[i])
        allocations = (
            [Allocation(inv_ids[i], CENTS(int(cn_total[i])), date_of(d))] if state == CN_ALLOCATED else []
        )
        status = "AUTHORISED" if state == CN_ALLOCATED else "DRAFT" if state == CN_DRAFT else "VOIDED"
        credit_notes.append(
            BooksCreditNote(
                ids.one(),
                f"CN-{number:04d}",
                "ACCRECCREDIT",
                contact_of[c],
                date_of(d),
                currency_of[c],
                status,
                lines,
                allocations,
                moment,
                moment,
                f"Credit for INV-{i + 1:04d}",
            )  # fmt: skip
        )
    return invoices, payments, credit_notes


def build_items(
    catalogue: tuple, scheme: TaxScheme, ids: XeroIds, tl: Timeline, rng: random.Random
) -> list[Item]:
    items = []
    for code, name, description, price, _mx, _hourly in catalogue:
        updated = tl.at(rng.randrange(-600, tl.end), BUSINESS_START + rng.randrange(BUSINESS_SPAN))
        items.append(Item(ids.one(), code, name, description, Decimal(price), "200", scheme.sales, updated))
    return items


def build_suppliers(
    n: int, org: Country, ids: XeroIds, tl: Timeline, rng: random.Random, taken: set[str]
) -> list[BooksContact]:
    """Businesses the organisation buys from: books-only contacts that never appear in the CRM."""
    out = []
    k = 0
    while len(out) < n:
        base = SUPPLIER_NAMES[k % len(SUPPLIER_NAMES)]
        round_ = k // len(SUPPLIER_NAMES)
        k += 1
        name = (
            f"{base} {org.legal[0][0]}"
            if round_ == 0
            else f"{base} {org.cities[round_ % len(org.cities)].name}"
        )
        if round_ > len(org.cities):
            name = f"{base} {round_}"
        if name in taken:
            continue
        taken.add(name)
        city = rng.choice(org.cities)
        slug = "".join(ch for ch in base.lower() if ch.isalnum())
        address = Address(street_line(org, rng.randrange(1, 500), rng.choice(org.streets)), "", city.name,
                          city.region, city.postal_code, org.name)  # fmt: skip
        length = subscriber_length(org, city.area, False)
        sub = str(rng.randrange(2, 10)) + "".join(str(rng.randrange(10)) for _ in range(length - 1))
        phone = render_phone(org.code, city.area, sub, rng.randrange(4))
        created = tl.at(rng.randrange(-900, tl.end // 2), BUSINESS_START + rng.randrange(BUSINESS_SPAN))
        status = "ARCHIVED" if rng.random() < 0.05 else "ACTIVE"
        email = f"accounts@{slug}.{org.tld}"
        out.append(
            BooksContact(
                ids.one(),
                name,
                email,
                phone,
                address,
                "",
                org.currency,
                [],
                created,
                created,
                status=status,
                account_number=f"SUP-{len(out) + 1:04d}",
            )  # fmt: skip
        )
    return out


def build_bills(
    bills: Bills,
    supplier_ids: list[str],
    scheme: TaxScheme,
    currency: str,
    ids: XeroIds,
    tl: Timeline,
    np_rng: np.random.Generator,
) -> tuple[list[BooksInvoice], list[BooksPayment]]:
    n = len(bills.day)
    secs = (BUSINESS_START + np_rng.integers(0, BUSINESS_SPAN, (n, 2))).tolist()
    ln = bills.lines
    tax_rate = scheme.rate(scheme.purchases)
    invoices, payments = [], []
    day, due, status, pay = (
        bills.day.tolist(),
        bills.due_day.tolist(),
        bills.status.tolist(),
        bills.pay_day.tolist(),
    )
    total = bills.total.tolist()
    sup = bills.supplier.tolist()
    start, count = ln.start.tolist(), ln.count.tolist()
    acct, q2, unit = ln.item.tolist(), ln.q2.tolist(), ln.unit.tolist()
    for i in range(n):
        lines = [
            Line(
                EXPENSE_ACCOUNTS[acct[j]][1],
                QUANTITY[q2[j]],
                CENTS(unit[j]),
                EXPENSE_ACCOUNTS[acct[j]][0],
                scheme.purchases,
                tax_rate,
            )  # fmt: skip
            for j in range(start[i], start[i] + count[i])
        ]
        bill_id = ids.one()
        created = tl.at(day[i], secs[i][0])
        updated = created
        if pay[i] >= 0:
            paid_at = tl.at(pay[i], secs[i][1])
            payments.append(
                BooksPayment(ids.one(), bill_id, tl.date(pay[i]), CENTS(total[i]), "090", paid_at, paid_at)
            )
            updated = max(updated, paid_at)
        invoices.append(
            BooksInvoice(
                bill_id,
                f"SI-{(i * 7919) % 90000 + 10000}",
                "ACCPAY",
                supplier_ids[sup[i]],
                tl.date(day[i]),
                tl.date(due[i]),
                currency,
                STATUS_NAMES[status[i]],
                lines,
                created,
                updated,
                "",
            )  # fmt: skip
        )
    return invoices, payments


def build_org(
    tenant_id: str, name: str, country: Country, tl: Timeline, rng: random.Random, scheme: TaxScheme
) -> BooksOrg:
    legal_suffix = country.legal[0][0]
    short = "!" + "".join(
        rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789") for _ in range(5)
    )
    created = tl.at(-rng.randrange(1200, 2400), BUSINESS_START + rng.randrange(BUSINESS_SPAN))
    return BooksOrg(
        tenant_id, name, f"{name} {legal_suffix}", short, country.currency, country.code, country.timezone, created,
        tax_rates=list(scheme.rates),
    )  # fmt: skip
