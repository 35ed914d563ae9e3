"""Each discrepancy rule on hand-made canonical rows: it fires on the disagreement, and stays quiet on
the harmless variants (and on what another rule owns)."""

from __future__ import annotations

import pandas as pd

from xz_pipeline.reconcile import rules
from xz_pipeline_tests.reconcile.recon_support import (
    C,
    account,
    customer,
    deal,
    inputs,
    invoice,
    invoice_links,
    keys,
    links,
)


def test_customer_missing_in_crm_only_for_customers():
    x = inputs(
        books_customers=[
            customer("b1"),  # linked
            customer("b2", "Lone Buyer Ltd"),  # a customer, no CRM account
            customer("b3", "Paper Supplies Ltd", is_customer=False, is_supplier=True),  # supplier only
            customer("b4", "Quiet Buyer", is_customer=False),  # buys, though the flag lags
        ],
        books_invoices=[invoice("i4", "b4"), invoice("i3", "b3", type="bill")],
        crm_accounts=[account("a1")],
        customer_links=links(("b1", "a1")),
    )
    found = rules.customer_missing_in_crm(x)
    assert keys(found) == {
        ("customer_missing_in_crm", "b2", "", ""),
        ("customer_missing_in_crm", "b4", "", ""),
    }
    assert set(found["severity"]) == {"warn"}
    assert "Lone Buyer Ltd" in set(found["books_value"])


def test_customer_missing_in_crm_review_link_is_not_a_link():
    x = inputs(books_customers=[customer("b1")], crm_accounts=[account("a1")],
               customer_links=links(("b1", "a1", "review")))  # fmt: skip
    assert keys(rules.customer_missing_in_crm(x)) == {("customer_missing_in_crm", "b1", "", "")}


def test_customer_missing_in_books_needs_a_won_deal():
    x = inputs(
        crm_accounts=[account("a1"), account("a2", "Bought Once"), account("a3", "Prospect Co")],
        crm_deals=[
            deal("d2", "a2"),
            deal("d3", "a3", stage="open"),
            deal("d4", "a3", stage="lost"),
            deal("d1", "a1"),
        ],  # fmt: skip
        customer_links=links(("b1", "a1")),
    )
    assert keys(rules.customer_missing_in_books(x)) == {("customer_missing_in_books", "", "a2", "")}


def test_customer_duplicate_names_the_extra_record():
    dups = pd.DataFrame(
        [{"connection": C, "books_id": "b1", "crm_id": "a2", "other_id": "a1", "side": "crm"},
         {"connection": C, "books_id": "b9", "crm_id": "a5", "other_id": "b8", "side": "books"}]
    )  # fmt: skip
    x = inputs(books_customers=[customer("b1")], crm_accounts=[account("a1"), account("a2", "ACME LTD")],
               duplicates=dups)  # fmt: skip
    found = rules.customer_duplicate(x)
    assert keys(found) == {("customer_duplicate", "b1", "a2", ""), ("customer_duplicate", "b9", "a5", "")}
    row = found[found["crm_id"] == "a2"].iloc[0]
    assert row["crm_value"] == "ACME LTD" and "a1" in row["detail"]
    assert rules.customer_duplicate(inputs()).empty


def _pair(books: dict, crm: dict, contacts=()):
    return inputs(books_customers=[customer("b1", **books)], crm_accounts=[account("a1", **crm)],
                  crm_contacts=list(contacts), customer_links=links(("b1", "a1")))  # fmt: skip


def test_field_mismatch_email():
    same = _pair({"email": "Jo.Bloggs@Acme.co.nz"}, {"email": " jo.bloggs@acme.co.nz"})
    assert rules.customer_field_mismatch(same).empty
    other = _pair({"email": "jo@acme.co.nz"}, {"email": "sales@acme.co.nz"})
    found = rules.customer_field_mismatch(other)
    assert keys(found) == {("customer_field_mismatch", "b1", "a1", "email")}
    assert (
        found.iloc[0]["books_value"] == "jo@acme.co.nz" and found.iloc[0]["crm_value"] == "sales@acme.co.nz"
    )
    # the books address is on another contact of the account: the CRM knows it, no mismatch
    known = _pair({"email": "jo@acme.co.nz"}, {"email": "sales@acme.co.nz"},
                  [{"contact_id": "p2", "account_id": "a1", "email": "JO@acme.co.nz"}])  # fmt: skip
    assert rules.customer_field_mismatch(known).empty
    # missing on one side is missing data, not a disagreement
    assert rules.customer_field_mismatch(_pair({"email": "jo@acme.co.nz"}, {})).empty


def test_field_mismatch_phone_in_e164():
    nz = {"country": "New Zealand"}
    for books, crm in (("+64 9 555 0100", "(09) 555-0100"), ("09 555 0100", "+6495550100")):
        x = _pair({"phone": books, **nz}, {"phone": crm, "country": "NZ"})
        assert rules.customer_field_mismatch(x).empty, (books, crm)
    x = _pair({"phone": "+64 9 555 0100", **nz}, {"phone": "(09) 555-0199", **nz})
    found = rules.customer_field_mismatch(x)
    assert keys(found) == {("customer_field_mismatch", "b1", "a1", "phone")}
    assert found.iloc[0]["severity"] == "warn"


def test_field_mismatch_billing_address_normalised():
    books = {"street": "12 Queen Street, Level 2", "city": "Auckland", "postal_code": "1010",
             "country": "New Zealand"}  # fmt: skip
    variant = {"street": "12 QUEEN ST, Lvl 2", "city": "AUCKLAND", "postal_code": "1010", "country": "NZ"}
    assert rules.customer_field_mismatch(_pair(books, variant)).empty
    de = {"street": "Hauptstraße 5", "city": "München", "postal_code": "80331"}
    assert rules.customer_field_mismatch(_pair(de, {**de, "street": "Hauptstr. 5", "city": "MÜNCHEN"})).empty
    moved = {
        "street": "48 Ponsonby Road",
        "city": "Auckland",
        "postal_code": "1011",
        "country": "New Zealand",
    }
    found = rules.customer_field_mismatch(_pair(books, moved))
    assert keys(found) == {("customer_field_mismatch", "b1", "a1", "billing_address")}
    assert "Queen Street" in found.iloc[0]["books_value"] and "Ponsonby" in found.iloc[0]["crm_value"]


def test_field_mismatch_ignores_names_and_duplicate_pairs():
    x = _pair({"name": "Müller GmbH", "email": "a@m.de"}, {"name": "Mueller GmbH", "email": "a@m.de"})
    assert rules.customer_field_mismatch(x).empty
    dups = pd.DataFrame(
        [{"connection": C, "books_id": "b1", "crm_id": "a2", "other_id": "a1", "side": "crm"}]
    )
    x = inputs(books_customers=[customer("b1", email="jo@acme.co.nz")],
               crm_accounts=[account("a1", email="jo@acme.co.nz"), account("a2", email="other@acme.co.nz")],
               customer_links=links(("b1", "a1"), ("b1", "a2")), duplicates=dups)  # fmt: skip
    assert rules.customer_field_mismatch(x).empty


def test_deal_not_invoiced():
    x = inputs(
        crm_deals=[deal("d1"), deal("d2"), deal("d3", stage="open"), deal("d4", account_id="a9")],
        customer_links=links(("b1", "a1")),
        deal_links=invoice_links(("i1", "d1")),
    )
    found = rules.deal_not_invoiced(x)
    # d3 is not won; d4's account is not linked (a missing customer owns it)
    assert keys(found) == {("deal_not_invoiced", "", "d2", "")}
    assert found.iloc[0]["crm_value"] == "115.00"


def test_invoice_without_deal():
    x = inputs(
        books_invoices=[
            invoice("i1"),
            invoice("i2"),
            invoice("i3", status="void"),
            invoice("i4", "b9"),
            invoice("i5", type="bill"),
            invoice("i6", status="draft"),
        ],  # fmt: skip
        customer_links=links(("b1", "a1")),
        deal_links=invoice_links(("i1", "d1")),
    )
    assert keys(rules.invoice_without_deal(x)) == {
        ("invoice_without_deal", "i2", "", ""),
        ("invoice_without_deal", "i6", "", ""),
    }


def _linked_docs(inv: dict, dl: dict):
    return inputs(books_invoices=[inv], crm_deals=[dl], customer_links=links(("b1", "a1")),
                  deal_links=invoice_links((inv["invoice_id"], dl["deal_id"])))  # fmt: skip


def test_amount_mismatch_tolerates_rounding_to_whole_units():
    assert rules.amount_mismatch(_linked_docs(invoice("i1", total=11550), deal("d1", amount=11600))).empty
    assert rules.amount_mismatch(_linked_docs(invoice("i1", total=11549), deal("d1", amount=11500))).empty
    found = rules.amount_mismatch(_linked_docs(invoice("i1", total=11549), deal("d1", amount=11600)))
    assert keys(found) == {("amount_mismatch", "i1", "d1", "amount")}
    assert (found.iloc[0]["books_value"], found.iloc[0]["crm_value"], found.iloc[0]["severity"]) == (
        "115.49", "116.00", "error",
    )  # fmt: skip


def test_currency_mismatch_owns_the_amount():
    x = _linked_docs(invoice("i1", total=11500, currency="NZD"), deal("d1", amount=7000, currency="USD"))
    assert keys(rules.currency_mismatch(x)) == {("currency_mismatch", "i1", "d1", "currency")}
    assert rules.amount_mismatch(x).empty
    assert rules.currency_mismatch(_linked_docs(invoice("i1"), deal("d1"))).empty


def test_payment_status_stale():
    paid = invoice("i1", status="paid", amount_paid=11500, amount_due=0)
    assert keys(rules.payment_status_stale(_linked_docs(paid, deal("d1")))) == {
        ("payment_status_stale", "i1", "d1", "payment_status")
    }
    ok = deal("d1", payment_status="paid", payment_status_raw="Paid")
    assert rules.payment_status_stale(_linked_docs(paid, ok)).empty
    part = invoice("i1", amount_paid=5000, amount_due=6500)
    assert not rules.payment_status_stale(_linked_docs(part, deal("d1"))).empty
    assert rules.payment_status_stale(_linked_docs(part, deal("d1", payment_status="partially_paid"))).empty
    # overdue and unpaid say the same about the money: the calendar is not a stale record
    assert rules.payment_status_stale(_linked_docs(invoice("i1"), deal("d1", payment_status="overdue"))).empty
    # a credit note settles too
    credited = invoice("i1", amount_credited=11500, amount_due=0, status="paid")
    assert not rules.payment_status_stale(_linked_docs(credited, deal("d1"))).empty


def test_balance_mismatch_sums_open_invoices_of_every_linked_contact():
    base = dict(
        books_customers=[customer("b1"), customer("b2")],
        books_invoices=[
            invoice("i1", "b1", total=10000),
            invoice("i2", "b2", total=5000),
            invoice("i3", "b1", total=9999, status="draft"),
            invoice("i4", "b1", status="paid", amount_due=0, amount_paid=11500),
        ],  # fmt: skip
        customer_links=links(("b1", "a1"), ("b2", "a1")),
        duplicates=pd.DataFrame(
            [{"connection": C, "books_id": "b2", "crm_id": "a1", "other_id": "b1", "side": "books"}]
        ),  # fmt: skip
    )
    assert rules.balance_mismatch(inputs(crm_accounts=[account("a1", outstanding=15000)], **base)).empty
    assert rules.balance_mismatch(inputs(crm_accounts=[account("a1")], **base)).empty  # never written
    found = rules.balance_mismatch(inputs(crm_accounts=[account("a1", outstanding=25000)], **base))
    assert keys(found) == {("balance_mismatch", "b1", "a1", "outstanding_balance")}
    assert (found.iloc[0]["books_value"], found.iloc[0]["crm_value"]) == ("150.00", "250.00")


def test_invoice_missing_in_crm():
    crm_inv = [
        {"invoice_id": "z1", "number": "INV-i1", "account_id": "a1", "books_invoice_id": "i1"},
        {"invoice_id": "z2", "number": "INV-i2", "account_id": "a1"},  # found by number
    ]
    x = inputs(
        books_invoices=[
            invoice("i1"),
            invoice("i2"),
            invoice("i3"),
            invoice("i4", status="deleted"),
            invoice("i5", "b2"),
            invoice("i6", status="draft"),  # not issued yet: the CRM records invoices once they are
        ],  # fmt: skip
        crm_invoices=crm_inv,
        customer_links=links(("b1", "a1"), ("b2", "a2")),  # a2 keeps no CRM invoices
    )
    found = rules.invoice_missing_in_crm(x)
    assert keys(found) == {("invoice_missing_in_crm", "i3", "", "")}
    assert found.iloc[0]["detail"] == "crm_account=a1"
    # no CRM invoices at all: the module is not used, nothing is missing
    assert rules.invoice_missing_in_crm(
        inputs(books_invoices=[invoice("i3")], customer_links=links(("b1", "a1")))
    ).empty


def test_discrepancies_never_cross_connections():
    x = inputs(
        books_customers=[customer("b1"), customer("b1", connection="other")],
        crm_accounts=[account("a1")],
        customer_links=links(("b1", "a1")),
    )
    found = rules.discrepancies(x)
    assert keys(found) == {("customer_missing_in_crm", "b1", "", "")}
    assert list(found["connection"]) == ["other"]
    assert list(found.columns) == rules.DISCREPANCY_COLUMNS


def test_two_connections_with_the_same_ids_reconcile_as_each_alone():
    """The same demo world under two connection names: every id collides, nothing may mix."""
    from xz_pipeline.reconcile.assets import reconcile
    from xz_pipeline.sandbox.world import generate
    from xz_pipeline_tests.reconcile.world_frames import frames, score

    world = generate(7, "demo")
    one, two = frames(world, "c0"), frames(world, "c1")
    both = {view: pd.concat([one[view], two[view]], ignore_index=True) for view in one}
    alone = reconcile(one).discrepancies
    together = reconcile(both).discrepancies
    for name in ("c0", "c1"):
        mine = together[together["connection"] == name].drop(columns="connection")
        assert keys(mine.assign(connection=name)) == keys(alone)
        assert len(mine) == len(alone)
    assert all(s["precision"] == 1.0 and s["recall"] == 1.0 for s in score(alone, world.manifest).values())


def test_invoice_without_deal_skips_invoices_from_before_the_crm_account_existed():
    # a CRM account created on 2026-05-01 (by a person, or by write-back from the books): its invoices from
    # before then cannot have deals, nobody should invent them; those after can and should
    created = pd.Timestamp("2026-05-01 09:30", tz="UTC")
    x = inputs(
        books_invoices=[invoice("old", issue_date="2026-03-02"), invoice("new", issue_date="2026-05-02"),
                        invoice("same-day", issue_date="2026-05-01"), invoice("other", "b2")],
        crm_accounts=[account("a1", source_created=created), account("a2")],  # a2: created time unknown
        customer_links=links(("b1", "a1"), ("b2", "a2")),
    )  # fmt: skip
    assert keys(rules.invoice_without_deal(x)) == {
        ("invoice_without_deal", "new", "", ""),
        ("invoice_without_deal", "same-day", "", ""),
        ("invoice_without_deal", "other", "", ""),
    }


def test_payment_status_stale_only_where_the_org_keeps_a_payment_status():
    paid = invoice("i1", status="paid", amount_paid=11500, amount_due=0)
    untracked = deal("d1", payment_status=None, payment_status_raw=None, payment_status_tracked=False)
    assert rules.payment_status_stale(_linked_docs(paid, untracked)).empty
    tracked = deal("d1", payment_status=None, payment_status_raw=None, payment_status_tracked=True)
    assert keys(rules.payment_status_stale(_linked_docs(paid, tracked))) == {
        ("payment_status_stale", "i1", "d1", "payment_status")
    }
    # the org's schema never read (an older mirror): compared as before
    unknown = deal("d1", payment_status=None, payment_status_raw=None)
    assert not rules.payment_status_stale(_linked_docs(paid, unknown)).empty
