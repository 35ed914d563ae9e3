"""Zoho CRM notifications (`actions/watch`): channels, their expiry, and callbacks with retries (zoho-api.md §9).

A channel lives at most one week from when it was enabled or last renewed; without `channel_expiry`, or
with one further than a week away, it lives one hour. Every insert, update and delete in a watched module
queues one callback per channel (ids batched per API call); `deliver()` posts them, retrying a failed
callback with backoff on later calls, and drops callbacks of channels that have expired.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import requests

from xz_pipeline.sandbox.zoho.records import parse_datetime

MAX_CHANNEL_LIFETIME = timedelta(days=7)
DEFAULT_CHANNEL_LIFETIME = timedelta(hours=1)
MAX_CHANNELS_PER_REQUEST = 50
MAX_TOKEN_LENGTH = 50
MAX_ATTEMPTS = 4
RETRY_BACKOFF = (timedelta(seconds=0), timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10))
DELIVERY_TIMEOUT = 5.0
EVENT_OPS = {"create": "insert", "edit": "update", "delete": "delete"}


class WatchError(ValueError):
    def __init__(self, code: str, message: str, details: dict) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details

    def item(self) -> dict:
        return {"code": self.code, "details": self.details, "message": self.message, "status": "error"}


@dataclass
class Channel:
    channel_id: str
    org_id: str
    events: list[str]  # "Deals.edit", "Accounts.all", ...
    notify_url: str
    token: str | None
    expiry: datetime
    version: str
    return_affected_field_values: bool = False
    notify_on_related_action: bool = True
    condition: list = field(default_factory=list)

    def watches(self, module: str, operation: str) -> bool:
        for ev in self.events:
            mod, _, op = ev.partition(".")
            if mod == module and (op == "all" or EVENT_OPS.get(op) == operation):
                return True
        return False

    def selected_fields(self, module: str) -> set[str] | None:
        """Fields named in a field_selection condition for this module (None = any change fires)."""
        names: set[str] = set()
        for cond in self.condition:
            if (cond.get("module") or {}).get("api_name") != module:
                continue
            names |= set(_criteria_fields(cond.get("field_selection") or {}))
        return names or None


def _criteria_fields(crit: dict) -> list[str]:
    out = []
    if isinstance(crit.get("field"), dict) and crit["field"].get("api_name"):
        out.append(crit["field"]["api_name"])
    for g in crit.get("group") or []:
        out += _criteria_fields(g)
    return out


@dataclass
class Pending:
    channel_id: str
    org_id: str
    url: str
    payload: dict
    attempts: int = 0
    next_at: datetime | None = None


class Notifier:
    """Channels per org and the outbox of callbacks."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.channels: dict[tuple[str, str], Channel] = {}
        self.outbox: list[Pending] = []
        self.deliveries: list[dict] = []  # every attempt: channel, url, status/error, time
        self._flush = threading.Lock()

    # -- channel management ----------------------------------------------------------------

    def expiry_for(self, given: str | None, now: datetime) -> datetime:
        if given in (None, ""):
            return now + DEFAULT_CHANNEL_LIFETIME
        dt = parse_datetime(given)
        if dt is None:
            raise WatchError("INVALID_DATA", "invalid data", {"api_name": "channel_expiry"})
        if dt <= now:
            raise WatchError("INVALID_DATA", "invalid data", {"api_name": "channel_expiry"})
        if dt - now > MAX_CHANNEL_LIFETIME:
            return now + DEFAULT_CHANNEL_LIFETIME
        return dt.replace(microsecond=0)

    def live(self, org_id: str, now: datetime) -> list[Channel]:
        return [c for (o, _), c in self.channels.items() if o == org_id and c.expiry > now]

    def get(self, org_id: str, channel_id: str, now: datetime) -> Channel | None:
        c = self.channels.get((org_id, channel_id))
        return c if c is not None and c.expiry > now else None

    def check_events(self, events, modules) -> list[str]:
        if not isinstance(events, list) or not events:
            raise WatchError("MANDATORY_NOT_FOUND", "required field not found", {"api_name": "events"})
        for ev in events:
            mod, _, op = str(ev).partition(".")
            if mod not in modules or op not in ("create", "edit", "delete", "all"):
                raise WatchError("INVALID_DATA", "invalid data", {"api_name": "events", "value": str(ev)})
        return [str(e) for e in events]

    def check_url(self, url) -> str:
        if not isinstance(url, str) or not url:
            raise WatchError("MANDATORY_NOT_FOUND", "required field not found", {"api_name": "notify_url"})
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise WatchError("INVALID_DATA", "invalid data", {"api_name": "notify_url"})
        return url

    def check_token(self, token) -> str | None:
        if token is None:
            return None
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise WatchError("INVALID_DATA", "invalid data", {"api_name": "token", "maximum_length": "50"})
        return token

    # -- events and delivery -----------------------------------------------------------------

    def publish(
        self, org_id: str, module: str, operation: str, changes: list, resource_uri, now: datetime
    ) -> None:
        """Queue one callback per live channel watching (module, operation) for one API call's changes."""
        if not changes:
            return
        with self.lock:
            for ch in self.live(org_id, now):
                if not ch.watches(module, operation):
                    continue
                picked = changes
                selected = ch.selected_fields(module) if operation == "update" else None
                if selected is not None:
                    picked = [c for c in changes if selected & set(c.fields)]
                if not picked:
                    continue
                payload = {
                    "server_time": int(now.timestamp() * 1000),
                    "query_params": dict(parse_qsl(urlsplit(ch.notify_url).query)),
                    "module": module,
                    "resource_uri": resource_uri(ch.version, module),
                    "ids": [c.id for c in picked],
                    "affected_fields": ([{c.id: c.fields} for c in picked] if operation == "update" else []),
                    "operation": operation,
                    "channel_id": ch.channel_id,
                    "token": ch.token,
                }
                if ch.return_affected_field_values and operation != "delete":
                    payload["affected_values"] = [{"record_id": c.id, "values": c.values} for c in picked]
                self.outbox.append(Pending(ch.channel_id, org_id, ch.notify_url, payload))

    def deliver(self) -> int:
        """Post due callbacks now (never while holding the state lock); returns how many succeeded."""
        with self._flush:
            now = self.clock.now()
            with self.lock:
                due = [p for p in self.outbox if p.next_at is None or p.next_at <= now]
                taken = {id(p) for p in due}
                self.outbox = [p for p in self.outbox if id(p) not in taken]
            delivered = 0
            retry: list[Pending] = []
            for p in due:
                if self.get(p.org_id, p.channel_id, now) is None:
                    self._log(p, "dropped: channel expired or disabled", now)
                    continue
                p.attempts += 1
                try:
                    r = requests.post(
                        p.url,
                        data=json.dumps(p.payload),
                        headers={"Content-Type": "application/json"},
                        timeout=DELIVERY_TIMEOUT,
                        allow_redirects=False,
                    )
                    ok = 200 <= r.status_code < 300
                    outcome = str(r.status_code)
                except requests.RequestException as exc:
                    ok, outcome = False, type(exc).__name__
                self._log(p, outcome, now)
                if ok:
                    delivered += 1
                elif p.attempts < MAX_ATTEMPTS:
                    p.next_at = now + RETRY_BACKOFF[p.attempts]
                    retry.append(p)
            with self.lock:
                self.outbox = retry + self.outbox
            return delivered

    def _log(self, p: Pending, outcome: str, now: datetime) -> None:
        with self.lock:
            self.deliveries.append(
                {
                    "channel_id": p.channel_id,
                    "url": p.url,
                    "operation": p.payload["operation"],
                    "ids": list(p.payload["ids"]),
                    "attempt": p.attempts,
                    "outcome": outcome,
                    "time": now,
                }
            )
