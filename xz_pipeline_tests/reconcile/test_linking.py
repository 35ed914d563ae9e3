"""Deal ↔ invoice linking: explicit evidence first, then the same customer with amount and date; one to one."""

from __future__ import annotations

from xz_pipeline.reconcile.linking import assign_one_to_one, link_deals_to_invoices
from xz_pipeline_tests.reconcile.recon_support import C, deal, frame, invoice, links


def _link(invoices, deals, customer_links=None):
    out = link_deals_to_invoices(
        frame("books_invoices", *invoices),
        frame("crm_deals", *deals),
        customer_links if customer_links is not None else links(),
    )
    return {(r.invoice_id, r.deal_id): r.method for r in out.itertuples()}


def test_explicit_evidence_of_each_kind():
    got = _link(
        [invoice("i1"), invoice("i2", reference="DEAL-d2"), invoice("i3", number="INV-0042"),
         invoice("i4", reference="  acme - widgets (may 2026) ")],
        [deal("d1", books_invoice_id="i1"), deal("d2"), deal("d3", books_invoice_number="INV-0042"),
         deal("d4", name="Acme - Widgets (May 2026)")],
    )  # fmt: skip
    assert got == {
        ("i1", "d1"): "deal_invoice_id",
        ("i2", "d2"): "reference_deal_id",
        ("i3", "d3"): "deal_invoice_number",
        ("i4", "d4"): "reference_deal_name",
    }


def test_explicit_beats_inferred_and_no_invoice_is_used_twice():
    # d1 and d3 both name i1 (a tie broken by id); d2 looks like i1 by amount and date but must not
    # take it, and i2 is too far from d2's amount
    got = _link(
        [invoice("i1"), invoice("i2", total=99900)],
        [deal("d1", books_invoice_id="i1"), deal("d2"), deal("d3", books_invoice_id="i1")],
        links(("b1", "a1")),
    )
    assert got == {("i1", "d1"): "deal_invoice_id"}


def test_inferred_needs_the_same_customer_amount_date_and_currency():
    base = [invoice("i1", total=11500, issue_date="2026-05-10")]
    cl = links(("b1", "a1"))
    assert _link(base, [deal("d1", amount=11500, close_date="2026-05-01")], cl) == {
        ("i1", "d1"): "amount_date"
    }
    assert _link(base, [deal("d1", amount=11550)], cl) == {("i1", "d1"): "amount_date"}  # whole-unit rounding
    assert _link(base, [deal("d1", amount=12500)], cl) == {}  # amount too far
    assert _link(base, [deal("d1", close_date="2025-12-01")], cl) == {}  # months apart
    assert _link(base, [deal("d1", currency="USD")], cl) == {}
    assert _link(base, [deal("d1", account_id="a2")], cl) == {}  # another customer
    assert _link(base, [deal("d1")], links(("b1", "a1", "review"))) == {}  # an unconfirmed customer link
    assert _link(base, [deal("d1", stage="open")], cl) == {}


def test_inferred_assignment_is_one_to_one_closest_first():
    got = _link(
        [
            invoice("i1", total=11500, issue_date="2026-05-10"),
            invoice("i2", total=11500, issue_date="2026-07-10"),
        ],
        [
            deal("d1", amount=11500, close_date="2026-07-08"),
            deal("d2", amount=11500, close_date="2026-05-09"),
        ],
        links(("b1", "a1")),
    )
    assert got == {("i1", "d2"): "amount_date", ("i2", "d1"): "amount_date"}


def test_assign_one_to_one_takes_mutual_best_pairs_round_by_round():
    import pandas as pd

    cand = pd.DataFrame(
        [(C, "i1", "d1", 0.9), (C, "i1", "d2", 0.8), (C, "i2", "d1", 0.85), (C, "i2", "d3", 0.1)],
        columns=["connection", "invoice_id", "deal_id", "confidence"],
    )
    got = {(r.invoice_id, r.deal_id) for r in assign_one_to_one(cand).itertuples()}
    assert got == {("i1", "d1"), ("i2", "d3")}


def test_linking_never_crosses_connections():
    got = link_deals_to_invoices(
        frame("books_invoices", invoice("i1", connection="x")),
        frame("crm_deals", deal("d1", books_invoice_id="i1", connection="y")),
        links(),
    )
    assert got.empty
