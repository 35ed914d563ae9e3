"""The report's "why still open": a kind whose write-back policy was skipped because the org lacks a field
says so, with the field and what to do, instead of "off, dry run or waiting"."""

from __future__ import annotations

from datetime import UTC, datetime

from xz_pipeline import report
from xz_pipeline.core.store import Store
from xz_pipeline.reconcile.persist import ensure_recon
from xz_pipeline.writeback import ledger


def _store(tmp_path, plan_status: str, error: str | None) -> Store:
    store = Store(tmp_path / "mirror.duckdb")
    now = datetime.now(UTC)
    with store.write() as con:
        ensure_recon(con)
        ledger.ensure(con)
        con.execute(
            "insert into recon.discrepancies (connection, kind, books_id, crm_id, field, severity, first_seen, "
            "last_seen) values ('c', 'customer_missing_in_crm', 'b1', '', '', 'warn', ?, ?)",
            [now, now],
        )
        con.execute(
            "insert into writeback.plan (connection, change_id, system, entity, op, record, ref, field, policy, "
            "status, error, planned_at, updated_at) values ('c', 'x1', 'crm', 'Accounts', 'create', 'b1', 'b1', "
            "'Xero_Contact_ID', 'xero_customer_to_crm', ?, ?, ?, ?)",
            [plan_status, error, now, now],
        )
    return store


def test_a_skipped_policy_says_why_the_kind_stays_open(tmp_path):
    why = (
        "not in this org: xero_customer_to_crm is skipped: Accounts.Xero_Contact_ID does not exist in this org: "
        "run `xz setup zoho` or map it"
    )
    text = report.render([], _store(tmp_path, "skipped", why))
    line = next(ln for ln in text.splitlines() if ln.startswith("customer_missing_in_crm"))
    assert "xero_customer_to_crm skipped: Accounts.Xero_Contact_ID does not exist in this org" in line
    assert "off, dry run or waiting" not in line


def test_a_policy_waiting_is_named(tmp_path):
    text = report.render([], _store(tmp_path, "planned", None))
    line = next(ln for ln in text.splitlines() if ln.startswith("customer_missing_in_crm"))
    assert "xero_customer_to_crm (off, dry run or waiting)" in line
