"""Emulator responses checked against the official v8 OpenAPI files (resolved locally, see zoho_support)."""

from __future__ import annotations

import pytest

from xz_pipeline_tests.sandbox.zoho.support import make_org, zoho_spec


@pytest.fixture(scope="module")
def spec(request):
    from xz_pipeline_tests.conftest import specs_dir

    found = specs_dir()
    if found is None or not (found / "zoho" / "v8.0").is_dir():
        pytest.skip(
            "official Zoho v8 specs not found: set XZ_SPECS_DIR or place shared/specs beside the checkout"
        )
    return zoho_spec(str(found))


@pytest.fixture(scope="module")
def org():
    o = make_org()
    o.emu.load(
        o.org_id,
        "Accounts",
        [{"id": "5725767000000000101", "Account_Name": "Harbour", "Xero_Contact_ID": "xc-1"}],
    )
    o.emu.load(o.org_id, "Products", [{"id": "5725767000000000201", "Product_Name": "Beans"}])
    return o


def test_record_reads_and_writes_match_record_json(spec, org):
    rec = "/crm/v8/{module_api_name}"
    listed = org.get("Accounts", params={"fields": "Account_Name,Owner,Modified_Time,Tag", "per_page": 1})
    spec.validate("record", rec, "get", "/crm/v8/Accounts", listed, {"fields": "Account_Name"})
    inserted = org.post("Accounts", json={"data": [{"Account_Name": "New"}, {"Phone": "1"}]})
    assert inserted.status_code == 207
    spec.validate("record", rec, "post", "/crm/v8/Accounts", inserted)
    upserted = org.post("Accounts/upsert", json={"data": [{"Account_Name": "Harbour", "Phone": "2"}]})
    spec.validate("record", rec + "/upsert", "post", "/crm/v8/Accounts/upsert", upserted)
    invoice = org.post(
        "Invoices",
        json={
            "data": [
                {
                    "Subject": "S",
                    "Account_Name": {"id": "5725767000000000101"},
                    "Invoiced_Items": [
                        {"Product_Name": {"id": "5725767000000000201"}, "Quantity": 1, "List_Price": 5}
                    ],
                }
            ]
        },
    )
    iid = invoice.json()["data"][0]["details"]["id"]
    one = org.get(f"Invoices/{iid}")
    spec.validate("record", rec + "/{id}", "get", f"/crm/v8/Invoices/{iid}", one)
    deleted = org.delete("Invoices", params={"ids": iid})
    spec.validate("record", rec, "delete", "/crm/v8/Invoices", deleted, {"ids": iid})
    gone = org.get("Invoices/deleted")
    spec.validate("record", rec + "/deleted", "get", "/crm/v8/Invoices/deleted", gone)


def test_errors_match_the_api_exception_schema(spec, org):
    rec = "/crm/v8/{module_api_name}"
    for r in (org.get("Leadz", params={"fields": "x"}), org.get("Accounts")):
        assert r.status_code == 400
        body = r.json()
        assert set(body) == {"code", "details", "message", "status"}
    # The record file declares errors only inside 200 bodies; check the shape through that declaration.
    failed = org.post("Accounts", json={"data": [{"Phone": "1"}]})
    assert failed.status_code == 400
    failed.status_code = 200
    spec.validate("record", rec, "post", "/crm/v8/Accounts", failed)


def test_search_coql_and_metadata_match_their_files(spec, org):
    search = org.get("Accounts/search", params={"criteria": "(Account_Name:starts_with:Harb)"})
    spec.validate(
        "module_search",
        "/crm/v8/{module}/search",
        "get",
        "/crm/v8/Accounts/search",
        search,
        {"criteria": "(Account_Name:starts_with:Harb)"},
    )
    coql = org.post(
        "coql", json={"select_query": "select Account_Name from Accounts where Account_Name = 'Harbour'"}
    )
    spec.validate("coql", "/crm/v8/coql", "post", "/crm/v8/coql", coql)
    created = org.post(
        "settings/fields",
        params={"module": "Deals"},
        json={"fields": [{"field_label": "Xero Branding Theme", "data_type": "text", "length": 50}]},
    )
    assert created.status_code == 201
    spec.validate(
        "fields", "/crm/v8/settings/fields", "post", "/crm/v8/settings/fields", created, {"module": "Deals"}
    )
    org_body = org.get("org")
    spec.validate("org", "/crm/v8/org", "get", "/crm/v8/org", org_body)
    tags = org.get("settings/tags", params={"module": "Accounts"})
    spec.validate(
        "tags", "/crm/v8/settings/tags", "get", "/crm/v8/settings/tags", tags, {"module": "Accounts"}
    )


def test_notification_list_matches_notifications_json(spec, org):
    org.post(
        "actions/watch",
        json={
            "watch": [
                {
                    "channel_id": "1000000068001",
                    "events": ["Accounts.all"],
                    "notify_url": "http://127.0.0.1:9/hook",
                    "token": "t",
                }
            ]
        },
    )
    listed = org.get("actions/watch")
    assert listed.status_code == 200
    body = listed.json()
    # Known defect: notifications.json types channel_id as an object; Zoho sends a string. Check the rest.
    for item in body["watch"]:
        assert isinstance(item.pop("channel_id"), str)
    listed._content = __import__("json").dumps(body).encode()
    spec.validate("notifications", "/crm/v8/actions/watch", "get", "/crm/v8/actions/watch", listed)


@pytest.mark.parametrize(
    ("stem", "schema", "path", "query"),
    [
        ("modules", "modules", "settings/modules", {}),
        ("fields", "fields", "settings/fields", {"module": "Deals"}),
    ],
)
def test_metadata_lists_where_the_files_are_usable(spec, org, stem, schema, path, query):
    required = spec.files[stem]["components"]["schemas"][schema].get("required", [])
    if len(required) > 40:
        pytest.skip(
            f"{stem}.json requires {len(required)} keys on every item (the full metadata object, layouts "
            "and related lists included) even in list responses: unusable for validation"
        )
    spec.validate(stem, f"/crm/v8/{path}", "get", f"/crm/v8/{path}", org.get(path, params=query), query)
