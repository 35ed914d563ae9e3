"""Listings past Zoho's 100,000-record page-token reach go on in Modified_Time windows: every record
exactly once, even when several share the second at a window's edge."""

from __future__ import annotations

from xz_pipeline.core.http import CallMeter
from xz_pipeline.zoho import client as zoho_client
from xz_pipeline_tests.zoho.support import ZohoSandbox, accounts

FIELDS = ["Account_Name", "Tax_Number", "Modified_Time"]


def test_reads_past_the_token_reach_continue_in_time_windows(tmp_path, monkeypatch):
    store_dir = tmp_path / "tokens"
    monkeypatch.setattr(zoho_client, "TOKEN_LIMIT", 1_000)  # the same logic, at a size a test can afford
    # 2,401 accounts, three to a second: a window edge always falls inside a shared second.
    records = accounts(2401, step=1 / 3)
    with ZohoSandbox() as sb:
        sb.load("Accounts", records)
        meter = CallMeter()
        client = sb.client(store_dir, meter=meter)
        ids = [r["id"] for page in client.iter_pages("Accounts", fields=FIELDS) for r in page]
        calls = sb.requests_to("/crm/v8/Accounts", "GET")
    assert len(ids) == len(set(ids)) == 2401
    assert set(ids) == {r["id"] for r in records}
    windows = [c for c in calls[1:] if c.query.get("page") == "1"]  # a new window starts at page 1 again
    assert len(windows) == 2  # 2,401 records, 1,000 per window
    assert len(calls) <= 13 + len(windows)  # a window costs at most one extra page, never a restart
