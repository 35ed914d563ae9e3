"""Reminders on the tiny world mirrored once for the module: one row per cadence step of each overdue or
soon-due invoice with exactly one due, tones that follow the step and the customer, templates a person
overrides from $XZ_HOME/templates, and a payment arriving by webhook stopping the invoice's reminders in
the targeted run it triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest

from xz_pipeline import runner, settings
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.store import Store
from xz_pipeline.definitions import defs
from xz_pipeline.insights.reminders import Pattern, environment, reminders, render, tone_for
from xz_pipeline.realtime.inbox import InboxEvent, iso
from xz_pipeline.realtime.sensors import plan_run
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.mirrors import only_mirror

SEED = 23
STEPS = (-7, -3, -1, 1, 7, 14, 30)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny world synced once (write-back off), its sandbox still serving: (sandbox, store, connection,
    state folder)."""
    home = tmp_path_factory.mktemp("reminders-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    mp.setenv("XZ_WRITEBACK", "off")
    mp.delenv("XZ_REMINDER_STEPS", raising=False)
    mp.delenv("XZ_TEMPLATES_DIR", raising=False)
    (home / "dagster").mkdir()
    try:
        with SandboxServer(seed=SEED, size="tiny") as sb:
            for k, v in sb.env(0).items():
                mp.setenv(k, v)
            name = sb.connection_name(0)
            mp.setenv("XZ_CONNECTION", name)
            outcomes = runner.sync([name], inst=runner.instance(home))
            assert all(o.success for o in outcomes), [o.error for o in outcomes]
            yield sb, Store(only_mirror()), name, home
    finally:
        mp.undo()


def _rows(store: Store, where: str = "true", args: list | None = None) -> list[dict]:
    with store.read() as con:
        cur = con.execute(
            f"select * from insights.reminders where {where} order by invoice_id, step", args or []
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture
def at_home(world, monkeypatch):
    """Back in the world's state folder (every test gets its own otherwise)."""
    monkeypatch.setenv("XZ_HOME", str(world[3]))
    monkeypatch.setenv("DAGSTER_HOME", str(world[3] / "dagster"))
    return world


def _one_row_per_step_and_one_due_per_invoice(world):
    _, store, name, _ = world
    rows = _rows(store)
    assert rows, "the tiny world has overdue invoices"
    by_invoice: dict[str, list[dict]] = {}
    for r in rows:
        by_invoice.setdefault(r["invoice_id"], []).append(r)
    with store.read() as con:
        chased = {
            i: (due, Decimal(str(amount)))
            for i, due, amount in con.execute(
                "select invoice_id, due_date, amount_due from canonical.books_invoices where connection = ? "
                "and type = 'sale' and status = 'open' and amount_due > 0",
                [name],
            ).fetchall()
        }
    assert set(by_invoice) <= set(chased)
    for invoice, steps in by_invoice.items():
        assert tuple(r["step"] for r in steps) == STEPS
        assert {r["status"] for r in steps} <= {"planned", "due", "skipped"}
        due = [r for r in steps if r["status"] == "due"]
        assert len(due) <= 1
        for r in steps:
            assert r["send_on"] == r["due_on"] + timedelta(days=r["step"])
            assert r["due_on"] == chased[invoice][0]
            assert r["amount_due"] == chased[invoice][1]
        if due:  # the latest step whose day has come; earlier ones were never sent
            assert all(r["send_on"] > due[0]["send_on"] for r in steps if r["status"] == "planned")
            assert (r["invoice_number"] or "") in due[0]["subject"]
            assert f"{chased[invoice][1]:,.2f}" in due[0]["body"]
    assert any(r["status"] == "due" for r in rows)


def test_tone_follows_the_step_the_customer_and_the_risk():
    usual, late, reliable = Pattern(), Pattern(paid=6, late_share=0.8, mean_late=20), Pattern(6, 0.0, -2)
    assert [tone_for(s, usual, "low") for s in STEPS] == ["friendly"] * 4 + ["firm", "firm", "final"]
    assert tone_for(-3, late, "high") == "friendly"  # never anything but friendly before due
    assert tone_for(1, late, None) == "firm" and tone_for(7, usual, "high") == "final"
    assert tone_for(7, reliable, "low") == "friendly" and tone_for(30, reliable, "low") == "firm"


def test_the_cadence_is_configurable_and_checked():
    assert settings.reminder_steps({}) == STEPS
    assert settings.reminder_steps({"XZ_REMINDER_STEPS": "14, -2,3,3"}) == (-2, 3, 14)
    for bad in ("soon", "-1,0,1"):
        with pytest.raises(settings.SettingsError, match="XZ_REMINDER_STEPS"):
            settings.reminder_steps({"XZ_REMINDER_STEPS": bad})


def test_a_broken_template_stops_with_its_name(tmp_path):
    (tmp_path / "firm.subject.j2").write_text("Invoice {{ invoice_no }}\n")
    values = {"invoice_number": "INV-1", "step": 7, "customer_name": "Acme", "currency": "NZD",
              "amount_due": Decimal("1234.5"), "due_date": "2026-11-01", "days_overdue": 9, "online_url": None}  # fmt: skip
    with pytest.raises(dg.Failure, match=r"firm\.subject\.j2: 'invoice_no' is undefined"):
        render(environment(tmp_path), "firm", values)
    subject, body = render(environment(None), "firm", values)
    assert subject == "Invoice INV-1 is 7 day(s) overdue" and "NZD 1,234.50" in body and "9 day(s)" in body


def _materialize(tags: dict | None = None) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as inst:
        return dg.materialize([reminders], instance=inst, resources={"mirror": MirrorResource()}, tags=tags)


def _a_template_in_xz_home_replaces_the_shipped_one(world):
    _, store, _, _ = world
    override = settings.xz_home() / "templates" / "friendly.subject.j2"
    override.parent.mkdir(exist_ok=True)
    override.write_text("Nudge {{ invoice_number }} / {{ currency }} {{ amount_due | money }}\n")
    try:
        assert _materialize().success
        friendly = [r for r in _rows(store) if r["tone"] == "friendly"]
        assert friendly and all(r["subject"].startswith(f"Nudge {r['invoice_number']} / ") for r in friendly)
        assert not any(r["subject"].startswith("Nudge") for r in _rows(store) if r["tone"] != "friendly")
    finally:
        override.unlink()
    assert _materialize().success
    assert not any(r["subject"].startswith("Nudge") for r in _rows(store))


def _a_payment_by_webhook_stops_the_invoices_reminders(world):
    sb, store, name, _ = world
    due = [r for r in _rows(store, "status = 'due'")]
    assert len({r["invoice_id"] for r in due}) >= 2
    target = due[0]["invoice_id"]
    others = {r["invoice_id"] for r in due} - {target}
    invoice = next(i for i in sb.xero.dump(sb.tenant_ids[0], "Invoices") if i["InvoiceID"] == target)
    bank = next(a for a in sb.xero.dump(sb.tenant_ids[0], "Accounts") if a["Type"] == "BANK")
    with XeroResource().client(name) as xero:
        (paid,) = xero.create_payments([{
            "Invoice": {"InvoiceID": target}, "Account": {"AccountID": bank["AccountID"]},
            "Date": datetime.now(UTC).date(), "Amount": Decimal(str(invoice["AmountDue"])),
        }])  # fmt: skip
    assert paid.ok, paid

    # what the receiver stores for Xero's invoice webhook, turned into the run the inbox sensor requests
    event = InboxEvent("pay-1", "xero", name, sb.tenant_ids[0], "xero_invoices", target, False,
                       iso(datetime.now(UTC)), seq=1)  # fmt: skip
    request = plan_run(name, [event], defs.resolve_asset_graph())
    selected = {k.to_user_string() for k in request.asset_selection}
    assert "reminders" in selected and "payment_risk" not in selected
    inst = runner.instance()
    job = defs.resolve_job_def("realtime").get_subset(
        asset_selection=set(request.asset_selection), asset_check_selection=set(request.asset_check_keys)
    )
    result = job.execute_in_process(run_config=request.run_config, instance=inst, tags=request.tags,
                                    partition_key=request.partition_key)  # fmt: skip
    assert result.success

    stopped = _rows(store, "invoice_id = ?", [target])
    assert stopped and all(r["status"] == "stopped" for r in stopped)
    assert all(r["stop_reason"].startswith("the invoice was paid") and r["stopped_at"] for r in stopped)
    still = {r["invoice_id"] for r in _rows(store, "status = 'due'")}
    assert others <= still  # the others are still chased


def test_planned_overridden_and_stopped_by_a_webhook_payment(at_home):
    """One test for the one world (a module fixture shared by several tests is built once per xdist worker);
    the payment comes last: it changes the world."""
    _one_row_per_step_and_one_due_per_invoice(at_home)
    _a_template_in_xz_home_replaces_the_shipped_one(at_home)
    _a_payment_by_webhook_stops_the_invoices_reminders(at_home)
