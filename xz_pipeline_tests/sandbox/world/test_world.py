"""The generated world: deterministic, internally consistent, and honest about what it injected.

The checks here re-derive every fact from the records themselves (sums of payments, normalised
phones and addresses, references), never from the generator's internals, so a generator bug
shows up as a failing invariant rather than as a matching mistake on both sides.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import unicodedata
import uuid
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from xz_pipeline.sandbox.world import (
    DISCREPANCY_KINDS,
    SIZES,
    World,
    generate,
    record_counts,
    timed_generate,
    write_manifest,
)

CENT = Decimal("0.01")
LIVE = ("DRAFT", "SUBMITTED", "AUTHORISED")
FREE_MAIL = {
    "gmail.com", "outlook.com", "hotmail.com", "icloud.com", "yahoo.com", "xtra.co.nz", "bigpond.com",
    "btinternet.com", "hotmail.co.uk", "yahoo.co.uk", "aol.com", "web.de", "gmx.de", "t-online.de",
    "orange.fr", "free.fr", "outlook.fr", "laposte.net",
}  # fmt: skip


@pytest.fixture(scope="module")
def world() -> World:
    return generate(7, "demo", 0)


@pytest.fixture(scope="module")
def view(world: World) -> View:
    return View(world)


class View:
    """Indexes over one world, computed from the records alone."""

    def __init__(self, w: World) -> None:
        b, c = w.books, w.crm
        self.w = w
        self.contact = {x.id: x for x in b.contacts}
        self.invoice = {x.id: x for x in b.invoices}
        self.sales = [x for x in b.invoices if x.type == "ACCREC"]
        self.paid = defaultdict(Decimal)
        for p in b.payments:
            if p.status == "AUTHORISED":
                self.paid[p.invoice_id] += p.amount
        self.credited = defaultdict(Decimal)
        for cn in b.credit_notes:
            for a in cn.allocations:
                self.credited[a.invoice_id] += a.amount
        self.account = {x.id: x for x in c.accounts}
        self.crm_contacts = defaultdict(list)
        for x in c.contacts:
            self.crm_contacts[x.account_id].append(x)
        self.deal = {x.id: x for x in c.deals}
        self.deals_of = defaultdict(list)
        for d in c.deals:
            self.deals_of[d.account_id].append(d)
        self.crm_invoice = {x.id: x for x in c.invoices}
        self.truth_of_books = {i: t for t in w.truth for i in t.books_ids}
        self.truth_of_crm = {i: t for t in w.truth for i in t.crm_ids}
        self.injected = defaultdict(set)
        for m in w.manifest:
            self.injected[m.kind].add(m.books_id)
            self.injected[m.kind].add(m.crm_id)
        # the deal each invoice is tied to: explicit id first, then the reference's evidence
        by_name = {d.name: d for d in c.deals}
        self.deal_of_invoice = {}
        for d in c.deals:
            if d.xero_invoice_id:
                self.deal_of_invoice[d.xero_invoice_id] = d
        for inv in self.sales:
            if inv.id in self.deal_of_invoice:
                continue
            ref = inv.reference
            if ref.startswith("DEAL-") and ref[5:] in self.deal:
                self.deal_of_invoice[inv.id] = self.deal[ref[5:]]
            elif ref in by_name:
                self.deal_of_invoice[inv.id] = by_name[ref]
        self.sales_of = defaultdict(list)
        self.outstanding = defaultdict(Decimal)
        for inv in self.sales:
            self.sales_of[inv.contact_id].append(inv)
            if inv.status == "AUTHORISED":
                self.outstanding[inv.contact_id] += self.due(inv)
        self.crm_invoice_of = {}
        numbers = {inv.number: inv.id for inv in self.sales}
        for ci in c.invoices:
            self.crm_invoice_of[ci.xero_invoice_id or numbers[ci.number]] = ci

    def due(self, inv) -> Decimal:
        return inv.total - self.paid[inv.id] - self.credited[inv.id]

    def primary_contact(self, account_id: str):
        return self.crm_contacts[account_id][0]


# --------------------------------------------------------------------------------------------
# Normalisers (the test's own, deliberately independent of the generator's)


def digits_national(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    if phone.strip().startswith("+"):
        for dial in ("64", "61", "44", "49", "33", "1"):
            if digits.startswith(dial):
                return digits[len(dial) :]
    return digits[1:] if digits.startswith("0") else digits


ABBREV = {"st": "street", "rd": "road", "ave": "avenue", "ln": "lane", "dr": "drive", "blvd": "boulevard",
          "pde": "parade", "pl": "place", "bd": "boulevard", "av": "avenue", "lvl": "level", "ste": "suite",
          "fl": "floor", "bldg": "building"}  # fmt: skip


def norm_address(a) -> tuple[str, str, str]:
    def words(text: str) -> str:
        text = text.casefold().replace("str.", "straße ").replace("strasse", "straße")
        return " ".join(ABBREV.get(w, w) for w in re.split(r"[\s.,]+", text) if w)

    return words(a.line1), words(a.line2), a.city.casefold()


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def fold(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def all_ids(w: World) -> tuple[set[str], set[str]]:
    b, c = w.books, w.crm
    books = {b.tenant_id}
    for coll in (b.accounts, b.items, b.contacts, b.invoices, b.payments, b.credit_notes):
        books |= {x.id for x in coll}
    books |= {p.id for p in (w.projects.projects if w.projects else [])}  # Xero Projects
    crm = {c.org_id}
    for coll in (c.users, c.accounts, c.contacts, c.products, c.deals, c.invoices):
        crm |= {x.id for x in coll}
    return books, crm


# --------------------------------------------------------------------------------------------
# Determinism and identity


def test_same_arguments_give_identical_world_and_manifest(world: World, tmp_path) -> None:
    again = generate(7, "demo", 0)
    assert again == world
    first = write_manifest(world, tmp_path / "a" / "manifest.json").read_bytes()
    second = write_manifest(again, tmp_path / "b" / "manifest.json").read_bytes()
    assert first == second


def test_same_world_in_another_process_with_other_string_hashing(world: World) -> None:
    """Set and dict iteration over strings differs between processes; the world must not."""
    code = (
        "import hashlib; from xz_pipeline.sandbox.world import generate; "
        "print(hashlib.sha256(repr(generate(7, 'demo', 0)).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hashlib.sha256(repr(world).encode()).hexdigest()


def test_other_connection_is_another_organisation_with_disjoint_ids(world: World) -> None:
    other = generate(7, "demo", 1)
    books0, crm0 = all_ids(world)
    books1, crm1 = all_ids(other)
    assert not (books0 | crm0) & (books1 | crm1)
    assert other.books.tenant_id != world.books.tenant_id
    assert other.crm.org_id != world.crm.org_id


def test_another_seed_gives_another_world(world: World) -> None:
    other = generate(8, "demo", 0)
    assert {c.name for c in other.books.contacts} != {c.name for c in world.books.contacts}


def test_ids_follow_each_vendors_format(world: World) -> None:
    books, crm = all_ids(world)
    for i in books:
        assert uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i
    crm_records = crm - {world.crm.org_id}
    assert all(len(i) == 19 and i.isdigit() for i in crm_records)
    assert len({i[:7] for i in crm_records}) == 1  # one organisation prefix


def test_unknown_size_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown size"):
        generate(7, "enormous")


# --------------------------------------------------------------------------------------------
# Books invariants


def test_every_time_is_before_as_of(world: World) -> None:
    b, c = world.books, world.crm
    stamps = [b.created] + [x.updated for x in b.items]
    for coll in (b.contacts, b.invoices, b.payments, b.credit_notes):
        stamps += [x.created for x in coll] + [x.updated for x in coll]
    for coll in (c.accounts, c.contacts, c.products, c.deals, c.invoices):
        stamps += [x.created for x in coll] + [x.modified for x in coll]
    assert all(s.tzinfo is not None and s < world.as_of for s in stamps)
    today = world.as_of.date()
    assert all(i.date < today for i in b.invoices)
    assert all(p.date < today for p in b.payments)
    assert all(a.date < today for cn in b.credit_notes for a in cn.allocations)
    assert all(d.closing_date < today for d in c.deals if d.stage.startswith("Closed"))


def test_payments_and_allocations_never_exceed_the_invoice(world: World, view: View) -> None:
    for inv in world.books.invoices:
        assert view.paid[inv.id] + view.credited[inv.id] <= inv.total, inv.number
        if inv.status != "AUTHORISED":
            assert view.paid[inv.id] == 0 and view.credited[inv.id] == 0, inv.number
    for p in world.books.payments:
        assert p.amount > 0 and p.invoice_id in view.invoice
        assert p.date >= view.invoice[p.invoice_id].date
    some_partly_paid = [i for i in view.sales if i.status == "AUTHORISED" and 0 < view.paid[i.id] < i.total]
    some_fully_paid = [i for i in view.sales if i.status == "AUTHORISED" and view.due(i) == 0]
    assert some_partly_paid and len(some_fully_paid) > len(view.sales) / 3


def test_credit_notes_allocate_at_most_their_total(world: World, view: View) -> None:
    assert world.books.credit_notes
    for cn in world.books.credit_notes:
        allocated = sum((a.amount for a in cn.allocations), Decimal("0"))
        assert allocated <= cn.total
        if cn.status != "AUTHORISED":
            assert not cn.allocations
        for a in cn.allocations:
            inv = view.invoice[a.invoice_id]
            assert inv.contact_id == cn.contact_id and inv.currency == cn.currency


def test_lines_and_totals_are_consistent(world: World) -> None:
    tax_rates = {t.tax_type: t.rate for t in world.books.tax_rates}
    items = {i.code: i for i in world.books.items}
    for inv in world.books.invoices:
        assert 1 <= len(inv.lines) <= 4
        for ln in inv.lines:
            assert ln.tax_rate == tax_rates[ln.tax_type]
            assert ln.line_amount == ln.line_amount.quantize(CENT) and ln.line_amount > 0
            if inv.type == "ACCREC":
                assert ln.item_code in items and ln.account_code == items[ln.item_code].account_code
        assert inv.total == inv.sub_total + inv.total_tax
        assert inv.total == sum((ln.line_amount + ln.tax_amount for ln in inv.lines), Decimal("0"))
        assert inv.due_date >= inv.date


def test_books_shape_is_realistic(world: World, view: View) -> None:
    b = world.books
    codes = {a.code for a in b.accounts}
    assert {"090", "200", "610", "800"} <= codes
    assert b.base_currency in ("NZD", "AUD", "GBP", "USD")
    assert len({c.name for c in b.contacts}) == len(b.contacts)  # Xero refuses duplicate names
    statuses = Counter(i.status for i in view.sales)
    assert statuses["AUTHORISED"] > 0.8 * len(view.sales)
    assert statuses["DRAFT"] and statuses["VOIDED"] and statuses["DELETED"]
    foreign = [i for i in view.sales if i.currency != b.base_currency]
    assert foreign and all(i.currency_rate != 1 for i in foreign)
    bills = [i for i in b.invoices if i.type == "ACCPAY"]
    assert bills
    customers = {i.contact_id for i in view.sales}
    suppliers = {i.contact_id for i in bills}
    assert customers & suppliers, "some contacts are both customer and supplier"
    assert any(p.status == "DELETED" for p in b.payments) or len(b.payments) < 500
    assert sum(len(i.lines) for i in view.sales) / len(view.sales) > 1.5


# --------------------------------------------------------------------------------------------
# Cross-system agreement where nothing was injected


def linked_pairs(world: World, view: View):
    for t in world.truth:
        if len(t.books_ids) == 1 and len(t.crm_ids) == 1:
            yield view.contact[t.books_ids[0]], view.account[t.crm_ids[0]]


def test_harmless_variants_are_not_disagreements(world: World, view: View) -> None:
    mismatched = {(m.books_id, m.field) for m in world.manifest if m.kind == "customer_field_mismatch"}
    varied = Counter()
    for contact, account in linked_pairs(world, view):
        crm_person = view.primary_contact(account.id)
        if (contact.id, "email") not in mismatched:
            assert crm_person.email.casefold() == contact.email.casefold(), contact.name
            varied["email case"] += crm_person.email != contact.email
        if (contact.id, "phone") not in mismatched:
            assert digits_national(account.phone) == digits_national(contact.phone), (
                account.phone,
                contact.phone,
            )
            varied["phone format"] += account.phone != contact.phone
        if (contact.id, "billing_address") not in mismatched:
            assert norm_address(account.billing) == norm_address(contact.address), contact.name
            varied["address spelling"] += account.billing != contact.address
        varied["name spelling"] += account.name != contact.name
    assert all(varied[k] >= 5 for k in ("email case", "phone format", "address spelling", "name spelling")), (
        varied
    )


def test_live_invoices_of_linked_customers_have_agreeing_deals(world: World, view: View) -> None:
    skip = view.injected["invoice_without_deal"]
    checked = 0
    for inv in view.sales:
        t = view.truth_of_books[inv.contact_id]
        if not t.crm_ids or inv.status not in LIVE or inv.id in skip:
            continue
        deal = view.deal_of_invoice.get(inv.id)
        assert deal is not None, inv.number
        assert deal.stage == "Closed Won" and deal.account_id in t.crm_ids
        if deal.id not in view.injected["amount_mismatch"]:
            assert abs(deal.amount - inv.total) <= Decimal("0.5"), inv.number
        if deal.id not in view.injected["currency_mismatch"]:
            assert deal.currency == inv.currency
        if deal.id not in view.injected["payment_status_stale"]:
            fully = inv.status == "AUTHORISED" and view.due(inv) == 0
            assert (deal.payment_status == "Paid") == fully, inv.number
            assert deal.amount_paid == view.paid[inv.id]
        checked += 1
    assert checked > 0.8 * len(view.sales)


def test_explicit_and_evidence_links_both_occur(world: World, view: View) -> None:
    explicit = sum(1 for d in world.crm.deals if d.xero_invoice_id)
    by_reference = sum(1 for i in view.sales if i.reference.startswith("DEAL-"))
    deal_names = {d.name for d in world.crm.deals}
    by_name = sum(1 for i in view.sales if i.reference in deal_names)
    linked_accounts = sum(1 for a in world.crm.accounts if a.xero_contact_id)
    assert explicit and by_reference and by_name
    assert 0 < linked_accounts < len(world.crm.accounts)
    for a in world.crm.accounts:
        if a.xero_contact_id:
            assert view.truth_of_crm[a.id] is view.truth_of_books[a.xero_contact_id]


def test_crm_invoices_mirror_the_books(world: World, view: View) -> None:
    assert world.crm.invoices
    products = {p.id: p for p in world.crm.products}
    exact = 0
    for inv_id, ci in view.crm_invoice_of.items():
        inv = view.invoice[inv_id]
        # the CRM rounds (net + tax) per line, the books round tax per line: a cent apart on ties
        assert abs(ci.grand_total - inv.total) <= CENT * len(inv.lines), inv.number
        exact += ci.grand_total == inv.total
        assert ci.currency == inv.currency
        assert [products[ln.product_id].code for ln in ci.lines] == [ln.item_code for ln in inv.lines]
        assert (ci.status == "Paid") == (inv.status == "AUTHORISED" and view.due(inv) == 0)
    assert exact > 0.9 * len(view.crm_invoice_of)


def test_products_mirror_items(world: World) -> None:
    products = {p.code: p for p in world.crm.products}
    for item in world.books.items:
        assert products[item.code].unit_price == item.unit_price


def test_balances_agree_unless_injected(world: World, view: View) -> None:
    outstanding = view.outstanding
    injected = view.injected["balance_mismatch"]
    compared = 0
    for contact, account in linked_pairs(world, view):
        if account.id in injected:
            assert account.outstanding_balance != outstanding[contact.id]
        else:
            assert account.outstanding_balance == outstanding[contact.id], contact.name
            compared += 1
    assert compared > 100


# --------------------------------------------------------------------------------------------
# The manifest


def test_at_least_three_of_every_kind(world: World) -> None:
    counts = Counter(m.kind for m in world.manifest)
    assert set(counts) == set(DISCREPANCY_KINDS)
    assert min(counts.values()) >= 3, counts
    customers = len([t for t in world.truth if t.books_ids])
    for kind in (
        "customer_missing_in_crm",
        "customer_duplicate",
        "customer_field_mismatch",
        "balance_mismatch",
    ):
        assert counts[kind] <= 0.06 * customers  # a few percent, not a flood


def test_every_injection_holds_on_the_records(world: World, view: View) -> None:
    deal_refs = {i.reference for i in view.sales}
    crm_emails = {x.email.casefold() for x in world.crm.contacts}
    books_emails = {x.email.casefold() for x in world.books.contacts}
    for m in world.manifest:
        k = m.kind
        if k == "customer_missing_in_crm":
            contact = view.contact[m.books_id]
            assert not view.truth_of_books[m.books_id].crm_ids and m.crm_id == ""
            assert contact.email.casefold() not in crm_emails
            assert all(a.xero_contact_id != m.books_id for a in world.crm.accounts)
            assert any(i.contact_id == m.books_id for i in view.sales)
        elif k == "customer_missing_in_books":
            account = view.account[m.crm_id]
            assert not view.truth_of_crm[m.crm_id].books_ids and m.books_id == ""
            assert view.primary_contact(account.id).email.casefold() not in books_emails
            assert any(d.stage == "Closed Won" for d in view.deals_of[m.crm_id])
        elif k == "customer_duplicate":
            t = view.truth_of_books[m.books_id]
            assert view.truth_of_crm[m.crm_id] is t
            assert len(t.books_ids) + len(t.crm_ids) == 3
        elif k == "customer_field_mismatch":
            contact, account = view.contact[m.books_id], view.account[m.crm_id]
            if m.field == "email":
                assert contact.email == m.books_value
                assert view.primary_contact(account.id).email.casefold() != contact.email.casefold()
            elif m.field == "phone":
                assert digits_national(account.phone) != digits_national(contact.phone)
            else:
                assert m.field == "billing_address"
                assert norm_address(account.billing) != norm_address(contact.address)
        elif k == "deal_not_invoiced":
            deal = view.deal[m.crm_id]
            assert deal.stage == "Closed Won" and not deal.xero_invoice_id
            assert deal.name not in deal_refs and f"DEAL-{deal.id}" not in deal_refs
            assert view.truth_of_crm[deal.account_id].books_ids
        elif k == "invoice_without_deal":
            inv = view.invoice[m.books_id]
            assert inv.status in LIVE and inv.id not in view.deal_of_invoice
            assert view.truth_of_books[inv.contact_id].crm_ids  # the customer is in the CRM
        elif k in ("amount_mismatch", "currency_mismatch", "payment_status_stale"):
            inv, deal = view.invoice[m.books_id], view.deal[m.crm_id]
            assert view.deal_of_invoice[inv.id] is deal
            if k == "amount_mismatch":
                assert abs(deal.amount - inv.total) > max(Decimal("1"), inv.total / 200)
            elif k == "currency_mismatch":
                assert deal.currency != inv.currency and m.books_value == inv.currency
            else:
                assert inv.status == "AUTHORISED" and view.due(inv) == 0 and view.paid[inv.id] > 0
                assert deal.payment_status != "Paid"
        elif k == "balance_mismatch":
            due = view.outstanding[m.books_id]
            assert str(due) == m.books_value
            assert view.account[m.crm_id].outstanding_balance != due
        elif k == "invoice_missing_in_crm":
            inv = view.invoice[m.books_id]
            assert inv.id not in view.crm_invoice_of and inv.status in LIVE
            siblings = [i for i in view.sales_of[inv.contact_id] if i.id != inv.id]
            assert any(i.id in view.crm_invoice_of for i in siblings)
        elif k in ("time_not_invoiced", "project_over_budget"):  # see sandbox/xero/test_projects_world
            project = next(p for p in world.projects.projects if p.id == m.books_id)
            crm_ids = view.truth_of_books[project.contact_id].crm_ids
            assert m.crm_id == project.deal_id and view.deal[m.crm_id].account_id in crm_ids
        else:
            raise AssertionError(f"unknown kind {k}")


def test_ids_in_the_manifest_exist_on_the_side_they_name(world: World) -> None:
    books, crm = all_ids(world)
    for m in world.manifest:
        assert m.books_id == "" or m.books_id in books
        assert m.crm_id == "" or m.crm_id in crm
        assert m.books_id or m.crm_id


def test_manifest_file_carries_manifest_truth_and_counts(world: World, tmp_path) -> None:
    doc = json.loads(write_manifest(world, tmp_path / "m.json").read_text(encoding="utf-8"))
    assert (doc["seed"], doc["size"], doc["index"]) == (world.seed, world.size, world.index)
    assert doc["as_of"] == world.as_of.isoformat()
    assert len(doc["manifest"]) == len(world.manifest)
    assert len(doc["truth"]) == len(world.truth)
    assert doc["counts"]["books.invoices"] == len([i for i in world.books.invoices if i.type == "ACCREC"])
    assert doc["counts"]["manifest.amount_mismatch"] == sum(
        1 for m in world.manifest if m.kind == "amount_mismatch"
    )


# --------------------------------------------------------------------------------------------
# Hard cases in the truth


def test_hard_cases_are_present_and_are_what_they_claim(world: World, view: View) -> None:
    labels = Counter(t.hard_case for t in world.truth)
    for label in ("lookalike", "free_mail", "typo", "transliteration", "accent", "ampersand", "legal_suffix"):
        assert labels[label] >= 3, (label, labels)
    for t in world.truth:
        if not (t.books_ids and t.crm_ids):
            continue
        books_name = view.contact[t.books_ids[0]].name
        crm_name = view.account[t.crm_ids[0]].name
        if t.hard_case == "typo":
            assert levenshtein(books_name, crm_name) == 1
        elif t.hard_case == "transliteration":
            german = str.maketrans(
                {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}
            )
            assert books_name != crm_name and books_name.translate(german) == crm_name
        elif t.hard_case == "accent":
            assert books_name != crm_name and fold(books_name) == crm_name
        elif t.hard_case == "ampersand":
            assert ("&" in books_name) != ("&" in crm_name)
        elif t.hard_case == "legal_suffix":
            assert books_name != crm_name and books_name.split()[0] == crm_name.split()[0]
    free = [view.contact[t.books_ids[0]].email.split("@")[1] for t in world.truth if t.hard_case == "free_mail"
            and t.books_ids]  # fmt: skip
    assert all(d in FREE_MAIL for d in free)
    assert max(Counter(free).values()) >= 2, "two different customers share a free-mail domain"


def test_lookalikes_are_different_customers_with_similar_names(world: World, view: View) -> None:
    generic = {"ltd", "limited", "pty", "inc", "inc.", "llc", "gmbh", "sarl", "sas", "plc", "llp", "corp", "and",
               "&", "sons"}  # fmt: skip
    looks = [t for t in world.truth if t.hard_case == "lookalike" and t.books_ids]
    contacts = [view.contact[t.books_ids[0]] for t in looks]
    paired = 0
    for a in contacts:
        words_a = {w.casefold() for w in a.name.split()} - generic
        partners = [
            b for b in contacts if b is not a and words_a & ({w.casefold() for w in b.name.split()} - generic)
        ]
        if partners:
            paired += 1
            b = partners[0]
            assert view.truth_of_books[a.id] is not view.truth_of_books[b.id]
            assert a.name != b.name and a.email.split("@")[1] != b.email.split("@")[1]
    assert paired >= 6


# --------------------------------------------------------------------------------------------
# Sizes and timing hooks


def test_sizes_and_the_benchmark_hook() -> None:
    assert SIZES["demo"].invoices == 3_000 and 250 <= SIZES["demo"].customers <= 400
    assert SIZES["medium"].invoices == 100_000 and SIZES["large"].invoices == 1_000_000
    w, seconds = timed_generate("demo")
    assert seconds > 0 and isinstance(w, World)
    counts = record_counts(w)
    assert counts["books.invoices"] == SIZES["demo"].invoices
    assert counts["crm.deals"] == len(w.crm.deals)
