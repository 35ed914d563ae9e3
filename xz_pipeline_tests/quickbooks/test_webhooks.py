"""`/webhooks/quickbooks`: `intuit-signature` checked over the raw body before anything is read, both of
Intuit's formats (classic eventNotifications, CloudEvents) recorded in the inbox for targeted runs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from starlette.testclient import TestClient

from xz_pipeline import settings
from xz_pipeline.realtime.inbox import Inbox
from xz_pipeline.realtime.receiver import build_app

VERIFIER = "qbo-verifier-token"
REALM = "4620816365"
CONN = settings.Connection(
    name="us", xero=None, zoho=None, books="quickbooks",
    quickbooks=settings.QuickBooksSettings(client_id="qid", client_secret="qs", realm_id=REALM, webhook_verifier=VERIFIER),
)  # fmt: skip


def sign(body: bytes, key: str = VERIFIER) -> str:
    """Written out from Intuit's description (base64 of HMAC-SHA256 of the raw body), not from our code."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


CLASSIC = json.dumps({"eventNotifications": [{"realmId": REALM, "dataChangeEvent": {"entities": [
    {"name": "Invoice", "id": "130", "operation": "Update", "lastUpdated": "2026-12-01T10:00:00.000Z"},
    {"name": "Customer", "id": "7", "operation": "Delete", "lastUpdated": "2026-12-01T10:00:01.000Z"},
    {"name": "Estimate", "id": "3", "operation": "Create", "lastUpdated": "2026-12-01T10:00:02.000Z"}]}}]}).encode()  # fmt: skip
CLOUD = json.dumps([
    {"specversion": "1.0", "id": "e1", "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
     "type": "qbo.payment.created.v1", "time": "2026-12-01T11:00:00Z", "intuitentityid": "55",
     "intuitaccountid": REALM, "datacontenttype": "application/json", "data": {}},
    {"specversion": "1.0", "id": "e2", "source": "intuit.x", "type": "qbo.invoice.deleted.v1",
     "time": "2026-12-01T11:00:01Z", "intuitentityid": "131", "intuitaccountid": REALM, "data": {}}]).encode()  # fmt: skip


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("XZ_HOME", str(tmp_path))
    inbox = Inbox(tmp_path / "inbox.sqlite")
    return TestClient(build_app(inbox, [CONN])), inbox


@pytest.mark.parametrize("body", [CLASSIC, CLOUD], ids=["classic", "cloudevents"])
def test_a_bad_or_missing_signature_stores_nothing(app, body):
    client, inbox = app
    assert client.post("/webhooks/quickbooks", content=body).status_code == 401
    forged = {"intuit-signature": sign(body, "another-app")}
    assert client.post("/webhooks/quickbooks", content=body, headers=forged).status_code == 401
    tampered = {"intuit-signature": sign(body)}
    assert client.post("/webhooks/quickbooks", content=body + b" ", headers=tampered).status_code == 401
    assert (
        client.post("/webhooks/quickbooks", content=body, headers={"intuit-signature": "%%%"}).status_code
        == 401
    )
    assert inbox.count() == 0


def test_classic_notifications_become_inbox_events(app):
    client, inbox = app
    assert (
        client.post(
            "/webhooks/quickbooks", content=CLASSIC, headers={"intuit-signature": sign(CLASSIC)}
        ).status_code
        == 200
    )
    events = {(e.asset, e.record_id): e for e in inbox.after(0)}
    assert set(events) == {
        ("quickbooks_invoices", "130"),
        ("quickbooks_customers", "7"),
        ("quickbooks_estimates", "3"),  # the books' drafts
    }
    assert (
        events[("quickbooks_customers", "7")].deleted and not events[("quickbooks_invoices", "130")].deleted
    )
    assert {e.connection for e in events.values()} == {"us"} and {e.source for e in events.values()} == {
        "quickbooks"
    }
    assert events[("quickbooks_invoices", "130")].event_time.startswith("2026-12-01T10:00:00")
    # A redelivery is stored once.
    client.post("/webhooks/quickbooks", content=CLASSIC, headers={"intuit-signature": sign(CLASSIC)})
    assert inbox.count() == 3


def test_cloudevents_become_inbox_events(app):
    client, inbox = app
    assert (
        client.post(
            "/webhooks/quickbooks", content=CLOUD, headers={"intuit-signature": sign(CLOUD)}
        ).status_code
        == 200
    )
    events = {(e.asset, e.record_id): e.deleted for e in inbox.after(0)}
    assert events == {("quickbooks_payments", "55"): False, ("quickbooks_invoices", "131"): True}


def test_a_signed_body_that_is_not_a_notification_is_400(app):
    client, inbox = app
    for body in (b"not json", b'{"events": []}', b'[{"type": "qbo.invoice"}]'):
        assert (
            client.post(
                "/webhooks/quickbooks", content=body, headers={"intuit-signature": sign(body)}
            ).status_code
            == 400
        )
    assert inbox.count() == 0
