"""Zoho channel manager: a watch channel per mirrored module, renewed before it expires, re-enabled if gone.

Zoho channels live at most a week (an hour when the expiry is left out) and then go silent without an
error anywhere (zoho-api.md §9). Channel ids are derived from the connection and module, so the manager
finds its own channels among the org's and never piles up duplicates. The notify URL carries the URL
secret and every channel the token (both from ZOHO_NOTIFY_TOKEN; zoho/webhooks.py checks them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.errors import ApiError
from xz_pipeline.zoho import webhooks as zoho_hooks
from xz_pipeline.zoho.dates import parse_zoho_datetime
from xz_pipeline.zoho.resources import ZohoResource

LIFETIME = timedelta(days=7) - timedelta(minutes=10)  # the most Zoho allows, with room for clock skew
RENEW_BEFORE = timedelta(days=1)
CHECK_EVERY = 600  # seconds: an expired or vanished channel is back within ten minutes


def channel_id(connection: str, module: str) -> str:
    """A stable numeric id (Zoho's are long integers) per connection and module."""
    digest = int(hashlib.sha256(f"xz:{connection}:{module}".encode()).hexdigest(), 16)
    return str(10**15 + digest % (9 * 10**15))


def notify_url(base_url: str, notify_token: str) -> str:
    return f"{base_url.rstrip('/')}/webhooks/zoho?{zoho_hooks.URL_SECRET_PARAM}={zoho_hooks.url_secret(notify_token)}"


@dataclass
class ChannelReport:
    enabled: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    healthy: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # modules this org cannot watch (e.g. edition)

    def summary(self) -> str:
        return ", ".join(f"{k} {len(v)}" for k, v in self.__dict__.items() if v) or "nothing to do"


def ensure_channels(client, connection: str, url: str, token: str, now: datetime, *,
                    modules=tuple(zoho_hooks.ASSET_BY_MODULE), lifetime: timedelta = LIFETIME,
                    renew_before: timedelta = RENEW_BEFORE) -> ChannelReport:  # fmt: skip
    """One list call, then enable what is missing and renew what expires within `renew_before`."""
    live = {str(ch.get("channel_id")): ch for ch in client.list_notifications()}
    report = ChannelReport()
    for module in modules:
        cid = channel_id(connection, module)
        current = live.get(cid)
        try:
            if current is None:
                client.enable_notifications(cid, [f"{module}.all"], url, token, now + lifetime)
                report.enabled.append(module)
                continue
            expiry = parse_zoho_datetime(current.get("channel_expiry"))
            if expiry is None or expiry - now < renew_before or current.get("notify_url") not in (None, url):
                client.renew_notifications(cid, now + lifetime, notify_url=url, token=token)
                report.renewed.append(module)
            else:
                report.healthy.append(module)
        except ApiError as exc:
            if exc.code not in ("INVALID_MODULE", "INVALID_DATA", "NOT_SUPPORTED"):
                raise
            report.unavailable.append(module)
    return report


@dg.sensor(
    name="zoho_channels_sensor",
    minimum_interval_seconds=CHECK_EVERY,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps a Zoho watch channel per mirrored module alive: enables, renews a day before expiry, "
    "re-enables any that vanished (needs XZ_PUBLIC_URL and ZOHO_NOTIFY_TOKEN).",
)
def zoho_channels_sensor(context: dg.SensorEvaluationContext, zoho: ZohoResource):
    base = settings.public_url()
    if not base:
        return dg.SkipReason(
            "XZ_PUBLIC_URL is not set: Zoho cannot reach the receiver (polling sweeps still run)"
        )
    now = datetime.now(UTC)
    done = {}
    for conn in settings.load_connections():
        if conn.zoho is None or not conn.zoho.notify_token:
            continue
        with zoho.client(conn.name) as client:
            report = ensure_channels(
                client, conn.name, notify_url(base, conn.zoho.notify_token),
                zoho_hooks.channel_token(conn.zoho.notify_token), now,
            )  # fmt: skip
        done[conn.name] = report.summary()
    return dg.SensorResult(
        skip_reason=dg.SkipReason(json.dumps(done) if done else "no Zoho connection with ZOHO_NOTIFY_TOKEN")
    )
