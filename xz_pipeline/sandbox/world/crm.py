"""Renders the CRM organisation (Zoho-like) from the customer plan, the ledger and the injections.

What "in agreement" means here (and so what reconciliation should expect where nothing was
injected): every live invoice (not VOIDED/DELETED) of a customer present on both sides has one
Closed Won deal whose amount is the invoice Total (tax inclusive; a deal may round it to whole
units), in the invoice currency, and whose payment fields mirror the books; every Closed Won deal
of such a customer is invoiced; customers who keep CRM invoices have one per live invoice; each
linked account's outstanding balance is the sum of AmountDue over its AUTHORISED sales invoices.
A CRM invoice's Grand_Total may differ from the books' Total by a cent per line: the CRM rounds
(net + tax) per line where the books round the tax, and half-even ties fall differently.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np

from xz_pipeline.sandbox.world.books import CENTS, QUANTITY, TaxScheme, decimals, line_units
from xz_pipeline.sandbox.world.customers import Customer
from xz_pipeline.sandbox.world.ids import ZohoIds
from xz_pipeline.sandbox.world.inject import DEAL_NOT_INVOICED_SHARE, MINIMUM, InvoiceInjections
from xz_pipeline.sandbox.world.ledger import AUTHORISED, DRAFT, SUBMITTED, Ledger
from xz_pipeline.sandbox.world.model import (
    CrmAccount,
    CrmContact,
    CrmInvoice,
    CrmInvoiceLine,
    CrmOrg,
    CrmProduct,
    CrmUser,
    Deal,
    DealLine,
    Injection,
    Item,
    Person,
)
from xz_pipeline.sandbox.world.text import ascii_slug, strip_accents
from xz_pipeline.sandbox.world.timeline import BUSINESS_SPAN, BUSINESS_START, Timeline
from xz_pipeline.sandbox.world.vocab import CRM_ONLY_PRODUCTS, CRM_TITLES, Country

OPEN_STAGES = (
    ("Qualification", 10),
    ("Needs Analysis", 20),
    ("Value Proposition", 40),
    ("Id. Decision Makers", 60),
    ("Proposal/Price Quote", 75),
    ("Negotiation/Review", 90),
)
LOST_STAGES = (("Closed Lost", 0), ("Closed Lost to Competition", 0))
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def attached(deal_id: str, products: list[DealLine]) -> list[DealLine]:
    """The products a deal carries in its Products related list: two deals in three have them attached,
    the rest were closed without (decided by the id, so no random draw moves the rest of the world).
    A product is related once: lines of one product at one price merge; at two prices, none attach."""
    if not int(deal_id) % 3:
        return []
    merged: dict[str, DealLine] = {}
    for ln in products:
        prev = merged.get(ln.product_id)
        if prev is not None and prev.list_price != ln.list_price:
            return []
        merged[ln.product_id] = (
            ln if prev is None else DealLine(ln.product_id, prev.quantity + ln.quantity, ln.list_price)
        )
    return list(merged.values())


def payment_status(status: int, due_amt: int, settled: int, overdue: bool) -> str:
    """The deal's Payment_Status as an in-sync write-back sets it from the books."""
    if status == AUTHORISED and due_amt == 0:
        return "Paid"
    if settled > 0:
        return "Partially Paid"
    if status == AUTHORISED and overdue:
        return "Overdue"
    return "Unpaid"


@dataclass
class DealPlan:
    """Per invoice: the deal that won it ("" when none) and what the invoice's Reference says."""

    deal_id: list[str]
    deal_name: list[str]
    explicit: list[bool]  # the deal carries Xero_Invoice_ID / number
    reference: list[str]


def plan_deals(
    ledger: Ledger,
    customers: list[Customer],
    inj: InvoiceInjections,
    items: list[Item],
    zoho: ZohoIds,
    tl: Timeline,
    np_rng: np.random.Generator,
    named: np.ndarray | None = None,
) -> DealPlan:
    """Each invoice's deal (id, name), whether the deal carries the invoice's id (Xero_Invoice_ID), and
    the invoice's reference. `named` marks invoices whose reference must name their deal: in an org
    without the link fields, the only way a deal whose amount or currency disagrees can be found."""
    must_name = named.tolist() if named is not None else [False] * ledger.n
    linked = np.array([c.linked for c in customers], dtype=bool)[ledger.cust]
    has_deal = (ledger.live & linked & ~inj.without_deal).tolist()
    cust, day = ledger.cust.tolist(), ledger.day.tolist()
    first_item = ledger.lines.item[ledger.lines.start].tolist()
    n = ledger.n
    is_explicit = (np_rng.random(n) < 0.7).tolist()
    u = np_rng.random(n).tolist()
    po = np_rng.integers(10_000, 100_000, n).tolist()
    crm_names = [c.crm_name for c in customers]
    item_names = [it.name for it in items]
    month_of = [f"({MONTHS[d.month - 1]} {d.year})" for d in (tl.date(k) for k in range(tl.end + 1))]
    names_used: set[str] = set()
    deal_id, deal_name, reference = [], [], []
    for i in range(n):
        if not has_deal[i]:
            deal_id.append("")
            deal_name.append("")
            reference.append(f"PO-{po[i]}" if u[i] < 0.4 else "")
            continue
        name = f"{crm_names[cust[i]]} - {item_names[first_item[i]]} {month_of[day[i]]}"
        if name in names_used:
            base, k = name, 2
            while name in names_used:
                name = f"{base} #{k}"
                k += 1
        names_used.add(name)
        zid = zoho.one()
        if is_explicit[i] and not must_name[i]:
            ref = name if u[i] < 0.35 else f"DEAL-{zid}" if u[i] < 0.6 else f"PO-{po[i]}"
        else:
            ref = name if u[i] < 0.6 else f"DEAL-{zid}"
        deal_id.append(zid)
        deal_name.append(name)
        reference.append(ref)
    return DealPlan(
        deal_id, deal_name, [e and bool(z) for e, z in zip(is_explicit, deal_id, strict=True)], reference
    )


class CrmBuilder:
    """Builds the CRM records; collects the manifest entries whose values only it knows."""

    def __init__(
        self,
        rng: random.Random,
        np_rng: np.random.Generator,
        zoho: ZohoIds,
        tl: Timeline,
        org_country: Country,
        scheme: TaxScheme,
        currencies: list[str],
    ) -> None:
        self.rng = rng
        self.np_rng = np_rng
        self.zoho = zoho
        self.tl = tl
        self.org_country = org_country
        self.scheme = scheme
        self.currencies = currencies
        self.manifest: list[Injection] = []
        self.deal_names: set[str] = set()

    def _moment(self, day: int):
        return self.tl.at(day, BUSINESS_START + self.rng.randrange(BUSINESS_SPAN))

    # ---- people and catalogue -------------------------------------------------------------

    def users(self, n: int, org_domain: str) -> list[CrmUser]:
        r, c = self.rng, self.org_country
        out, seen = [], set()
        while len(out) < n:
            first, last = r.choice(c.first_names), r.choice(c.last_names)
            email = f"{ascii_slug(first)}.{ascii_slug(last)}@{org_domain}"
            if email in seen:
                continue
            seen.add(email)
            out.append(CrmUser(self.zoho.one(), f"{first} {last}", email))
        return out

    def products(self, items: list[Item], owner_ids: list[str]) -> tuple[list[CrmProduct], list[str]]:
        """One product per books item (same code), plus a few sold only in the CRM."""
        r = self.rng
        out, by_item = [], []
        tax = self.scheme.rate(self.scheme.sales)
        for it in items:
            created = self._moment(-r.randrange(300, 900))
            pid = self.zoho.one()
            by_item.append(pid)
            out.append(
                CrmProduct(
                    pid,
                    it.code,
                    it.name,
                    it.unit_price,
                    it.description,
                    r.choice(owner_ids),
                    created,
                    self.tl.later(created, r.randrange(0, 10**7)),
                    tax,
                )  # fmt: skip
            )
        for k, (code, name, description, price) in enumerate(CRM_ONLY_PRODUCTS):
            created = self._moment(-r.randrange(100, 600))
            out.append(
                CrmProduct(
                    self.zoho.one(),
                    code,
                    name,
                    Decimal(price),
                    description,
                    r.choice(owner_ids),
                    created,
                    created,
                    tax,
                    active=k != 0,
                )  # fmt: skip
            )
        return out, by_item

    # ---- accounts and contacts ------------------------------------------------------------

    def accounts_and_contacts(
        self,
        customers: list[Customer],
        owner_ids: list[str],
    ) -> tuple[list[CrmAccount], list[CrmContact], dict[str, str]]:
        """Accounts (with their contacts) for every customer the CRM knows; returns owner per account."""
        r = self.rng
        accounts, contacts, owner_of = [], [], {}
        for c in customers:
            if c.presence == "books":
                continue
            owner = r.choice(owner_ids)
            created = self._moment(max(c.start_day, -700) - r.randrange(0, 60))
            modified = self.tl.later(created, r.randrange(0, 3 * 10**7))
            balance = overdue = None
            if c.linked:
                true_out, true_over = c.outstanding, c.overdue
                balance, overdue = CENTS(true_out), CENTS(true_over)
                if c.balance_mismatch:
                    extra = max(10_000, (true_out // 4) // 100 * 100)
                    balance = CENTS(true_out + extra)
                    self.manifest.append(
                        Injection("balance_mismatch", c.books_id, c.crm_id, "outstanding_balance",
                                  str(CENTS(true_out)), str(balance), "CRM balance not refreshed after payments")
                    )  # fmt: skip
            account_number = c.account_number if r.random() < 0.6 else ""
            tax_number = c.tax_number if r.random() < 0.4 else ""
            tags = ["Key account"] if c.weight > 3 else []
            if c.presence == "prospect":
                tags = ["Prospect"]
            accounts.append(
                CrmAccount(
                    c.crm_id,
                    c.crm_name,
                    c.crm_phone,
                    c.website,
                    c.crm_address,
                    c.currency,
                    owner,
                    created,
                    modified,
                    account_number,
                    c.books_id if c.explicit_link else "",
                    tax_number,
                    balance,
                    overdue,
                    tags,
                )  # fmt: skip
            )
            owner_of[c.crm_id] = owner
            contacts.append(self._contact(c.crm_contact_id, c.crm_id, c.crm_person, c, owner, created, True))
            for p in c.persons:
                if r.random() < 0.7:
                    variant = Person(strip_accents(p.first_name) if r.random() < 0.1 else p.first_name,
                                     p.last_name, p.email, p.phone)  # fmt: skip
                    contacts.append(
                        self._contact(self.zoho.one(), c.crm_id, variant, c, owner, created, False)
                    )
            if c.duplicate == "crm":
                dup_created = self.tl.later(created, r.randrange(86_400, 90 * 86_400))
                accounts.append(
                    CrmAccount(
                        c.crm_dup_id,
                        c.dup_name,
                        c.crm_phone,
                        c.website,
                        c.crm_address,
                        c.currency,
                        r.choice(owner_ids),
                        dup_created,
                        dup_created,
                    )  # fmt: skip
                )
                contacts.append(
                    self._contact(self.zoho.one(), c.crm_dup_id, c.crm_person, c, owner, dup_created, True)
                )
            self._customer_injections(c)
        return accounts, contacts, owner_of

    def _contact(
        self, cid: str, account_id: str, p: Person, c: Customer, owner: str, created, primary: bool
    ) -> CrmContact:
        r = self.rng
        modified = self.tl.later(created, r.randrange(0, 10**7))
        mobile = c.mobile if primary and c.mobile else ""
        title = r.choice(CRM_TITLES) if r.random() < 0.6 else ""
        mailing = c.crm_address if primary and r.random() < 0.3 else None
        return CrmContact(cid, account_id, p.first_name, p.last_name, p.email, p.phone, owner, created, modified,
                          mobile, title, mailing)  # fmt: skip

    def _customer_injections(self, c: Customer) -> None:
        if c.injected == "customer_missing_in_books":
            self.manifest.append(
                Injection(c.injected, "", c.crm_id, note=f"won deals, no books contact: {c.crm_name}")
            )
        elif c.injected == "customer_duplicate":
            if c.duplicate == "crm":
                self.manifest.append(
                    Injection(
                        c.injected,
                        c.books_id,
                        c.crm_dup_id,
                        "",
                        c.books_name,
                        c.dup_name,
                        f"second CRM account; the first is {c.crm_id}",
                    )  # fmt: skip
                )
            else:
                self.manifest.append(
                    Injection(
                        c.injected,
                        c.books_dup_id,
                        c.crm_id,
                        "",
                        c.dup_name,
                        c.crm_name,
                        f"second books contact; the first is {c.books_id}",
                    )  # fmt: skip
                )
        elif c.injected == "customer_field_mismatch":
            if c.mismatch == "email":
                books, crm = c.person.email, c.crm_person.email
            elif c.mismatch == "phone":
                books, crm = c.books_phone, c.crm_phone
            else:
                books, crm = _addr(c.address), _addr(c.crm_address)
            self.manifest.append(Injection(c.injected, c.books_id, c.crm_id, c.mismatch, books, crm))

    # ---- deals and CRM invoices -----------------------------------------------------------

    def invoice_deals(
        self,
        ledger: Ledger,
        customers: list[Customer],
        plan: DealPlan,
        inj: InvoiceInjections,
        invoice_ids: list[str],
        invoice_numbers: list[str],
        invoice_created: list,
        invoice_updated: list,
        product_of_item: list[str],
        owner_of: dict[str, str],
    ) -> list[Deal]:
        tl = self.tl
        n = ledger.n
        cust, day, due_day, status = (
            a.tolist() for a in (ledger.cust, ledger.day, ledger.due_day, ledger.status)
        )
        total, due_amt = ledger.total.tolist(), ledger.due_amt.tolist()
        settled = (ledger.paid + ledger.credited).tolist()
        total_dec, paid_dec = decimals(ledger.total), decimals(ledger.paid)
        last_pay = np.where(ledger.p2_day >= 0, ledger.p2_day, ledger.p1_day).tolist()
        ln = ledger.lines
        l_start, l_count = ln.start.tolist(), ln.count.tolist()
        all_lines = [
            DealLine(product_of_item[it], QUANTITY[q], u)
            for it, q, u in zip(ln.item.tolist(), ln.q2.tolist(), line_units(ln), strict=True)
        ]
        amount_inj, currency_inj, stale_inj = inj.amount.tolist(), inj.currency.tolist(), inj.stale.tolist()
        without = inj.without_deal.tolist()
        low, high = self.np_rng.uniform(0.6, 0.85, n), self.np_rng.uniform(1.15, 1.5, n)
        factor = np.where(self.np_rng.random(n) < 0.5, low, high).tolist()
        born = self.np_rng.integers(3, 61, n)
        closing_day = (ledger.day - np.minimum(born, self.np_rng.integers(0, 11, n))).tolist()
        born = born.tolist()
        rounded = (self.np_rng.random(n) < 0.1).tolist()
        end = tl.end
        deals: list[Deal] = []
        for i in range(n):
            zid = plan.deal_id[i]
            c = customers[cust[i]]
            if without[i]:
                self.manifest.append(
                    Injection("invoice_without_deal", invoice_ids[i], "", "", invoice_numbers[i], "",
                              f"crm_account={c.crm_id}")
                )  # fmt: skip
            if not zid:
                continue
            self.deal_names.add(plan.deal_name[i])
            created = tl.days_before(invoice_created[i], born[i])
            amount = Decimal(round(total[i] / 100)) if rounded[i] else total_dec[i]
            currency = c.currency
            if amount_inj[i]:
                cents = int(total[i] * factor[i])
                if abs(cents - total[i]) < 1_000:  # beyond any rounding tolerance, even on tiny invoices
                    cents = total[i] + 1_000
                amount = CENTS(cents)
                self.manifest.append(
                    Injection(
                        "amount_mismatch", invoice_ids[i], zid, "amount", str(total_dec[i]), str(amount)
                    )
                )
            if currency_inj[i]:
                others = [cur for cur in self.currencies if cur != c.currency]
                currency = others[i % len(others)]
                self.manifest.append(
                    Injection("currency_mismatch", invoice_ids[i], zid, "currency", c.currency, currency)
                )
            pay_status = payment_status(status[i], due_amt[i], settled[i], due_day[i] <= end)
            amount_paid: Decimal | None = paid_dec[i]
            last_payment: date | None = tl.date(last_pay[i]) if last_pay[i] >= 0 else None
            modified = tl.soon_after(invoice_updated[i], 60 + i % 3000)
            if stale_inj[i]:
                self.manifest.append(
                    Injection("payment_status_stale", invoice_ids[i], zid, "payment_status", "PAID", "Unpaid",
                              f"paid {last_payment.isoformat() if last_payment else ''}")
                )  # fmt: skip
                pay_status, amount_paid, last_payment = "Unpaid", CENTS(0), None
                modified = tl.soon_after(invoice_created[i], 120)
            products = attached(zid, all_lines[l_start[i] : l_start[i] + l_count[i]])
            closing = tl.date(closing_day[i])
            is_explicit = plan.explicit[i]
            deals.append(
                Deal(
                    zid,
                    plan.deal_name[i],
                    c.crm_id,
                    c.crm_contact_id,
                    "Closed Won",
                    amount,
                    currency,
                    closing,
                    owner_of[c.crm_id],
                    created,
                    modified,
                    100,
                    products,
                    invoice_ids[i] if is_explicit else "",
                    invoice_numbers[i] if is_explicit else "",
                    pay_status,
                    amount_paid,
                    last_payment,
                )  # fmt: skip
            )
        return deals

    def other_deals(
        self,
        customers: list[Customer],
        items: list[Item],
        product_of_item: list[str],
        owner_of: dict[str, str],
    ) -> list[Deal]:
        """Pipeline and lost deals, won deals never invoiced, and the deals of CRM-only customers."""
        r = self.rng
        deals: list[Deal] = []
        sales_rate = self.scheme.rate(self.scheme.sales)
        linked = [i for i, c in enumerate(customers) if c.linked]
        n_won = sum(customers[i].n_invoices for i in linked)
        not_invoiced = set(
            r.sample(linked, min(len(linked), max(MINIMUM, round(DEAL_NOT_INVOICED_SHARE * n_won))))
        )
        for idx, c in enumerate(customers):
            if c.presence == "books":
                continue
            stages: list[tuple[str, int]] = []
            if c.presence == "prospect":
                stages = [r.choice(OPEN_STAGES + LOST_STAGES) for _ in range(r.randrange(1, 4))]
            elif c.presence == "crm":
                stages = [("Closed Won", 100)] * r.randrange(1, 3)
                stages += [r.choice(OPEN_STAGES) for _ in range(r.randrange(0, 2))]
            else:
                k = int(self.np_rng.poisson(0.12 * c.n_invoices)) + (r.random() < 0.3)
                stages = [r.choice(OPEN_STAGES + LOST_STAGES + LOST_STAGES) for _ in range(k)]
                if idx in not_invoiced:
                    stages.append(("Closed Won", 100))
            for stage, probability in stages:
                deals.append(
                    self._free_deal(c, stage, probability, items, product_of_item, owner_of, sales_rate)
                )
                if stage == "Closed Won" and c.linked:
                    self.manifest.append(
                        Injection(
                            "deal_not_invoiced",
                            "",
                            deals[-1].id,
                            "",
                            "",
                            str(deals[-1].amount),
                            f"{deals[-1].name}; customer {c.books_id}",
                        )  # fmt: skip
                    )
        return deals

    def _free_deal(
        self, c: Customer, stage: str, probability: int, items, product_of_item, owner_of, rate
    ) -> Deal:
        r, tl = self.rng, self.tl
        picks = r.sample(range(len(items)), r.randrange(1, min(4, len(items)) + 1))
        products = [
            DealLine(product_of_item[k], QUANTITY[2 * r.randrange(1, 6)], items[k].unit_price) for k in picks
        ]
        net = sum((p.quantity * p.list_price for p in products), Decimal("0"))
        amount = (net * (100 + rate) / 100).quantize(Decimal("0.01"))
        won_or_lost = stage.startswith("Closed")
        if won_or_lost:
            close_day = r.randrange(max(0, min(c.start_day, tl.end - 60)), tl.end - 30)
        else:
            close_day = tl.end + r.randrange(-20, 120)
        created_day = min(close_day, tl.end) - r.randrange(10, 90)
        created = self._moment(created_day)
        modified = self.tl.later(created, r.randrange(0, 60 * 86_400))
        first = items[picks[0]].name
        d = tl.date(close_day)
        base = f"{c.crm_name} - {first} ({MONTHS[d.month - 1]} {d.year})"
        name, k = base, 2
        while name in self.deal_names:
            name = f"{base} #{k}"
            k += 1
        self.deal_names.add(name)
        zid = self.zoho.one()
        return Deal(
            zid, name, c.crm_id, c.crm_contact_id, stage, amount, c.currency, d, owner_of[c.crm_id],
            created, modified, probability, attached(zid, products),
        )  # fmt: skip

    def crm_invoices(
        self,
        ledger: Ledger,
        customers: list[Customer],
        plan: DealPlan,
        inj: InvoiceInjections,
        invoice_ids: list[str],
        invoice_numbers: list[str],
        invoice_created: list,
        items: list[Item],
        product_of_item: list[str],
        owner_of: dict[str, str],
    ) -> list[CrmInvoice]:
        tl = self.tl
        n = ledger.n
        crm_invoicing = np.array([c.crm_invoicing for c in customers], dtype=bool)[ledger.cust]
        wanted = (ledger.live & crm_invoicing).tolist()
        missing = inj.missing_crm_invoice.tolist()
        cust, day, due_day, status, due_amt = (
            a.tolist() for a in (ledger.cust, ledger.day, ledger.due_day, ledger.status, ledger.due_amt)
        )
        ln = ledger.lines
        l_start, l_count, l_item, l_q2 = (a.tolist() for a in (ln.start, ln.count, ln.item, ln.q2))
        l_rate, l_discount = ln.rate_pcm.tolist(), ln.gross - ln.amount
        unit_dec = line_units(ln)
        rate_dec = {pcm: Decimal(pcm) / 1000 for pcm in set(ln.rate_pcm.tolist())}
        lag = self.np_rng.integers(600, 7800, n).tolist()
        with_id = (self.np_rng.random(n) < 0.9).tolist()
        settled = (ledger.paid + ledger.credited).tolist()
        paid_dec = decimals(ledger.paid)
        last_pay = np.where(ledger.p2_day >= 0, ledger.p2_day, ledger.p1_day).tolist()
        stale_inj = inj.stale.tolist()
        descriptions = [it.description for it in items]
        out: list[CrmInvoice] = []
        for i in range(n):
            if not wanted[i]:
                continue
            c = customers[cust[i]]
            if missing[i]:
                self.manifest.append(
                    Injection("invoice_missing_in_crm", invoice_ids[i], "", "", invoice_numbers[i], "",
                              f"crm_account={c.crm_id}")
                )  # fmt: skip
                continue
            s = l_start[i]
            lines = [
                CrmInvoiceLine(product_of_item[l_item[j]], QUANTITY[l_q2[j]], unit_dec[j], rate_dec[l_rate[j]],
                               descriptions[l_item[j]], CENTS(int(l_discount[j])))
                for j in range(s, s + l_count[i])
            ]  # fmt: skip
            st = status[i]
            crm_status = (
                "Created"
                if st == DRAFT
                else "Approved"
                if st == SUBMITTED
                else "Paid"
                if due_amt[i] == 0
                else "Delivered"
            )
            created = tl.soon_after(invoice_created[i], lag[i])
            # payment fields as an in-sync write-back keeps them; a stale deal's invoice is stale too
            pay_status = payment_status(st, due_amt[i], settled[i], due_day[i] <= tl.end)
            amount_paid: Decimal | None = paid_dec[i]
            last_payment: date | None = tl.date(last_pay[i]) if last_pay[i] >= 0 else None
            if stale_inj[i]:
                pay_status, amount_paid, last_payment = "Unpaid", CENTS(0), None
            out.append(
                CrmInvoice(
                    self.zoho.one(),
                    f"Invoice {invoice_numbers[i]}",
                    invoice_numbers[i],
                    c.crm_id,
                    c.crm_contact_id,
                    plan.deal_id[i],
                    tl.date(day[i]),
                    tl.date(due_day[i]),
                    crm_status,
                    c.currency,
                    lines,
                    owner_of[c.crm_id],
                    created,
                    created,
                    invoice_ids[i] if with_id[i] else "",
                    pay_status,
                    amount_paid,
                    last_payment,
                )  # fmt: skip
            )
        return out


def _addr(a) -> str:
    if a is None:
        return ""
    parts = (a.line1, a.line2, a.city, a.region, a.postal_code, a.country)
    return ", ".join(p for p in parts if p)


def build_crm_org(
    org_id: str, company: str, currency: str, timezone: str, tl: Timeline, rng: random.Random
) -> CrmOrg:
    created = tl.at(-rng.randrange(900, 2000), BUSINESS_START + rng.randrange(BUSINESS_SPAN))
    edition = rng.choice(("Standard", "Professional", "Enterprise", "Ultimate"))
    return CrmOrg(org_id, company, currency, timezone, edition, created)
