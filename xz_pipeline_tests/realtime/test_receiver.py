"""The webhook receiver: authentication before anything is stored, the inbox as the acknowledgement,
and delivery that survives the receiver being down."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import requests
from starlette.testclient import TestClient

from xz_pipeline.realtime.channels import channel_id, ensure_channels, notify_url
from xz_pipeline.realtime.inbox import Inbox
from xz_pipeline.realtime.receiver import build_app
from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero import webhooks as xero_hooks
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline.zoho import webhooks as zoho_hooks
from xz_pipeline_tests.realtime.support import (
    CONNECTION,
    free_port,
    receiver,
    use_sandbox_env,
    zoho_client,
)


def _batch(tenant: str, rid: str, when: str = "2026-11-02T09:00:00.123") -> bytes:
    event = {"resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{rid}", "resourceId": rid,
             "eventDateUtc": when, "eventType": "Update", "eventCategory": "CONTACT", "tenantId": tenant,
             "tenantType": "ORGANISATION"}  # fmt: skip
    return json.dumps(
        {"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "X"}
    ).encode()


def test_xero_signature_gate_and_routing(monkeypatch, tmp_path):
    with SandboxServer(seed=5, size="demo") as sb:
        conn = use_sandbox_env(monkeypatch, sb)
        inbox = Inbox(tmp_path / "inbox.sqlite")
        client = TestClient(build_app(inbox, [conn]))
        body = _batch(sb.tenant_ids[0], "c-1")
        forged = client.post("/webhooks/xero", content=body,
                             headers={"x-xero-signature": xero_hooks.signature("not-the-key", body)})  # fmt: skip
        assert (forged.status_code, forged.content, inbox.count()) == (401, b"", 0)
        missing = client.post("/webhooks/xero", content=body)
        assert (missing.status_code, inbox.count()) == (401, 0)
        good = client.post("/webhooks/xero", content=body,
                           headers={"x-xero-signature": xero_hooks.signature(sb.xero_webhook_key, body)})  # fmt: skip
        assert (good.status_code, good.content) == (200, b"")
        assert "set-cookie" not in good.headers
        (event,) = inbox.after(0)
        assert (event.connection, event.asset, event.record_id, event.deleted) == (
            CONNECTION,
            "xero_contacts",
            "c-1",
            False,
        )
        assert event.event_time == "2026-11-02T09:00:00.123+00:00"
        # An unknown tenant is stored unrouted (the sensor resolves or drops it), still acknowledged.
        other = _batch("11111111-2222-3333-4444-555555555555", "c-2")
        sig = xero_hooks.signature(sb.xero_webhook_key, other)
        assert (
            client.post("/webhooks/xero", content=other, headers={"x-xero-signature": sig}).status_code == 200
        )
        assert inbox.unresolved_tenants() == ["11111111-2222-3333-4444-555555555555"]
        # Size limit before reading the body whole; health answers.
        small = TestClient(build_app(inbox, [conn], max_body=64))
        assert (
            small.post("/webhooks/xero", content=body, headers={"x-xero-signature": "x"}).status_code == 413
        )
        assert client.get("/health").json() == {"status": "ok"}


def test_itr_and_live_webhooks_reach_the_inbox(monkeypatch):
    with SandboxServer(seed=5, size="demo") as sb:
        use_sandbox_env(monkeypatch, sb)
        inbox = Inbox()
        with receiver(inbox) as url:
            sb.xero.set_webhook(f"{url}/webhooks/xero", sb.xero_webhook_key)
            assert sb.xero.validate_intent_to_receive()
            itr = [a for a in sb.xero.webhooks.attempts if a.kind.startswith("itr")]
            assert {(a.kind, a.status) for a in itr} == {("itr-good", 200), ("itr-bad", 401)}
            assert inbox.count() == 0  # intent-to-receive carries no events
            contact = sb.xero.dump(sb.tenant_ids[0], "Contacts")[0]
            with XeroResource().client(CONNECTION) as xero:
                xero.update_contacts([{"ContactID": contact["ContactID"], "EmailAddress": "new@example.com"}])
            assert sb.xero.flush_webhooks() == 1
        assert [(e.asset, e.record_id) for e in inbox.after(0)] == [("xero_contacts", contact["ContactID"])]


def test_zoho_url_secret_and_channel_token(monkeypatch, tmp_path, caplog):
    with SandboxServer(seed=5, size="demo") as sb:
        conn = use_sandbox_env(monkeypatch, sb)
        inbox = Inbox(tmp_path / "inbox.sqlite")
        client = TestClient(build_app(inbox, [conn]))
        secret = zoho_hooks.url_secret(sb.zoho_notify_token)
        token = zoho_hooks.channel_token(sb.zoho_notify_token)
        note = {"server_time": 1_793_000_000_000, "query_params": {"k": secret}, "module": "Deals",
                "resource_uri": "x", "ids": ["41", "42"], "affected_fields": [], "operation": "update",
                "channel_id": "9", "token": token}  # fmt: skip
        caplog.set_level(logging.INFO, logger="xz.webhooks")
        assert client.post("/webhooks/zoho", json=note).status_code == 401  # no URL secret
        assert client.post("/webhooks/zoho?k=wrong", json=note).status_code == 401
        assert client.post(f"/webhooks/zoho?k={secret}", json={**note, "token": "guess"}).status_code == 401
        assert inbox.count() == 0
        ok = client.post(f"/webhooks/zoho?k={secret}", json=note)
        assert (ok.status_code, ok.content) == (200, b"")
        assert client.post(f"/webhooks/zoho?k={secret}", json=note).status_code == 200  # redelivered
        events = inbox.after(0)
        assert [(e.asset, e.record_id, e.connection) for e in events] == [
            ("zoho_deals", "41", CONNECTION),
            ("zoho_deals", "42", CONNECTION),
        ]
        # our loggers only: the test client's own transport (httpx) logs the URL it was given when an
        # earlier test in the worker turned its INFO lines on
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("xz"))
        assert "POST /webhooks/zoho 200" in logged and secret not in logged and token not in logged
        assert secret not in (tmp_path / "inbox.sqlite").read_bytes().decode("latin-1")


def test_receiver_down_while_senders_retry_loses_nothing(monkeypatch):
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with SandboxServer(seed=5, size="demo", clock=clock) as sb:
        use_sandbox_env(monkeypatch, sb)
        inbox = Inbox()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        sb.xero.set_webhook(f"{base}/webhooks/xero", sb.xero_webhook_key)
        with zoho_client(sb, clock) as zoho:
            report = ensure_channels(zoho, CONNECTION, notify_url(base, sb.zoho_notify_token),
                                     zoho_hooks.channel_token(sb.zoho_notify_token), clock.now(), modules=("Accounts",))  # fmt: skip
            assert report.enabled == ["Accounts"]
            account = sb.zoho.dump(sb.org_ids[0], "Accounts")[0]["id"]
            zoho.update("Accounts", [{"id": account, "Phone": "+64 9 555 0101"}])
        contacts = [c["ContactID"] for c in sb.xero.dump(sb.tenant_ids[0], "Contacts")[:3]]
        with XeroResource().client(CONNECTION) as xero:
            xero.update_contacts(
                [{"ContactID": c, "EmailAddress": f"{i}@down.example"} for i, c in enumerate(contacts)]
            )
        # Nobody listens: both senders fail and keep the events.
        assert sb.xero.flush_webhooks() == 0 and sb.zoho.flush_notifications() == 0
        assert sb.xero.webhooks.attempts[-1].status is None
        with receiver(inbox, port):
            assert sb.xero.flush_webhooks() == 3
            assert sb.zoho.flush_notifications() == 0  # Zoho backs off: not yet due
            clock.advance(31)
            assert sb.zoho.flush_notifications() == 1
            assert requests.get(f"{base}/health", timeout=5).status_code == 200
        got = {(e.asset, e.record_id) for e in inbox.after(0)}
        assert got == {("xero_contacts", c) for c in contacts} | {("zoho_accounts", account)}
        assert channel_id(CONNECTION, "Accounts") in {d["channel_id"] for d in sb.zoho.notifier.deliveries}
