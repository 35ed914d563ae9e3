"""Projects in reconciliation, on hand-built canonical frames: linking to deals, `time_not_invoiced` (its hard
negatives and the configurable age), `project_over_budget` (FIXED tasks, no estimate), and the analytics view
`project_profitability` with and without cost rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from xz_pipeline.core.canonical import CANONICAL_VIEWS, empty_select
from xz_pipeline.core.store import Store
from xz_pipeline.reconcile.analytics import install_analytics
from xz_pipeline.reconcile.persist import ensure_recon
from xz_pipeline.reconcile.projects import project_links, project_over_budget, time_not_invoiced
from xz_pipeline.reconcile.rules import Inputs

C = "c1"
REF = datetime(2026, 10, 31, tzinfo=UTC)


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"connection": C, **r} for r in rows])


ACCOUNTS = _frame([{"account_id": "A1", "name": "Acme Ltd"}, {"account_id": "A2", "name": "Bolt & Co"}])
LINKS = _frame([
    {"books_id": "K1", "crm_id": "A1", "status": "linked"}, {"books_id": "K2", "crm_id": "A2", "status": "linked"},
    {"books_id": "K3", "crm_id": "A2", "status": "review"},
])  # fmt: skip
DEALS = _frame([
    {"deal_id": "D1", "account_id": "A1", "name": "Acme Ltd - Kitchen refit (Nov 2025)"},
    {"deal_id": "D2", "account_id": "A1", "name": "Acme Ltd - Garden shed"},
    {"deal_id": "D3", "account_id": "A2", "name": "Bolt & Co - Labour (Nov 2025)"},
    {"deal_id": "D4", "account_id": "A2", "name": "Bolt & Co - Labour (Nov 2026)"},
])  # fmt: skip


def _inputs(projects, tasks=None, time=None, deals=DEALS) -> Inputs:
    empty = pd.DataFrame({"connection": []})
    return Inputs(books_customers=empty, books_invoices=empty, crm_accounts=ACCOUNTS, crm_contacts=empty,
                  crm_deals=deals, crm_invoices=empty, customer_links=LINKS, duplicates=empty,
                  invoice_links=empty, books_projects=projects, books_project_tasks=tasks,
                  books_time_entries=time)  # fmt: skip


def _projects(*rows) -> pd.DataFrame:
    base = {"currency": "NZD", "status": "in_progress", "estimate": 0, "minutes_logged": 0, "expense_amount": 0,
            "total_invoiced": 0, "total_to_be_invoiced": 0}  # fmt: skip
    return _frame([{**base, **r} for r in rows])


def test_projects_link_to_their_deal_by_name_or_not_at_all():
    projects = _projects(
        {
            "project_id": "P1",
            "customer_id": "K1",
            "name": "kitchen refit Nov 2025",
        },  # cased and punctuated otherwise
        {"project_id": "P2", "customer_id": "K2", "name": "Labour"},  # two deals equally near: neither
        {"project_id": "P3", "customer_id": "K3", "name": "Garden shed"},  # its customer is only in review
        {"project_id": "P4", "customer_id": "K1", "name": "Roof repairs"},  # no deal of that name
    )
    links = project_links(projects, DEALS, ACCOUNTS, LINKS)
    assert links[["project_id", "deal_id", "account_id", "method"]].values.tolist() == [
        ["P1", "D1", "A1", "name"]
    ]
    named = DEALS.assign(books_project_id=["", "", "", "P2"])
    links = project_links(projects, named, ACCOUNTS, LINKS)
    assert dict(zip(links["project_id"], links["deal_id"], strict=True)) == {"P2": "D4", "P1": "D1"}
    assert dict(zip(links["project_id"], links["method"], strict=True)) == {"P2": "explicit", "P1": "name"}


def _time(rows) -> pd.DataFrame:
    return _frame([{"time_entry_id": f"E{i}", "project_id": "P1", **r} for i, r in enumerate(rows)])


TASKS = _frame([
    {"task_id": "T", "project_id": "P1", "charge_type": "time", "rate": 12000, "estimate_minutes": 600,
     "total_minutes": 0},
    {"task_id": "F", "project_id": "P1", "charge_type": "fixed", "rate": 90000, "estimate_minutes": 300,
     "total_minutes": 0},
    {"task_id": "N", "project_id": "P1", "charge_type": "non_chargeable", "rate": 0, "estimate_minutes": 60,
     "total_minutes": 0},
])  # fmt: skip


def test_time_not_invoiced_counts_old_active_chargeable_time_only(monkeypatch):
    projects = _projects({"project_id": "P1", "customer_id": "K1", "name": "Kitchen refit (Nov 2025)"})
    old = REF - timedelta(days=45)
    time = _time([
        {"task_id": "T", "worked_on": REF, "minutes": 60, "status": "active", "chargeable": True},  # recent
        {"task_id": "T", "worked_on": old, "minutes": 90, "status": "active", "chargeable": True},  # unbilled
        {"task_id": "F", "worked_on": old, "minutes": 30, "status": "active", "chargeable": True},  # unbilled
        {"task_id": "T", "worked_on": old, "minutes": 120, "status": "locked", "chargeable": True},  # being invoiced
        {"task_id": "T", "worked_on": old, "minutes": 45, "status": "invoiced", "chargeable": True},
        {"task_id": "N", "worked_on": old, "minutes": 600, "status": "active", "chargeable": False},  # not billable
    ])  # fmt: skip
    (row,) = time_not_invoiced(_inputs(projects, TASKS, time)).to_dict("records")
    assert (row["kind"], row["books_id"], row["crm_id"], row["field"]) == (
        "time_not_invoiced",
        "P1",
        "D1",
        "",
    )
    assert (
        row["books_value"] == "180.00" and row["severity"] == "warn"
    )  # 90 min at 120/h; fixed time priced apart
    assert row["detail"].startswith("2 h 00 min of chargeable time (2 entries, the oldest from 2026-09-16)")
    assert "before 2026-10-01" in row["detail"]
    monkeypatch.setenv("XZ_UNBILLED_TIME_DAYS", "60")
    assert time_not_invoiced(_inputs(projects, TASKS, time)).empty


def test_over_budget_prices_fixed_tasks_by_their_estimate_and_falls_back_to_the_tasks_budget():
    tasks = TASKS.assign(total_minutes=[600, 450, 300])  # 10 h at 120 = 1200; fixed 900 x 450/300 = 1350
    projects = _projects(
        {"project_id": "P1", "customer_id": "K1", "name": "Kitchen refit Nov 2025", "estimate": 270000, "expense_amount": 20000},
        {"project_id": "P2", "customer_id": "K1", "name": "Garden shed", "estimate": 0, "expense_amount": 5000},
        {"project_id": "P3", "customer_id": "K2", "name": "Labour", "estimate": 300000, "expense_amount": 0},
    )  # fmt: skip
    tasks = pd.concat(
        [tasks, tasks.assign(project_id="P2"), tasks.assign(project_id="P3")], ignore_index=True
    )
    found = project_over_budget(_inputs(projects, tasks, None)).set_index("books_id")
    assert sorted(found.index) == ["P1", "P2"]  # P3: 2550 + 0 within 3000
    assert found.loc["P1", "books_value"] == "2750.00" and found.loc["P1", "crm_id"] == "D1"
    assert (
        found.loc["P1", "detail"]
        == "work 2550.00 + expenses 200.00 = 2750.00, 1.8% over the estimate of 2700.00"
    )
    # no estimate: the tasks' own budget, 10 h at 120 + the fixed 900 = 2100
    assert (
        found.loc["P2", "detail"].endswith("over the tasks’ budget of 2100.00")
        and found.loc["P2", "crm_id"] == "D2"
    )


def test_project_profitability_view(tmp_path, monkeypatch):
    store = Store(tmp_path / "m.duckdb")
    with store.write() as con:
        con.execute("create schema canonical; create schema t")
        for view in CANONICAL_VIEWS:
            con.execute(f"create table t.{view} as {empty_select(view)}")
            con.execute(f"create view canonical.{view} as select * from t.{view}")
        ensure_recon(con)
        con.execute("insert into t.books_projects (connection, project_id, customer_id, name, status, currency, "
                    "estimate, expense_amount, total_invoiced, total_to_be_invoiced) values "
                    "('c1', 'P1', 'K1', 'Kitchen refit', 'in_progress', 'NZD', 1900, 150, 1200, 450)")  # fmt: skip
        con.execute("insert into t.books_project_tasks (connection, task_id, project_id, charge_type, rate, "
                    "estimate_minutes, total_minutes) values ('c1', 'T', 'P1', 'time', 120, 600, 750), "
                    "('c1', 'F', 'P1', 'fixed', 300, 60, 30)")  # fmt: skip
        con.execute("insert into t.books_time_entries (connection, time_entry_id, project_id, task_id, user_id, "
                    "user_name, minutes, status, chargeable) values ('c1', 'E1', 'P1', 'T', 'U1', 'Aroha Ngata', "
                    "600, 'invoiced', true), ('c1', 'E2', 'P1', 'T', 'U2', 'Ben Carter', 150, 'active', true)")  # fmt: skip
        assert "project_profitability" in install_analytics(con, {})
        row = con.execute("select * from analytics.project_profitability").df().iloc[0]
        assert float(row["time_value"]) == 1500 + 300 and float(row["margin"]) == 1200 + 450 - 150
        assert float(row["labour_cost"]) == 0 and bool(row["over_estimate"])
        monkeypatch.setenv("XZ_PROJECT_COST_RATES", '{"aroha ngata": 50, "U2": 40}')
        install_analytics(con, {})
        row = con.execute("select * from analytics.project_profitability").df().iloc[0]
        assert float(row["labour_cost"]) == 500 + 100 and row["costed_minutes"] == 750
        assert float(row["margin"]) == 1200 + 450 - 150 - 600


@pytest.mark.parametrize("value", ["-1", "a week"])
def test_a_bad_age_setting_is_one_line(monkeypatch, value):
    from xz_pipeline import settings

    monkeypatch.setenv("XZ_UNBILLED_TIME_DAYS", value)
    with pytest.raises(settings.SettingsError, match="XZ_UNBILLED_TIME_DAYS must be a whole number of days"):
        settings.unbilled_time_days()
