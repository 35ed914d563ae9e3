"""The Zoho emulator per organisation profile: the metadata, features and answers of orgs unlike ours."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from xz_pipeline.sandbox.profiles import INTEGRATION_FIELDS
from xz_pipeline.sandbox.world import generate
from xz_pipeline.sandbox.zoho import ZohoEmulator
from xz_pipeline_tests.sandbox.zoho.support import CLIENT_ID, CLIENT_SECRET, make_org


def _fields(org, module: str) -> dict[str, dict]:
    r = org.get("settings/fields", params={"module": module})
    assert r.status_code == 200, r.text
    return {f["api_name"]: f for f in r.json()["fields"]}


def _org_json(org) -> dict:
    r = org.get("org")
    assert r.status_code == 200
    return r.json()["org"][0]


def test_org_tells_the_truth_about_multi_currency():
    full, single = make_org(profile="full"), make_org(profile="single-currency")
    assert _org_json(full)["mc_status"] is True
    assert all("Currency" in _fields(full, m) for m in ("Accounts", "Deals", "Invoices", "Products"))
    assert _org_json(single)["mc_status"] is False
    for module in ("Accounts", "Deals", "Invoices", "Products"):
        names = _fields(single, module)
        assert "Currency" not in names and "Exchange_Rate" not in names
        assert "Deal_Name" in _fields(single, "Invoices")  # the rest of the org is as usual


def test_a_list_asking_for_a_field_the_org_lacks_is_refused_with_invalid_data():
    single = make_org(profile="single-currency")
    r = single.get("Deals", params={"fields": "Deal_Name,Currency"})
    assert r.status_code == 400
    assert r.json() == {"code": "INVALID_DATA", "details": {"api_name": "Currency", "param_name": "fields"},
                        "message": "invalid data", "status": "error"}  # fmt: skip
    full = make_org()
    assert full.get("Deals", params={"fields": "Deal_Name,Currency"}).status_code == 204  # exists, no records
    assert (
        full.get("Deals", params={"fields": "Deal_Name,Nonesuch"}).json()["details"]["api_name"] == "Nonesuch"
    )
    rec = full.post("Deals", json={"data": [{"Deal_Name": "One", "Stage": "Qualification"}]}).json()["data"][
        0
    ]
    rid = rec["details"]["id"]
    assert full.get(f"Deals/{rid}", params={"fields": "Nonesuch"}).json()["code"] == "INVALID_DATA"
    assert full.get(f"Deals/{rid}", params={"fields": "Deal_Name"}).status_code == 200


def test_bare_org_has_none_of_our_fields_until_setup_creates_them():
    org = make_org(profile="bare", edition="Enterprise")
    for module, ours in INTEGRATION_FIELDS.items():
        assert not set(ours) & set(_fields(org, module)), module
        assert not any(f["custom_field"] for f in _fields(org, module).values()), module
    assert org.get("Accounts", params={"fields": "Account_Name,Xero_Contact_ID"}).status_code == 400
    created = org.post("settings/fields", params={"module": "Accounts"}, json={"fields": [
        {"field_label": "Xero Contact ID", "data_type": "text", "length": 64, "external": {"type": "org", "show": True}},
        {"field_label": "Outstanding Balance", "data_type": "currency"},
    ]})  # fmt: skip
    assert created.status_code == 201, created.text
    fields = _fields(org, "Accounts")
    assert (
        fields["Xero_Contact_ID"]["custom_field"] is True
        and fields["Xero_Contact_ID"]["external"]["type"] == "org"
    )
    assert fields["Outstanding_Balance"]["data_type"] == "currency"
    org.post("Accounts", json={"data": [{"Account_Name": "Harbour", "Xero_Contact_ID": "xc-1"}]})
    listed = org.get("Accounts", params={"fields": "Account_Name,Xero_Contact_ID"})
    assert listed.status_code == 200
    assert [(a["Account_Name"], a["Xero_Contact_ID"]) for a in listed.json()["data"]] == [("Harbour", "xc-1")]


def test_custom_field_quota_of_the_edition_refuses_one_more():
    org = make_org(profile="standard")  # Standard: 10 custom fields per module, 6 of ours on Accounts already
    assert _org_json(org)["license_details"]["paid_type"] == "Standard"
    assert sum(f["custom_field"] for f in _fields(org, "Accounts").values()) == 6
    for batch in (range(3), range(3, 4)):
        r = org.post("settings/fields", params={"module": "Accounts"},
                     json={"fields": [{"field_label": f"Extra {i}", "data_type": "text"} for i in batch]})  # fmt: skip
        assert r.status_code == 201, r.text
    refused = org.post("settings/fields", params={"module": "Accounts"},
                       json={"fields": [{"field_label": "One Too Many", "data_type": "text"}]})  # fmt: skip
    assert refused.status_code == 400
    (item,) = refused.json()["fields"]
    assert item["code"] == "LIMIT_EXCEEDED" and item["details"]["limit"] == 10
    assert "One_Too_Many" not in _fields(org, "Accounts")


def test_standard_edition_lacks_invoices_composite_and_deal_products():
    org = make_org(profile="standard")
    modules = [m["api_name"] for m in org.get("settings/modules").json()["modules"]]
    assert "Invoices" not in modules and "Deals" in modules
    r = org.get("Invoices", params={"fields": "Subject"})
    assert (r.status_code, r.json()["code"]) == (400, "INVALID_MODULE")
    assert org.get("settings/fields", params={"module": "Invoices"}).json()["code"] == "INVALID_DATA"
    comp = org.post("__composite_requests", json={"__composite_requests": [
        {"method": "GET", "uri": "/crm/v8/Deals", "params": {"fields": "Deal_Name"}, "sub_request_id": "1"}]})  # fmt: skip
    assert comp.status_code == 400
    assert comp.json()["code"] == "FEATURE_NOT_SUPPORTED"
    deal = org.post("Deals", json={"data": [{"Deal_Name": "D", "Stage": "Qualification"}]}).json()["data"][0]
    rel = org.get(f"Deals/{deal['details']['id']}/Products", params={"fields": "Product_Name,Quantity"})
    assert rel.status_code == 400 and rel.json()["code"] == "INVALID_DATA"
    full = make_org()
    assert (
        full.get(f"Deals/{_deal(full)}/Products", params={"fields": "Product_Name,Quantity"}).status_code
        == 204
    )


def _deal(org) -> str:
    return org.post("Deals", json={"data": [{"Deal_Name": "D", "Stage": "Qualification"}]}).json()["data"][0][
        "details"
    ]["id"]


def test_renamed_org_names_its_won_stage_and_link_fields_its_own_way():
    org = make_org(profile="renamed")
    stage = _fields(org, "Deals")["Stage"]
    values = {v["actual_value"]: v for v in stage["pick_list_values"]}
    assert "Closed Won" not in values
    assert values["Deal Won"]["forecast_type"] == "Closed Won" and values["Deal Won"]["probability"] == 100
    assert (
        values["Closed Lost"]["forecast_type"] == "Closed Lost"
        and values["Qualification"]["forecast_type"] == "Open"
    )
    account_types = [v["actual_value"] for v in _fields(org, "Accounts")["Account_Type"]["pick_list_values"]]
    assert {"Key Account", "Former Customer"} <= set(account_types) and "Customer" in account_types
    accounts = _fields(org, "Accounts")
    assert "Xero_ID" in accounts and "Xero_Contact_ID" not in accounts
    assert accounts["Xero_ID"]["external"]["type"] == "org"
    status = _fields(org, "Deals")["Invoice_Status"]
    assert "Payment_Status" not in _fields(org, "Deals")
    assert [v["actual_value"] for v in status["pick_list_values"]] == [
        "-None-",
        "Unpaid",
        "Partially Paid",
        "Fully Paid",
        "Overdue",
    ]
    rid = _deal(org)
    assert org.put(f"Deals/{rid}", json={"data": [{"Stage": "Deal Won"}]}).status_code == 200
    got = org.get(f"Deals/{rid}", params={"fields": "Stage,Probability"}).json()["data"][0]
    assert (got["Stage"], got["Probability"]) == ("Deal Won", 100)
    bad = org.put(f"Deals/{rid}", json={"data": [{"Stage": "Closed Won"}]})
    assert bad.json()["data"][0]["code"] == "INVALID_DATA"  # not a value of this org's picklist
    full_stage = _fields(make_org(), "Deals")["Stage"]["pick_list_values"]
    assert [v["forecast_type"] for v in full_stage if v["actual_value"] == "Closed Won"] == ["Closed Won"]


def _seeded(profile: str):
    world = generate(7, "tiny", profile=profile)
    emu = ZohoEmulator()
    emu.register_client(CLIENT_ID, CLIENT_SECRET)
    org_id = emu.seed_world(world)
    client = TestClient(emu.app)
    token = client.post("/oauth/v2/token", data={"grant_type": "refresh_token", "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET,
                        "refresh_token": emu.grant_refresh_token(CLIENT_ID, org_id)}).json()["access_token"]  # fmt: skip

    def get(path: str, **params):
        return client.get(
            f"/crm/v8/{path}", params=params, headers={"Authorization": f"Zoho-oauthtoken {token}"}
        )

    return world, emu, org_id, get


def _all(get, module: str, fields: str) -> list[dict]:
    out, page = [], 1
    while True:
        r = get(module, fields=fields, page=page)
        if r.status_code == 204:
            return out
        out += r.json()["data"]
        if not r.json()["info"]["more_records"]:
            return out
        page += 1


@pytest.mark.parametrize("profile", ["renamed", "bare", "single-currency", "standard"])
def test_generated_records_fit_their_profile(profile):
    world, emu, org_id, get = _seeded(profile)
    assert world.profile == profile
    if profile == "renamed":
        deals = _all(get, "Deals", "Stage,Invoice_Status,Accounting_Invoice_ID")
        stages = {d["Stage"] for d in deals}
        assert "Deal Won" in stages and "Closed Won" not in stages
        assert {d["Invoice_Status"] for d in deals} >= {"Fully Paid", "Unpaid"}
        assert "Paid" not in {d["Invoice_Status"] for d in deals}
        assert any(d["Accounting_Invoice_ID"] for d in deals)
        assert any(a["Xero_ID"] for a in _all(get, "Accounts", "Xero_ID"))
    if profile == "bare":
        for module in ("Accounts", "Deals", "Invoices"):
            for rec in emu.dump(org_id, module):
                assert not set(INTEGRATION_FIELDS[module]) & set(rec), module
        assert all(not d.xero_invoice_id and not d.payment_status for d in world.crm.deals)
    if profile == "single-currency":
        assert get("Deals", fields="Currency").status_code == 400
        assert {d.currency for d in world.crm.deals} == {world.crm.currency}
        assert all("Currency" not in rec for rec in emu.dump(org_id, "Accounts"))
    if profile == "standard":
        assert world.crm.invoices == [] and get("Invoices", fields="Subject").status_code == 400
        assert emu.orgs[org_id].relations == {}
        assert get("org").json()["org"][0]["license_details"]["paid_type"] == "Standard"
