"""Xero's webhook sender: thin CREATE/UPDATE events, batched, signed with HMAC-SHA256, retried until accepted.

Delivery is at-least-once: a batch stays queued until the receiver answers 200, and every
attempt is recorded. Intent-to-receive sends correctly and incorrectly signed empty batches and
passes only when the receiver answers 200 and 401 respectively (fact sheet §10).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import requests

from xz_pipeline.sandbox.clock import Clock

BATCH_SIZE = 50
TIMEOUT_S = 5.0


def sign(key: str, body: bytes) -> str:
    """`x-xero-signature`: base64(HMAC-SHA256(key, raw body))."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Attempt:
    time: datetime
    url: str
    events: int
    first_sequence: int
    status: int | None  # None when the connection failed
    error: str = ""
    kind: str = "events"  # events | itr-good | itr-bad


@dataclass
class WebhookSender:
    clock: Clock
    resource_url: Callable[[str, str], str]  # (category, id) -> resourceUrl
    url: str = ""
    key: str = field(default="", repr=False)
    pending: list[dict] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    delivered: int = 0
    _sequence: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _flush_lock: threading.Lock = field(default_factory=threading.Lock)
    _session: requests.Session = field(default_factory=requests.Session)

    def configure(self, url: str, key: str) -> None:
        with self._lock:
            self.url, self.key = url, key

    def queue(self, tenant_id: str, category: str, event_type: str, resource_id: str, extra: dict) -> None:
        """Called under the emulator lock on every write to a CONTACT, INVOICE or CREDITNOTE."""
        with self._lock:
            if not self.url:
                return
            self._sequence += 1
            event = {
                "resourceUrl": self.resource_url(category, resource_id),
                "resourceId": resource_id,
                "eventDateUtc": self.clock.now().replace(tzinfo=None).isoformat(timespec="milliseconds"),
                "eventType": event_type,
                "eventCategory": category,
                "tenantId": tenant_id,
                "tenantType": "ORGANISATION",
            }
            if category == "CREDITNOTE" and extra:
                event["data"] = extra
            self.pending.append({"sequence": self._sequence, "event": event})

    def _post(self, url: str, body: bytes, signature: str) -> tuple[int | None, str]:
        try:
            resp = self._session.post(
                url, data=body, timeout=TIMEOUT_S,
                headers={"Content-Type": "application/json", "x-xero-signature": signature},
            )  # fmt: skip
            return resp.status_code, ""
        except requests.RequestException as exc:
            return None, type(exc).__name__

    def flush(self) -> int:
        """Deliver what is pending now, in sequence order, in batches; stop at the first failure.

        The state lock is not held during a POST, so a receiver that calls back into the emulator
        (even to write) cannot deadlock it; `_flush_lock` keeps two flushes from sending one batch twice.
        """
        sent = 0
        with self._flush_lock:
            while True:
                with self._lock:
                    if not self.pending or not self.url:
                        break
                    batch, url, key = list(self.pending[:BATCH_SIZE]), self.url, self.key
                payload = {
                    "events": [item["event"] for item in batch],
                    "firstEventSequence": batch[0]["sequence"],
                    "lastEventSequence": batch[-1]["sequence"],
                    "entropy": secrets.token_hex(10).upper(),
                }
                body = json.dumps(payload, separators=(",", ":")).encode()
                status, error = self._post(url, body, sign(key, body))
                with self._lock:
                    self.attempts.append(
                        Attempt(self.clock.now(), url, len(batch), batch[0]["sequence"], status, error)
                    )
                    if status != 200:
                        break
                    del self.pending[: len(batch)]  # only appended to meanwhile: the head is still this batch
                    sent += len(batch)
                    self.delivered += len(batch)
        return sent

    def intent_to_receive(self, rounds: int = 2) -> bool:
        """Send good and bad signed empty batches; pass when every good one gets 200 and every bad one 401."""
        ok = True
        with self._flush_lock:
            with self._lock:
                url, key = self.url, self.key
            for i in range(rounds * 2):
                good = i % 2 == 0
                empty = {
                    "events": [],
                    "firstEventSequence": 0,
                    "lastEventSequence": 0,
                    "entropy": secrets.token_hex(10).upper(),
                }
                body = json.dumps(empty, separators=(",", ":")).encode()
                signature = sign(key, body) if good else sign(secrets.token_hex(16), body)
                status, error = self._post(url, body, signature)
                with self._lock:
                    self.attempts.append(
                        Attempt(self.clock.now(), url, 0, 0, status, error, "itr-good" if good else "itr-bad")
                    )
                ok = ok and status == (200 if good else 401)
        return ok
