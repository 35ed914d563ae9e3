"""The review queue over a real DuckDB mirror: pending links, decisions recorded, later runs honour them."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from xz_pipeline.core.store import Store
from xz_pipeline.reconcile import review
from xz_pipeline.reconcile.matching import match_customers
from xz_pipeline.reconcile.persist import read_decisions, write_links

CONN = "c1"
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)

BOOKS = pd.DataFrame(
    [
        {"connection": CONN, "customer_id": "b1", "name": "The Golden Press LLC", "is_customer": True},
        {
            "connection": CONN,
            "customer_id": "b2",
            "name": "Acme Ltd",
            "email": "jo@acme.co.nz",
            "is_customer": True,
        },
        {"connection": CONN, "customer_id": "b3", "name": "Riverside Joinery", "is_customer": True},
    ]
)
CRM = pd.DataFrame(
    [
        {"connection": CONN, "account_id": "z1", "name": "Golden Press"},
        {"connection": CONN, "account_id": "z2", "name": "ACME LIMITED", "email": "jo@acme.co.nz"},
        {"connection": CONN, "account_id": "z3", "name": "Riverside Joinery Co"},
    ]
)
CONTACTS = pd.DataFrame(columns=["connection", "contact_id", "account_id", "email"])


def _mirror(store: Store, links: pd.DataFrame) -> None:
    """What a sync and a reconciliation leave behind: canonical records and the current links."""
    with store.write() as con:
        con.execute("create schema if not exists canonical")
        con.register("b", BOOKS[["connection", "customer_id", "name"]])
        con.register("c", CRM[["connection", "account_id", "name"]])
        con.execute("create or replace table canonical.books_customers as select * from b")
        con.execute("create or replace table canonical.crm_accounts as select * from c")
        write_links(con, links, pd.DataFrame(columns=["connection", "invoice_id", "deal_id", "method", "confidence"]),
                    [CONN], NOW)  # fmt: skip


def _run(store: Store) -> pd.DataFrame:
    """One reconciliation: match with the recorded decisions (read as the reconcile asset reads them),
    write the links."""
    decisions = None
    if store.path.exists():
        with store.read() as con:
            decisions = read_decisions(con)
    links = match_customers(BOOKS, CRM, CONTACTS, decisions)
    _mirror(store, links)
    return links


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "mirror.duckdb")


def test_pending_on_a_missing_or_empty_mirror(store):
    assert review.pending(store).empty
    assert list(review.pending(store).columns) == review.PENDING_COLUMNS
    with store.write() as con:
        con.execute("select 1")
    assert review.pending(store).empty and review.decisions(store).empty


def test_pending_lists_review_links_with_names_most_confident_first(store):
    links = _run(store)
    assert set(links.loc[links["status"] == "review", "books_id"]) == {"b1", "b3"}
    queue = review.pending(store)
    assert list(queue.columns) == review.PENDING_COLUMNS
    assert sorted(queue[["books_id", "crm_id"]].values.tolist()) == [["b1", "z1"], ["b3", "z3"]]
    assert queue["confidence"].is_monotonic_decreasing
    assert set(queue["status"]) == {"review"}
    first = queue.set_index("books_id").loc["b1"]
    assert first["books_name"] == "The Golden Press LLC" and first["crm_name"] == "Golden Press"
    assert review.pending(store, connection="other").empty


def test_accept_and_reject_are_recorded_and_honoured_by_the_next_run(store):
    _run(store)
    review.decide(store, CONN, "b1", "z1", "accept", "ann", at=NOW)
    review.decide(store, CONN, "b3", "z3", " Reject ", "bob")
    recorded = review.decisions(store)
    assert recorded[["books_id", "crm_id", "decision", "by"]].values.tolist() == [
        ["b1", "z1", "accept", "ann"],
        ["b3", "z3", "reject", "bob"],
    ]
    assert recorded["decided_at"].iloc[0] == pd.Timestamp(NOW)
    assert review.pending(store).empty  # answered: no longer waiting, even before the next run

    links = _run(store).set_index(["books_id", "crm_id"])
    assert links.loc[("b1", "z1"), ["status", "method", "confidence"]].tolist() == ["linked", "decision", 1.0]
    assert links.loc[("b3", "z3"), ["status", "method"]].tolist() == ["rejected", "decision"]
    assert links.loc[("b2", "z2"), "status"] == "linked"  # untouched by the decisions
    with store.read() as con:
        stored = con.execute("select books_id, status from recon.customer_links order by books_id").fetchall()
    assert stored == [("b1", "linked"), ("b2", "linked"), ("b3", "rejected")]


def test_a_later_answer_supersedes_an_earlier_one(store):
    _run(store)
    review.decide(store, CONN, "b1", "z1", "accept", "ann", at=datetime(2026, 5, 1, tzinfo=UTC))
    review.decide(store, CONN, "b1", "z1", "reject", "ann", at=datetime(2026, 5, 2, tzinfo=UTC))
    links = _run(store).set_index(["books_id", "crm_id"])
    assert links.loc[("b1", "z1"), "status"] == "rejected"
    assert len(review.decisions(store, connection=CONN)) == 2  # the history stays


def test_decide_refuses_bad_input_and_unknown_records(store):
    _run(store)
    with pytest.raises(ValueError, match="accept, reject"):
        review.decide(store, CONN, "b1", "z1", "maybe", "ann")
    with pytest.raises(ValueError, match="by is required"):
        review.decide(store, CONN, "b1", "z1", "accept", " ")
    with pytest.raises(ValueError, match="naive"):
        review.decide(store, CONN, "b1", "z1", "accept", "ann", at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="no record 'b-typo' in canonical.books_customers"):
        review.decide(store, CONN, "b-typo", "z1", "accept", "ann")
    with pytest.raises(ValueError, match="crm_accounts"):
        review.decide(store, CONN, "b1", "z9", "reject", "ann")
    with pytest.raises(ValueError, match="books_customers"):
        review.decide(store, "other-connection", "b1", "z1", "accept", "ann")
    assert review.decisions(store).empty
