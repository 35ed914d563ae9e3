"""Every environment variable and the connections file, read in one place (docs/configuration.md).

One connection comes from the environment; several from `$XZ_HOME/connections.toml`, one
`[connections.<name>]` table each, with the same keys as the environment. Secrets live in fields
excluded from repr, so a logged settings object never shows them.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

XERO_API_URL = "https://api.xero.com"
XERO_IDENTITY_URL = "https://identity.xero.com"
XERO_LOGIN_URL = "https://login.xero.com"
ZOHO_ACCOUNTS_URL = "https://accounts.zoho.com"
QBO_API_URL = "https://quickbooks.api.intuit.com"
QBO_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
QBO_AUTH_URL = "https://appcenter.intuit.com/connect/oauth2"
SALESFORCE_LOGIN_URL = "https://login.salesforce.com"

# The pairing: which vendor plays each role for a connection (`books = ...`, `crm = ...`; XZ_BOOKS, XZ_CRM).
BOOKS_VENDORS = ("xero", "quickbooks")
CRM_VENDORS = ("zoho", "salesforce")
DEFAULT_BOOKS, DEFAULT_CRM = "xero", "zoho"

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
class QuickBooksSettings:
    """One QuickBooks Online company (realm) reached through one Intuit app."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    realm_id: str = ""  # empty: the realm remembered from `xz auth quickbooks`
    webhook_verifier: str = field(default="", repr=False)
    api_url: str = QBO_API_URL
    token_url: str = QBO_TOKEN_URL
    auth_url: str = QBO_AUTH_URL


@dataclass(frozen=True)
class SalesforceSettings:
    """One Salesforce org reached through one connected app (`SALESFORCE_*`, `[connections.<name>.salesforce]`)."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    login_url: str = SALESFORCE_LOGIN_URL
    instance_url: str = ""  # empty: the token response's instance_url
    org_id: str = ""  # empty: the org named by the token response's identity URL
    notify_token: str = field(default="", repr=False)  # the Outbound Message endpoint's URL secret


@dataclass(frozen=True)
class Connection:
    """One books organisation paired with one CRM org; `books` and `crm` name the vendor of each role."""

    name: str
    xero: XeroSettings | None
    zoho: ZohoSettings | None
    books: str = DEFAULT_BOOKS
    crm: str = DEFAULT_CRM
    quickbooks: QuickBooksSettings | None = None
    salesforce: SalesforceSettings | None = None

    def uses(self, vendor: str) -> bool:
        """Whether this connection's books or crm is `vendor` (the other vendors' assets skip it)."""
        return vendor in (self.books, self.crm)


def xz_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("XZ_HOME") or "./.xz").resolve()


# A connection's name is its mirror's file name ($XZ_HOME/mirror/<name>.duckdb): letters, digits, `_`, `-`, `.`.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_connection_name(name: str, where: str = "") -> str:
    """`name`, when it is safe as a file name; else one SettingsError naming it."""
    if not _SAFE_NAME.fullmatch(name) or name.endswith((".lock", ".tmp")):
        raise SettingsError(
            f"connection name {name!r}{' in ' + where if where else ''} cannot name its mirror file: use letters, "
            "digits, '_', '-' and '.' (starting with a letter or digit)"
        )
    return name


def legacy_mirror_path(environ: Mapping[str, str] | None = None) -> Path:
    """The single mirror file of earlier versions (`xz migrate` splits it into one file per connection)."""
    return xz_home(environ) / "mirror.duckdb"


def mirror_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XZ_HOME/mirror`: one DuckDB file per connection. Raises SettingsError while the single file of an
    earlier version is still there (its rows would otherwise be silently ignored)."""
    legacy = legacy_mirror_path(environ)
    if legacy.exists():
        raise SettingsError(
            f"the mirror {legacy} is a single file from an earlier version; run `xz migrate` to split it "
            "into one file per connection"
        )
    return xz_home(environ) / "mirror"


def mirror_path(connection: str, environ: Mapping[str, str] | None = None) -> Path:
    """The mirror file of one connection: `$XZ_HOME/mirror/<connection>.duckdb`."""
    return mirror_dir(environ) / f"{check_connection_name(connection)}.duckdb"


def mirror_connections(directory: Path | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The connections with a mirror file in `directory` (default `mirror_dir()`): configured ones first, in
    their configured order, then any other file's (a connection removed from the configuration keeps its rows
    until its file is removed)."""
    directory = mirror_dir(environ) if directory is None else directory
    present = sorted(p.stem for p in directory.glob("*.duckdb")) if directory.is_dir() else []
    try:
        configured = [c.name for c in load_connections(environ)]
    except SettingsError:
        configured = []
    ordered = [name for name in configured if name in set(present)]
    return ordered + [name for name in present if name not in set(ordered)]


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


def unbilled_time_days(environ: Mapping[str, str] | None = None) -> int:
    """`XZ_UNBILLED_TIME_DAYS` (default 30): chargeable project time still not invoiced this many days before
    the organisation's latest logged time is reported (`time_not_invoiced`)."""
    env = os.environ if environ is None else environ
    raw = env.get("XZ_UNBILLED_TIME_DAYS", "30")
    try:
        days = int(raw)
    except ValueError:
        days = -1
    if days < 0:
        raise SettingsError(f"XZ_UNBILLED_TIME_DAYS must be a whole number of days, not {raw!r}")
    return days


def project_cost_rates(connection: str, environ: Mapping[str, str] | None = None) -> dict[str, Decimal]:
    """What an hour of each project user costs the firm (`analytics.project_profitability` subtracts it):
    `cost_rates` of `[connections.<name>.projects]` in the connections file, else `XZ_PROJECT_COST_RATES`, a
    JSON object; keys are a user's id, name or email (case aside), values amounts per hour. None configured: {}."""
    env = os.environ if environ is None else environ
    path = connections_file(env)
    where = f"{path} [connections.{connection}.projects] cost_rates"
    raw: object = {}
    if path.exists():
        raw = (_connection_table(path, connection, "projects") or {}).get("cost_rates") or {}
    if not raw and env.get("XZ_PROJECT_COST_RATES", "").strip():
        where = "XZ_PROJECT_COST_RATES"
        try:
            raw = json.loads(env["XZ_PROJECT_COST_RATES"])
        except json.JSONDecodeError as exc:
            raise SettingsError(f"XZ_PROJECT_COST_RATES is not JSON: {exc}") from None
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{where} must map a user (id, name or email) to an hourly cost")
    out: dict[str, Decimal] = {}
    for user, rate in raw.items():
        try:
            out[str(user).strip().lower()] = Decimal(str(rate))
        except ArithmeticError:
            raise SettingsError(f"{where}: the cost of {user!r} is not an amount: {rate!r}") from None
    return out


def zoho_subforms(environ: Mapping[str, str] | None = None) -> bool:
    """`XZ_ZOHO_SUBFORMS` (default on): read the line items of each new or changed CRM invoice. Zoho lists
    no subforms: they cost one COQL call per 50 such invoices (one GET each where COQL is refused)."""
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


# `[connections.<name>.quickbooks]` keys, written either way (`client_id` or `QBO_CLIENT_ID`).
_QBO_KEYS = ("CLIENT_ID", "CLIENT_SECRET", "REFRESH_TOKEN", "REALM_ID", "WEBHOOK_VERIFIER", "API_URL", "TOKEN_URL",
             "AUTH_URL")  # fmt: skip


def _quickbooks(values: Mapping[str, str], where: str) -> QuickBooksSettings | None:
    if not values.get("QBO_CLIENT_ID"):
        return None
    if not values.get("QBO_CLIENT_SECRET"):
        raise SettingsError(f"QBO_CLIENT_SECRET is missing in {where} (QBO_CLIENT_ID is set)")
    return QuickBooksSettings(
        client_id=values["QBO_CLIENT_ID"],
        client_secret=values["QBO_CLIENT_SECRET"],
        refresh_token=values.get("QBO_REFRESH_TOKEN", ""),
        realm_id=values.get("QBO_REALM_ID", ""),
        webhook_verifier=values.get("QBO_WEBHOOK_VERIFIER", ""),
        api_url=(values.get("QBO_API_URL") or QBO_API_URL).rstrip("/"),
        token_url=values.get("QBO_TOKEN_URL") or QBO_TOKEN_URL,
        auth_url=values.get("QBO_AUTH_URL") or QBO_AUTH_URL,
    )


def _qbo_table(table: object) -> dict[str, str]:
    """`[connections.<name>.quickbooks]` as QBO_* keys."""
    if not isinstance(table, dict):
        return {}
    out = {}
    for key, value in table.items():
        k = str(key).upper()
        k = k if k.startswith("QBO_") else f"QBO_{k}"
        if k[4:] in _QBO_KEYS:
            out[k] = str(value)
    return out


_SF_KEYS = (
    "CLIENT_ID",
    "CLIENT_SECRET",
    "REFRESH_TOKEN",
    "LOGIN_URL",
    "INSTANCE_URL",
    "ORG_ID",
    "NOTIFY_TOKEN",
)


def _salesforce(values: Mapping[str, str], where: str) -> SalesforceSettings | None:
    if not values.get("SALESFORCE_CLIENT_ID"):
        return None
    if not values.get("SALESFORCE_CLIENT_SECRET"):
        raise SettingsError(f"SALESFORCE_CLIENT_SECRET is missing in {where} (SALESFORCE_CLIENT_ID is set)")
    return SalesforceSettings(
        client_id=values["SALESFORCE_CLIENT_ID"],
        client_secret=values["SALESFORCE_CLIENT_SECRET"],
        refresh_token=values.get("SALESFORCE_REFRESH_TOKEN", ""),
        login_url=(values.get("SALESFORCE_LOGIN_URL") or SALESFORCE_LOGIN_URL).rstrip("/"),
        instance_url=(values.get("SALESFORCE_INSTANCE_URL") or "").rstrip("/"),
        org_id=values.get("SALESFORCE_ORG_ID", ""),
        notify_token=values.get("SALESFORCE_NOTIFY_TOKEN", ""),
    )


def _sf_table(table: object) -> dict[str, str]:
    """`[connections.<name>.salesforce]` as SALESFORCE_* keys (its `fields`/`values` tables are the mapping)."""
    if not isinstance(table, dict):
        return {}
    out = {}
    for key, value in table.items():
        k = str(key).upper()
        k = k if k.startswith("SALESFORCE_") else f"SALESFORCE_{k}"
        if k[len("SALESFORCE_") :] in _SF_KEYS and not isinstance(value, dict):
            out[k] = str(value)
    return out


def _pairing(values: Mapping[str, str], where: str, books_key: str, crm_key: str) -> tuple[str, str]:
    """The connection's books and crm vendors (xero and zoho unless said otherwise); one line when unknown."""
    books = (values.get(books_key) or DEFAULT_BOOKS).strip().lower()
    crm = (values.get(crm_key) or DEFAULT_CRM).strip().lower()
    if books not in BOOKS_VENDORS:
        raise SettingsError(f"{books_key.lower()} = {books!r} in {where} is not a books system: use "
                            f"{' or '.join(BOOKS_VENDORS)}")  # fmt: skip
    if crm not in CRM_VENDORS:
        raise SettingsError(
            f"{crm_key.lower()} = {crm!r} in {where} is not a CRM: use {' or '.join(CRM_VENDORS)}"
        )
    return books, crm


# The connections file as last parsed, by path and text: every asset of every connection asks for its
# connection (a batched run of 50 connections, some 2,000 times), and parsing the whole file each time grew
# with the fleet (9 ms a call at 10 connections). Reading the text is cheap; a changed file parses again.
_PARSED: dict[str, tuple[str, tuple[Connection, ...]]] = {}
_DOC: dict[str, tuple[str, dict]] = {}


def load_connections(environ: Mapping[str, str] | None = None) -> list[Connection]:
    """The configured connections: the connections file when it exists, else the environment."""
    env = os.environ if environ is None else environ
    path = connections_file(env)
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = None
    if text is not None:
        cached = _PARSED.get(str(path))
        if cached is not None and cached[0] == text:
            return list(cached[1])
        found = _parse_connections(path, text)
        _PARSED.clear()  # one file in use at a time (tests switch XZ_HOME)
        _PARSED[str(path)] = (text, tuple(found))
        return found
    where = "the environment"
    xero, zoho, qbo = _xero(env, where), _zoho(env, where), _quickbooks(env, where)
    sf = _salesforce(env, where)
    if xero is None and zoho is None and qbo is None and sf is None:
        return []
    books, crm = _pairing(env, where, "XZ_BOOKS", "XZ_CRM")
    name = check_connection_name(env.get("XZ_CONNECTION", DEFAULT_CONNECTION), "XZ_CONNECTION")
    return [Connection(name=name, xero=xero, zoho=zoho, books=books, crm=crm,
                       quickbooks=qbo, salesforce=sf)]  # fmt: skip


def _connections_doc(path: Path, text: str | None = None) -> dict:
    """The connections file parsed, once for each text it has: each connection's mapping and cost rates
    are read from it every step (at 1,000 connections a parse takes ~0.2 s)."""
    text = path.read_text() if text is None else text
    cached = _DOC.get(str(path))
    if cached is not None and cached[0] == text:
        return cached[1]
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from None
    _DOC.clear()
    _DOC[str(path)] = (text, doc)
    return doc


def _connection_table(path: Path, connection: str, key: str) -> object:
    """`[connections.<connection>.<key>]` of the connections file, a copy (the parsed file is shared)."""
    return copy.deepcopy(_connections_doc(path).get("connections", {}).get(connection, {}).get(key))


def _parse_connections(path: Path, text: str) -> list[Connection]:
    doc = _connections_doc(path, text)
    tables = doc.get("connections", {})
    if not isinstance(tables, dict) or not tables:
        raise SettingsError(f"{path} has no [connections.<name>] table")
    found = []
    for name, values in tables.items():
        where = f"{path} [connections.{name}]"
        check_connection_name(name, str(path))
        if not isinstance(values, dict):
            raise SettingsError(f"{where} is not a table")
        qbo = _qbo_table(values.get("quickbooks"))
        sf = _sf_table(values.get("salesforce"))
        values = {str(k).upper(): str(v) for k, v in values.items() if not isinstance(v, dict)}
        books, crm = _pairing(values, where, "BOOKS", "CRM")
        found.append(Connection(name=name, xero=_xero(values, where), zoho=_zoho(values, where), books=books,
                                crm=crm, quickbooks=_quickbooks({**values, **qbo}, where),
                                salesforce=_salesforce({**values, **sf}, where)))  # fmt: skip
    return found


def get_connection(name: str, environ: Mapping[str, str] | None = None) -> Connection:
    connections = load_connections(environ)
    for conn in connections:
        if conn.name == name:
            return conn
    raise _unknown([name], connections, environ)


def not_paired(connection: str, vendor: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Why `vendor`'s assets and checks do nothing for `connection` (its books and crm are other vendors), or
    None when the connection uses it (or is not configured: the vendor's resource then says what is missing)."""
    try:
        conn = get_connection(connection, environ)
    except SettingsError:
        return None
    if conn.uses(vendor):
        return None
    return f"connection {conn.name} pairs {conn.books} with {conn.crm}: nothing to do with {vendor}"


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
        table = _connection_table(path, connection, "zoho")
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


def salesforce_mapping_doc(connection: str, environ: Mapping[str, str] | None = None) -> tuple[dict, str]:
    """The raw field mapping of a connection's Salesforce org (`salesforce/fieldmap.py` parses it):
    `fields`/`values` of `[connections.<name>.salesforce]`, else `XZ_SALESFORCE_FIELDS` (JSON, the same keys)."""
    env = os.environ if environ is None else environ
    path = connections_file(env)
    if path.exists():
        table = _connection_table(path, connection, "salesforce")
        table = (
            {k: v for k, v in (table or {}).items() if k in ("fields", "values")}
            if isinstance(table, dict)
            else {}
        )
        return table, f"{path} [connections.{connection}.salesforce]"
    raw = env.get("XZ_SALESFORCE_FIELDS", "").strip()
    if not raw:
        return {}, "XZ_SALESFORCE_FIELDS"
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"XZ_SALESFORCE_FIELDS is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SettingsError("XZ_SALESFORCE_FIELDS must be a JSON object")
    return (doc if any(k in doc for k in ("fields", "values")) else {"fields": doc}), "XZ_SALESFORCE_FIELDS"


DEFAULT_REMINDER_STEPS = (-7, -3, -1, 1, 7, 14, 30)


def reminder_steps(environ: Mapping[str, str] | None = None) -> tuple[int, ...]:
    """`XZ_REMINDER_STEPS`: the days relative to an invoice's due date a reminder is planned for, e.g.
    `-7,-3,-1,1,7,14,30` (the default; negative: before due)."""
    env = os.environ if environ is None else environ
    raw = env.get("XZ_REMINDER_STEPS", "").strip()
    if not raw:
        return DEFAULT_REMINDER_STEPS
    try:
        steps = tuple(sorted({int(v) for v in raw.replace(";", ",").split(",") if v.strip()}))
    except ValueError:
        raise SettingsError(
            f"XZ_REMINDER_STEPS: {raw!r} is not a list of whole days like -7,-1,1,7"
        ) from None
    if not steps or 0 in steps:
        raise SettingsError("XZ_REMINDER_STEPS: give days before (-) or after (+) the due date, not 0")
    return steps


def templates_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`XZ_TEMPLATES_DIR` (default `$XZ_HOME/templates`): reminder templates that replace the shipped ones."""
    env = os.environ if environ is None else environ
    raw = env.get("XZ_TEMPLATES_DIR", "").strip()
    return Path(raw).expanduser().resolve() if raw else xz_home(env) / "templates"
