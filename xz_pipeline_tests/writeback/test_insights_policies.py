"""The insight policies through the real write-back on the tiny world: nothing reaches the CRM while they
are off; turned on, deals and accounts get their payment risk and expected pay date and each due reminder
becomes one task on its account, and a second cycle writes nothing; an org without the fields (the
`bare` profile) gets its rows skipped with the reason."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

import pytest

from xz_pipeline import runner
from xz_pipeline.core.store import Store
from xz_pipeline.definitions import defs
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.writeback.assets import apply_connection
from xz_pipeline.zoho.fieldmap import DEFAULT as DEFAULT_FIELDS
from xz_pipeline.zoho.setup import ensure_custom_fields
from xz_pipeline.zoho.writer import ZohoCrmWriter
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.zoho.support import ZohoSandbox

SEED = 5
ON = json.dumps({"policies": {"payment_risk_to_crm": True, "reminders_to_crm": True}})
WORDS = {"low": "Low", "medium": "Medium", "high": "High"}


def _synced(tmp_path_factory, label: str, apply: bool = True, **sandbox):
    """A tiny world synced once (write-back applying unless `apply` is false; insight policies off): yields
    (sandbox, store, connection, monkeypatch) with the sandbox serving and the environment pointing at it."""
    home = tmp_path_factory.mktemp(label)
    mp = pytest.MonkeyPatch()
    for key in ("XZ_HOME", "XZ_WRITEBACK_POLICIES", "XZ_WRITEBACK", "XZ_WRITEBACK_DRY_RUN"):
        mp.delenv(key, raising=False)
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir()
    try:
        with SandboxServer(seed=SEED, size="tiny", **sandbox) as sb:
            for k, v in sb.env(0).items():
                mp.setenv(k, v)
            name = sb.connection_name(0)
            mp.setenv("XZ_CONNECTION", name)
            outcomes = runner.sync([name], inst=runner.instance(home), apply=apply)
            assert all(o.success for o in outcomes), [o.error for o in outcomes]
            yield sb, Store(only_mirror()), name, mp
    finally:
        mp.undo()


def _q(store: Store, sql: str, args: list | None = None) -> list[tuple]:
    with store.read() as con:
        return con.execute(sql, args or []).fetchall()


def _held(sb, module: str) -> dict[str, dict]:
    return {str(r["id"]): r for r in sb.zoho.dump(sb.org_ids[0], module)}


@pytest.fixture(scope="module")
def cycles(tmp_path_factory):
    """Off (the sync), then on: two plan-and-apply cycles. What the CRM held after each."""
    for sb, store, name, mp in _synced(tmp_path_factory, "insight-policies"):
        off = {"accounts": _held(sb, "Accounts"), "deals": _held(sb, "Deals"), "tasks": _held(sb, "Tasks")}
        off_plan = _q(store, "select count(*) from writeback.plan where policy in "
                             "('payment_risk_to_crm', 'reminders_to_crm')")[0][0]  # fmt: skip
        mp.setenv("XZ_WRITEBACK_POLICIES", ON)
        first = apply_connection(store, name, defs.resources)
        after_first = {
            "accounts": _held(sb, "Accounts"),
            "deals": _held(sb, "Deals"),
            "tasks": _held(sb, "Tasks"),
        }
        calls_first = _q(store, "select count(*) from writeback.ledger")[0][0]
        second = apply_connection(store, name, defs.resources)
        after_second = {
            "accounts": _held(sb, "Accounts"),
            "deals": _held(sb, "Deals"),
            "tasks": _held(sb, "Tasks"),
        }
        calls_second = _q(store, "select count(*) from writeback.ledger")[0][0]
        yield {
            "sb": sb, "store": store, "name": name, "off": off, "off_plan": off_plan, "first": first,
            "second": second, "after_first": after_first, "after_second": after_second,
            "calls": (calls_first, calls_second),
        }  # fmt: skip


def _nothing_reaches_the_crm_without_its_policy(cycles):
    store, off = cycles["store"], cycles["off"]
    due = _q(
        store, "select count(*) from insights.reminders where status = 'due' and account_id is not null"
    )[0][0]
    risky = _q(store, "select count(*) from insights.payment_risk")[0][0]
    assert due and risky, "the world has something to send"
    assert cycles["off_plan"] == 0
    assert not off["tasks"]
    assert not any(r.get("Payment_Risk") or r.get("Expected_Pay_Date") for r in off["accounts"].values())
    assert not any(r.get("Payment_Risk") or r.get("Expected_Pay_Date") for r in off["deals"].values())


def _risk_is_written_to_accounts_and_deals_once(cycles):
    store, name = cycles["store"], cycles["name"]
    first, second = cycles["after_first"], cycles["after_second"]
    assert not cycles["first"].blocked and not cycles["first"].errors, cycles["first"].summary()
    risk = _q(store, "select customer_id, invoice_id, risk_band, expected_pay_date from insights.payment_risk "
                     "where connection = ?", [name])  # fmt: skip
    links: dict[str, str] = {}  # each books customer's best link, as write-back picks it
    for books, crm in _q(store, "select books_id, crm_id from recon.customer_links where connection = ? "
                                "and status = 'linked' order by confidence desc", [name]):  # fmt: skip
        links.setdefault(books, crm)
    want: dict[str, list] = defaultdict(list)
    for customer, _invoice, band, pay in risk:
        if customer in links:
            want[links[customer]].append((band, pay))
    assert want
    for account, rows in want.items():
        band = max((b for b, _ in rows), key=["low", "medium", "high"].index)
        held = first["accounts"][account]
        assert held["Payment_Risk"] == WORDS[band]
        assert held["Expected_Pay_Date"] == min(p for _, p in rows).isoformat()
    deal_links = dict(
        _q(store, "select invoice_id, deal_id from recon.invoice_links where connection = ?", [name])
    )
    set_deals = [d for i in (r[1] for r in risk) if (d := deal_links.get(i))]
    assert set_deals and all(first["deals"][d]["Payment_Risk"] for d in set_deals)
    # the second cycle: nothing written (a write bumps Modified_Time even when nothing changes)
    assert cycles["second"].applied == 0 and cycles["calls"][0] == cycles["calls"][1]
    for module in ("accounts", "deals"):
        assert {k: r["Modified_Time"] for k, r in first[module].items()} == {
            k: r["Modified_Time"] for k, r in second[module].items()
        }
    # and the mirror reads the fields back, so the plan sees the CRM agrees
    held = dict(
        _q(store, "select account_id, payment_risk from canonical.crm_accounts where connection = ?", [name])
    )
    assert all(
        held[a] == max((b for b, _ in rows), key=["low", "medium", "high"].index) for a, rows in want.items()
    )


def _one_task_per_due_reminder_on_its_account(cycles):
    store, name = cycles["store"], cycles["name"]
    due = _q(store, "select subject, send_on, account_id, body from insights.reminders where connection = ? "
                    "and status in ('due', 'sent-to-crm') and account_id is not null", [name])  # fmt: skip
    tasks = list(cycles["after_first"]["tasks"].values())
    assert len(tasks) == len(due) > 0
    made = sorted((t["Subject"], t["Due_Date"], t["What_Id"]["id"], t["$se_module"]) for t in tasks)
    assert made == sorted((s, d.isoformat(), a, "Accounts") for s, d, a, _ in due)
    assert {t["Description"] for t in tasks} == {b for *_, b in due}
    assert cycles["after_second"]["tasks"].keys() == cycles["after_first"]["tasks"].keys()
    # each task's five plan rows (subject, due date, description, account, module) applied
    assert _q(store, "select count(*) from writeback.plan where connection = ? and policy = 'reminders_to_crm' "
                     "and op = 'create' and status = 'applied'", [name])[0][0] == 5 * len(due)  # fmt: skip


def test_off_writes_nothing_then_on_writes_risk_and_tasks_once(cycles):
    """One test for the one world (a module fixture shared by several tests is built once per xdist worker)."""
    _nothing_reaches_the_crm_without_its_policy(cycles)
    _risk_is_written_to_accounts_and_deals_once(cycles)
    _one_task_per_due_reminder_on_its_account(cycles)


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    for sb, store, name, mp in _synced(
        tmp_path_factory, "insight-policies-bare", apply=False, profile="bare"
    ):
        mp.setenv("XZ_WRITEBACK_POLICIES", ON)
        report = apply_connection(store, name, defs.resources)
        yield sb, store, name, report


def test_an_org_without_the_fields_gets_the_rows_skipped_with_the_reason(bare):
    sb, store, name, report = bare
    rows = _q(store, "select entity, field, status, error from writeback.plan where connection = ? "
                     "and policy = 'payment_risk_to_crm'", [name])  # fmt: skip
    assert rows and {r[2] for r in rows} == {"skipped"}
    assert all(f".{'Payment_Risk' if r[1] == 'payment_risk' else 'Expected_Pay_Date'} does not exist in this org: "
               "run `xz setup zoho` or map it" in r[3] for r in rows)  # fmt: skip
    assert not any("Payment_Risk" in r or "Expected_Pay_Date" in r for r in _held(sb, "Accounts").values())


def test_a_task_whose_answer_was_lost_is_found_again_not_sent_twice(tmp_path):
    """What apply asks before resending a task create in doubt; and the sandbox relates tasks as Zoho does."""
    with ZohoSandbox() as sb:
        client = sb.client(tmp_path / "tokens")
        (account,) = client.insert("Accounts", [{"Account_Name": "Lost Answer Ltd"}])
        writer = ZohoCrmWriter(client, "lost", fm=DEFAULT_FIELDS)
        task = {"subject": "Invoice INV-9 is 7 day(s) overdue", "due_date": date(2026, 11, 8),
                "description": "Please pay.", "what_id": account.id, "se_module": "Accounts"}  # fmt: skip
        (made,) = writer.create_tasks([task]).outcomes
        assert made.ok and made.record_id
        other = {**task, "due_date": date(2026, 11, 9)}  # another step of the same invoice
        assert writer.find_tasks([task, other]) == [made.record_id, None]
        (held,) = sb.org.records["Tasks"].values()
        assert held["What_Id"] == {"id": account.id, "name": "Lost Answer Ltd"}
        assert held["$se_module"] == "Accounts" and held["Status"] == "Not Started"
        (orphan,) = client.insert("Tasks", [{"Subject": "x", "What_Id": {"id": account.id}}])
        assert not orphan.ok and orphan.code == "DEPENDENT_FIELD_MISSING"


def test_setup_creates_the_risk_fields_only_when_the_policy_is_on(tmp_path):
    with ZohoSandbox() as sb:
        for module in ("Accounts", "Deals"):  # an org nobody ran setup on since these fields came
            mdef = sb.org.modules[module]
            mdef.fields = [f for f in mdef.fields if f.api_name not in ("Payment_Risk", "Expected_Pay_Date")]
        client = sb.client(tmp_path / "tokens")
        assert ensure_custom_fields(client, ["payment_to_crm"]) == []
        created = ensure_custom_fields(client, ["payment_to_crm", "payment_risk_to_crm"])
        assert sorted(created) == [
            f"{m}.{f}" for m in ("Accounts", "Deals") for f in ("Expected_Pay_Date", "Payment_Risk")
        ]
        risk = {f["api_name"]: f for f in client.fields("Deals")}["Payment_Risk"]
        assert [v["actual_value"] for v in risk["pick_list_values"]] == ["Low", "Medium", "High"]
