"""QuickBooks Online webhooks: the `intuit-signature` over the raw body, and the ids-only events of both
formats Intuit sends (the classic `eventNotifications` and the CloudEvents 1.0 array that replaces it).

The signature (base64 of HMAC-SHA256 of the raw body, keyed with the app's verifier token) is checked
before any JSON is parsed and compared in constant time. Payloads carry ids only: the receiver records
them in the inbox and a targeted run reads those records.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass

# QBO entity names -> the asset that mirrors them (entities we do not mirror are acknowledged, not stored).
ASSET_BY_ENTITY = {
    "customer": "quickbooks_customers",
    "invoice": "quickbooks_invoices",
    "estimate": "quickbooks_estimates",
    "payment": "quickbooks_payments",
    "creditmemo": "quickbooks_credit_memos",
    "bill": "quickbooks_bills",
    "item": "quickbooks_items",
    "account": "quickbooks_accounts",
}
MAX_EVENTS = 10_000


class WebhookPayloadError(ValueError):
    """A correctly signed body that is not a QBO notification."""


def signature(verifier: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(verifier.encode(), body, hashlib.sha256).digest()).decode()


def verify_signature(verifiers: Iterable[str], body: bytes, header: str | None) -> bool:
    """True when `header` is base64(HMAC-SHA256(verifier, body)) for one of `verifiers` (constant time)."""
    if not header:
        return False
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    ok = False
    for verifier in verifiers:
        if verifier:
            ok |= hmac.compare_digest(hmac.new(verifier.encode(), body, hashlib.sha256).digest(), given)
    return ok


@dataclass(frozen=True)
class QboEvent:
    realm_id: str
    entity: str  # as QBO names it: Customer, Invoice, ...
    operation: str  # Create | Update | Delete | Merge | Void | Emailed (CloudEvents: created, updated, ...)
    record_id: str
    changed_at: str  # ISO time the notification gives

    @property
    def asset(self) -> str | None:
        return ASSET_BY_ENTITY.get(self.entity.lower())

    @property
    def deleted(self) -> bool:
        return self.operation.lower() in ("delete", "deleted")

    def dedupe_key(self) -> str:
        """Content address: a redelivered event hashes the same, a new change to the record does not."""
        raw = "|".join(("quickbooks", self.realm_id, self.entity.lower(), self.operation.lower(), self.record_id,
                        self.changed_at))  # fmt: skip
        return hashlib.sha256(raw.encode()).hexdigest()


def _text(value: object, what: str) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
        raise WebhookPayloadError(f"an event's {what} is missing or not text")
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise WebhookPayloadError(f"an event's {what} is not text") from None
    return text


def _classic(doc: dict) -> list[QboEvent]:
    out = []
    notes = doc["eventNotifications"]
    if not isinstance(notes, list):
        raise WebhookPayloadError("eventNotifications is not a list")
    for note in notes:
        if not isinstance(note, dict):
            raise WebhookPayloadError("a notification is not an object")
        realm = _text(note.get("realmId"), "realmId")
        change = note.get("dataChangeEvent") or {}
        entities = change.get("entities") if isinstance(change, dict) else None
        if not isinstance(entities, list):
            raise WebhookPayloadError("a notification has no dataChangeEvent.entities")
        for e in entities:
            if not isinstance(e, dict):
                raise WebhookPayloadError("an entity is not an object")
            out.append(QboEvent(realm, _text(e.get("name"), "name"), _text(e.get("operation"), "operation"),
                                _text(e.get("id"), "id"), _text(e.get("lastUpdated") or "", "lastUpdated")))  # fmt: skip
    return out


def _cloud(events: list) -> list[QboEvent]:
    """CloudEvents 1.0: `type` is `qbo.<entity>.<operation>.v<n>`, `intuitentityid` the record,
    `intuitaccountid` the realm."""
    out = []
    for ev in events:
        if not isinstance(ev, dict):
            raise WebhookPayloadError("an event is not an object")
        kind = _text(ev.get("type"), "type").split(".")
        if len(kind) < 3 or kind[0].lower() != "qbo":
            raise WebhookPayloadError("an event's type is not qbo.<entity>.<operation>")
        realm = _text(ev.get("intuitaccountid"), "intuitaccountid")
        record = _text(ev.get("intuitentityid"), "intuitentityid")
        out.append(QboEvent(realm, kind[1], kind[2], record, _text(ev.get("time") or "", "time")))
    return out


def parse_events(body: bytes) -> list[QboEvent]:
    """The events of a verified body, in either format. Anything else (not JSON, wrong types, too many) is a
    `WebhookPayloadError`, so the receiver answers 400, never 500."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WebhookPayloadError("body is not JSON") from None
    if isinstance(doc, dict) and "specversion" in doc:
        doc = [doc]  # a single CloudEvent (structured mode) is one event
    if isinstance(doc, list):
        if len(doc) > MAX_EVENTS:
            raise WebhookPayloadError("too many events in one notification")
        return _cloud(doc)
    if isinstance(doc, dict) and "eventNotifications" in doc:
        events = _classic(doc)
        if len(events) > MAX_EVENTS:
            raise WebhookPayloadError("too many events in one notification")
        return events
    raise WebhookPayloadError("body is neither eventNotifications nor a CloudEvents array")
