"""The whole pipeline on every sandbox profile: the Zoho side asks only for what each org has, maps the
org's own fields, and degrades with a reason where the org lacks a field, module or endpoint."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from xz_pipeline import runner, settings
from xz_pipeline.core.store import Store
from xz_pipeline.sandbox.profiles import PROFILE_NAMES
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.zoho import schema as zoho_schema
from xz_pipeline_tests.mirrors import only_mirror

MODULES = ("Accounts", "Contacts", "Deals", "Invoices", "Products")
# The sandbox writes the renamed org's own names for our fields into its connection's mapping (what a person
# connecting it would write); the test adds which of its Account_Type values mean customer.
RENAMED = """
[connections."{name}".zoho]
customer_types = ["Customer", "Key Account"]
"""


def _asked(path: str, query: dict) -> tuple[str, list[str]] | None:
    """(module whose fields are asked, the fields) of a list, search or related-list call."""
    parts = path.removeprefix("/crm/v8/").split("/")
    if "fields" not in query or parts[0] in ("settings", "coql", "org", "users", "actions"):
        return None
    if len(parts) == 1 or parts[-1] == "search":
        return parts[0], query["fields"].split(",")
    if len(parts) == 3:  # a related list: the related module's fields and the relation's own
        return parts[2], [f for f in query["fields"].split(",") if f not in ("Quantity", "List_Price")]
    return None


def _rows(store: Store, sql: str, args=()) -> list[tuple]:
    with store.read() as con:
        return con.execute(sql, list(args)).fetchall()


@pytest.fixture(scope="module", params=PROFILE_NAMES)
def synced(request, tmp_path_factory):
    """Each profile's tiny world, mirrored, reconciled and planned once (nothing written back)."""
    profile = request.param
    home = tmp_path_factory.mktemp(f"profile-{profile}")
    mp = pytest.MonkeyPatch()
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir()
    try:
        with SandboxServer(seed=3, size="tiny", profile=profile) as sb:
            path = sb.write_connections_file(settings.connections_file())
            name = sb.connection_name(0)
            if profile == "renamed":
                path.write_text(path.read_text() + RENAMED.format(name=name))
            inst = runner.instance()
            outcomes = runner.sync(inst=inst)
            event = inst.get_latest_materialization_event(dg.AssetKey("zoho_deals"))
            missing = event.asset_materialization.metadata["missing_fields"].value if event else None
            org = sb.zoho.orgs[sb.org_ids[0]]
            has = {m: {f.api_name for f in org.modules[m].fields} for m in MODULES if m in org.modules}
            received = list(sb.zoho.received)
            yield profile, outcomes, Store(only_mirror()), name, has, received, missing
    finally:
        mp.undo()


def test_every_call_asks_only_for_fields_the_org_has(synced):
    profile, outcomes, _store, _name, has, received, _missing = synced
    assert all(o.success for o in outcomes), [o.error for o in outcomes]
    asked = [(r.path, a) for r in received if (a := _asked(r.path, r.query))]
    assert asked, "no list call was made"
    wrong = [(path, module, [f for f in fields if f not in has.get(module, set()) and f != "id"])
             for path, (module, fields) in asked]  # fmt: skip
    assert [w for w in wrong if w[2]] == [], profile
    # a refused list or search call would mean a field the org lacks; a related list the org does not
    # have is asked once (its refusal is how Zoho says so), then the run falls back
    lists = [r for r in received if r.status == 400 and (a := _asked(r.path, r.query)) and a[0] in MODULES
             and r.path.count("/") == 3 or r.path.endswith("/search") and r.status == 400]  # fmt: skip
    assert lists == [], profile
    probes = [r for r in received if r.status == 400 and r.path.endswith("/Products")]
    assert len(probes) <= 1, profile


def test_schema_kept_in_the_mirror(synced):
    profile, _outcomes, store, name, has, _received, _m = synced
    schema = zoho_schema.load(store, name)
    assert schema is not None and schema.known
    for module, fields in has.items():
        assert set(schema.modules[module]) == fields, (profile, module)
    if profile == "standard":
        assert "Invoices" in schema.absent
    if profile == "single-currency":
        assert schema.multi_currency is False and schema.home_currency
    lines = zoho_schema.status_lines(store, [name])
    assert lines[0].startswith(f"zoho schema {name}: read ")
    if profile == "bare":
        assert "missing: Accounts.Xero_Contact_ID" in lines[0] and "xz setup zoho" not in lines[0]


def test_records_without_currency_are_in_the_home_currency(synced):
    profile, _outcomes, store, name, _has, _received, _m = synced
    home = zoho_schema.load(store, name).home_currency
    deals = _rows(
        store, "select currency, count(*) from canonical.crm_deals where connection = ? group by 1", [name]
    )
    assert deals and None not in {c for c, _ in deals}
    if profile == "single-currency":
        assert {c for c, _ in deals} == {home}
        raw = _rows(store, "select count(*) from zoho.deals where currency is not null")
        assert raw == [(0,)]


def test_won_is_the_stage_forecast_type(synced):
    profile, _outcomes, store, name, _has, _received, _m = synced
    won = _rows(
        store,
        "select distinct stage_raw from canonical.crm_deals where connection = ? and stage = 'won'",
        [name],
    )
    assert won == [("Deal Won",)] if profile == "renamed" else won == [("Closed Won",)]


def test_renamed_fields_are_read_through_the_mapping(synced):
    profile, _outcomes, store, name, _has, _received, _m = synced
    if profile != "renamed":
        pytest.skip("only the renamed org keeps our fields under its own names")
    linked = _rows(store, "select count(*) from zoho.accounts where xero_contact_id is not null")[0][0]
    statuses = {
        s
        for (s,) in _rows(
            store, "select distinct payment_status from zoho.deals where payment_status is not null"
        )
    }
    assert linked > 0
    assert "Fully Paid" not in statuses and statuses <= {
        "Unpaid",
        "Partially Paid",
        "Paid",
        "Overdue",
        "-None-",
    }
    with store.read() as con:
        mapping = con.execute(
            "select value from meta.vendor_schema where module = '@mapping' and field = 'Deals.Payment_Status'"
        ).fetchall()
    assert mapping == [("Invoice_Status",)]


def test_bare_org_plans_skipped_rows_with_the_reason(synced):
    profile, _outcomes, store, name, _has, _received, _m = synced
    if profile != "bare":
        pytest.skip("only the bare org lacks our fields")
    rows = _rows(
        store, "select policy, field, status, error from writeback.plan where connection = ?", [name]
    )
    skipped = [r for r in rows if r[2] == "skipped"]
    assert skipped, rows[:5]
    assert all("does not exist in this org: run `xz setup zoho` or map it" in r[3] for r in skipped)
    assert not [r for r in rows if r[2] == "planned" and r[0] == "xero_customer_to_crm"]


def test_extract_metadata_names_missing_fields(synced):
    profile, _outcomes, _store, _name, _has, _received, missing = synced
    if profile not in ("bare", "single-currency"):
        pytest.skip("the other orgs miss none of the fields we read")
    fields = {m["field"] for m in missing}
    if profile == "bare":
        assert "Deals.Payment_Status" in fields
        assert any("payment_to_crm" in m["disables"] for m in missing)
    else:
        assert fields == {"Deals.Currency"}
    json.dumps(missing)
