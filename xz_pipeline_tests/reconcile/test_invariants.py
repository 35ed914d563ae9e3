"""Accounting invariants over hand-made canonical rows: clean books pass, each corruption fails the
rule it breaks, naming the record (the Dagster blocking is in test_assets)."""

from __future__ import annotations

import pytest

from xz_pipeline.core.canonical import CANONICAL_VIEWS, empty_select
from xz_pipeline.core.store import Store
from xz_pipeline.reconcile.invariants import INVARIANTS, check_invariants

INVOICES = [
    # id, status, amounts_tax, subtotal, tax, total, paid, credited, due, currency
    ("i1", "open", "exclusive", "100.00", "15.00", "115.00", "15.00", "0", "100.00", "NZD"),
    ("i2", "paid", "inclusive", "100.00", "15.00", "115.00", "100.00", "15.00", "0", "NZD"),
    ("i3", "void", "exclusive", "10.00", "1.50", "11.50", "0", "0", "0", "NZD"),
]
LINES = [("i1", "l1", "60.00", "9.00"), ("i1", "l2", "40.00", "6.00"), ("i2", "l3", "115.00", "15.00")]
PAYMENTS = [("p1", "i1", "15.00"), ("p2", "i2", "100.00")]
NOTES = [("n1", "15.00")]
ALLOCATIONS = [("n1", "x1", "i2", "15.00")]


def _mirror(tmp_path, corrupt: str | None = None) -> Store:
    store = Store(tmp_path / "m.duckdb")
    with store.write() as con:
        con.execute("create schema canonical")
        con.execute("create schema t")
        for view in CANONICAL_VIEWS:
            con.execute(f"create table t.{view} as {empty_select(view)}")
            con.execute(f"create view canonical.{view} as select * from t.{view}")
        for row in INVOICES:
            con.execute(
                "insert into t.books_invoices (connection, invoice_id, type, status, amounts_tax, subtotal, tax, "
                "total, amount_paid, amount_credited, amount_due, currency) values ('c', ?, 'sale', ?, ?, ?, ?, ?, "
                "?, ?, ?, ?)",
                list(row),
            )
        for row in LINES:
            con.execute(
                "insert into t.books_invoice_lines (connection, invoice_id, line_id, line_amount, tax_amount) "
                "values ('c', ?, ?, ?, ?)",
                list(row),
            )
        for row in PAYMENTS:
            con.execute(
                "insert into t.books_payments (connection, payment_id, invoice_id, amount, status, currency) "
                "values ('c', ?, ?, ?, 'active', 'NZD')",
                list(row),
            )
        for row in NOTES:
            con.execute(
                "insert into t.books_credit_notes (connection, credit_note_id, total, currency) "
                "values ('c', ?, ?, 'NZD')",
                list(row),
            )
        for row in ALLOCATIONS:
            con.execute(
                "insert into t.books_credit_allocations (connection, credit_note_id, allocation_id, invoice_id, "
                "amount) values ('c', ?, ?, ?, ?)",
                list(row),
            )
        if corrupt:
            con.execute(corrupt)
    return store


def _outcomes(store):
    return {o.rule.name: o for o in check_invariants(store)}


def test_clean_books_pass_every_invariant(tmp_path):
    outcomes = _outcomes(_mirror(tmp_path))
    assert set(outcomes) == {r.name for r in INVARIANTS}
    assert all(o.passed for o in outcomes.values()), {n: o.reasons for n, o in outcomes.items()}
    assert all(r.blocking for r in INVARIANTS)


@pytest.mark.parametrize(
    ("corrupt", "rule", "record"),
    [
        ("update t.books_invoice_lines set line_amount = 61 where line_id = 'l1'", "invoice_lines_sum_to_subtotal",
         "i1"),
        ("update t.books_invoices set total = 116 where invoice_id = 'i1'", "invoice_totals_add_up", "i1"),
        ("update t.books_invoices set amount_due = 99 where invoice_id = 'i1'", "invoice_totals_add_up", "i1"),
        ("update t.books_payments set amount = 101 where payment_id = 'p2'", "allocations_within_totals", "i2"),
        ("update t.books_credit_allocations set amount = 16", "allocations_within_totals", "n1"),
        ("update t.books_invoices set currency = 'XYZ' where invoice_id = 'i2'", "currencies_are_iso_4217", "i2"),
        ("update t.crm_deals set currency = 'ABC'", None, None),  # no deals: nothing to fail
    ],
)  # fmt: skip
def test_each_corruption_fails_its_rule(tmp_path, corrupt, rule, record):
    outcomes = _outcomes(_mirror(tmp_path, corrupt))
    failing = {name for name, o in outcomes.items() if not o.passed}
    if rule is None:
        assert not failing
        return
    assert rule in failing
    outcome = outcomes[rule]
    assert record in outcome.failing_keys
    meta = outcome.metadata()
    assert meta["failing_rows"] >= 1 and "failing_rows_preview" in meta


def test_a_void_invoice_is_not_held_to_settlement(tmp_path):
    # a voided invoice owes nothing (due 0) though its total stands: not a broken invariant
    outcomes = _outcomes(_mirror(tmp_path))
    assert "i3" not in outcomes["invoice_totals_add_up"].failing_keys
