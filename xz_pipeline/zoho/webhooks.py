"""Zoho CRM notification callbacks (zoho-api.md §9): parsing, and the channel token and URL secret.

Zoho signs nothing: a callback is authentic when it carries the token we set on the channel and the
secret we put in the notify URL. Both are derived from ZOHO_NOTIFY_TOKEN, so nothing extra is stored,
and both are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

# Mirrored modules → the asset that mirrors them.
ASSET_BY_MODULE = {
    "Accounts": "zoho_accounts",
    "Contacts": "zoho_contacts",
    "Deals": "zoho_deals",
    "Invoices": "zoho_invoices",
    "Products": "zoho_products",
}
URL_SECRET_PARAM = "k"


class NotificationError(ValueError):
    """An authentic callback whose body is not a Zoho notification."""


def _derive(notify_token: str, label: str) -> str:
    return hmac.new(notify_token.encode(), label.encode(), hashlib.sha256).hexdigest()[:40]


def channel_token(notify_token: str) -> str:
    """The `token` set on every channel (≤ 50 characters, as Zoho requires)."""
    return _derive(notify_token, "xz-channel-token")


def url_secret(notify_token: str) -> str:
    """The `?k=` secret in the notify URL: a leaked channel token alone is not enough."""
    return _derive(notify_token, "xz-notify-url")


def same(expected: str, given: str | None) -> bool:
    return (
        bool(expected) and given is not None and hmac.compare_digest(expected.encode(), str(given).encode())
    )


@dataclass(frozen=True)
class ZohoNotification:
    module: str
    operation: str  # insert | update | delete
    ids: tuple[str, ...]
    channel_id: str
    token: str | None
    server_time: datetime

    @property
    def asset(self) -> str | None:
        return ASSET_BY_MODULE.get(self.module)

    @property
    def deleted(self) -> bool:
        return self.operation == "delete"

    def dedupe_key(self, record_id: str) -> str:
        raw = "|".join(
            ("zoho", self.channel_id, self.module, self.operation, record_id, self.server_time.isoformat())
        )
        return hashlib.sha256(raw.encode()).hexdigest()


MAX_IDS = 10_000  # Zoho sends at most a few hundred ids per callback


def _text(doc: dict, key: str, *, required: bool = True) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if value is None:
        raise NotificationError(f"notification lacks {key}")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not _encodable(str(value)):
        raise NotificationError(f"{key} is not text")
    return str(value)


def _encodable(text: str) -> bool:
    """False for a lone surrogate (`"\ud800"`): valid JSON, not valid text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_notification(body: bytes) -> ZohoNotification:
    """The notification in an authentic callback; `NotificationError` for anything that cannot be read as
    one (not JSON, too deep, wrong types, a time no calendar holds), so the receiver answers 400, never 500."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise NotificationError("body is not JSON") from None
    if not isinstance(doc, dict):
        raise NotificationError("body is not an object")
    ids = doc.get("ids")
    if ids is None:
        raise NotificationError("notification lacks ids")
    if not isinstance(ids, list) or len(ids) > MAX_IDS:
        raise NotificationError("ids is not a list of record ids")
    if not all(isinstance(i, (str, int)) and not isinstance(i, bool) and str(i).strip() and _encodable(str(i))
               for i in ids):  # fmt: skip
        raise NotificationError("ids holds something other than record ids")
    ms = doc.get("server_time")
    if ms is None:
        raise NotificationError("notification lacks server_time")
    try:
        if isinstance(ms, bool) or not isinstance(ms, (int, str)):
            raise TypeError
        server_time = datetime.fromtimestamp(int(ms) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise NotificationError("server_time is not epoch milliseconds") from None
    token = doc.get("token")
    return ZohoNotification(
        module=_text(doc, "module"),
        operation=_text(doc, "operation").lower(),
        ids=tuple(str(i) for i in ids),
        channel_id=_text(doc, "channel_id", required=False),
        token=token if isinstance(token, str) and _encodable(token) else None,
        server_time=server_time,
    )
