"""Webhooks from the Xero emulator: thin signed events, batching, retry on failure, intent to receive."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from pathlib import Path

import requests
import yaml
from openapi_schema_validator import OAS31Validator

from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline_tests.sandbox.xero.support import API, Receiver, make_contact, make_invoice, xero_fixture  # noqa: F401

KEY = "webhook-signing-key-0123456789"


def _validator(specs: Path) -> OAS31Validator:
    raw = yaml.safe_load((specs / "xero" / "xero-webhooks.yaml").read_text())
    return OAS31Validator({"$ref": "#/components/schemas/WebhookEvent", "components": raw["components"]})


def test_events_are_signed_batched_and_thin(xero, specs):
    with Receiver(KEY) as rx:
        xero.emu.set_webhook(rx.url, KEY)
        c = make_contact(xero.api, "Hooked Ltd")
        xero.clock.advance(1)
        xero.api.post(
            f"{API}/Contacts/{c['ContactID']}", {"Contacts": [{"EmailAddress": "h@hooked.example"}]}
        )
        inv = make_invoice(xero.api, c["ContactID"])
        xero.api.put(f"{API}/Payments", {"Payments": [{"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Account": {"Code": "090"},
                                                        "Amount": 5}]})  # fmt: skip
        note = {"Type": "ACCRECCREDIT", "Contact": {"ContactID": c["ContactID"]}, "Status": "AUTHORISED",
                "LineItems": [{"Description": "c", "UnitAmount": 1, "AccountCode": "200"}]}  # fmt: skip
        xero.api.put(f"{API}/CreditNotes", {"CreditNotes": [note]})
        xero.emu.base_url = "http://127.0.0.1:1"  # resourceUrl follows the bound origin
        assert xero.emu.flush_webhooks() == 5
        assert xero.emu.flush_webhooks() == 0  # nothing left
    assert len(rx.bodies) == 1
    raw = rx.bodies[0]
    expected = base64.b64encode(hmac.new(KEY.encode(), raw, hashlib.sha256).digest()).decode()
    assert rx.signatures[0] == expected
    batch = json.loads(raw)
    assert (batch["firstEventSequence"], batch["lastEventSequence"]) == (1, 5) and batch["entropy"]
    _validator(specs).validate(batch)  # the payload schema of xero-webhooks.yaml
    kinds = [(e["eventCategory"], e["eventType"], e["resourceId"]) for e in batch["events"]]
    assert kinds == [
        ("CONTACT", "CREATE", c["ContactID"]),
        ("CONTACT", "UPDATE", c["ContactID"]),
        ("INVOICE", "CREATE", inv["InvoiceID"]),
        ("INVOICE", "UPDATE", inv["InvoiceID"]),  # the payment changed the invoice
        ("CREDITNOTE", "CREATE", kinds[4][2]),
    ]
    first = batch["events"][0]
    assert first["tenantId"] == xero.tenant and first["tenantType"] == "ORGANISATION"
    assert first["eventDateUtc"] == "2026-11-02T09:00:00.000"
    assert batch["events"][4]["data"] == {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}
    assert batch["events"][2]["resourceUrl"].startswith("http://testserver/api.xro/2.0/Invoices/")


def test_failed_delivery_stays_queued_and_is_retried(xero):
    with Receiver(KEY) as rx:
        xero.emu.set_webhook(rx.url, KEY)
        for i in range(60):
            xero.emu.load(xero.tenant, "Contacts", [{"Name": f"Bulk {i}"}])  # seeding sends no events
        assert xero.emu.flush_webhooks() == 0
        rx.force_status = 500
        for i in range(3):
            make_contact(xero.api, f"Retry {i}")
        assert xero.emu.flush_webhooks() == 0
        assert xero.emu.webhooks.attempts[-1].status == 500 and len(xero.emu.webhooks.pending) == 3
        rx.force_status = None
        for i in range(55):
            make_contact(xero.api, f"More {i}")
        assert xero.emu.flush_webhooks() == 58
    sizes = [len(json.loads(b)["events"]) for b in rx.bodies]
    assert sizes == [3, 50, 8]  # the failed batch, then the queue in batches of 50
    assert json.loads(rx.bodies[0]) != json.loads(rx.bodies[1])
    assert json.loads(rx.bodies[1])["firstEventSequence"] == 1  # the retried batch starts where it failed
    assert json.loads(rx.bodies[2])["lastEventSequence"] == 58
    statuses = [a.status for a in xero.emu.webhooks.attempts]
    assert statuses == [500, 200, 200]


def test_unreachable_receiver_is_recorded(xero):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    xero.emu.set_webhook(f"http://127.0.0.1:{port}/gone", KEY)
    make_contact(xero.api, "Nobody Home")
    assert xero.emu.flush_webhooks() == 0
    attempt = xero.emu.webhooks.attempts[-1]
    assert attempt.status is None and attempt.error and len(xero.emu.webhooks.pending) == 1


def test_intent_to_receive(xero):
    with Receiver(KEY) as rx:
        xero.emu.set_webhook(rx.url, KEY)
        assert xero.emu.validate_intent_to_receive() is True
        bodies = [json.loads(b) for b in rx.bodies]
        assert all(b["events"] == [] and b["firstEventSequence"] == 0 for b in bodies)
        assert len(bodies) == 4
        rx.force_status = 200  # a receiver that does not check signatures fails ITR
        assert xero.emu.validate_intent_to_receive() is False
    kinds = [a.kind for a in xero.emu.webhooks.attempts]
    assert kinds.count("itr-good") == 4 and kinds.count("itr-bad") == 4


def test_receiver_may_write_back_during_delivery(xero):
    """A receiver that writes to Xero while handling a delivery must not deadlock the sender."""
    with LoopbackServer(xero.emu.app, name="xero-webhook-callback") as server, Receiver(KEY) as rx:
        xero.emu.base_url = server.url
        xero.emu.set_webhook(rx.url, KEY)
        headers = {k: v for k, v in xero.api.headers.items()}
        wrote: list[int] = []

        def write_back(raw: bytes) -> None:
            if not wrote:
                resp = requests.put(f"{server.url}{API}/Contacts", json={"Contacts": [{"Name": "From Receiver"}]},
                                    headers=headers, timeout=5)  # fmt: skip
                wrote.append(resp.status_code)

        rx.on_body = write_back
        make_contact(xero.api, "Trigger Ltd")
        assert xero.emu.flush_webhooks() == 2  # the first event, then the one the receiver caused
    assert wrote == [200]
    names = [json.loads(b)["events"][0]["resourceId"] for b in rx.bodies]
    assert len(names) == 2 and names[0] != names[1]
