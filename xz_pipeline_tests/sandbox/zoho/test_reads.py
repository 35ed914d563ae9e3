"""Reads: fields, paging across the 2,000-record line, page tokens, 204/304, get by id, deleted, X-EXTERNAL."""

from __future__ import annotations

import re

import pytest

from xz_pipeline_tests.sandbox.zoho.support import accounts, make_org

OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def big():
    org = make_org()
    org.emu.load(
        org.org_id,
        "Accounts",
        [{"id": str(5725767000000100000 + i), **a} for i, a in enumerate(accounts(2401))],
    )
    return org


def test_2401_records_cross_the_2000_line_only_with_page_token(big):
    seen, pages = [], []
    params = {"fields": "Account_Name", "per_page": 200, "sort_order": "asc"}
    r = big.get("Accounts", params={**params, "page": 1})
    while True:
        assert r.status_code == 200
        body = r.json()
        seen += [d["id"] for d in body["data"]]
        pages.append(body["info"]["page"])
        if not body["info"]["more_records"]:
            break
        if body["info"]["page"] < 10:
            r = big.get("Accounts", params={**params, "page": body["info"]["page"] + 1})
        else:
            assert OFFSET.match(body["info"]["page_token_expiry"])
            r = big.get("Accounts", params={**params, "page_token": body["info"]["next_page_token"]})
    assert len(seen) == 2401 and len(set(seen)) == 2401
    assert seen == sorted(seen, key=int)
    assert pages == list(range(1, 14))
    beyond = big.get("Accounts", params={**params, "page": 11})
    assert beyond.status_code == 400
    assert beyond.json()["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    assert beyond.json()["details"] == {"limit": 2000}


def test_page_token_is_bound_to_its_parameters_and_expires_after_a_day(big):
    params = {"fields": "Account_Name", "per_page": 200}
    token = big.get("Accounts", params=params).json()["info"]["next_page_token"]
    changed = big.get(
        "Accounts", params={"fields": "Account_Name,Phone", "per_page": 200, "page_token": token}
    )
    assert changed.status_code == 400 and changed.json()["code"] == "TOKEN_BOUND_DATA_MISMATCH"
    both = big.get("Accounts", params={**params, "page": 2, "page_token": token})
    assert both.json()["code"] == "AMBIGUITY_DURING_PROCESSING"
    assert big.get("Accounts", params={**params, "page_token": token}).status_code == 200
    big.clock.advance(24 * 3600)
    big.access_token = big.refresh()["access_token"]
    expired = big.get("Accounts", params={**params, "page_token": token})
    assert expired.status_code == 400 and expired.json()["code"] == "EXPIRED_VALUE"
    unknown = big.get("Accounts", params={**params, "page_token": "abc"})
    assert unknown.json()["code"] == "INVALID_DATA"


def test_fields_mandatory_at_most_50_and_per_page_at_most_200(big):
    missing = big.get("Accounts")
    assert missing.status_code == 400 and missing.json()["code"] == "REQUIRED_PARAM_MISSING"
    assert missing.json()["details"] == {"param_name": "fields"}
    too_many = big.get("Accounts", params={"fields": ",".join(f"F{i}" for i in range(51))})
    assert too_many.json()["code"] == "LIMIT_EXCEEDED" and too_many.json()["details"]["limit"] == 50
    assert big.get("Accounts", params={"fields": "Account_Name", "per_page": 201}).status_code == 400
    r = big.get("Accounts", params={"fields": "Account_Name", "per_page": 5, "sort_order": "desc"}).json()
    assert set(r["data"][0]) == {"id", "Account_Name"} and r["info"]["count"] == 5
    assert r["info"]["sort_by"] == "id" and int(r["data"][0]["id"]) > int(r["data"][1]["id"])


def test_empty_module_204_and_if_modified_since_304():
    org = make_org()
    assert org.get("Deals", params={"fields": "Deal_Name"}).status_code == 204
    org.post("Accounts", json={"data": [{"Account_Name": "Alpha"}, {"Account_Name": "Beta"}]})
    stamp = org.get("Accounts", params={"fields": "Modified_Time"}).json()["data"][0]["Modified_Time"]
    org.clock.advance(60)
    unchanged = org.get(
        "Accounts",
        params={"fields": "Account_Name"},
        headers={"If-Modified-Since": "2026-11-02T22:00:01+13:00"},
    )
    assert unchanged.status_code == 304 and unchanged.content == b""
    (alpha,) = [r for r in org.emu.dump(org.org_id, "Accounts") if r["Account_Name"] == "Alpha"]
    org.put(f"Accounts/{alpha['id']}", json={"data": [{"Phone": "09 555 0100"}]})
    changed = org.get(
        "Accounts",
        params={"fields": "Account_Name,Modified_Time"},
        headers={"If-Modified-Since": "2026-11-02T22:00:01+13:00"},
    )
    assert changed.status_code == 200
    assert [d["Account_Name"] for d in changed.json()["data"]] == ["Alpha"]
    assert changed.json()["data"][0]["Modified_Time"] == "2026-11-02T22:01:00+13:00" != stamp


def test_datetimes_carry_the_org_offset_never_z():
    org = make_org(timezone="Asia/Kolkata")
    org.post("Accounts", json={"data": [{"Account_Name": "Alpha"}]})
    rec = org.get("Accounts", params={"fields": "Created_Time,Modified_Time"}).json()["data"][0]
    assert rec["Created_Time"] == "2026-11-02T14:30:00+05:30" == rec["Modified_Time"]


def test_get_by_id_has_subforms_and_lists_do_not():
    org = make_org()
    org.emu.load(org.org_id, "Accounts", [{"id": "5725767000000000101", "Account_Name": "Harbour"}])
    org.emu.load(org.org_id, "Products", [{"id": "5725767000000000201", "Product_Name": "Beans"}])
    r = org.post(
        "Invoices",
        json={
            "data": [
                {
                    "Subject": "Beans",
                    "Account_Name": {"id": "5725767000000000101"},
                    "Invoiced_Items": [
                        {
                            "Product_Name": {"id": "5725767000000000201"},
                            "quantity": 4,
                            "list_price": 32.5,
                            "Tax": 19.5,
                        }
                    ],
                }
            ]
        },
    )
    assert r.status_code == 201
    rid = r.json()["data"][0]["details"]["id"]
    one = org.get(f"Invoices/{rid}").json()["data"][0]
    (line,) = one["Invoiced_Items"]
    assert line["Product_Name"] == {"id": "5725767000000000201", "name": "Beans"}
    assert (line["Quantity"], line["Total"], line["Net_Total"]) == (4.0, 130.0, 149.5)
    assert one["Grand_Total"] == 149.5 and one["Account_Name"]["name"] == "Harbour"
    listed = org.get("Invoices", params={"fields": "Subject,Invoiced_Items"}).json()["data"][0]
    assert "Invoiced_Items" not in listed
    assert org.get("Invoices/5725767999999999999").status_code == 204


def test_external_id_lookup_ids_filter_deleted_and_version_aliases():
    org = make_org()
    org.post(
        "Accounts",
        json={
            "data": [
                {"Account_Name": "A", "Xero_Contact_ID": "xc-1"},
                {"Account_Name": "B", "Xero_Contact_ID": "xc-2"},
            ]
        },
    )
    ext = org.get("Accounts/xc-2", headers={"X-EXTERNAL": "Accounts.Xero_Contact_ID"})
    assert ext.json()["data"][0]["Account_Name"] == "B"
    not_external = org.get("Accounts/B", headers={"X-EXTERNAL": "Accounts.Account_Name"})
    assert not_external.status_code == 400
    b_id = ext.json()["data"][0]["id"]
    only_b = org.get("Accounts", params={"fields": "Account_Name", "ids": b_id}).json()["data"]
    assert [a["Account_Name"] for a in only_b] == ["B"]
    assert org.delete(f"Accounts/{b_id}").json()["data"][0]["code"] == "SUCCESS"
    deleted = org.get("Accounts/deleted", params={"type": "all"}).json()["data"]
    assert deleted[0]["id"] == b_id and deleted[0]["display_name"] == "B" and deleted[0]["type"] == "recycle"
    assert OFFSET.match(deleted[0]["deleted_time"])
    for version in ("v7", "v2"):
        r = org.client.get(f"/crm/{version}/Accounts", params={"fields": "Account_Name"}, headers=org.headers)
        assert [a["Account_Name"] for a in r.json()["data"]] == ["A"]
    assert org.client.get("/crm/v9/Accounts", headers=org.headers).status_code == 404
    bad = org.get("Leadz", params={"fields": "x"})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_MODULE"


def test_later_pages_of_a_token_keep_its_order_skip_the_deleted_and_show_the_edited():
    """A page token remembers the order its first page sorted (a large module is not sorted again for each
    page): records deleted meanwhile are skipped, records edited meanwhile keep their place and show their
    new values, and nothing is read twice."""
    org = make_org()
    org.emu.load(
        org.org_id,
        "Accounts",
        [{"id": str(5725767000000100000 + i), **a} for i, a in enumerate(accounts(2401))],
    )
    params = {"fields": "Account_Name", "per_page": 200, "sort_order": "asc"}
    seen: list[dict] = []
    r = org.get("Accounts", params={**params, "page": 10})  # the last discrete page hands over a token
    token = r.json()["info"]["next_page_token"]
    gone, edited = str(5725767000000100000 + 2300), str(5725767000000100000 + 2100)
    assert org.delete("Accounts", params={"ids": gone}).status_code == 200
    body = {"data": [{"id": edited, "Account_Name": "Renamed Ltd"}]}
    assert org.put("Accounts", json=body).status_code == 200
    while token:
        page = org.get("Accounts", params={**params, "page_token": token}).json()
        seen += page["data"]
        token = page["info"].get("next_page_token")
    ids = [d["id"] for d in seen]
    assert len(ids) == len(set(ids)) == 400  # 2,401 less the first 2,000 less the deleted one
    assert gone not in ids and ids == sorted(ids, key=int)
    assert next(d["Account_Name"] for d in seen if d["id"] == edited) == "Renamed Ltd"
