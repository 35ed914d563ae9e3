"""The inbox sensor, the polling sensor and the channel manager against the sandbox, with real assets:
one run per announced range, the latest announcement wins, and channels outlive their expiry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import requests

from xz_pipeline import settings
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.store import Store, publish_snapshot
from xz_pipeline.definitions import ASSETS, CHECKS, defs
from xz_pipeline.realtime import sensors
from xz_pipeline.realtime.channels import channel_id, ensure_channels, notify_url
from xz_pipeline.realtime.echo import echoes, remember_writes
from xz_pipeline.realtime.inbox import Inbox, InboxEvent, iso
from xz_pipeline.realtime.sensors import REALTIME_CHECKS, REALTIME_JOBS, REALTIME_SENSORS, plan_runs
from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline.zoho import webhooks as zoho_hooks
from xz_pipeline_tests.realtime.support import (
    CONNECTION,
    pay_some_invoice,
    receiver,
    use_sandbox_env,
    zoho_client,
)

DEFS = dg.Definitions(assets=ASSETS, asset_checks=[*CHECKS, *REALTIME_CHECKS], sensors=REALTIME_SENSORS, jobs=REALTIME_JOBS,
                      resources=defs.resources)  # fmt: skip


class Harness:
    def __init__(self, inst: dg.DagsterInstance) -> None:
        self.inst = inst
        inst.add_dynamic_partitions("connection", [CONNECTION])

    def tick(self, name: str, cursor: str | None = None):
        # `with`: the context enters an instance built from the ref, and must leave it (or a later
        # Definitions load in this process meets the dead instance's storage).
        with dg.build_sensor_context(instance_ref=self.inst.get_ref(), definitions=DEFS, cursor=cursor,
                                     resources=defs.resources) as ctx:  # fmt: skip
            return DEFS.resolve_sensor_def(name).evaluate_tick(ctx)

    def run(self, request: dg.RunRequest) -> None:
        """Execute the mirror part of a request (downstream stages have their own tests)."""
        roots = [k for k in request.asset_selection if k.to_user_string() in request.run_config["ops"]]
        result = DEFS.resolve_job_def("realtime").execute_in_process(
            run_config=request.run_config,
            instance=self.inst,
            partition_key=request.partition_key,
            asset_selection=roots,
        )
        assert result.success

    def mirror(self, sql: str, params=()):
        with Store(MirrorResource().store(CONNECTION).path).read() as con:
            return con.execute(sql, list(params)).fetchall()


@pytest.fixture
def world(monkeypatch):
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with SandboxServer(seed=11, size="demo", clock=clock) as sb, dg.instance_for_test() as inst:
        use_sandbox_env(monkeypatch, sb)
        yield sb, clock, Harness(inst)


def _capture_xero_bodies(sb, monkeypatch) -> list[tuple[bytes, str]]:
    sent, original = [], sb.xero.webhooks._post

    def post(url, body, signature):
        sent.append((body, signature))
        return original(url, body, signature)

    monkeypatch.setattr(sb.xero.webhooks, "_post", post)
    return sent


def _announce_email(sb, email: str) -> str:
    """Change the first contact's email in Xero with the receiver up: its CONTACT event lands in the inbox."""
    contact = sb.xero.dump(sb.tenant_ids[0], "Contacts")[0]["ContactID"]
    with receiver() as url:
        sb.xero.set_webhook(f"{url}/webhooks/xero", sb.xero_webhook_key)
        with XeroResource().client(CONNECTION) as xero:
            xero.update_contacts([{"ContactID": contact, "EmailAddress": email}])
        assert sb.xero.flush_webhooks() == 1
    return contact


def test_duplicate_delivery_runs_once_and_mirrors_the_change(world, monkeypatch):
    sb, _, h = world
    contact = sb.xero.dump(sb.tenant_ids[0], "Contacts")[0]["ContactID"]
    with receiver() as url:
        sb.xero.set_webhook(f"{url}/webhooks/xero", sb.xero_webhook_key)
        sent = _capture_xero_bodies(sb, monkeypatch)
        with XeroResource().client(CONNECTION) as xero:
            xero.update_contacts([{"ContactID": contact, "EmailAddress": "first@example.com"}])
        assert sb.xero.flush_webhooks() == 1
        body, signature = sent[-1]
        replay = requests.post(
            f"{url}/webhooks/xero", data=body, headers={"x-xero-signature": signature}, timeout=5
        )
        assert replay.status_code == 200
    assert Inbox().count() == 1
    first = h.tick("inbox_sensor")
    (request,) = first.run_requests
    assert request.partition_key == CONNECTION and request.run_key == "inbox:sandbox:1-1"
    assert request.run_config["ops"]["xero_contacts"]["config"] == {"ids": [contact], "deleted_ids": []}
    selected = {k.to_user_string() for k in request.asset_selection}
    assert {"xero_contacts", "canonical_views"} <= selected and "xero_invoices" not in selected
    # insights are scored by scheduled runs, not while a correction waits
    assert not {"payment_risk", "billing_anomalies"} & selected
    checks = {(k.asset_key.to_user_string(), k.name) for k in request.asset_check_keys}
    assert ("xero_contacts", "contacts_schema") in checks  # blocking: gates the later stages
    assert ("xero_contacts", "no_missed_events") not in checks  # WARN: runs with scheduled reads
    assert not h.tick("inbox_sensor", first.cursor).run_requests  # nothing new after the cursor
    (again,) = h.tick("inbox_sensor", None).run_requests  # a replayed tick asks for the same key
    assert again.run_key == request.run_key
    h.run(request)
    assert h.mirror("select email from xero.contacts where contact_id = ?", [contact]) == [
        ("first@example.com",)
    ]


def test_a_request_runs_as_the_daemon_launches_it_with_only_its_blocking_checks(world):
    """The daemon executes a request's assets and exactly its checks. The checks of an asset are one step
    of several rules, so the step must accept a subset, and it evaluates only the rules selected."""
    sb, _, h = world
    contact = _announce_email(sb, "daemon@example.com")
    (request,) = h.tick("inbox_sensor").run_requests
    job = DEFS.resolve_job_def("realtime").get_subset(
        asset_selection=set(request.asset_selection), asset_check_selection=set(request.asset_check_keys)
    )
    result = job.execute_in_process(run_config=request.run_config, instance=h.inst, tags=request.tags,
                                    partition_key=request.partition_key)  # fmt: skip
    assert result.success
    evaluated = {(e.asset_key.to_user_string(), e.check_name) for e in result.get_asset_check_evaluations()}
    assert evaluated == {(k.asset_key.to_user_string(), k.name) for k in request.asset_check_keys}
    assert ("xero_contacts", "contacts_schema") in evaluated
    assert ("xero_contacts", "no_missed_events") not in evaluated
    assert h.mirror("select email from xero.contacts where contact_id = ?", [contact]) == [
        ("daemon@example.com",)
    ]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"xero_contacts", "canonical_views", "customer_links", "discrepancies"} <= materialized


def test_out_of_order_events_settle_on_the_latest_change(world, monkeypatch):
    sb, clock, h = world
    org, tenant = sb.org_ids[0], sb.tenant_ids[0]
    account = sb.zoho.dump(org, "Accounts")[0]["id"]
    contact = sb.xero.dump(tenant, "Contacts")[1]["ContactID"]
    h.run(dg.RunRequest(partition_key=CONNECTION, asset_selection=[dg.AssetKey("zoho_accounts")],
                        run_config={"ops": {"zoho_accounts": {"config": {"ids": [account]}}}}))  # fmt: skip
    assert h.mirror("select count(*) from zoho.accounts where account_id = ?", [account]) == [(1,)]
    with receiver() as url:
        sb.xero.set_webhook(f"{url}/webhooks/xero", sb.xero_webhook_key)
        sent = _capture_xero_bodies(sb, monkeypatch)
        monkeypatch.setattr(sb.xero.webhooks, "url", "")  # hold Xero events back to reorder them
        with zoho_client(sb, clock) as zoho:
            ensure_channels(zoho, CONNECTION, notify_url(url, sb.zoho_notify_token),
                            zoho_hooks.channel_token(sb.zoho_notify_token), clock.now(), modules=("Accounts",))  # fmt: skip
            zoho.update("Accounts", [{"id": account, "Phone": "+64 9 555 0199"}])
            clock.advance(2)
            zoho.delete("Accounts", [account])
        notes = [p.payload for p in sb.zoho.notifier.outbox]
        assert [n["operation"] for n in notes] == ["update", "delete"]
        for note in reversed(notes):  # the delete arrives first
            assert (
                requests.post(notify_url(url, sb.zoho_notify_token), json=note, timeout=5).status_code == 200
            )
        monkeypatch.setattr(sb.xero.webhooks, "url", f"{url}/webhooks/xero")
        with XeroResource().client(CONNECTION) as xero:
            for email in ("older@example.com", "newer@example.com"):
                clock.advance(1)
                xero.update_contacts([{"ContactID": contact, "EmailAddress": email}])
                assert sb.xero.flush_webhooks() == 1
        for body, signature in reversed(sent):  # redeliver both batches newest first
            requests.post(
                f"{url}/webhooks/xero", data=body, headers={"x-xero-signature": signature}, timeout=5
            )
    (request,) = h.tick("inbox_sensor").run_requests
    ops = request.run_config["ops"]
    assert ops["zoho_accounts"]["config"] == {"ids": [], "deleted_ids": [account]}
    assert ops["xero_contacts"]["config"] == {"ids": [contact], "deleted_ids": []}
    h.run(request)
    assert h.mirror("select count(*) from zoho.accounts where account_id = ?", [account]) == [(0,)]
    assert h.mirror("select email from xero.contacts where contact_id = ?", [contact]) == [
        ("newer@example.com",)
    ]


def test_invoice_update_reads_payments_and_polling_finds_what_is_not_announced(world):
    sb, _, h = world
    # An INVOICE UPDATE (what a payment causes) also reads payments incrementally.
    inbox = Inbox()
    inbox.add([InboxEvent("d1", "xero", CONNECTION, sb.tenant_ids[0], "xero_invoices", "inv-1", False,
                          "2026-11-02T09:00:00.000+00:00")])  # fmt: skip
    (request,) = h.tick("inbox_sensor").run_requests
    assert request.run_config["ops"]["xero_payments"] == {"config": {}}
    assert {"xero_invoices", "xero_payments"} <= {k.to_user_string() for k in request.asset_selection}
    # Polling: the mirror's payments cursor is the starting watermark; a new payment is found by one call.
    h.run(dg.RunRequest(partition_key=CONNECTION, asset_selection=[dg.AssetKey("xero_payments"), dg.AssetKey("xero_items")],
                        run_config={"ops": {"xero_payments": {"config": {}}, "xero_items": {"config": {}}}}))  # fmt: skip
    assert not h.tick("xero_polling_sensor").run_requests  # the sensor reads the snapshot, not yet published
    publish_snapshot([MirrorResource().store(CONNECTION)], settings.snapshot_path())
    with XeroResource().client(CONNECTION) as xero:
        _, payment = pay_some_invoice(sb, xero)
    calls_before = len(sb.xero.received)
    polled = h.tick("xero_polling_sensor")
    (poll,) = polled.run_requests
    assert poll.run_config["ops"]["xero_payments"]["config"] == {"ids": [payment]}
    assert poll.run_key.startswith("poll:sandbox:Payments:")
    probes = [(r.method, r.path) for r in sb.xero.received[calls_before:] if "/api.xro/" in r.path]
    assert sorted(probes) == [
        ("GET", "/api.xro/2.0/Items"),
        ("GET", "/api.xro/2.0/Payments"),
    ]  # one call each
    # Within the budget interval the next tick does not probe again.
    assert not h.tick("xero_polling_sensor", polled.cursor).run_requests
    state = json.loads(polled.cursor)[CONNECTION]
    assert set(state) >= {"at", "Payments"}
    h.run(poll)
    assert h.mirror("select count(*) from xero.payments where payment_id = ?", [payment]) == [(1,)]


def test_expired_channel_is_renewed_and_a_vanished_one_re_enabled(world):
    sb, clock, _ = world
    url, token = (
        notify_url("http://127.0.0.1:9", sb.zoho_notify_token),
        zoho_hooks.channel_token(sb.zoho_notify_token),
    )
    org = sb.org_ids[0]
    with zoho_client(sb, clock) as zoho:
        first = ensure_channels(zoho, CONNECTION, url, token, clock.now())
        assert set(first.enabled) | set(first.unavailable) == set(zoho_hooks.ASSET_BY_MODULE)
        assert "Accounts" in first.enabled
        cid = channel_id(CONNECTION, "Accounts")
        expiry = sb.zoho.notifier.get(org, cid, clock.now()).expiry
        assert timedelta(days=6) < expiry - clock.now() <= timedelta(days=7)
        assert ensure_channels(zoho, CONNECTION, url, token, clock.now()).healthy == first.enabled
        clock.advance(timedelta(days=6, hours=12).total_seconds())  # inside the renewal margin
        renewed = ensure_channels(zoho, CONNECTION, url, token, clock.now())
        assert renewed.renewed == first.enabled
        assert sb.zoho.notifier.get(org, cid, clock.now()).expiry > expiry + timedelta(days=6)
        clock.advance(timedelta(days=8).total_seconds())  # nobody renewed: the channels expired
        assert sb.zoho.notifier.get(org, cid, clock.now()) is None
        again = ensure_channels(zoho, CONNECTION, url, token, clock.now())
        assert again.enabled == first.enabled
        assert sb.zoho.notifier.get(org, cid, clock.now()) is not None


def test_echoes_of_our_own_writes_never_reach_write_back(tmp_path):
    inbox = Inbox(tmp_path / "inbox.sqlite")
    assert echoes(inbox, CONNECTION, "zoho", [("r1", datetime.now(UTC))]) == set()  # no write-back yet
    at = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    # what apply records: (system, entity) -> records written (a created record by its new id)
    assert remember_writes(CONNECTION, {("crm", "deal"): {"r1"}, ("crm", "account"): {"r9"}}, at, inbox) == 2
    near, far = at + timedelta(seconds=20), at + timedelta(hours=1)
    assert echoes(inbox, CONNECTION, "zoho", [("r1", near), ("r2", near), ("r3", near), ("r9", near)]) == {
        "r1",
        "r9",
    }
    assert echoes(inbox, CONNECTION, "zoho", [("r1", far)]) == set()
    assert echoes(inbox, CONNECTION, "xero", [("r1", near)]) == set()  # another system
    assert echoes(inbox, "other", "zoho", [("r1", near)]) == set()

    @dg.asset(group_name="writeback", deps=["xero_contacts"], partitions_def=ASSETS[0].partitions_def)
    def crm_fields():
        """Stands in for the write-back stage downstream of the mirror."""

    with dg.instance_for_test():  # resolving Definitions after another test's instance closed needs one
        graph = dg.Definitions(assets=[*ASSETS, crm_fields], resources=defs.resources).resolve_asset_graph()
    events = [
        InboxEvent("e", "xero", CONNECTION, None, "xero_contacts", "r1", False, near.isoformat(), seq=1)
    ]
    (plain,) = plan_runs(events, graph)
    (echo,) = plan_runs(events, graph, lambda conn, e: e.record_id == "r1")
    assert dg.AssetKey("crm_fields") in plain.asset_selection
    assert dg.AssetKey("crm_fields") not in echo.asset_selection and echo.tags["xz/echo_only"] == "true"


def test_unconfigured_tenant_is_resolved_once_and_old_events_pruned(world, monkeypatch):
    sb, _, h = world
    monkeypatch.delenv("XERO_TENANT_ID")  # the connection learns its tenant from /connections
    monkeypatch.setattr(sensors, "_tenants", {})  # the process-wide cache starts empty
    contact = _announce_email(sb, "routed@example.com")
    inbox = Inbox()
    assert inbox.unresolved_tenants() == [sb.tenant_ids[0]]
    before = len([r for r in sb.xero.received if r.path == "/connections"])
    first = h.tick("inbox_sensor")
    (request,) = first.run_requests
    assert request.partition_key == CONNECTION
    assert request.run_config["ops"]["xero_contacts"]["config"]["ids"] == [contact]
    assert inbox.unresolved_tenants() == []
    assert len([r for r in sb.xero.received if r.path == "/connections"]) - before == 1
    # Consumed events older than the retention are forgotten; unconsumed ones never are.
    old = datetime.now(UTC) - timedelta(days=40)
    inbox.add([InboxEvent("old", "zoho", CONNECTION, None, "zoho_deals", "d1", False, iso(old))], now=old)
    assert inbox.prune(datetime.now(UTC) - timedelta(days=31), upto_seq=1) == 0  # seq 2 not consumed yet
    assert inbox.prune(datetime.now(UTC) - timedelta(days=31), upto_seq=2) == 1
    assert inbox.count() == 1
