"""The books' numbers for a whole world at once, as numpy arrays in integer cents.

Amounts follow exactly the rounding of the record properties in world.py (Decimal quantize,
ROUND_HALF_EVEN, per line), so a total computed here equals `BooksInvoice.total` to the cent and
no record has to be summed again while a million of them are built.

Days are integer offsets from the window start; `end` is the last day before `as_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from xz_pipeline.sandbox.world.habits import invoice_habits, payment_delays

DRAFT, SUBMITTED, AUTHORISED, VOIDED, DELETED = 0, 1, 2, 3, 4
STATUS_NAMES = ("DRAFT", "SUBMITTED", "AUTHORISED", "VOIDED", "DELETED")
HABIT_CODES = {"prompt": 0, "late": 1, "partial": 2, "bad": 3}
CN_NONE, CN_ALLOCATED, CN_VOIDED, CN_DRAFT = 0, 1, 2, 3


def round_div(num: np.ndarray, den: int) -> np.ndarray:
    """num / den rounded half-to-even, for non-negative integer arrays (Decimal's default rounding)."""
    q, r = np.divmod(num, den)
    twice = 2 * r
    return q + ((twice > den) | ((twice == den) & (q % 2 == 1)))


@dataclass
class Lines:
    """Document lines, flattened: doc[i] is the document of line i, lines of a doc are contiguous."""

    doc: np.ndarray
    start: np.ndarray  # per document: index of its first line
    count: np.ndarray  # per document
    item: np.ndarray  # index into the catalogue (or expense account for bills)
    q2: np.ndarray  # quantity x 2 (half units allowed for hourly work)
    unit: np.ndarray  # unit price, cents
    disc: np.ndarray  # discount percent
    rate_pcm: np.ndarray  # tax rate in thousandths of a percent (15000 = 15%, 8875 = 8.875%)
    amount: np.ndarray  # line amount, cents
    tax: np.ndarray  # tax amount, cents
    gross: np.ndarray  # quantity x unit, rounded to cents (before discount)
    unit_dec: list | None = None  # `unit` as Decimals, filled on first use (see world.books.line_units)


def price_lines(
    doc: np.ndarray, q2: np.ndarray, unit: np.ndarray, disc: np.ndarray, rate_pcm: np.ndarray
) -> tuple:
    amount = round_div(q2 * unit * (100 - disc), 200)
    tax = round_div(amount * rate_pcm, 100_000)
    gross = round_div(q2 * unit, 2)
    return amount, tax, gross


def doc_sums(values: np.ndarray, start: np.ndarray, n_docs: int) -> np.ndarray:
    if n_docs == 0:
        return np.zeros(0, dtype=np.int64)
    return np.add.reduceat(values, start).astype(np.int64)


@dataclass
class Ledger:
    """Every sales invoice's numbers, in chronological (= numbering) order."""

    cust: np.ndarray  # index into the books customers list
    day: np.ndarray
    due_day: np.ndarray
    status: np.ndarray
    lines: Lines
    sub: np.ndarray
    tax: np.ndarray
    total: np.ndarray
    rate: np.ndarray  # currency rate (units of invoice currency per base unit); 1.0 for base
    cn_state: np.ndarray
    cn_day: np.ndarray
    cn_line: np.ndarray  # credit note line amount, cents
    cn_tax: np.ndarray
    credited: np.ndarray  # allocated credit, cents
    p1_day: np.ndarray  # -1 when no payment
    p1_amt: np.ndarray
    p2_day: np.ndarray
    p2_amt: np.ndarray
    del_day: np.ndarray  # a payment entered and then deleted (-1 when none)
    paid: np.ndarray
    due_amt: np.ndarray
    forced: np.ndarray  # the invoice a second books contact of a duplicated customer holds

    @property
    def n(self) -> int:
        return len(self.cust)

    @property
    def live(self) -> np.ndarray:
        return self.status <= AUTHORISED

    @property
    def paid_by_payment(self) -> np.ndarray:
        return (self.status == AUTHORISED) & (self.due_amt == 0) & (self.paid > 0)


def build_ledger(
    rng: np.random.Generator,
    n_invoices: int,
    end: int,
    cust_start: np.ndarray,
    cust_weight: np.ndarray,
    cust_terms: np.ndarray,
    cust_habit: np.ndarray,
    cust_rate_pcm: np.ndarray,
    cust_fx: np.ndarray,
    cust_min: np.ndarray,
    cust_force: np.ndarray,
    item_unit: np.ndarray,
    item_max: np.ndarray,
    item_hourly: np.ndarray,
    item_weight: np.ndarray,
    habits: str = "realistic",
    origin: date = date(2000, 1, 1),
) -> Ledger:
    """Allocate invoices to customers, price their lines, credit some, and pay them by habit.

    `habits` (world.habits.MODES) decides when invoices are paid; `origin` is the date of day 0."""
    n_cust = len(cust_start)
    extra = max(0, n_invoices - int(cust_min.sum()))
    counts = cust_min + rng.multinomial(extra, cust_weight / cust_weight.sum())
    cust = np.repeat(np.arange(n_cust), counts)
    start = np.clip(cust_start, 0, end)[cust]
    day = start + np.floor(rng.random(len(cust)) * (end - start + 1)).astype(np.int64)
    # the duplicated customers' first invoice is paid promptly, early enough to be paid by as_of
    first_of = np.concatenate(([0], np.cumsum(counts)[:-1]))
    forced = np.zeros(len(cust), dtype=bool)
    force_idx = first_of[cust_force & (counts > 0)]
    forced[force_idx] = True
    day[force_idx] = np.minimum(start[force_idx], end - 20)
    order = np.lexsort((rng.random(len(cust)), day))
    cust, day, forced = cust[order], day[order], forced[order]
    n = len(cust)

    status = np.full(n, AUTHORISED, dtype=np.int8)
    u = rng.random(n)
    recent = day > end - 45
    status[recent & (u < 0.12)] = DRAFT
    status[recent & (u >= 0.12) & (u < 0.16)] = SUBMITTED
    v = rng.random(n)
    status[v < 0.025] = VOIDED
    status[(v >= 0.025) & (v < 0.04)] = DELETED
    status[forced] = AUTHORISED
    terms = cust_terms[cust]
    due_day = day + terms

    # ---- lines
    count = 1 + rng.binomial(3, 0.35, size=n)
    line_start = np.concatenate(([0], np.cumsum(count)[:-1]))
    n_lines = int(count.sum())
    doc = np.repeat(np.arange(n), count)
    item = rng.choice(len(item_unit), size=n_lines, p=item_weight / item_weight.sum())
    mx = item_max[item]
    q_units = 1 + np.floor(rng.random(n_lines) ** 2 * mx).astype(np.int64)
    q_units = np.minimum(q_units, mx)
    half = item_hourly[item] & (rng.random(n_lines) < 0.3)
    q2 = 2 * q_units - half.astype(np.int64)
    unit = item_unit[item].copy()
    custom = rng.random(n_lines) < 0.12
    unit[custom] = np.maximum(1, np.round(unit[custom] * rng.uniform(0.85, 1.15, custom.sum()))).astype(
        np.int64
    )
    disc = np.where(rng.random(n_lines) < 0.08, rng.choice(np.array([5, 10, 15, 20]), n_lines), 0)
    rate_pcm = cust_rate_pcm[cust][doc]
    amount, tax, gross = price_lines(doc, q2, unit, disc, rate_pcm)
    lines = Lines(doc, line_start, count, item, q2, unit, disc, rate_pcm, amount, tax, gross)
    sub = doc_sums(amount, line_start, n)
    tax_sum = doc_sums(tax, line_start, n)
    total = sub + tax_sum

    fx = cust_fx[cust]
    rate = np.where(fx != 1.0, fx * (1.0 + rng.normal(0, 0.015, n)), 1.0)

    # ---- credit notes: allocated in full to the invoice they credit
    authorised = status == AUTHORISED
    cn_state = np.zeros(n, dtype=np.int8)
    cn_day = day + rng.integers(1, 61, n)
    want = authorised & ~forced & (rng.random(n) < 0.03) & (cn_day <= end)
    w = rng.random(n)
    cn_state[want & (w < 0.85)] = CN_ALLOCATED
    cn_state[want & (w >= 0.85) & (w < 0.95)] = CN_VOIDED
    cn_state[want & (w >= 0.95)] = CN_DRAFT
    inv_rate = rate_pcm[line_start]
    cn_line = np.maximum(1, round_div(sub * rng.integers(10, 101, n), 100))
    cn_tax = round_div(cn_line * inv_rate, 100_000)
    over = cn_line + cn_tax > total
    while over.any():
        cn_line[over] -= 1
        cn_tax[over] = round_div(cn_line[over] * inv_rate[over], 100_000)
        over = cn_line + cn_tax > total
    credited = np.where(cn_state == CN_ALLOCATED, cn_line + cn_tax, 0)
    remaining = total - credited

    # ---- payments by habit
    when_rng = rng.spawn(1)[0]  # its own stream: the habit model moves no other draw
    habit = invoice_habits(when_rng, habits, cust_habit[cust]).copy()
    habit[forced] = 0
    delay = payment_delays(when_rng, habits, origin=origin, habit=habit, cust=cust, day=day,
                           due_day=due_day, total=total, foreign=fx != 1.0, credited=cn_state != CN_NONE)  # fmt: skip
    payable = authorised & (remaining > 0)
    p1_day = np.full(n, -1, dtype=np.int64)
    p1_amt = np.zeros(n, dtype=np.int64)
    p2_day = np.full(n, -1, dtype=np.int64)
    p2_amt = np.zeros(n, dtype=np.int64)
    r1 = rng.random(n)
    frac = rng.uniform(0.3, 0.7, n)

    def whole_units(x: np.ndarray) -> np.ndarray:
        return np.maximum(100, (x // 100) * 100)

    sel = payable & (habit == 0)
    p1_day[sel] = (due_day + delay)[sel]
    p1_amt[sel] = remaining[sel]
    sel = payable & (habit == 1)
    p1_day[sel] = (due_day + delay)[sel]
    p1_amt[sel] = remaining[sel]
    split = remaining >= 300
    part = np.minimum(whole_units(np.floor(remaining * frac).astype(np.int64)), remaining - 100)
    sel = payable & (habit == 2)
    p1_day[sel] = (due_day + delay)[sel]
    p1_amt[sel] = np.where(split, part, remaining)[sel]
    second = sel & split & (r1 < 0.65)
    p2_day[second] = (p1_day + rng.integers(14, 76, n))[second]
    p2_amt[second] = (remaining - part)[second]
    sel = payable & (habit == 3)
    full = sel & (r1 < 0.3)
    p1_day[full] = (due_day + delay)[full]
    p1_amt[full] = remaining[full]
    some = sel & (r1 >= 0.3) & (r1 < 0.5)
    small = np.minimum(whole_units(np.floor(remaining * frac * 0.6).astype(np.int64)), remaining)
    p1_day[some] = (due_day + delay)[some]
    p1_amt[some] = small[some]
    forced_pay = forced & payable
    p1_day[forced_pay] = (day + rng.integers(1, 6, n))[forced_pay]
    p1_amt[forced_pay] = remaining[forced_pay]
    p1_day = np.maximum(p1_day, np.where(p1_day >= 0, day, -1))  # never before the invoice date

    late = p1_day > end
    p1_day[late], p1_amt[late] = -1, 0
    late = (p2_day > end) | (p1_day < 0)
    p2_day[late], p2_amt[late] = -1, 0
    paid = p1_amt + p2_amt
    due_amt = np.where(authorised, remaining - paid, total)
    del_day = np.full(n, -1, dtype=np.int64)
    oops = (p1_day >= 0) & (rng.random(n) < 0.004)
    del_day[oops] = np.maximum(day, p1_day - rng.integers(0, 4, n))[oops]

    return Ledger(
        cust, day, due_day, status, lines, sub, tax_sum, total, rate, cn_state, cn_day, cn_line, cn_tax,
        credited, p1_day, p1_amt, p2_day, p2_amt, del_day, paid, due_amt, forced,
    )  # fmt: skip


@dataclass
class Bills:
    """Supplier bills (ACCPAY): fewer and simpler than sales, paid mostly on time."""

    supplier: np.ndarray
    day: np.ndarray
    due_day: np.ndarray
    status: np.ndarray
    lines: Lines
    total: np.ndarray
    pay_day: np.ndarray


def build_bills(
    rng: np.random.Generator, n_bills: int, n_suppliers: int, end: int, n_accounts: int, rate_pcm: int
) -> Bills:
    supplier = rng.integers(0, n_suppliers, n_bills)
    day = np.sort(rng.integers(0, end + 1, n_bills))
    due_day = day + rng.choice(np.array([7, 14, 20, 30]), n_bills)
    status = np.full(n_bills, AUTHORISED, dtype=np.int8)
    status[(day > end - 20) & (rng.random(n_bills) < 0.2)] = DRAFT
    status[rng.random(n_bills) < 0.01] = VOIDED
    count = 1 + rng.binomial(2, 0.3, n_bills)
    start = np.concatenate(([0], np.cumsum(count)[:-1])) if n_bills else np.zeros(0, dtype=np.int64)
    m = int(count.sum())
    doc = np.repeat(np.arange(n_bills), count)
    account = rng.integers(0, n_accounts, m)
    q2 = 2 * rng.integers(1, 6, m)
    unit = np.round(np.exp(rng.normal(np.log(12_000), 1.0, m))).astype(np.int64) + 100
    disc = np.zeros(m, dtype=np.int64)
    rates = np.full(m, rate_pcm, dtype=np.int64)
    amount, tax, gross = price_lines(doc, q2, unit, disc, rates)
    lines = Lines(doc, start, count, account, q2, unit, disc, rates, amount, tax, gross)
    total = doc_sums(amount, start, n_bills) + doc_sums(tax, start, n_bills)
    pay_day = due_day + rng.integers(-10, 8, n_bills)
    pay_day = np.maximum(pay_day, day)
    pay_day[(status != AUTHORISED) | (pay_day > end) | (rng.random(n_bills) < 0.05)] = -1
    return Bills(supplier, day, due_day, status, lines, total, pay_day)
