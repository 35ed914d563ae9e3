"""QBO's webhook sender: thin change events, signed `intuit-signature`, in the classic or the CloudEvents format.

Facts (notes A.6): the signature is base64(HMAC-SHA256(verifier token, raw body)). The classic payload
is `{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{"name", "id", "operation",
"lastUpdated"}]}}]}`; the CloudEvents one (mandatory since 2026) is a JSON array of CloudEvents 1.0
(`specversion`, `id`, `source`, `type` like `qbo.invoice.updated.v1`, `time`, `intuitentityid`,
`intuitaccountid`), at most 100 per notification. Payloads carry ids only: the receiver fetches.

Delivery mirrors the Xero wing's: at-least-once, a batch stays queued until the receiver answers
200, every attempt is recorded, and the state lock is not held during a POST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import requests

from xz_pipeline.sandbox.clock import Clock

FORMATS = ("cloudevents", "classic")
BATCH_SIZE = 100
TIMEOUT_S = 5.0
OPERATIONS = {"Create": "created", "Update": "updated", "Delete": "deleted", "Void": "voided",
              "Merge": "merged", "Emailed": "emailed"}  # fmt: skip
NOTIFIED = ("Account", "Bill", "BillPayment", "CreditMemo", "Customer", "Estimate", "Invoice", "Item", "Payment",
            "Preferences", "Term", "Vendor", "VendorCredit")  # fmt: skip


def sign(verifier: str, body: bytes) -> str:
    """`intuit-signature`: base64(HMAC-SHA256(verifier token, raw body))."""
    return base64.b64encode(hmac.new(verifier.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Attempt:
    time: datetime
    url: str
    events: int
    status: int | None  # None when the connection failed
    error: str = ""


@dataclass
class WebhookSender:
    clock: Clock
    url: str = ""
    verifier: str = field(default="", repr=False)
    format: str = "cloudevents"
    pending: list[dict] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # what was sent and accepted, for tests
    delivered: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _flush_lock: threading.Lock = field(default_factory=threading.Lock)
    _session: requests.Session = field(default_factory=requests.Session)

    def configure(self, url: str, verifier: str, fmt: str = "cloudevents") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"webhook format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        with self._lock:
            self.url, self.verifier, self.format = url, verifier, fmt

    def queue(self, realm_id: str, entity: str, rid: str, operation: str, when: datetime) -> None:
        """Called under the emulator lock on every change through the API."""
        with self._lock:
            if not self.url or entity not in NOTIFIED:
                return
            self.pending.append(
                {"realm": realm_id, "entity": entity, "id": rid, "operation": operation, "time": when}
            )

    def _classic(self, batch: list[dict]) -> dict:
        realms: dict[str, list[dict]] = {}
        for e in batch:
            realms.setdefault(e["realm"], []).append(
                {
                    "name": e["entity"],
                    "id": e["id"],
                    "operation": e["operation"],
                    "lastUpdated": e["time"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                }  # fmt: skip
            )
        return {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": entities}}
                                       for realm, entities in realms.items()]}  # fmt: skip

    @staticmethod
    def _cloudevents(batch: list[dict]) -> list[dict]:
        return [
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "intuit.sandbox.qbo",
                "type": f"qbo.{e['entity'].lower()}.{OPERATIONS.get(e['operation'], e['operation'].lower())}.v1",
                "datacontenttype": "application/json",
                "time": e["time"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "intuitentityid": e["id"],
                "intuitaccountid": e["realm"],
                "data": {},
            }
            for e in batch
        ]

    def flush(self) -> int:
        """Deliver what is pending now, in order, in batches; stop at the first failure."""
        sent = 0
        with self._flush_lock:
            while True:
                with self._lock:
                    if not self.pending or not self.url:
                        break
                    batch, url, verifier, fmt = (
                        list(self.pending[:BATCH_SIZE]),
                        self.url,
                        self.verifier,
                        self.format,
                    )
                payload = self._cloudevents(batch) if fmt == "cloudevents" else self._classic(batch)
                body = json.dumps(payload, separators=(",", ":")).encode()
                try:
                    resp = self._session.post(url, data=body, timeout=TIMEOUT_S, headers={
                        "Content-Type": "application/json", "intuit-signature": sign(verifier, body)})  # fmt: skip
                    status, error = resp.status_code, ""
                except requests.RequestException as exc:
                    status, error = None, type(exc).__name__
                with self._lock:
                    self.attempts.append(Attempt(self.clock.now(), url, len(batch), status, error))
                    if status != 200:
                        break
                    del self.pending[: len(batch)]
                    self.bodies.append(body)
                    sent += len(batch)
                    self.delivered += len(batch)
        return sent
