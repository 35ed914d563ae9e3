"""The world rendered as a QBO company: the same records, QBO's shapes, the profile's taxes and currencies."""

from __future__ import annotations

from decimal import Decimal

import pytest

from xz_pipeline.sandbox.quickbooks import QuickBooksEmulator
from xz_pipeline_tests.sandbox.quickbooks.support import connect, world


def _expected_balances(w) -> dict[str, Decimal]:
    paid: dict[str, Decimal] = {}
    for p in w.books.payments:
        if p.status != "DELETED":
            paid[p.invoice_id] = paid.get(p.invoice_id, Decimal(0)) + p.amount
    for note in w.books.credit_notes:
        if note.status not in ("VOIDED", "DELETED") and note.type == "ACCRECCREDIT":
            for a in note.allocations:
                paid[a.invoice_id] = paid.get(a.invoice_id, Decimal(0)) + a.amount
    return {
        i.id: Decimal(0) if i.status == "VOIDED" else max(Decimal(0), i.total - paid.get(i.id, Decimal(0)))
        for i in w.books.invoices
        if i.type == "ACCREC" and i.status not in ("DELETED", "DRAFT", "SUBMITTED")  # drafts: Estimates
    }


@pytest.mark.parametrize("profile", ["us", "uk", "single-currency"])
def test_invoices_balances_and_company_follow_the_world(profile):
    qbo = connect(profile)
    w = world(profile)
    ids = qbo.emu.id_map(qbo.realm)
    rows = {r["Id"]: r for r in qbo.rows("select * from Invoice maxresults 1000")}
    expected = _expected_balances(w)
    assert len(rows) == len(expected)
    for world_id, balance in expected.items():
        assert Decimal(str(rows[ids[world_id]]["Balance"])) == balance, world_id
    prefs = qbo.http.get(f"{qbo.base}/preferences", headers=qbo.headers()).json()["Preferences"]
    assert prefs["CurrencyPrefs"]["HomeCurrency"]["value"] == w.books.base_currency
    assert prefs["CurrencyPrefs"]["MultiCurrencyEnabled"] is (profile != "single-currency")
    info = qbo.get("CompanyInfo", qbo.realm).json()["CompanyInfo"]
    assert (info["Country"], info["CompanyName"]) == (w.books.country_code, w.books.name)
    lines = [ln for r in rows.values() for ln in r["Line"] if ln["DetailType"] == "SalesItemLineDetail"]
    codes = {ln["SalesItemLineDetail"]["TaxCodeRef"]["value"] for ln in lines}
    if w.books.country_code == "US":
        assert codes <= {"TAX", "NON"} and "TAX" in codes
        assert all(
            "TxnTaxCodeRef" in r["TxnTaxDetail"] for r in rows.values() if r["TxnTaxDetail"]["TotalTax"]
        )
    if profile == "uk":
        names = {c["Name"] for c in qbo.rows("select * from TaxCode")}
        assert {"20.0% S", "5.0% R", "0.0% Z"} <= names and codes <= {
            c["Id"] for c in qbo.rows("select * from TaxCode")
        }
    if profile == "single-currency":
        assert not any("ExchangeRate" in r for r in rows.values())
    every = qbo.query("select count(*) from Customer where Active in (true, false)").json()["QueryResponse"][
        "totalCount"
    ]
    active = qbo.query("select count(*) from Customer").json()["QueryResponse"]["totalCount"]
    archived = {c.id for c in w.books.contacts if c.status == "ARCHIVED"} & set(ids)
    inactive = qbo.rows("select * from Customer where Active = false maxresults 1000")
    assert {r["Id"] for r in inactive} == {
        ids[c] for c in archived if ids[c] in qbo.emu.companies[qbo.realm].records["Customer"]
    }
    assert every - active == len(inactive)  # inactive customers only when the query names Active


def test_ids_are_small_integers_and_the_same_world_gets_the_same_ids():
    one, two = QuickBooksEmulator(), QuickBooksEmulator()
    realm = one.seed_world(world())
    assert two.seed_world(world()) == realm
    assert one.id_map(realm) == two.id_map(realm)
    ids = one.id_map(realm)
    assert all(
        v.removeprefix("Estimate/").isdigit() and int(v.removeprefix("Estimate/")) < 10_000
        for v in ids.values()
    )
    drafts = {
        i.id for i in world().books.invoices if i.type == "ACCREC" and i.status in ("DRAFT", "SUBMITTED")
    }
    assert drafts and {k for k, v in ids.items() if v.startswith("Estimate/")} == drafts
    contacts = world().books.contacts
    company = one.companies[realm]
    names = {r["DisplayName"] for e in ("Customer", "Vendor") for r in company.records[e].values()}
    assert {c.name for c in contacts} == names


def test_the_crm_id_a_previous_write_back_stored_is_in_the_customers_notes():
    emu = QuickBooksEmulator()
    realm = emu.seed_world(world())
    ids, customers = emu.id_map(realm), emu.companies[realm].records["Customer"]
    linked = [c for c in world().books.contacts if c.contact_number and ids.get(c.id) in customers]
    assert linked and any(not c.contact_number for c in world().books.contacts)
    for c in world().books.contacts:
        if ids.get(c.id) in customers:
            notes = customers[ids[c.id]].get("Notes")
            assert notes == (f"xz-crm-id: {c.contact_number}" if c.contact_number else None), c.id


def test_a_voided_bill_or_credit_memo_keeps_its_lines_at_zero_like_its_total():
    w = world()
    bill = next(i for i in w.books.invoices if i.type == "ACCPAY" and i.status == "AUTHORISED")
    note = next(n for n in w.books.credit_notes if n.status == "AUTHORISED" and n.total)
    bill.status = note.status = "VOIDED"
    try:
        emu = QuickBooksEmulator()
        realm = emu.seed_world(w)
        ids, held = emu.id_map(realm), emu.companies[realm].records
        for rec in (held["Bill"][ids[bill.id]], held["CreditMemo"][ids[note.id]]):
            assert rec["TotalAmt"] == 0 and rec["TxnTaxDetail"]["TotalTax"] == 0
            assert rec["Line"] and all(ln["Amount"] == 0 for ln in rec["Line"])
    finally:
        bill.status = note.status = "AUTHORISED"
