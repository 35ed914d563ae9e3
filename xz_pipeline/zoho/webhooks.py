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


def parse_notification(body: bytes) -> ZohoNotification:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise NotificationError("body is not JSON") from None
    if not isinstance(doc, dict):
        raise NotificationError("body is not an object")
    try:
        ids = doc["ids"]
        if not isinstance(ids, list):
            raise NotificationError("ids is not a list")
        ms = int(doc["server_time"])
        return ZohoNotification(
            module=str(doc["module"]),
            operation=str(doc["operation"]).lower(),
            ids=tuple(str(i) for i in ids),
            channel_id=str(doc.get("channel_id", "")),
            token=doc.get("token"),
            server_time=datetime.fromtimestamp(ms / 1000, UTC),
        )
    except KeyError as exc:
        raise NotificationError(f"notification lacks {exc.args[0]}") from None
    except (TypeError, ValueError):
        raise NotificationError("server_time is not epoch milliseconds") from None
