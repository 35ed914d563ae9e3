"""The analytics views read well: every open discrepancy has a sentence (what differs, by how much, who owns
the field), aging buckets hold zeros and add up, customer_360 names both sides; on a tiny sandbox world
mirrored and reconciled in process."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from xz_pipeline import runner
from xz_pipeline.core.store import Store
from xz_pipeline.reconcile.analytics import install_analytics
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.mirrors import only_mirror


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A tiny world mirrored and reconciled (no write-back), for the module: the mirror's Store."""
    home = tmp_path_factory.mktemp("analytics-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir()
    try:
        with SandboxServer(seed=11, size="tiny") as sb:
            for k, v in sb.env(0).items():
                mp.setenv(k, v)
            name = sb.connection_name(0)
            mp.setenv("XZ_CONNECTION", name)
            inst = runner.instance(home)
            for stage in ("mirror", "reconcile"):
                outcomes = runner.sync([name], inst=inst, only=stage)
                assert all(o.success for o in outcomes), [o.error for o in outcomes]
            yield Store(only_mirror())
    finally:
        mp.undo()


def _rows(store: Store, sql: str, params=()) -> list[dict]:
    with store.read() as con:
        cur = con.execute(sql, list(params))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _num(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def test_every_open_discrepancy_has_a_sentence(mirror):
    rows = _rows(mirror, "select * from analytics.open_discrepancies")
    kinds = {r["kind"] for r in rows}
    assert {"amount_mismatch", "customer_field_mismatch"} <= kinds, kinds
    for r in rows:
        assert r["detail"] and len(r["detail"]) > 25, r
        assert not re.fullmatch(r"-?[\d.,]+", r["detail"]), r  # never a bare number
    for r in rows:
        if r["kind"] == "amount_mismatch":
            m = re.fullmatch(
                r"Deal amount ([\d,.]+) (\w{3}) vs invoice total ([\d,.]+) (\w{3}) \(differs by ([\d,.]+)\); "
                r"the books own amounts",
                r["detail"],
            )
            assert m, r["detail"]
            assert _num(m[1]) == Decimal(r["crm_value"]) and _num(m[3]) == Decimal(r["books_value"])
            assert _num(m[5]) == abs(Decimal(r["crm_value"]) - Decimal(r["books_value"]))
        elif r["kind"] == "customer_field_mismatch":
            owner = {"email": "the CRM owns", "phone": "the CRM owns", "billing_address": "the books own"}
            assert r["books_value"] in r["detail"] and r["crm_value"] in r["detail"]
            assert r["detail"].endswith(f"{owner[r['field']]} the {r['field'].replace('_', ' ')}"), r[
                "detail"
            ]
        elif r["kind"] in ("payment_status_stale", "balance_mismatch", "currency_mismatch"):
            assert "own" in r["detail"], r["detail"]
        if r["books_id"]:
            assert r["books_name"] or r["kind"] in ("customer_duplicate",), r


def test_ownership_follows_the_connections_settings(mirror, monkeypatch):
    """A connection that gives amounts to the CRM reads so in the sentence."""
    with mirror.write() as con:
        install_analytics(con, {c: {"amount": "crm"} for (c,) in con.execute(
            "select distinct connection from recon.discrepancies").fetchall()})  # fmt: skip
    try:
        details = [r["detail"] for r in _rows(
            mirror, "select detail from analytics.open_discrepancies where kind = 'amount_mismatch'")]  # fmt: skip
        assert details and all(d.endswith("the CRM owns amounts") for d in details), details
    finally:
        with mirror.write() as con:
            install_analytics(con)


def test_aging_buckets_are_zero_not_null_and_add_up(mirror):
    rows = _rows(mirror, "select * from analytics.ar_aging")
    assert rows
    buckets = ("current", "days_1_30", "days_31_60", "days_61_90", "days_over_90")
    for r in rows:
        assert all(r[b] is not None for b in buckets), r
        assert sum(r[b] for b in buckets) == r["total_due"], r
    assert any(r[b] == 0 for r in rows for b in buckets)  # some bucket empty, and it reads 0
    total = _rows(mirror, "select sum(current + days_1_30 + days_31_60 + days_61_90 + days_over_90) as s "
                          "from analytics.ar_aging")[0]["s"]  # fmt: skip
    assert total == sum(r["total_due"] for r in rows)


def test_customer_360_names_both_sides(mirror):
    rows = _rows(mirror, "select * from analytics.customer_360 where books_ids is not null")
    assert rows
    names = {
        (r["connection"], r["customer_id"]): r["name"]
        for r in _rows(mirror, "select connection, customer_id, name from canonical.books_customers")
    }
    accounts = {
        (r["connection"], r["account_id"]): r["name"]
        for r in _rows(mirror, "select connection, account_id, name from canonical.crm_accounts")
    }
    for r in rows:
        assert r["crm_name"] == accounts[(r["connection"], r["account_id"])]
        expected = sorted({names[(r["connection"], b)] for b in r["books_ids"].split(", ")})
        assert r["books_names"] == ", ".join(expected), r
        assert r["books_balance"] is not None and r["invoices"] is not None
