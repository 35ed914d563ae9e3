"""Billing anomalies planted in the books: duplicate invoices and the look-alikes that are not duplicates.

A duplicate is the same customer billed twice: a later invoice with the earlier one's lines, an equal or
near-equal total (within 1 %), dated 0-30 days after it, whose number (or PO reference) repeats the
earlier one's with a suffix ("INV-0042-A"), a typo (an O for a 0, a dropped or doubled zero, a stray
separator) or two characters swapped. The hard negatives look alike on purpose and are recorded as
such: a monthly recurring invoice (same lines every month), an invoice voided and reissued, two
consecutive auto-numbered invoices of equal totals for different jobs, equal totals to two customers.

Planting rewrites rows of the ledger that no discrepancy injection uses (and that carry no credit note,
second instalment or deleted payment), before deals and CRM records are drawn from it, so both sides
agree with the planted books and reconciliation sees nothing new. Every draw comes from its own stream:
no other record of the world moves. Numbers and references are set on the rendered invoices
(`Planted.apply`), where the organisation's numbering is known.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from xz_pipeline.sandbox.world.inject import InvoiceInjections
from xz_pipeline.sandbox.world.ledger import (
    AUTHORISED,
    CN_ALLOCATED,
    CN_NONE,
    VOIDED,
    Ledger,
    Lines,
    doc_sums,
    price_lines,
)
from xz_pipeline.sandbox.world.model import Anomaly, BooksInvoice

DUPLICATE_SHARE = (
    0.004  # of sales invoices (published rates are 0.05-0.1 % paid; more keeps the bench meaningful)
)
NEGATIVE_SHARE = 0.001  # pairs per negative kind
MINIMUM = 3
WINDOW = 30  # days between an invoice and its duplicate, at most
SUFFIXES = ("-A", "A", "-2", "/2", "-B", "-1")
CONFUSABLE = {"0": "O", "1": "l", "5": "S", "8": "B", "2": "Z"}
VARIANTS = ("suffix", "typo", "transposition")
NEGATIVE_KINDS = ("recurring", "void_reissue", "other_job", "other_customer")


@dataclass
class Planted:
    """The pairs planted in the ledger: (kind, later slot, earlier slot, variant, note)."""

    rng: np.random.Generator
    pairs: list[tuple[str, int, int, str, str]] = field(default_factory=list)

    def apply(self, invoices: list[BooksInvoice]) -> list[Anomaly]:
        """Give each duplicate (and some reissues) its derived number or reference; the manifest's records."""
        used = {inv.number for inv in invoices}
        out = []
        for kind, later, earlier, variant, note in self.pairs:
            inv, orig = invoices[later], invoices[earlier]
            if variant:
                use_reference = (
                    variant.startswith("reference ")
                    and _po(orig.reference)
                    and (not inv.reference or _po(inv.reference))
                )  # a PO reference links no deal: changing it moves no link
                how = variant.removeprefix("reference ")
                if use_reference:
                    inv.reference = vary(self.rng, orig.reference, how, set())
                    note = f"reference {inv.reference} repeats {orig.reference} ({how}); {note}"
                else:
                    inv.number = vary(self.rng, orig.number, how, used)
                    used.add(inv.number)
                    note = f"{inv.number} repeats {orig.number} ({how}); {note}"
            out.append(Anomaly(kind, inv.id, orig.id, kind != "duplicate_invoice", note))
        return out

    def count(self) -> dict[str, int]:
        counts = dict.fromkeys(("duplicate_invoice", *NEGATIVE_KINDS), 0)
        for kind, *_ in self.pairs:
            counts[kind] += 1
        return counts


def _po(reference: str) -> bool:
    return reference.startswith("PO-")


def vary(rng: np.random.Generator, text: str, how: str, used: set[str]) -> str:
    """`text` changed by a suffix, a typo or a transposition, into a string not in `used`."""
    options: list[str] = []
    if how == "transposition":
        options = [text[:p] + text[p + 1] + text[p] + text[p + 2 :] for p in range(len(text) - 1)
                   if text[p] != text[p + 1]]  # fmt: skip
    elif how == "typo":
        options = [text[:p] + CONFUSABLE[ch] + text[p + 1 :] for p, ch in enumerate(text) if ch in CONFUSABLE]
        digits = [p for p, ch in enumerate(text) if ch == "0"]
        options += [text[:p] + text[p + 1 :] for p in digits]  # a zero dropped
        options += [text[:p] + "0" + text[p:] for p in digits]  # a zero doubled
        if "-" in text:
            options.append(text.replace("-", " ", 1))
            options.append(text.replace("-", "", 1))
    options = [o for o in dict.fromkeys(options) if o not in used and o != text]
    if not options:  # a suffix always exists
        options = [text + s for s in SUFFIXES if text + s not in used] or [f"{text}-{len(used)}"]
    return options[int(rng.integers(len(options)))]


class _Slots:
    """Which ledger rows may be rewritten, per customer, and which are already used."""

    def __init__(self, ledger: Ledger, inj: InvoiceInjections) -> None:
        taken = inj.without_deal | inj.amount | inj.currency | inj.stale | inj.missing_crm_invoice
        self.free = (
            (ledger.status == AUTHORISED) & ~taken & ~ledger.forced & (ledger.cn_state == CN_NONE)
            & (ledger.del_day < 0) & (ledger.p2_day < 0)
        )  # fmt: skip
        touched = np.zeros(int(ledger.cust.max(initial=0)) + 1, dtype=bool)
        touched[ledger.cust[taken | ledger.forced]] = True
        self.touched = touched  # customers some injection relies on: they lose no invoice
        self.by_customer: dict[int, list[int]] = defaultdict(list)
        for i in np.flatnonzero(self.free).tolist():
            self.by_customer[int(ledger.cust[i])].append(i)
        self.used = np.zeros(ledger.n, dtype=bool)

    def ok(self, i: int) -> bool:
        return bool(self.free[i] and not self.used[i])

    def take(self, *slots: int) -> None:
        self.used[list(slots)] = True


def plant(rng: np.random.Generator, ledger: Ledger, inj: InvoiceInjections) -> Planted:
    """Choose and rewrite the ledger rows of every duplicate and hard negative (in place)."""
    n = ledger.n
    slots = _Slots(ledger, inj)
    planted = Planted(rng)
    src = np.arange(n)  # the document whose lines each document gets
    factor = np.ones(n)  # unit prices scaled (near-equal duplicates)
    custom: dict[int, tuple[int, int, int, int]] = {}  # doc -> one line (item, q2, unit, rate_pcm)
    unpaid: list[int] = []
    base = ledger.rate == 1.0  # invoices in the organisation's currency
    first_rate = ledger.lines.rate_pcm[ledger.lines.start]
    target = max(MINIMUM, round(DUPLICATE_SHARE * n))
    neg_target = max(MINIMUM, round(NEGATIVE_SHARE * n))

    # ---- duplicates: a later invoice of the same customer repeats an earlier one
    for i in rng.permutation(np.flatnonzero(slots.free)).tolist():
        if len(planted.pairs) >= target:
            break
        if not slots.ok(i):
            continue
        c = int(ledger.cust[i])
        earlier = [
            j
            for j in slots.by_customer[c]
            if j < i and slots.ok(j) and 0 <= ledger.day[i] - ledger.day[j] <= WINDOW
        ]
        if not earlier:
            continue
        j = earlier[int(rng.integers(len(earlier)))]
        slots.take(i, j)
        src[i] = j
        near = rng.random() < 0.3
        if near:
            factor[i] = 1 + rng.choice((-1, 1)) * rng.uniform(0.002, 0.009)
        if rng.random() < 0.5:
            unpaid.append(i)  # caught before the customer paid it twice
        how = VARIANTS[len(planted.pairs) % len(VARIANTS)]  # every way occurs, even in a tiny world
        variant = f"reference {how}" if rng.random() < 0.25 else how
        gap = int(ledger.day[i] - ledger.day[j])
        planted.pairs.append(("duplicate_invoice", i, j, variant,
                              f"{gap} day(s) later, {'near-equal' if near else 'equal'} total"))  # fmt: skip

    # ---- recurring: the same lines every month to one customer (3-6 invoices a series)
    busy = sorted(slots.by_customer, key=lambda c: (-len(slots.by_customer[c]), c))
    recurring = 0
    for c in busy:
        if recurring >= neg_target:
            break
        chain = _monthly_chain(ledger, [s for s in slots.by_customer[c] if slots.ok(s)])
        if len(chain) < 3:
            continue
        slots.take(*chain)
        for a, b in zip(chain, chain[1:], strict=False):
            src[b] = chain[0]
            planted.pairs.append(
                ("recurring", b, a, "", f"monthly, {int(ledger.day[b] - ledger.day[a])} days apart")
            )
            recurring += 1

    # ---- voided and reissued: the earlier invoice voided, the same lines billed again
    made = 0
    for j in rng.permutation(np.flatnonzero(slots.free)).tolist():
        if made >= neg_target:
            break
        if not slots.ok(j):
            continue
        c = int(ledger.cust[j])
        later = [
            i
            for i in slots.by_customer[c]
            if i > j and slots.ok(i) and ledger.day[i] - ledger.day[j] <= WINDOW
        ]
        if not later:
            continue
        i = later[0]
        slots.take(i, j)
        src[i] = j
        ledger.status[j] = VOIDED
        ledger.p1_day[j], ledger.p1_amt[j] = -1, 0
        variant = "suffix" if rng.random() < 0.5 else ""
        planted.pairs.append(("void_reissue", i, j, variant, "the earlier invoice was voided"))
        made += 1

    # ---- consecutive auto-numbers, equal totals, different jobs (the next invoice moved to the customer)
    made = 0
    items = int(ledger.lines.item.max(initial=0)) + 1
    for k in rng.permutation(
        np.flatnonzero(slots.free[:-1] & slots.free[1:] & base[:-1] & base[1:])
    ).tolist():
        if made >= neg_target:
            break
        k2 = k + 1
        c, d = int(ledger.cust[k]), int(ledger.cust[k2])
        if not (slots.ok(k) and slots.ok(k2)) or first_rate[k] != first_rate[k2]:
            continue
        if c != d and (slots.touched[d] or len(slots.by_customer[d]) < 5):
            continue
        line = _equal_total_line(ledger, k, items, int(first_rate[k]))
        if line is None:
            continue
        slots.take(k, k2)
        if c != d:
            slots.by_customer[d].remove(k2)
            ledger.cust[k2] = c
            ledger.due_day[k2] = ledger.day[k2] + (ledger.due_day[k] - ledger.day[k])
        custom[k2] = line
        planted.pairs.append(("other_job", k2, k, "", "next number, equal total, other lines"))
        made += 1

    # ---- equal totals to two customers
    made = 0
    for j in rng.permutation(np.flatnonzero(slots.free & base)).tolist():
        if made >= neg_target:
            break
        if not slots.ok(j):
            continue
        stop = min(n, j + 200)
        cand = [i for i in range(j + 1, stop) if slots.ok(i) and base[i] and ledger.cust[i] != ledger.cust[j]
                and first_rate[i] == first_rate[j] and ledger.day[i] - ledger.day[j] <= WINDOW]  # fmt: skip
        if not cand:
            continue
        i = cand[0]
        slots.take(i, j)
        src[i] = j
        planted.pairs.append(("other_customer", i, j, "", "another customer, equal total"))
        made += 1

    _rewrite(ledger, src, factor, custom, unpaid)
    return planted


def _monthly_chain(ledger: Ledger, free: list[int]) -> list[int]:
    """The longest run (at most 6) of `free` rows, in date order, each 26-35 days after the one before."""
    best: list[int] = []
    days = ledger.day
    for a, first in enumerate(free):
        chain = [first]
        for s in free[a + 1 :]:
            gap = days[s] - days[chain[-1]]
            if gap > 35:
                break
            if gap >= 26:
                chain.append(s)
                if len(chain) == 6:
                    break
        if len(chain) > len(best):
            best = chain
        if len(best) == 6:
            break
    return best


def _equal_total_line(ledger: Ledger, k: int, items: int, rate_pcm: int) -> tuple[int, int, int, int] | None:
    """One line of an item the invoice `k` does not bill whose total (tax included) equals k's, or None."""
    ln = ledger.lines
    mine = set(ln.item[ln.start[k] : ln.start[k] + ln.count[k]].tolist())
    others = [it for it in range(items) if it not in mine]
    if not others:
        return None
    total = int(ledger.total[k])
    for q2 in (2, 4, 6):
        guess = round(total * 2 / q2 / (1 + rate_pcm / 100_000))
        for unit in range(max(1, guess - 3), guess + 4):
            amount, tax, _ = price_lines(np.zeros(1, dtype=np.int64), np.array([q2]), np.array([unit]),
                                         np.zeros(1, dtype=np.int64), np.array([rate_pcm]))  # fmt: skip
            if int(amount[0] + tax[0]) == total:
                return others[k % len(others)], q2, unit, rate_pcm
    return None


def _rewrite(ledger: Ledger, src: np.ndarray, factor: np.ndarray, custom: dict, unpaid: list[int]) -> None:
    """Rebuild the lines (documents copying another's, or given one line) and reprice what changed."""
    ln = ledger.lines
    n = ledger.n
    extra = sorted(custom)
    base_len = len(ln.doc)

    def ext(arr: np.ndarray, values: list[int]) -> np.ndarray:
        return np.concatenate([arr, np.array(values, dtype=arr.dtype)])

    item = ext(ln.item, [custom[d][0] for d in extra])
    q2 = ext(ln.q2, [custom[d][1] for d in extra])
    unit = ext(ln.unit, [custom[d][2] for d in extra])
    disc = ext(ln.disc, [0] * len(extra))
    rate = ext(ln.rate_pcm, [custom[d][3] for d in extra])
    src_start, src_count = ln.start[src].copy(), ln.count[src].copy()
    for k, d in enumerate(extra):
        src_start[d], src_count[d] = base_len + k, 1
    count = src_count
    start = np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.int64)
    total_lines = int(count.sum())
    pick = np.repeat(src_start - start, count) + np.arange(total_lines)
    doc = np.repeat(np.arange(n), count)
    unit = unit[pick]
    scaled = factor[doc] != 1.0
    unit[scaled] = np.maximum(1, np.round(unit[scaled] * factor[doc][scaled])).astype(np.int64)
    q2, disc, rate, item = q2[pick], disc[pick], rate[pick], item[pick]
    amount, tax, gross = price_lines(doc, q2, unit, disc, rate)
    ledger.lines = Lines(doc, start, count, item, q2, unit, disc, rate, amount, tax, gross)
    old_total = ledger.total.copy()
    ledger.sub = doc_sums(amount, start, n)
    ledger.tax = doc_sums(tax, start, n)
    ledger.total = ledger.sub + ledger.tax
    changed = np.flatnonzero(ledger.total != old_total)
    for i in changed.tolist():  # free rows: no credit, at most one payment
        if ledger.p1_day[i] >= 0:
            full = ledger.p1_amt[i] == old_total[i]
            ledger.p1_amt[i] = ledger.total[i] if full else min(int(ledger.p1_amt[i]), int(ledger.total[i]))
    for i in unpaid:
        ledger.p1_day[i], ledger.p1_amt[i] = -1, 0
    ledger.credited = np.where(ledger.cn_state == CN_ALLOCATED, ledger.cn_line + ledger.cn_tax, 0)
    ledger.paid = ledger.p1_amt + ledger.p2_amt
    ledger.due_amt = np.where(
        ledger.status == AUTHORISED, ledger.total - ledger.credited - ledger.paid, ledger.total
    )
