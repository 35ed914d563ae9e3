"""`xz doctor`: what would stop a connection's sync, found before the sync, one line per check.

For each connection: configuration present, tokens present and refreshable (a real refresh at the configured
token URL; no token is ever printed), scopes granted, the Zoho fields the integration reads present (or mapped),
webhook secrets set and the receiver reachable at XZ_PUBLIC_URL, clock skew against the vendors' `Date`
headers, the day's API budget left (from the vendors' remaining-count headers on the calls the doctor makes);
then the DuckDB mirror writable and not locked. Each line says ok or PROBLEM and, for a problem, what to do.
A problem that would stop a sync is `blocking`: the command then exits 1 (2 when the configuration itself is
missing). The doctor spends a handful of API calls per connection (a token refresh each, Zoho's field
metadata, Xero's organisation).
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from xz_pipeline import settings
from xz_pipeline.consent import ZOHO_SCOPES
from xz_pipeline.core.errors import explain
from xz_pipeline.core.http import CallMeter, HttpClient, RetryPolicy
from xz_pipeline.core.store import Store, StoreBusy
from xz_pipeline.salesforce import fieldmap as sf_fieldmap
from xz_pipeline.salesforce import schema as sf_schema
from xz_pipeline.salesforce import tables as sf_tables
from xz_pipeline.salesforce.resources import SalesforceResource
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline.zoho import fieldmap, tables
from xz_pipeline.zoho import schema as zoho_schema
from xz_pipeline.zoho.resources import ZohoResource

MAX_SKEW_SECONDS = 60.0  # tokens are refreshed 60 s before they expire: a larger skew makes that unsafe
# Xero: contacts and invoices must be readable (broad `transactions` or granular `invoices`, or their .read).
XERO_NEEDED = (("accounting.contacts",), ("accounting.transactions", "accounting.invoices"))
ZOHO_NEEDED = ("ZohoCRM.modules.ALL", "ZohoCRM.settings.ALL")  # without these no module can be read


@dataclass(frozen=True)
class Check:
    connection: str
    name: str
    ok: bool
    message: str
    blocking: bool = False

    def line(self) -> str:
        return f"{self.connection}: {self.name:<8} {'ok' if self.ok else 'PROBLEM'}: {self.message}"


def _one_line(exc: BaseException) -> str:
    return explain(exc).message


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _jwt_claims(token: str) -> dict:
    """The payload of a JWT access token (Xero's), unverified: only its `scope` claim is read."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _scopes(value) -> set[str]:
    if isinstance(value, list | tuple):
        return {str(v) for v in value}
    return {s for s in re.split(r"[\s,]+", str(value or "")) if s}


def _has(granted: set[str], scope: str) -> bool:
    return scope in granted or f"{scope}.read" in granted


class _Dates:
    """The vendors' `Date` headers against this machine's clock, from a response hook on a client's session."""

    def __init__(self) -> None:
        self.skews: list[float] = []

    def hook(self, response, *_args, **_kwargs) -> None:
        raw = response.headers.get("Date")
        if not raw:
            return
        try:
            theirs = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return
        self.skews.append((theirs - datetime.now(UTC)).total_seconds())

    def skew(self) -> float | None:
        """The median skew (Date has whole seconds: a single reading is off by up to one)."""
        if not self.skews:
            return None
        ordered = sorted(self.skews)
        return ordered[len(ordered) // 2]


def _budget_line(vendor: str, meter: CallMeter) -> Check | None:
    day = meter.day_budget()
    if day is None:
        return None
    if day.remaining <= 0:
        return Check("", "budget", False, f"{vendor}'s {day.limit} budget is spent for today: syncs resume "
                     "when it comes back (tomorrow, vendor time)", blocking=True)  # fmt: skip
    reserve = settings.day_reserve(settings.xero_day_limit()) if vendor == "Xero" else 0
    low = day.remaining <= reserve
    return Check("", "budget", not low, f"{vendor}: {day.remaining} of its {day.limit} budget left today"
                 + (f" (below the reserve of {reserve}: long reads wait for tomorrow)" if low else ""))  # fmt: skip


def _xero(name: str, xs: settings.XeroSettings, dates: _Dates) -> list[Check]:
    out: list[Check] = []
    meter = CallMeter()
    with XeroResource().client(name, meter) as client:
        client.http.session.hooks["response"].append(dates.hook)
        token_url = client.auth.token_url
        try:
            client.auth.force_refresh()
        except Exception as exc:  # noqa: BLE001 (each failure is one line for a person)
            return [
                Check(name, "tokens", False, f"Xero at {_host(token_url)}: {_one_line(exc)}", blocking=True)
            ]
        tokens = client.auth.tokens
        until = f"; access token valid until {tokens.expires_at:%H:%M} UTC" if tokens else ""
        out.append(Check(name, "tokens", True, f"Xero: refreshed at {_host(token_url)}{until}"))
        claims = _jwt_claims(tokens.access_token) if tokens else {}
        granted = _scopes(claims.get("scope") if "scope" in claims else (tokens.scope if tokens else ""))
        if not granted:
            out.append(Check(name, "scopes", True, "Xero: the token names no scopes (not checked)"))
        else:
            missing = [" or ".join(alts) for alts in XERO_NEEDED if not any(_has(granted, s) for s in alts)]
            out.append(
                Check(
                    name,
                    "scopes",
                    False,
                    f"Xero: not granted {', '.join(missing)}: run `xz auth xero` "
                    "--connection " + name + " and approve them",
                    blocking=True,
                )  # fmt: skip
                if missing
                else Check(name, "scopes", True, f"Xero: {', '.join(sorted(granted))}")
            )
        try:
            client.organisation()
        except Exception as exc:  # noqa: BLE001
            out.append(Check(name, "api", False, f"Xero: {_one_line(exc)}", blocking=True))
        budget = _budget_line("Xero", meter)
        out.append(
            Check(name, budget.name, budget.ok, budget.message, budget.blocking)
            if budget
            else Check(name, "budget", True, "Xero reported no remaining count yet")
        )
    return out


def _zoho(name: str, zs: settings.ZohoSettings, dates: _Dates) -> list[Check]:
    out: list[Check] = []
    meter = CallMeter()
    with ZohoResource().client(name, meter) as client:
        client.http.session.hooks["response"].append(dates.hook)
        token_url = client.auth.token_url
        try:
            client.auth.force_refresh()
        except Exception as exc:  # noqa: BLE001
            return [
                Check(name, "tokens", False, f"Zoho at {_host(token_url)}: {_one_line(exc)}", blocking=True)
            ]
        tokens = client.auth.tokens
        until = f"; access token valid until {tokens.expires_at:%H:%M} UTC" if tokens else ""
        out.append(Check(name, "tokens", True, f"Zoho: refreshed at {_host(token_url)}{until}"))
        granted = _scopes(tokens.scope if tokens else "")
        wanted = _scopes(ZOHO_SCOPES)
        missing = sorted(s for s in wanted if s not in granted)
        if not granted:
            out.append(Check(name, "scopes", True, "Zoho: the token response names no scopes (not checked)"))
        elif missing:
            blocking = any(s in ZOHO_NEEDED for s in missing)
            out.append(Check(name, "scopes", False, f"Zoho: not granted {', '.join(missing)}: run `xz auth zoho "
                             f"--connection {name}` and approve them", blocking=blocking))  # fmt: skip
        else:
            out.append(
                Check(name, "scopes", True, f"Zoho: all {len(wanted)} scopes the integration asks for")
            )
        try:
            org = zoho_schema.discover(client, name)
        except Exception as exc:  # noqa: BLE001
            out.append(Check(name, "fields", False, f"Zoho: the org's fields could not be read: {_one_line(exc)}",
                             blocking=True))  # fmt: skip
        else:
            fm = fieldmap.load(name)
            lacking = zoho_schema.missing_report(org, tables.FIELDS, fm)
            gone = sorted(org.absent)
            if lacking:
                shown = "; ".join(f"{m['field']} ({m['disables']})" for m in lacking[:6])
                more = f" and {len(lacking) - 6} more" if len(lacking) > 6 else ""
                out.append(Check(name, "fields", False, f"Zoho lacks {shown}{more}: run `xz setup zoho --connection "
                                 f"{name}` or map them under [connections.{name}.zoho.fields]"))  # fmt: skip
            else:
                wanted_n = sum(len(v) for m, v in tables.FIELDS.items() if org.has_module(m))
                note = f" (the org has no {', '.join(gone)})" if gone else ""
                out.append(
                    Check(name, "fields", True, f"Zoho: all {wanted_n} fields the integration reads{note}")
                )
        budget = _budget_line("Zoho", meter)
        out.append(
            Check(name, budget.name, budget.ok, budget.message, budget.blocking)
            if budget
            else Check(
                name,
                "budget",
                True,
                "Zoho: no credit count reported (Zoho reports it past half the "
                "day's credits): more than half left",
            )  # fmt: skip
        )
    return out


def _salesforce(name: str, dates: _Dates) -> list[Check]:
    """Salesforce: the refresh, the org's share of the fields we read, the day's API allocation (`/limits`)."""
    out: list[Check] = []
    with SalesforceResource().client(name, CallMeter()) as client:
        client.http.session.hooks["response"].append(dates.hook)
        token_url = client.auth.token_url
        try:
            client.auth.force_refresh()
            instance = client.instance_url
        except Exception as exc:  # noqa: BLE001
            return [
                Check(
                    name,
                    "tokens",
                    False,
                    f"Salesforce at {_host(token_url)}: {_one_line(exc)}",
                    blocking=True,
                )
            ]
        out.append(
            Check(
                name, "tokens", True, f"Salesforce: refreshed at {_host(token_url)}; org at {_host(instance)}"
            )
        )
        try:
            org = sf_schema.discover(client, name)
            lacking = sf_schema.missing_report(org, sf_tables.FIELDS, sf_fieldmap.load(name))
            daily = client.limits().get("DailyApiRequests") or {}
        except Exception as exc:  # noqa: BLE001
            return [*out, Check(name, "fields", False, f"Salesforce: the org could not be described: {_one_line(exc)}",
                                blocking=True)]  # fmt: skip
        ours = [m for m in lacking if m["field"].endswith("__c")]  # the integration's own fields
        if ours:
            shown = "; ".join(f"{m['field']} ({m['disables']})" for m in ours[:6])
            more = f" and {len(ours) - 6} more" if len(ours) > 6 else ""
            out.append(Check(name, "fields", False, f"Salesforce lacks {shown}{more}: run `xz setup salesforce "
                             f"--connection {name}` or map them under [connections.{name}.salesforce.fields]"))  # fmt: skip
        else:
            absent = f" ({len(lacking)} standard field(s) absent: their columns stay NULL)" if lacking else ""
            out.append(Check(name, "fields", True, f"Salesforce: every field the integration keeps{absent}"))
        if daily.get("Max"):
            left, most = int(daily.get("Remaining") or 0), int(daily["Max"])
            out.append(Check(name, "budget", left > 0, f"Salesforce: {left} of {most} API calls left in the "
                             "rolling 24 hours", blocking=left <= 0))  # fmt: skip
    return out


def _webhooks(conn: settings.Connection, get: Callable[[str], int]) -> list[Check]:
    name = conn.name
    problems = []
    if conn.xero is not None and not conn.xero.webhook_key:
        problems.append("XERO_WEBHOOK_KEY is not set (Xero's webhooks are refused)")
    if conn.zoho is not None and not conn.zoho.notify_token:
        problems.append("ZOHO_NOTIFY_TOKEN is not set (Zoho notifications are refused)")
    out = [
        Check(
            name,
            "webhooks",
            False,
            "; ".join(problems) + ": changes wait for the scheduled runs; set them (docs/configuration.md)",
        )  # fmt: skip
        if problems
        else Check(name, "webhooks", True, "webhook key and notification token set")
    ]
    public = settings.public_url()
    if not public:
        out.append(
            Check(name, "receiver", True, "XZ_PUBLIC_URL not set: no receiver to reach (near-real-time off)")
        )
        return out
    url = public.rstrip("/") + "/health"
    try:
        status = get(url)
    except Exception as exc:  # noqa: BLE001
        status, why = 0, _one_line(exc)
    else:
        why = f"HTTP {status}"
    ok = status == 200
    out.append(
        Check(
            name,
            "receiver",
            ok,
            f"{url} answers"
            if ok
            else f"{url} is not reachable ({why}): start "
            "`xz serve` (or `xz webhooks`) and check the proxy in front of it",
        )  # fmt: skip
    )
    return out


def _clock(name: str, dates: _Dates) -> Check:
    skew = dates.skew()
    if skew is None:
        return Check(name, "clock", True, "no vendor answered with a Date header: not checked")
    ok = abs(skew) <= MAX_SKEW_SECONDS
    text = f"{abs(skew):.0f}s {'behind' if skew > 0 else 'ahead of'} the vendors' clocks"
    return Check(name, "clock", ok, f"this machine is {text}" + ("" if ok else ": synchronise it (NTP); tokens "
                 "would be used after they expire"))  # fmt: skip


def _store() -> list[Check]:
    """Each connection's mirror file is writable and not locked (one line per connection); none yet: the
    home is writable. A single mirror file from an earlier version: one line saying to run `xz migrate`."""
    home = settings.xz_home()
    try:
        names = settings.mirror_connections()
    except settings.SettingsError as exc:  # the single file of an earlier version
        return [Check("*", "mirror", False, f"{exc}", blocking=True)]
    if not names:
        try:
            home.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=home):
                pass
        except OSError as exc:
            return [Check("*", "mirror", False, f"{home} is not writable ({exc.strerror}): fix its permissions "
                          "or set XZ_HOME", blocking=True)]  # fmt: skip
        return [Check("*", "mirror", True, f"no mirror yet; {home} is writable (the first sync creates it)")]
    out = []
    for name in names:
        mirror = Store(settings.mirror_path(name), lock_timeout=0.0)
        try:
            with mirror.write() as con:
                con.execute("select 1").fetchall()
        except StoreBusy as exc:
            out.append(Check(name, "mirror", False, f"{exc}", blocking=True))
        except Exception as exc:  # noqa: BLE001
            out.append(Check(name, "mirror", False, f"{mirror.path}: {_one_line(exc)}", blocking=True))
        else:
            out.append(Check(name, "mirror", True, f"{mirror.path} is writable and not locked"))
    snapshot = settings.snapshot_path()
    if not os.access(snapshot.parent, os.W_OK):
        out.append(Check("*", "snapshot", False, f"{snapshot.parent} is not writable: the analysts' snapshot "
                         "cannot be published", blocking=True))  # fmt: skip
    return out


def _http_get(url: str) -> int:
    http = HttpClient("receiver", timeout=5.0, retry=RetryPolicy(attempts=2))
    try:
        return http.request("GET", url, endpoint="health", raise_for_status=False, expect_json=False).status
    finally:
        http.close()


def run(names: Sequence[str] | None = None, *, get: Callable[[str], int] = _http_get) -> list[Check]:
    """Every check for `names` (default: every configured connection), then the mirror's."""
    try:
        connections = settings.load_connections()
    except settings.SettingsError as exc:
        return [Check("*", "config", False, f"{exc}", blocking=True), *_store()]
    if names:
        known = {c.name for c in connections}
        unknown = [n for n in names if n not in known]
        if unknown:
            return [Check(n, "config", False, f"connection {n!r} is not configured (known: "
                          f"{', '.join(sorted(known)) or 'none'})", blocking=True) for n in unknown]  # fmt: skip
        connections = [c for c in connections if c.name in names]
    if not connections:
        return [Check("*", "config", False, "no connection configured: set XERO_*/ZOHO_* variables or write "
                      "$XZ_HOME/connections.toml (docs/configuration.md)", blocking=True), *_store()]  # fmt: skip
    out: list[Check] = []
    for conn in connections:
        books = ("QuickBooks", conn.quickbooks) if conn.books == "quickbooks" else ("Xero", conn.xero)
        crm = ("Salesforce", conn.salesforce) if conn.crm == "salesforce" else ("Zoho CRM", conn.zoho)
        missing = [v for v, s in (books, crm) if s is None]
        out.append(
            Check(
                conn.name,
                "config",
                False,
                f"{' and '.join(missing)} not configured: set its *_CLIENT_ID, "
                "*_CLIENT_SECRET and *_REFRESH_TOKEN (docs/configuration.md)",
                blocking=True,
            )  # fmt: skip
            if missing
            else Check(conn.name, "config", True, f"{books[0]} and {crm[0]} configured")
        )
        dates = _Dates()
        if conn.xero is not None:
            out += _xero(conn.name, conn.xero, dates)
        if conn.zoho is not None:
            out += _zoho(conn.name, conn.zoho, dates)
        if conn.salesforce is not None and conn.crm == "salesforce":
            out += _salesforce(conn.name, dates)
        out += _webhooks(conn, get)
        out.append(_clock(conn.name, dates))
    return out + _store()


def exit_code(checks: Sequence[Check]) -> int:
    """2 when the configuration is missing, 1 when another problem would stop a sync, else 0."""
    blocking = [c for c in checks if c.blocking and not c.ok]
    if any(c.name == "config" for c in blocking):
        return 2
    return 1 if blocking else 0
