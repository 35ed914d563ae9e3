"""The Markdown plots of the snapshot asset, on hand-made mirror tables: bars scale to the largest value,
history accumulates one point per publish (a kind that closes comes down to 0), calls are set against the
vendor's day budget, and latency is measured from first seen to resolved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from xz_pipeline import plots, runs
from xz_pipeline.reconcile.persist import ensure_recon


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    con.execute("create schema if not exists meta")
    yield con
    con.close()


def _rows(markdown: str) -> list[list[str]]:
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in markdown.splitlines()[2:]]


def test_bars_and_sparklines_scale():
    assert plots.bar(10, 10, width=4) == "████"
    assert plots.bar(5, 10, width=4) == "██"
    assert plots.bar(0.001, 10) == "▏" and plots.bar(0, 10) == ""
    assert plots.spark([0, 4, 8]) == "▁▅█" and plots.spark([3, 3]) == "▁▁"


def test_ar_aging_sums_buckets_per_connection_and_currency(con):
    con.execute("create schema analytics")
    con.execute(
        "create table analytics.ar_aging as select * from (values "
        "('c', 'x1', 'A', 'NZD', 100.0, 0.0, 0.0, 0.0, 50.0, 150.0), "
        "('c', 'x2', 'B', 'NZD', 100.0, 20.0, 0.0, 0.0, 0.0, 120.0)) "
        "t(connection, customer_id, name, currency, current, days_1_30, days_31_60, days_61_90, days_over_90, total_due)"
    )
    rows = _rows(plots.ar_aging(con))
    assert [r[:4] for r in rows] == [
        ["c", "NZD", "not yet due", "200.00"],
        ["c", "NZD", "1-30 days late", "20.00"],
        ["c", "NZD", "31-60 days late", "0.00"],
        ["c", "NZD", "61-90 days late", "0.00"],
        ["c", "NZD", "over 90 days late", "50.00"],
    ]
    assert rows[0][4] == "█" * 20 and rows[2][4] == ""


def test_history_gets_a_point_per_publish_and_a_closed_kind_comes_down(con):
    ensure_recon(con)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def discrepancy(kind: str, books_id: str, resolved=None):
        con.execute(
            "insert into recon.discrepancies (connection, kind, books_id, crm_id, field, severity, first_seen, "
            "last_seen, resolved_at) values ('c', ?, ?, '', '', 'warn', ?, ?, ?)",
            [kind, books_id, t0, t0, resolved],
        )

    discrepancy("balance_mismatch", "b1")
    discrepancy("balance_mismatch", "b2")
    discrepancy("customer_duplicate", "b3")
    assert plots.record_history(con, "r1", t0) == 2
    con.execute("update recon.discrepancies set resolved_at = ? where books_id in ('b1', 'b2')", [t0])
    assert plots.record_history(con, "r2", t0 + timedelta(minutes=5)) == 2
    rows = {r[1]: r for r in _rows(plots.discrepancy_trend(con))}
    assert rows["balance_mismatch"][2:7] == ["0", "█▁", "0", "2", "2"]
    assert rows["customer_duplicate"][2:7] == ["1", "▁▁", "1", "1", "2"]


def test_calls_per_day_against_each_vendors_budget(con, monkeypatch):
    monkeypatch.setenv("XZ_XERO_DAY_LIMIT", "1000")
    con.execute(runs.CALLS_DDL)
    now = datetime.now(UTC)
    con.executemany(
        "insert into meta.api_calls values (?, ?, ?, ?, ?, ?)",
        [("c", "r1", "xero", 150, 4850, now), ("c", "r2", "xero", 100, 4750, now),
         ("c", "r1", "zoho", 40, 960, now), ("c", "r0", "xero", 7, None, now - timedelta(days=30))],
    )  # fmt: skip
    rows = {r[2]: r for r in _rows(plots.api_calls(con))}
    assert set(rows) == {"xero", "zoho"}  # the old day is out of the window
    assert rows["xero"][3:6] == ["250", "1,000", "25.0%"]
    assert rows["zoho"][3:6] == ["40", "≥ 1,000", "4.0%"]  # spent + left: a lower bound of the credits


def test_latency_from_first_seen_to_resolved(con):
    ensure_recon(con)
    now = datetime.now(UTC)
    for i, minutes in enumerate((2, 4, 60)):
        con.execute(
            "insert into recon.discrepancies (connection, kind, books_id, crm_id, field, severity, first_seen, "
            "last_seen, resolved_at) values ('c', 'payment_status_stale', ?, '', '', 'warn', ?, ?, ?)",
            [f"b{i}", now - timedelta(minutes=minutes), now, now],
        )
    (row,) = _rows(plots.correction_latency(con))
    assert row[:4] == ["c", "payment_status_stale", "3", "4.0 min"] and row[5] == "60.0 min"
