"""recon.discrepancies across runs: first_seen kept, last_seen and values refreshed, resolved_at set
when a row is no longer produced, cleared when it comes back; other connections untouched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from xz_pipeline.core.store import Store
from xz_pipeline.reconcile.persist import persist_discrepancies, read_canonical, write_links
from xz_pipeline.reconcile.rules import DISCREPANCY_COLUMNS
from xz_pipeline_tests.reconcile.recon_support import C, invoice_links, links

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _rows(*specs) -> pd.DataFrame:
    """(kind, books_id, crm_id, field, books_value[, connection]) -> discrepancy rows."""
    return pd.DataFrame(
        [{"connection": s[5] if len(s) > 5 else C, "kind": s[0], "books_id": s[1], "crm_id": s[2], "field": s[3],
          "books_value": s[4], "crm_value": "x", "severity": "warn", "detail": ""} for s in specs],
        columns=DISCREPANCY_COLUMNS,
    )  # fmt: skip


def _table(store: Store) -> pd.DataFrame:
    with store.read() as con:
        return con.execute("select * from recon.discrepancies order by kind, books_id, connection").df()


def _run(store, rows, connections, at):
    with store.write() as con:
        return persist_discrepancies(con, rows, connections, at)


def test_first_seen_kept_resolved_and_reopened(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    a = ("amount_mismatch", "i1", "d1", "amount", "100.00")
    b = ("invoice_without_deal", "i2", "", "", "INV-2")
    counts = _run(store, _rows(a, b), [C], T0)
    assert (counts.new, counts.resolved, counts.open) == (2, 0, 2)
    t = _table(store)
    assert (t["first_seen"] == T0).all() and (t["last_seen"] == T0).all() and t["resolved_at"].isna().all()

    # run 2: a seen again with a new value, b gone
    t1 = T0 + timedelta(hours=1)
    counts = _run(store, _rows(a[:4] + ("101.00",)), [C], t1)
    assert (counts.new, counts.seen_again, counts.resolved, counts.open) == (0, 1, 1, 1)
    t = _table(store).set_index("kind")
    assert t.loc["amount_mismatch", "first_seen"] == T0 and t.loc["amount_mismatch", "last_seen"] == t1
    assert t.loc["amount_mismatch", "books_value"] == "101.00"
    assert pd.isna(t.loc["amount_mismatch", "resolved_at"])
    assert t.loc["invoice_without_deal", "resolved_at"] == t1

    # run 3: b comes back: the same row re-opens, its first_seen kept
    t2 = T0 + timedelta(hours=2)
    counts = _run(store, _rows(a, b), [C], t2)
    assert (counts.new, counts.reopened, counts.open) == (0, 1, 2)
    t = _table(store).set_index("kind")
    assert len(t) == 2
    assert t.loc["invoice_without_deal", "first_seen"] == T0 and pd.isna(
        t.loc["invoice_without_deal", "resolved_at"]
    )
    assert t.loc["invoice_without_deal", "last_seen"] == t2


def test_other_connections_are_left_alone(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    _run(store, _rows(("deal_not_invoiced", "", "d1", "", ""), ("deal_not_invoiced", "", "d1", "", "", "other")),
         [C, "other"], T0)  # fmt: skip
    _run(store, _rows(), [C], T0 + timedelta(hours=1))  # only C reconciled, and clean
    t = _table(store).set_index("connection")
    assert t.loc[C, "resolved_at"] == T0 + timedelta(hours=1)
    assert pd.isna(t.loc["other", "resolved_at"])


def test_links_replaced_per_connection(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    with store.write() as con:
        write_links(con, links(("b1", "a1"), ("b2", "a2", "review")), invoice_links(("i1", "d1")), [C], T0)
        write_links(con, links(("b1", "a1")), invoice_links(), [C], T0)
    with store.read() as con:
        assert con.execute("select books_id, crm_id, status from recon.customer_links").fetchall() == [
            ("b1", "a1", "linked")
        ]
        assert con.execute("select count(*) from recon.invoice_links").fetchone()[0] == 0


def test_read_canonical_gives_exact_cents(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    with store.write() as con:
        con.execute("create schema canonical")
        from xz_pipeline.core.canonical import CANONICAL_VIEWS, empty_select

        for view in CANONICAL_VIEWS:
            con.execute(f"create view canonical.{view} as {empty_select(view)}")
        con.execute(
            "create or replace view canonical.books_invoices as select * replace "
            "(12345678901.29::decimal(18, 2) as total, 'c1' as connection, 'i1' as invoice_id) "
            "from (select 1) cross join (" + empty_select("books_invoices").replace(" where false", "") + ")"
        )
    with store.read() as con:
        frames = read_canonical(con)
        only = read_canonical(con, ["nobody"])
    assert frames["books_invoices"]["total"].tolist() == [1234567890129]
    assert only["books_invoices"].empty and set(frames) >= {"books_customers", "crm_deals", "crm_invoices"}
