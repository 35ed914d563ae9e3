"""The report's "why still open", per connection and kind: a policy skipped because the org lacks a field says
so with the field and what to do; a dry run, the guard, a rejection or a policy turned off are named as such."""

from __future__ import annotations

from datetime import UTC, datetime

from xz_pipeline import report
from xz_pipeline.core.store import Store
from xz_pipeline.reconcile.persist import ensure_recon
from xz_pipeline.runner import RunOutcome
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
    line = _line(text)
    assert "xero_customer_to_crm skipped: Accounts.Xero_Contact_ID does not exist in this org" in line


def _line(text: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith("c ") and "customer_missing_in_crm" in ln)


def test_a_policy_waiting_is_named(tmp_path):
    line = _line(report.render([], _store(tmp_path, "planned", None)))
    assert "xero_customer_to_crm: 1 change(s) planned, waiting for a write-back with --apply" in line


def test_a_dry_run_is_named_as_the_reason(tmp_path):
    dry = RunOutcome("c", True, metadata={"writeback_apply": {"dry_run": True, "would_apply": 1}})
    text = report.render([dry], _store(tmp_path, "planned", None))
    assert "1 change(s) planned, not written (dry run; --apply writes them)" in _line(text)
    (row,) = [ln for ln in text.splitlines()[text.splitlines().index("Write-back") :] if ln.startswith("c ")]
    assert row.split()[1:4] == ["dry", "run", "1"]  # the dry run's count, read from `would_apply`


def test_a_rejection_says_what_the_api_answered(tmp_path):
    text = report.render([], _store(tmp_path, "rejected", "INVALID_DATA: the phone is too long"))
    assert "xero_customer_to_crm: 1 change(s) rejected: INVALID_DATA: the phone is too long" in _line(text)


def test_a_guard_holding_the_plan_is_named(tmp_path):
    held = RunOutcome(
        "c", False, failed_checks=["writeback_plan:writeback_guard (ERROR)"],
        failures=[("writeback_plan_writeback_guard", "blocked by writeback_guard: c: 80% of accounts change")],
    )  # fmt: skip
    line = _line(report.render([held], _store(tmp_path, "planned", None)))
    assert "1 change(s) held: blocked by writeback_guard: c: 80% of accounts change" in line


def test_a_policy_turned_off_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("XZ_WRITEBACK_POLICIES", '{"policies": {"xero_customer_to_crm": false}}')
    line = _line(report.render([], _store(tmp_path, "obsolete", None)))
    assert "xero_customer_to_crm is off for this connection" in line


def test_each_connection_is_counted_apart(tmp_path):
    store = _store(tmp_path, "applied", None)
    now = datetime.now(UTC)
    with store.write() as con:
        con.execute(
            "insert into recon.discrepancies (connection, kind, books_id, crm_id, field, severity, first_seen, "
            "last_seen, resolved_at) values ('d', 'customer_missing_in_crm', 'b2', '', '', 'warn', ?, ?, ?), "
            "('d', 'customer_duplicate', 'b3', '', '', 'warn', ?, ?, null)",
            [now, now, now, now, now],
        )
    assert report.open_by_connection(store) == {
        ("c", "customer_missing_in_crm"): 1,
        ("d", "customer_duplicate"): 1,
    }
    assert report.found_by_connection(store)[("d", "customer_missing_in_crm")] == 1
    text = report.render([], store)
    assert "xero_customer_to_crm plans no change for them" in _line(text)
    (d,) = [ln for ln in text.splitlines() if ln.startswith("d ")]
    assert "customer_duplicate" in d and "merging two records is a person's decision" in d
