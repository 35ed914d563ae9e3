"""The hostile fixture end to end: `xz sync --only mirror` (in process) on records an operator's trial
found breaking whole entities. No entity crashes; each hostile record is typed or quarantined naming its
field; the rest lands; a quarantined record stays out of `canonical.*` until the sandbox record is fixed
and re-synced, and then its quarantine row is released."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from xz_pipeline import runner, settings
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.sandbox_env import export_sandbox

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"


def _records(rel: str) -> list[dict]:
    return next(iter(json.loads((HOSTILE / rel).read_text()).values()))


def _by(rel: str, key: str, value) -> dict:
    return next(r for r in _records(rel) if r.get(key) == value)


MIRROR: list[Path] = []  # the module's mirror (each test gets its own XZ_HOME from conftest)


def _rows(sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(MIRROR[-1]), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def _open_quarantine() -> dict[tuple[str, str], tuple[str, str]]:
    """(entity, record id) -> (rule, field) of the open ERROR rows."""
    rows = _rows(
        "select entity, record_id, rule, field from meta.quarantine where resolved_at is null "
        "and severity = 'ERROR'"
    )
    return {(e, r): (rule, f) for e, r, rule, f in rows}


# (entity, fixture file, the record's name or id field and value, the rule and the field it fails)
XERO_ITEM = _records("xero/Items.json")[0]["ItemID"]
BIG_INVOICE = _by("xero/Invoices.json", "InvoiceNumber", "INV-0000")
ZZZ_INVOICE = _by("xero/Invoices.json", "InvoiceNumber", "INV-0002")
LINELESS = _by("xero/Invoices.json", "InvoiceNumber", "INV-0001")
LIST_EMAIL = _by("xero/Contacts.json", "Name", "Hostile List-Email")
NO_DATE = _by("xero/Contacts.json", "Name", "Never Updated Ltd")
MAYBE = _records("zoho/Products.json")[0]
HIGH = _records("zoho/Deals.json")[0]
HUGE_DEAL = _records("zoho/Deals.json")[1]
NAMELESS = _records("zoho/Contacts.json")[0]
OWNERLESS = _records("zoho/Accounts.json")[0]

EXPECTED = {
    ("Items", XERO_ITEM): ("typed:items.is_sold", "is_sold"),
    ("Invoices", BIG_INVOICE["InvoiceID"]): ("typed:invoices.sub_total", "sub_total"),
    ("Invoices", ZZZ_INVOICE["InvoiceID"]): ("invoices_schema", "currency_code"),
    ("Contacts", LIST_EMAIL["ContactID"]): ("typed:contacts.email", "email"),
    ("Products", MAYBE["id"]): ("typed:products.active", "active"),
    ("Deals", HIGH["id"]): ("typed:deals.probability", "probability"),
    ("Deals", HUGE_DEAL["id"]): ("typed:deals.amount", "amount"),
    ("Contacts", NAMELESS["id"]): ("contacts_schema", "last_name"),
}


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """The hostile fixture served and mirrored once: (sandbox, connection, home, first outcome)."""
    home = tmp_path_factory.mktemp("hostile-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir()
    try:
        with SandboxServer(fixture_dir=HOSTILE) as sb:
            name = sb.connection_name(0)
            export_sandbox(mp, sb, name)
            (outcome,) = runner.sync([name], inst=runner.instance(home), only="mirror")
            MIRROR.append(settings.mirror_path(name))
            yield sb, name, home, outcome
    finally:
        mp.undo()


def test_no_entity_crashes_and_the_clean_records_land(synced):
    _, _, _, outcome = synced
    assert outcome.success, outcome.error
    # the ERROR checks quarantined a record each and let the run go on (reported at WARN)
    assert sorted(outcome.failed_checks) == [
        "xero_invoices:invoices_schema (WARN)", "zoho_contacts:contacts_schema (WARN)"]  # fmt: skip
    counts = {
        (v, e): n for v, e, n in _rows("select vendor, entity, count(*) from landing.records group by 1, 2")
    }
    assert {k: counts[k] for k in [("xero", "Contacts"), ("xero", "Invoices"), ("xero", "Items")]} == {
        ("xero", "Contacts"): 10, ("xero", "Invoices"): 10, ("xero", "Items"): 6}  # fmt: skip
    assert {e: counts["zoho", e] for e in ["Products", "Deals", "Accounts", "Contacts"]} == {
        "Products": 8, "Deals": 8, "Accounts": 8, "Contacts": 8}  # fmt: skip
    # every record that typed landed in its table; each typing failure kept its payload in landing only
    assert _rows("select count(*) from xero.items") == [(5,)]
    assert _rows("select count(*) from xero.invoices") == [(9,)]
    assert _rows("select count(*) from zoho.products") == [(7,)]
    assert _rows("select count(*) from zoho.deals") == [(6,)]
    assert _rows("select count(*) from zoho.accounts") == [(8,)]


def test_every_hostile_record_is_typed_or_quarantined_naming_its_field(synced):
    quarantined = _open_quarantine()
    for (entity, rid), (rule, field) in EXPECTED.items():
        assert quarantined.get((entity, rid)) == (rule, field), (entity, rid, quarantined.get((entity, rid)))
    # a contact's AR balance, derived by Xero from the 1e16 invoice, is out of range too
    extra = {k: v for k, v in quarantined.items() if k not in EXPECTED}
    assert set(extra.values()) == {("typed:contacts.ar_outstanding", "ar_outstanding")}
    # every quarantined record's raw payload is in landing, under the hash its quarantine row names
    missing = _rows(
        "select q.record_id from meta.quarantine q where not exists (select 1 from landing.records l "
        "where l.record_id = q.record_id and l.payload_hash = q.payload_hash)"
    )
    assert missing == []
    # typed correctly: year 0001 is NULL with a note; no lines is no lines; a null owner is a null owner
    assert _rows("select updated_utc from xero.contacts where contact_id = ?", [NO_DATE["ContactID"]]) == [
        (None,)
    ]
    (note,) = _rows("select rule, severity, resolved_at is not null from meta.quarantine where record_id = ?",
                    [NO_DATE["ContactID"]])  # fmt: skip
    assert note == ("note:contacts.updated_utc", "NOTE", True)
    assert _rows("select total from xero.invoices where invoice_id = ?", [LINELESS["InvoiceID"]])[0][0] == 0
    assert _rows("select count(*) from xero.invoice_lines where invoice_id = ?", [LINELESS["InvoiceID"]]) == [
        (0,)
    ]
    assert _rows("select owner_id, name from zoho.accounts where account_id = ?", [OWNERLESS["id"]]) == [
        (None, OWNERLESS["Account_Name"])
    ]
    # never stringified: no list repr anywhere in the contacts table
    assert _rows("select count(*) from xero.contacts where email like '[%'") == [(0,)]


def test_quarantined_records_stay_out_of_the_canonical_views(synced):
    assert _rows("select count(*) from xero.invoices where invoice_id = ?", [ZZZ_INVOICE["InvoiceID"]]) == [
        (1,)
    ]
    assert _rows("select count(*) from canonical.books_invoices where invoice_id = ?",
                 [ZZZ_INVOICE["InvoiceID"]]) == [(0,)]  # fmt: skip
    assert _rows("select count(*) from canonical.books_invoices") == [(8,)]
    assert _rows("select count(*) from canonical.crm_contacts where contact_id = ?", [NAMELESS["id"]]) == [
        (0,)
    ]
    assert _rows("select count(*) from canonical.crm_contacts where name is null or last_name is null") == [
        (0,)
    ]
    assert _rows("select count(*) from canonical.crm_contacts") == [(7,)]


def test_a_fixed_record_is_rechecked_and_released(synced, monkeypatch):
    sb, name, home, _ = synced
    monkeypatch.setenv("XZ_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    export_sandbox(monkeypatch, sb, name)
    later = datetime(2026, 11, 20, 9, 0, tzinfo=UTC).isoformat()
    org = sb.org_ids[0]
    sb.zoho.load(org, "Products", [{**MAYBE, "Product_Active": True, "Modified_Time": later}])
    sb.zoho.load(org, "Contacts", [{**NAMELESS, "Last_Name": "Fixed", "Modified_Time": later}])
    (outcome,) = runner.sync([name], inst=runner.instance(home), only="mirror")
    assert outcome.success, outcome.error

    quarantined = _open_quarantine()
    assert ("Products", MAYBE["id"]) not in quarantined and ("Contacts", NAMELESS["id"]) not in quarantined
    released = _rows("select entity, rule, resolved_at is not null from meta.quarantine where record_id in (?, ?) "
                     "order by entity", [MAYBE["id"], NAMELESS["id"]])  # fmt: skip
    assert released == [("Contacts", "contacts_schema", True), ("Products", "typed:products.active", True)]
    assert _rows("select active from zoho.products where product_id = ?", [MAYBE["id"]]) == [(True,)]
    assert _rows("select active from canonical.crm_products where product_id = ?", [MAYBE["id"]]) == [(True,)]
    assert _rows("select last_name from canonical.crm_contacts where contact_id = ?", [NAMELESS["id"]]) == [
        ("Fixed",)
    ]
    # the records nobody fixed stay quarantined: they were not re-checked into canonical
    assert ("Invoices", ZZZ_INVOICE["InvoiceID"]) in quarantined and ("Deals", HIGH["id"]) in quarantined
    assert _rows("select count(*) from canonical.books_invoices where invoice_id = ?",
                 [ZZZ_INVOICE["InvoiceID"]]) == [(0,)]  # fmt: skip
