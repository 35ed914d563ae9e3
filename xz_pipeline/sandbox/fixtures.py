"""Hand-made scenarios: seed the emulators from JSON files in the APIs' own response shapes.

A generated world is realistic but large; a bug report or an edge case wants five records someone
chose. A fixture folder holds exactly what each API would answer to a GET, so a scenario can be
copied from a real response, exported from a generated world (`dump_fixture_dir`), trimmed by hand
and loaded again (`load_fixture_dir`)::

    <dir>/xero/Organisation.json   {"Organisations": [{...}]}   (optional: the tenant's name, currency, id)
    <dir>/xero/Accounts.json       {"Accounts": [...]}
    <dir>/xero/Items.json          {"Items": [...]}
    <dir>/xero/Contacts.json       {"Contacts": [...]}           dates as "/Date(1700000000000+0000)/"
    <dir>/xero/Invoices.json       {"Invoices": [...]}
    <dir>/xero/CreditNotes.json    {"CreditNotes": [...]}
    <dir>/xero/Payments.json       {"Payments": [...]}
    <dir>/zoho/org.json            {"org": [{...}]}              (optional: company_name, id, time_zone, iso_code)
    <dir>/zoho/Products.json       {"data": [...]}
    <dir>/zoho/Accounts.json       {"data": [...]}
    <dir>/zoho/Contacts.json       {"data": [...]}
    <dir>/zoho/Deals.json          {"data": [...]}
    <dir>/zoho/Invoices.json       {"data": [...]}

Any file may be missing. Files load in the order above, so records load after those they refer to.
A new Xero tenant starts with a default chart of accounts; a fixture account with the Code of a
default account replaces it (the emulator's `load` does this: codes are unique in Xero).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

XERO_COLLECTIONS = ("Accounts", "Items", "Contacts", "Invoices", "CreditNotes", "Payments")
ZOHO_MODULES = ("Products", "Accounts", "Contacts", "Deals", "Invoices")

DEFAULT_TENANT_NAME = "Fixture Books Ltd"
DEFAULT_ORG_NAME = "Fixture CRM Ltd"


class FixtureError(ValueError):
    """A fixture file is not in the API's shape; the message names the file."""


def _read(path: Path, key: str) -> list[dict] | None:
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FixtureError(f"{path}: not valid JSON ({exc})") from None
    records = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise FixtureError(f'{path}: expected {{"{key}": [ {{...}}, ... ]}} as the API returns it')
    return records


def load_fixture_dir(path: str | Path, xero: Any, zoho: Any, profile: Any = None) -> tuple[str, str]:
    """Create one Xero tenant and one Zoho org of `profile` (default full) from `path`; returns
    (tenant_id, org_id). A CRM record carrying a field the profile's org lacks is refused, naming the file
    and the field: the profile sets the org's metadata, the fixture only its records."""
    root = Path(path)
    if not root.is_dir():
        raise FixtureError(f"{root}: fixture folder not found")
    xdir, zdir = root / "xero", root / "zoho"

    orgs = _read(xdir / "Organisation.json", "Organisations") or [{}]
    org = orgs[0]
    tenant_id = xero.add_tenant(
        org.get("Name") or DEFAULT_TENANT_NAME,
        tenant_id=org.get("OrganisationID"),
        base_currency=org.get("BaseCurrency") or "NZD",
        country_code=org.get("CountryCode") or "NZ",
    )
    if org:
        xero.load(tenant_id, "Organisation", [org])
    base = org.get("BaseCurrency") or "NZD"
    for collection in XERO_COLLECTIONS:
        file = xdir / f"{collection}.json"
        records = _read(file, collection)
        if records and getattr(profile, "single_currency", False):
            _one_currency(file, records, base, profile)
        if records:
            _unique(file, records, XERO_IDS[collection])
            xero.load(tenant_id, collection, [_lineless(collection, r) for r in records])

    crm = (_read(zdir / "org.json", "org") or [{}])[0]
    org_kwargs = {"org_id": crm.get("id")}
    if crm.get("time_zone"):
        org_kwargs["timezone"] = crm["time_zone"]
    if crm.get("iso_code"):
        org_kwargs["currency"] = crm["iso_code"]
    org_id = zoho.add_org(crm.get("company_name") or DEFAULT_ORG_NAME, profile=profile, **org_kwargs)
    for module in ZOHO_MODULES:
        file = zdir / f"{module}.json"
        records = _read(file, "data")
        if not records:
            continue
        known = zoho.field_names(org_id, module)
        if known is None:
            raise FixtureError(f"{file}: this org has no {module} module (profile {_name(profile)})")
        for i, record in enumerate(records):
            extra = sorted(k for k in record if k != "id" and not k.startswith("$") and k not in known)
            if extra:
                raise FixtureError(
                    f"{file}: record {record.get('id') or i} carries {extra[0]}, a field the "
                    f"{_name(profile)} org's {module} does not have"
                )
        _unique(file, records, "id")
        zoho.load(org_id, module, records)
    return tenant_id, org_id


XERO_IDS = {"Accounts": "AccountID", "Items": "ItemID", "Contacts": "ContactID", "Invoices": "InvoiceID",
            "CreditNotes": "CreditNoteID", "Payments": "PaymentID"}  # fmt: skip


def _unique(file: Path, records: list[dict], id_field: str) -> None:
    """An id twice in one file would silently become one record (the emulators hold a record per id):
    refused, naming it. (A page read twice while records change is the client's test, not a fixture's.)"""
    seen: set[str] = set()
    for record in records:
        rid = record.get(id_field)
        if rid is None:
            continue
        key = str(rid) if not isinstance(rid, (dict, list)) else json.dumps(rid, sort_keys=True)
        if key in seen:
            raise FixtureError(
                f"{file}: {id_field} {key} appears twice; an organisation holds one record per id"
            )
        seen.add(key)


def _lineless(collection: str, record: dict) -> dict:
    """A document without line items totals zero, as Xero serves it (the emulator derives totals from lines,
    and has none to derive them from)."""
    if collection in ("Invoices", "CreditNotes") and not record.get("LineItems"):
        return {
            "SubTotal": 0,
            "TotalTax": 0,
            "Total": 0,
            **record,
            "LineItems": record.get("LineItems") or [],
        }
    return record


def _one_currency(file: Path, records: list[dict], base: str, profile: Any) -> None:
    """A single-currency organisation bills in its base currency alone."""
    for i, record in enumerate(records):
        for key in ("CurrencyCode", "DefaultCurrency"):
            if record.get(key) not in (None, "", base):
                raise FixtureError(
                    f"{file}: record {i} carries {key} {record[key]}, a currency the "
                    f"{_name(profile)} organisation (base {base}) does not have"
                )


def _name(profile: Any) -> str:
    return getattr(profile, "name", None) or profile or "full"


def dump_fixture_dir(path: str | Path, xero: Any, tenant_id: str, zoho: Any, org_id: str) -> Path:
    """Write the emulators' current state for one tenant and one org in the fixture layout."""
    root = Path(path)
    xdir, zdir = root / "xero", root / "zoho"
    xdir.mkdir(parents=True, exist_ok=True)
    zdir.mkdir(parents=True, exist_ok=True)
    _write(xdir / "Organisation.json", "Organisations", xero.dump(tenant_id, "Organisation"))
    for collection in XERO_COLLECTIONS:
        _write(xdir / f"{collection}.json", collection, xero.dump(tenant_id, collection))
    for module in ZOHO_MODULES:
        if zoho.field_names(org_id, module) is not None:  # an edition without the module has no file
            _write(zdir / f"{module}.json", "data", zoho.dump(org_id, module))
    return root


def _write(path: Path, key: str, records: list[dict]) -> None:
    path.write_text(json.dumps({key: records}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
