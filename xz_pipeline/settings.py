"""Every environment variable and the connections file, read in one place (docs/configuration.md).

One connection comes from the environment; several from `$XZ_HOME/connections.toml`, one
`[connections.<name>]` table each, with the same keys as the environment. Secrets live in fields
excluded from repr, so a logged settings object never shows them.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

XERO_API_URL = "https://api.xero.com"
XERO_IDENTITY_URL = "https://identity.xero.com"
XERO_LOGIN_URL = "https://login.xero.com"
ZOHO_ACCOUNTS_URL = "https://accounts.zoho.com"

DEFAULT_CONNECTION = "default"


class SettingsError(ValueError):
    """The configuration is missing or wrong; the message names the key and where it was read."""


@dataclass(frozen=True)
class XeroSettings:
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    tenant_id: str = ""
    webhook_key: str = field(default="", repr=False)
    api_url: str = XERO_API_URL
    identity_url: str = XERO_IDENTITY_URL
    login_url: str = XERO_LOGIN_URL


@dataclass(frozen=True)
class ZohoSettings:
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    accounts_url: str = ZOHO_ACCOUNTS_URL
    api_domain: str = ""  # empty: adopt the token response's api_domain
    notify_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Connection:
    """One books organisation paired with one CRM org."""

    name: str
    xero: XeroSettings | None
    zoho: ZohoSettings | None


def xz_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("XZ_HOME") or "./.xz").resolve()


def mirror_path(environ: Mapping[str, str] | None = None) -> Path:
    return xz_home(environ) / "mirror.duckdb"


def snapshot_path(environ: Mapping[str, str] | None = None) -> Path:
    return xz_home(environ) / "snapshot.duckdb"


def full_sweep_hours(environ: Mapping[str, str] | None = None) -> float:
    """`XZ_FULL_SWEEP_HOURS` (default 24): an incremental entity is read whole again after this long,
    to catch what does not move its modified time (balances, due dates) and missed deletions."""
    env = os.environ if environ is None else environ
    raw = env.get("XZ_FULL_SWEEP_HOURS", "24")
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"XZ_FULL_SWEEP_HOURS must be a number of hours, not {raw!r}") from None


def zoho_subforms(environ: Mapping[str, str] | None = None) -> bool:
    """`XZ_ZOHO_SUBFORMS` (default on): read each new or changed CRM invoice by id for its line items.
    Zoho returns subforms only on single-record reads, so this costs one API credit per such invoice."""
    env = os.environ if environ is None else environ
    return env.get("XZ_ZOHO_SUBFORMS", "on").strip().lower() not in ("off", "0", "false", "no")


DAY_RESERVE_SHARE = 0.10
DAY_RESERVE_FLOOR = 50


def xero_day_limit(environ: Mapping[str, str] | None = None) -> int:
    """`XZ_XERO_DAY_LIMIT` (default 5,000): calls a Xero tenant may make a day (1,000 on the Starter tier)."""
    env = os.environ if environ is None else environ
    raw = env.get("XZ_XERO_DAY_LIMIT", "5000")
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"XZ_XERO_DAY_LIMIT must be a whole number of calls, not {raw!r}") from None


def day_reserve(day_limit: int, environ: Mapping[str, str] | None = None) -> int:
    """`XZ_DAY_RESERVE`: calls (or credits) of a day's budget that long reads (a first sync, a backfill, a
    full sweep) leave unspent, so write-back and near-real-time reads still have some. A count ("200") or a
    share of the day's limit ("10%"); default 10% of `day_limit`, at least 50 calls."""
    env = os.environ if environ is None else environ
    raw = env.get("XZ_DAY_RESERVE", "").strip()
    if not raw:
        return max(DAY_RESERVE_FLOOR, math.ceil(DAY_RESERVE_SHARE * day_limit))
    try:
        if raw.endswith("%"):
            return max(0, math.ceil(float(raw[:-1]) / 100 * day_limit))
        return max(0, int(raw))
    except ValueError:
        raise SettingsError(
            f"XZ_DAY_RESERVE must be a number of calls or a share like '10%', not {raw!r}"
        ) from None


def connections_file(environ: Mapping[str, str] | None = None) -> Path:
    return xz_home(environ) / "connections.toml"


def _xero(values: Mapping[str, str], where: str) -> XeroSettings | None:
    if not values.get("XERO_CLIENT_ID"):
        return None
    if not values.get("XERO_CLIENT_SECRET"):
        raise SettingsError(f"XERO_CLIENT_SECRET is missing in {where} (XERO_CLIENT_ID is set)")
    return XeroSettings(
        client_id=values["XERO_CLIENT_ID"],
        client_secret=values["XERO_CLIENT_SECRET"],
        refresh_token=values.get("XERO_REFRESH_TOKEN", ""),
        tenant_id=values.get("XERO_TENANT_ID", ""),
        webhook_key=values.get("XERO_WEBHOOK_KEY", ""),
        api_url=(values.get("XERO_API_URL") or XERO_API_URL).rstrip("/"),
        identity_url=(values.get("XERO_IDENTITY_URL") or XERO_IDENTITY_URL).rstrip("/"),
        login_url=(values.get("XERO_LOGIN_URL") or XERO_LOGIN_URL).rstrip("/"),
    )


def _zoho(values: Mapping[str, str], where: str) -> ZohoSettings | None:
    if not values.get("ZOHO_CLIENT_ID"):
        return None
    if not values.get("ZOHO_CLIENT_SECRET"):
        raise SettingsError(f"ZOHO_CLIENT_SECRET is missing in {where} (ZOHO_CLIENT_ID is set)")
    return ZohoSettings(
        client_id=values["ZOHO_CLIENT_ID"],
        client_secret=values["ZOHO_CLIENT_SECRET"],
        refresh_token=values.get("ZOHO_REFRESH_TOKEN", ""),
        accounts_url=(values.get("ZOHO_ACCOUNTS_URL") or ZOHO_ACCOUNTS_URL).rstrip("/"),
        api_domain=(values.get("ZOHO_API_DOMAIN") or "").rstrip("/"),
        notify_token=values.get("ZOHO_NOTIFY_TOKEN", ""),
    )


def load_connections(environ: Mapping[str, str] | None = None) -> list[Connection]:
    """The configured connections: the connections file when it exists, else the environment."""
    env = os.environ if environ is None else environ
    path = connections_file(env)
    if path.exists():
        try:
            doc = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path} is not valid TOML: {exc}") from None
        tables = doc.get("connections", {})
        if not isinstance(tables, dict) or not tables:
            raise SettingsError(f"{path} has no [connections.<name>] table")
        found = []
        for name, values in tables.items():
            where = f"{path} [connections.{name}]"
            values = {str(k).upper(): str(v) for k, v in values.items()}
            found.append(Connection(name=name, xero=_xero(values, where), zoho=_zoho(values, where)))
        return found
    xero, zoho = _xero(env, "the environment"), _zoho(env, "the environment")
    if xero is None and zoho is None:
        return []
    return [Connection(name=env.get("XZ_CONNECTION", DEFAULT_CONNECTION), xero=xero, zoho=zoho)]


def get_connection(name: str, environ: Mapping[str, str] | None = None) -> Connection:
    connections = load_connections(environ)
    for conn in connections:
        if conn.name == name:
            return conn
    raise _unknown([name], connections, environ)


def require_connections(names: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The names, when each is a configured connection; else one SettingsError naming the unknown ones and
    the configured ones (every command given `--connection` checks it before doing anything)."""
    connections = load_connections(environ)
    known = {c.name for c in connections}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise _unknown(unknown, connections, environ)
    return list(names)


def _unknown(
    names: list[str], connections: list[Connection], environ: Mapping[str, str] | None
) -> SettingsError:
    which = ", ".join(repr(n) for n in names)
    known = ", ".join(c.name for c in connections)
    where = (
        f"the configured ones are: {known}"
        if known
        else f"none is (set XERO_*/ZOHO_* variables or write {connections_file(environ)})"
    )
    verb = "is" if len(names) == 1 else "are"
    return SettingsError(f"connection {which} {verb} not configured; {where}")


def poll_share(environ: Mapping[str, str] | None = None) -> float:
    """`XZ_POLL_SHARE` (default 0.1): the share of the Xero day budget change polling may spend."""
    env = os.environ if environ is None else environ
    raw = env.get("XZ_POLL_SHARE", "0.1")
    try:
        return min(1.0, max(0.001, float(raw)))
    except ValueError:
        raise SettingsError(f"XZ_POLL_SHARE must be a share such as 0.1, not {raw!r}") from None


def public_url(environ: Mapping[str, str] | None = None) -> str:
    """`XZ_PUBLIC_URL`: where Zoho can reach this receiver (e.g. https://hooks.example.com); empty = off."""
    env = os.environ if environ is None else environ
    return env.get("XZ_PUBLIC_URL", "").strip()


def mirror_cron(environ: Mapping[str, str] | None = None) -> str:
    """`XZ_MIRROR_CRON` (default every 15 minutes): the incremental mirror schedule."""
    env = os.environ if environ is None else environ
    return env.get("XZ_MIRROR_CRON", "*/15 * * * *")


def full_sweep_cron(environ: Mapping[str, str] | None = None) -> str:
    """`XZ_FULL_SWEEP_CRON` (default 02:30 daily): the full-sweep schedule."""
    env = os.environ if environ is None else environ
    return env.get("XZ_FULL_SWEEP_CRON", "30 2 * * *")


def zoho_mapping_doc(connection: str, environ: Mapping[str, str] | None = None) -> tuple[dict, str]:
    """The raw field mapping of a connection's Zoho org, and where it was read (`zoho/fieldmap.py` parses
    it): `[connections.<name>.zoho]` in the connections file (`fields`, `values`, `customer_types`), else
    for the environment's connection `XZ_ZOHO_FIELDS`, a JSON object of the same keys (or of `fields` alone)."""
    env = os.environ if environ is None else environ
    path = connections_file(env)
    if path.exists():
        try:
            doc = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path} is not valid TOML: {exc}") from None
        table = doc.get("connections", {}).get(connection, {}).get("zoho")
        return (dict(table) if isinstance(table, dict) else {}), f"{path} [connections.{connection}.zoho]"
    raw = env.get("XZ_ZOHO_FIELDS", "").strip()
    if not raw:
        return {}, "XZ_ZOHO_FIELDS"
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"XZ_ZOHO_FIELDS is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SettingsError("XZ_ZOHO_FIELDS must be a JSON object")
    structured = any(k in doc for k in ("fields", "values", "customer_types"))
    return (doc if structured else {"fields": doc}), "XZ_ZOHO_FIELDS"
