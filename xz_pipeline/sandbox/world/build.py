"""Puts one world together: plan customers, compute the ledger, choose injections, render both sides.

Randomness comes from one numpy SeedSequence of (seed, index, size), split into independent
streams, so the same arguments rebuild the same world byte for byte in any process.
"""

from __future__ import annotations

import random
import zlib
from datetime import UTC, datetime

import numpy as np

from xz_pipeline.sandbox.profiles import Profile
from xz_pipeline.sandbox.world.anomalies import plant
from xz_pipeline.sandbox.world.books import (
    build_bills,
    build_contacts,
    build_items,
    build_org,
    build_sales,
    build_suppliers,
    chart_of_accounts,
    tax_scheme,
)
from xz_pipeline.sandbox.world.crm import CrmBuilder, build_crm_org, plan_deals
from xz_pipeline.sandbox.world.customers import HABITS, Customer, CustomerPlanner
from xz_pipeline.sandbox.world.fit import fit_profile
from xz_pipeline.sandbox.world.ids import XeroIds, ZohoIds, zoho_prefix
from xz_pipeline.sandbox.world.inject import choose
from xz_pipeline.sandbox.world.ledger import AUTHORISED, build_ledger
from xz_pipeline.sandbox.world.ledger import build_bills as bill_numbers
from xz_pipeline.sandbox.world.model import DISCREPANCY_KINDS, CustomerTruth, Injection, Size, World
from xz_pipeline.sandbox.world.projects import build_projects
from xz_pipeline.sandbox.world.text import ascii_slug
from xz_pipeline.sandbox.world.timeline import Timeline
from xz_pipeline.sandbox.world.vocab import CATALOGUES, COUNTRIES, EXPENSE_ACCOUNTS, ORG_COUNTRIES, USD_PER

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def _streams(
    seed: int, size: str, index: int
) -> tuple[random.Random, np.random.Generator, np.random.Generator]:
    ss = np.random.SeedSequence([seed, index, zlib.crc32(size.encode())])
    py_seq, np_seq, id_seq = ss.spawn(3)
    py_seed = int.from_bytes(py_seq.generate_state(4, dtype=np.uint32).tobytes(), "little")
    return random.Random(py_seed), np.random.default_rng(np_seq), np.random.default_rng(id_seq)


def build(
    seed: int, size_name: str, size: Size, index: int, profile: Profile, habits: str = "realistic"
) -> World:
    rng, np_rng, id_rng = _streams(seed, size_name, index)
    tl = Timeline(AS_OF, size.window_days)
    xero, zoho = XeroIds(id_rng), ZohoIds(seed, index)
    skip = frozenset(profile.undetectable())

    org_country = COUNTRIES[
        rng.choice(ORG_COUNTRIES)
    ]  # drawn always: a profile's country moves no other draw
    if profile.country:
        org_country = COUNTRIES[profile.country]
    _kind, org_names, catalogue = rng.choice(CATALOGUES)
    org_name = rng.choice(org_names)
    scheme = tax_scheme(org_country.code)
    books = build_org(xero.one(), org_name, org_country, tl, rng, scheme)
    books.accounts = chart_of_accounts(xero, org_country, scheme)
    books.items = build_items(catalogue, scheme, xero, tl, rng)

    customers = CustomerPlanner(
        rng, org_country, size.customers, size.window_days, single_currency=profile.single_currency, skip=skip
    ).plan()
    currencies = (
        [org_country.currency] if profile.single_currency else _currencies(customers, org_country.currency)
    )
    crm = CrmBuilder(rng, np_rng, zoho, tl, org_country, scheme, currencies)
    org_domain = f"{ascii_slug(org_name)}.{org_country.tld}"
    users = crm.users(min(40, 3 + size.customers // 800), org_domain)
    owner_ids = [u.id for u in users]
    products, product_of_item = crm.products(books.items, owner_ids)
    for c in customers:
        if c.presence != "books":
            c.crm_id, c.crm_contact_id = zoho.one(), zoho.one()
            if c.duplicate == "crm":
                c.crm_dup_id = zoho.one()

    # ---- the books' numbers
    bc = [c for c in customers if c.presence in ("both", "books")]
    base = org_country.currency
    habit_code = {h: k for k, h in enumerate(HABITS)}
    sales_pcm, export_pcm = scheme.pcm(scheme.sales), scheme.pcm(scheme.export)
    ledger = build_ledger(
        np_rng,
        size.invoices,
        tl.end,
        cust_start=np.array([c.start_day for c in bc], dtype=np.int64),
        cust_weight=np.array([c.weight for c in bc]),
        cust_terms=np.array([c.terms for c in bc], dtype=np.int64),
        cust_habit=np.array([habit_code[c.habit] for c in bc], dtype=np.int64),
        cust_rate_pcm=np.array(
            [sales_pcm if c.country.code == org_country.code else export_pcm for c in bc], dtype=np.int64
        ),
        cust_fx=np.array([1.0 if c.currency == base else USD_PER[base] / USD_PER[c.currency] for c in bc]),
        cust_min=np.array([4 if c.duplicate == "books" else 2 for c in bc], dtype=np.int64),
        cust_force=np.array([c.duplicate == "books" for c in bc], dtype=bool),
        item_unit=np.array([round(float(it[3]) * 100) for it in catalogue], dtype=np.int64),
        item_max=np.array([it[4] for it in catalogue], dtype=np.int64),
        item_hourly=np.array([it[5] for it in catalogue], dtype=bool),
        item_weight=1.0 / np.arange(1, len(catalogue) + 1) ** 0.7,
        habits=habits,
        origin=tl.origin,
    )
    inj = choose(np_rng, ledger, bc, skip)
    planted = plant(np_rng.spawn(1)[0], ledger, inj)  # duplicate invoices and their look-alikes
    _customer_totals(bc, ledger, tl.end)
    # Without the link fields (bare) a mismatched deal is found only through its invoice's reference.
    named = None if profile.custom_fields else inj.amount | inj.currency
    plan = plan_deals(ledger, bc, inj, books.items, zoho, tl, np_rng, named)

    # ---- books records
    first_day = np.full(len(bc), tl.end, dtype=np.int64)
    np.minimum.at(first_day, ledger.cust, ledger.day)
    books.contacts = build_contacts(bc, xero, tl, rng, first_day.tolist())
    invoices, payments, credit_notes = build_sales(
        bc, ledger, plan.reference, books.items, scheme, org_country.code, base, xero, tl, np_rng
    )
    taken = {c.name for c in books.contacts}
    suppliers = build_suppliers(size.suppliers, org_country, xero, tl, rng, taken)
    also_suppliers = [c for c in bc if c.is_supplier]
    supplier_ids = [s.id for s in suppliers] + [c.books_id for c in also_suppliers]
    bills = bill_numbers(
        np_rng,
        max(20, size.invoices // 20),
        len(supplier_ids),
        tl.end,
        len(EXPENSE_ACCOUNTS),
        scheme.pcm(scheme.purchases),
    )
    k = min(len(also_suppliers), len(bills.supplier))
    bills.supplier[:k] = len(suppliers) + np.arange(k)
    bill_records, bill_payments = build_bills(bills, supplier_ids, scheme, base, xero, tl, np_rng)
    books.contacts += suppliers
    books.invoices = invoices + bill_records
    books.payments = payments + bill_payments
    books.credit_notes = credit_notes
    anomalies = planted.apply(invoices)

    # ---- CRM records
    crm_org = build_crm_org(str(zoho_prefix(seed, index)), org_name, base, org_country.timezone, tl, rng)
    crm_org.users = users
    crm_org.products = products
    crm_org.accounts, crm_org.contacts, owner_of = crm.accounts_and_contacts(customers, owner_ids)
    inv_ids = [inv.id for inv in invoices]
    inv_numbers = [inv.number for inv in invoices]
    inv_created = [inv.created for inv in invoices]
    inv_updated = [inv.updated for inv in invoices]
    deals = crm.invoice_deals(
        ledger, bc, plan, inj, inv_ids, inv_numbers, inv_created, inv_updated, product_of_item, owner_of
    )
    deals += crm.other_deals(customers, books.items, product_of_item, owner_of)
    crm_org.deals = deals
    crm_org.invoices = crm.crm_invoices(
        ledger, bc, plan, inj, inv_ids, inv_numbers, inv_created, books.items, product_of_item, owner_of
    )

    manifest = crm.manifest + [
        Injection("customer_missing_in_crm", c.books_id, "", "", c.books_name, "", "no CRM account")
        for c in bc
        if c.injected == "customer_missing_in_crm"
    ]
    names = {a.id: a.name for a in crm_org.accounts}
    projects, planted_projects = build_projects(seed, size_name, index, bc, crm_org.deals, names, AS_OF)
    manifest += planted_projects
    order = {k: i for i, k in enumerate(DISCREPANCY_KINDS)}
    manifest.sort(key=lambda m: (order[m.kind], m.books_id, m.crm_id))
    fit_profile(crm_org, profile)
    truth = _truth(customers)
    world = World(seed, size_name, index, AS_OF, books, crm_org, manifest, truth, profile.name, anomalies)
    world.projects = projects
    return world


def _currencies(customers: list[Customer], base: str) -> list[str]:
    seen = {base, "USD", "EUR"} | {c.currency for c in customers}
    return sorted(seen)


def _customer_totals(bc: list[Customer], ledger, end: int) -> None:
    n = len(bc)
    counts = np.bincount(ledger.cust, minlength=n)
    owed = np.where(ledger.status == AUTHORISED, ledger.due_amt, 0)
    outstanding = np.zeros(n, dtype=np.int64)
    np.add.at(outstanding, ledger.cust, owed)
    overdue = np.zeros(n, dtype=np.int64)
    np.add.at(overdue, ledger.cust, np.where(ledger.due_day <= end, owed, 0))
    for c, k, o, d in zip(bc, counts.tolist(), outstanding.tolist(), overdue.tolist(), strict=True):
        c.n_invoices, c.outstanding, c.overdue = k, o, d


def _truth(customers: list[Customer]) -> list[CustomerTruth]:
    out = []
    for c in customers:
        books_ids = [i for i in (c.books_id, c.books_dup_id) if i]
        crm_ids = [i for i in (c.crm_id, c.crm_dup_id) if i]
        label = c.hard_case or ("prospect" if c.presence == "prospect" else "")
        out.append(CustomerTruth(c.key, books_ids, crm_ids, label))
    return out
