"""Webhooks in both of QBO's formats, signed with intuit-signature, delivered to a loopback receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from xz_pipeline_tests.sandbox.quickbooks.support import connect

VERIFIER = "3f2a9c1e-qbo-verifier-token"


@pytest.fixture
def receiver():
    got: list[tuple[dict, bytes]] = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/quickbooks", got, status
    server.shutdown()


def _verify(headers: dict, body: bytes) -> bool:
    expected = hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64decode(headers["intuit-signature"]), expected)


def _change_an_invoice(qbo) -> dict:
    inv = qbo.rows("select * from Invoice where Balance > '0' maxresults 1")[0]
    resp = qbo.post(
        "Invoice", {"Id": inv["Id"], "SyncToken": inv["SyncToken"], "sparse": True, "PrivateNote": "chased"}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["Invoice"]


def test_cloudevents_are_signed_and_name_entity_and_realm(receiver):
    url, got, _ = receiver
    qbo = connect(webhook=(url, VERIFIER, "cloudevents"))
    inv = _change_an_invoice(qbo)
    assert qbo.emu.flush_webhooks() == 1
    [(headers, body)] = got
    assert _verify(headers, body)
    [event] = json.loads(body)
    assert event["specversion"] == "1.0" and event["type"] == "qbo.invoice.updated.v1"
    assert event["intuitentityid"] == inv["Id"] and event["intuitaccountid"] == qbo.realm
    assert event["id"] and event["source"] and event["time"].endswith("Z")


def test_classic_notifications_and_redelivery_until_accepted(receiver):
    url, got, status = receiver
    qbo = connect(webhook=(url, VERIFIER, "classic"))
    status["code"] = 500
    inv = _change_an_invoice(qbo)
    made = qbo.post("Customer", {"DisplayName": "Hooked Customer"}).json()["Customer"]
    assert qbo.emu.flush_webhooks() == 0 and len(qbo.emu.webhooks.pending) == 2
    status["code"] = 200
    assert qbo.emu.flush_webhooks() == 2
    headers, body = got[-1]
    assert _verify(headers, body) and got[0][1] == body  # the same events again, signed the same way
    [note] = json.loads(body)["eventNotifications"]
    assert note["realmId"] == qbo.realm
    entities = note["dataChangeEvent"]["entities"]
    assert [(e["name"], e["id"], e["operation"]) for e in entities] == [("Invoice", inv["Id"], "Update"),
                                                                       ("Customer", made["Id"], "Create")]  # fmt: skip
    assert all(e["lastUpdated"] for e in entities)
    assert not _verify({"intuit-signature": base64.b64encode(b"x" * 32).decode()}, body)
