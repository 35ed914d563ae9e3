"""Xero webhooks: the signature over the raw body, intent-to-receive, and the thin events (xero-api.md §10).

The signature is checked before any JSON is parsed and compared in constant time, so a forged body never
reaches the parser and timing reveals nothing about the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass

# Webhook categories → the asset that mirrors them (payments, items and accounts have no webhooks).
ASSET_BY_CATEGORY = {
    "CONTACT": "xero_contacts",
    "INVOICE": "xero_invoices",
    "CREDITNOTE": "xero_credit_notes",
}


class WebhookPayloadError(ValueError):
    """A correctly signed body that is not a Xero event batch."""


def signature(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def verify_signature(keys: Iterable[str], body: bytes, header: str | None) -> bool:
    """True when `header` is base64(HMAC-SHA256(key, body)) for one of `keys` (constant-time compare)."""
    if not header:
        return False
    given = header.strip().encode()
    ok = False
    for key in keys:
        if key:
            ok |= hmac.compare_digest(signature(key, body).encode(), given)
    return ok


@dataclass(frozen=True)
class XeroEvent:
    tenant_id: str
    category: str  # CONTACT | INVOICE | CREDITNOTE | SUBSCRIPTION | ...
    event_type: str  # CREATE | UPDATE (upper-cased: docs show both cases)
    resource_id: str
    event_date: str  # eventDateUtc as sent (ISO, UTC, no offset)
    sequence: int

    @property
    def asset(self) -> str | None:
        return ASSET_BY_CATEGORY.get(self.category)

    def dedupe_key(self) -> str:
        """Content address: a redelivered event hashes the same, a new change to the record does not."""
        raw = "|".join(
            ("xero", self.tenant_id, self.category, self.event_type, self.resource_id, self.event_date)
        )
        return hashlib.sha256(raw.encode()).hexdigest()


MAX_EVENTS = 10_000


def _field(event: dict, key: str) -> str:
    value = event.get(key)
    if value is None:
        raise WebhookPayloadError(f"an event lacks {key}")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise WebhookPayloadError(f"an event's {key} is not text")
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (`"\ud800"`) is valid JSON, not valid text
        raise WebhookPayloadError(f"an event's {key} is not text") from None
    return text


def parse_events(body: bytes) -> list[XeroEvent]:
    """The events of a verified body; an intent-to-receive batch (no events) gives an empty list.
    Anything that cannot be read as events (not JSON, too deep, wrong types) is a `WebhookPayloadError`,
    so the receiver answers 400, never 500."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WebhookPayloadError("body is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise WebhookPayloadError("body has no events array")
    if len(doc["events"]) > MAX_EVENTS:
        raise WebhookPayloadError("too many events in one batch")
    first = doc.get("firstEventSequence")
    first = first if isinstance(first, int) and not isinstance(first, bool) and abs(first) < 2**62 else 0
    out = []
    for i, ev in enumerate(doc["events"]):
        if not isinstance(ev, dict):
            raise WebhookPayloadError("an event is not an object")
        out.append(
            XeroEvent(
                tenant_id=_field(ev, "tenantId"),
                category=_field(ev, "eventCategory").upper(),
                event_type=_field(ev, "eventType").upper(),
                resource_id=_field(ev, "resourceId"),
                event_date=_field(ev, "eventDateUtc"),
                sequence=first + i,
            )
        )
    return out
