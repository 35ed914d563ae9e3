"""A record's related list (a deal's Products) and the composite API (several writes in one call)."""

from __future__ import annotations

from xz_pipeline.sandbox.world import generate
from xz_pipeline.sandbox.zoho import ZohoEmulator
from xz_pipeline_tests.sandbox.zoho.support import make_org

FIELDS = "Product_Name,Product_Code,Quantity,List_Price"


def _deal_and_products(org):
    products = org.post("Products", json={"data": [{"Product_Name": "Widget", "Product_Code": "W-1", "Unit_Price": 12.5},
                                                   {"Product_Name": "Gadget", "Product_Code": "G-2"}]}).json()["data"]  # fmt: skip
    deal = org.post("Deals", json={"data": [{"Deal_Name": "Big one", "Stage": "Closed Won"}]}).json()["data"][
        0
    ]
    return deal["details"]["id"], [p["details"]["id"] for p in products]


def test_related_products_carry_the_relation_fields_fields_mandatory_and_204_when_none():
    org = make_org()
    deal, (widget, gadget) = _deal_and_products(org)
    assert org.get(f"Deals/{deal}/Products", params={"fields": FIELDS}).status_code == 204
    org.emu.relate(org.org_id, "Deals", deal, "Products", [{"id": widget, "Quantity": 3, "List_Price": 11.0},
                                                            {"id": gadget, "Quantity": 1.5}])  # fmt: skip
    r = org.get(f"Deals/{deal}/Products", params={"fields": FIELDS})
    assert r.status_code == 200
    rows = r.json()["data"]
    assert [(p["id"], p["Product_Code"], p["Quantity"], p["List_Price"]) for p in rows] == [
        (widget, "W-1", 3, 11.0),
        (gadget, "G-2", 1.5, None),
    ]
    assert set(rows[0]) == {"id", "Product_Name", "Product_Code", "Quantity", "List_Price"}
    assert r.json()["info"]["more_records"] is False
    missing = org.get(f"Deals/{deal}/Products")
    assert missing.status_code == 400 and missing.json()["code"] == "REQUIRED_PARAM_MISSING"
    assert org.get(f"Deals/{deal}/Elephants", params={"fields": FIELDS}).json()["code"] == "INVALID_DATA"
    assert org.get("Deals/123/Products", params={"fields": FIELDS}).status_code == 400
    assert org.post(f"Deals/{deal}/Products", json={}).status_code == 400  # reads only


def test_generated_won_deals_carry_products_from_the_items_sometimes():
    world = generate(7, "demo", 0)
    emu = ZohoEmulator()
    org = emu.orgs[emu.seed_world(world)]
    codes = {p.id: p.code for p in world.crm.products}
    items = {i.code for i in world.books.items}
    won = [d for d in world.crm.deals if d.stage == "Closed Won"]
    with_products = [d for d in won if org.relations.get(("Deals", d.id, "Products"))]
    assert 0.5 * len(won) < len(with_products) < 0.8 * len(won)  # two in three, not all
    for d in with_products[:50]:
        rows = org.relations[("Deals", d.id, "Products")]
        assert [r["id"] for r in rows] == [ln.product_id for ln in d.products]
        assert all(codes[r["id"]] in items for r in rows)  # products that mirror books items


def test_composite_runs_up_to_five_writes_in_order_with_references():
    org = make_org()
    deal, _ = _deal_and_products(org)
    body = {
        "parallel_execution": False,
        "__composite_requests": [
            {"sub_request_id": "acc", "method": "POST", "uri": "/crm/v8/Accounts/upsert",
             "body": {"data": [{"Account_Name": "Kea Ltd", "Xero_Contact_ID": "x-1"}], "trigger": []}},
            {"sub_request_id": "con", "method": "POST", "uri": "/crm/v8/Contacts",
             "body": {"data": [{"Last_Name": "Kea", "Account_Name": {"id": "@{acc:$.data[0].details.id}"}}]}},
            {"sub_request_id": "deal", "method": "PUT", "uri": "/crm/v8/Deals",
             "body": {"data": [{"id": deal, "Amount_Paid": 10.5}, {"id": "404", "Amount_Paid": 1}]}},
        ],
    }  # fmt: skip
    r = org.post("__composite_requests", json=body)
    assert r.status_code == 200
    items = r.json()["__composite_requests"]
    assert [i["sub_request_id"] for i in items] == ["acc", "con", "deal"]
    codes = [i["details"]["response"]["status_code"] for i in items]
    assert codes == [200, 201, 207]
    account_id = items[0]["details"]["response"]["body"]["data"][0]["details"]["id"]
    (contact,) = org.emu.dump(org.org_id, "Contacts")
    assert contact["Account_Name"]["id"] == account_id
    assert next(d for d in org.emu.dump(org.org_id, "Deals") if d["id"] == deal)["Amount_Paid"] == 10.5


def test_composite_refuses_six_writes_rollback_and_a_token_without_its_scope():
    org = make_org()
    sub = {"method": "PUT", "uri": "/crm/v8/Deals", "body": {"data": [{"id": "1"}]}}
    six = org.post("__composite_requests", json={"__composite_requests": [sub] * 6})
    assert six.status_code == 400 and six.json()["code"] == "LIMIT_EXCEEDED"
    both = org.post("__composite_requests", json={"rollback_on_fail": True, "parallel_execution": True,
                                                  "__composite_requests": [sub]})  # fmt: skip
    assert both.json()["code"] == "AMBIGUITY_DURING_PROCESSING"
    bad_uri = org.post("__composite_requests", json={"__composite_requests": [{**sub, "uri": "/Deals"}]})
    assert bad_uri.status_code == 400
    narrow = make_org(scopes="ZohoCRM.modules.ALL")
    refused = narrow.post("__composite_requests", json={"__composite_requests": [sub]})
    assert refused.status_code == 401 and refused.json()["code"] == "OAUTH_SCOPE_MISMATCH"
