"""Writes: single records, sObject Collections with per-record errors, upsert by external id, composite with
references and allOrNone, and the Tooling API's CustomField."""

from __future__ import annotations

from decimal import Decimal

import pytest

from xz_pipeline.sandbox.salesforce.ids import to18
from xz_pipeline_tests.sandbox.salesforce.support import V, connect, world

NOWHERE = to18("001Pz0000000000")  # well formed, names no record


@pytest.fixture
def sf():
    return connect("full")


def test_create_read_update_delete(sf):
    made = sf.send("POST", "/sobjects/Account/", {"Name": "Kiwi Ltd", "Phone": "+64 9 555 0100"})
    assert made.status_code == 201 and made.json()["success"] is True
    rid = made.json()["id"]
    assert rid.startswith("001") and made.headers["Location"] == f"{V}/sobjects/Account/{rid}"
    rec = sf.get(f"/sobjects/Account/{rid}").json()
    assert rec["Name"] == "Kiwi Ltd" and rec["OwnerId"] == sf.org.api_user_id and rec["IsDeleted"] is False
    assert rec["CreatedDate"] == rec["LastModifiedDate"] == rec["SystemModstamp"]
    sf.clock.advance(65)
    assert (
        sf.send("PATCH", f"/sobjects/Account/{rid}", {"Website": "https://kiwi.example"}).status_code == 204
    )
    after = sf.get(f"/sobjects/Account/{rid}").json()
    assert after["Website"] == "https://kiwi.example" and after["SystemModstamp"] > rec["SystemModstamp"]
    assert sf.send("DELETE", f"/sobjects/Account/{rid}").status_code == 204
    assert sf.get(f"/sobjects/Account/{rid}").status_code == 404
    assert (
        sf.send("PATCH", f"/sobjects/Account/{rid}", {"Name": "x"}).json()[0]["errorCode"]
        == "ENTITY_IS_DELETED"
    )


def test_write_errors_carry_salesforce_codes(sf):
    def error(body, sobject="Account", method="POST", path=""):
        resp = sf.send(method, f"/sobjects/{sobject}/{path}", body)
        assert resp.status_code == 400, resp.text
        return resp.json()[0]

    assert error({"Phone": "1"}) == {"message": "Required fields are missing: [Name]", "errorCode":
                                     "REQUIRED_FIELD_MISSING", "fields": ["Name"]}  # fmt: skip
    assert error({"Name": "x", "Nope__c": 1})["errorCode"] == "INVALID_FIELD"
    assert error({"Name": "x", "IsDeleted": True})["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    opp = {"Name": "x", "StageName": "Nonsense", "CloseDate": "2026-12-01"}
    assert error(opp, "Opportunity")["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert (
        error({**opp, "StageName": "Qualification", "Amount": "lots"}, "Opportunity")["errorCode"]
        == "JSON_PARSER_ERROR"
    )
    assert (
        error({**opp, "StageName": "Qualification", "AccountId": "001xyz"}, "Opportunity")["errorCode"]
        == "MALFORMED_ID"
    )
    dangling = {**opp, "StageName": "Qualification", "AccountId": NOWHERE}
    assert error(dangling, "Opportunity")["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert (
        error({"LastName": "x", "Email": "not-an-email"}, "Contact")["errorCode"] == "INVALID_EMAIL_ADDRESS"
    )
    taken = next(a.xero_contact_id for a in world("full").crm.accounts if a.xero_contact_id)
    assert error({"Name": "x", "Books_Customer_Id__c": taken})["errorCode"] == "DUPLICATE_VALUE"
    # nothing of the failed writes stayed
    assert sf.query("SELECT COUNT() FROM Account WHERE Name = 'x'").json()["totalSize"] == 0


def test_an_opportunity_in_the_won_stage_is_won_and_lines_total(sf):
    acc = sf.send("POST", "/sobjects/Account", {"Name": "Won Ltd"}).json()["id"]
    opp = sf.send("POST", "/sobjects/Opportunity", {"Name": "Big deal", "AccountId": acc, "StageName": "Negotiation/Review",
                                                    "CloseDate": "2026-12-01", "Amount": 1200}).json()["id"]  # fmt: skip
    rec = sf.get(f"/sobjects/Opportunity/{opp}").json()
    assert rec["IsWon"] is False and rec["IsClosed"] is False and rec["Probability"] == 90.0
    assert sf.send("PATCH", f"/sobjects/Opportunity/{opp}", {"StageName": "Closed Won"}).status_code == 204
    rec = sf.get(f"/sobjects/Opportunity/{opp}").json()
    assert rec["IsWon"] is True and rec["IsClosed"] is True and rec["ForecastCategoryName"] == "Closed"
    product = sf.rows("SELECT Id, Name FROM Product2 LIMIT 1")[0]
    line = sf.send("POST", "/sobjects/OpportunityLineItem", {"OpportunityId": opp, "Product2Id": product["Id"],
                                                             "Quantity": 3, "UnitPrice": 12.5})  # fmt: skip
    assert line.status_code == 201 and line.json()["id"].startswith("00k")
    got = sf.rows(f"SELECT Quantity, TotalPrice, Product2.Name, PricebookEntryId FROM OpportunityLineItem "
                  f"WHERE OpportunityId = '{opp}'")  # fmt: skip
    assert (
        got[0]["TotalPrice"] == 37.5
        and got[0]["Product2"]["Name"] == product["Name"]
        and got[0]["PricebookEntryId"]
    )
    assert sf.get(f"/sobjects/Opportunity/{opp}").json()["HasOpportunityLineItem"] is True
    discounted = sf.send("POST", "/sobjects/OpportunityLineItem", {"OpportunityId": opp, "Quantity": 4,
                         "Product2Id": product["Id"], "UnitPrice": 25, "Discount": 10})  # fmt: skip
    row = sf.get(f"/sobjects/OpportunityLineItem/{discounted.json()['id']}").json()
    assert row["TotalPrice"] == 90.0 and row["Discount"] == 10.0  # Discount is a percentage off


def test_collections_report_each_record_in_order(sf):
    records = [
        {"attributes": {"type": "Account"}, "Name": "One"},
        {"attributes": {"type": "Account"}, "Phone": "no name"},
        {"attributes": {"type": "Contact"}, "LastName": "Three"},
    ]
    before = sf.emu.budget.used(sf.org_id)
    resp = sf.send("POST", "/composite/sobjects", {"allOrNone": False, "records": records})
    assert resp.status_code == 200 and sf.emu.budget.used(sf.org_id) == before + 1  # one call
    out = resp.json()
    assert [r["success"] for r in out] == [True, False, True]
    assert out[1]["errors"] == [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Name]",
                                 "fields": ["Name"]}]  # fmt: skip
    assert out[0]["id"].startswith("001") and out[2]["id"].startswith("003")
    # allOrNone: one bad record rolls every record back
    resp = sf.send("POST", "/composite/sobjects", {"allOrNone": True, "records": records})
    out = resp.json()
    assert [r["success"] for r in out] == [False, False, False]
    assert out[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sf.query("SELECT COUNT() FROM Contact WHERE LastName = 'Three'").json()["totalSize"] == 1
    # update in bulk, one id unknown
    one = sf.rows("SELECT Id FROM Account WHERE Name = 'One'")[0]["Id"]
    upd = sf.send("PATCH", "/composite/sobjects", {"records": [
        {"attributes": {"type": "Account"}, "id": NOWHERE, "Phone": "42"},
        {"attributes": {"type": "Account"}, "id": one, "Phone": "43"}]}).json()  # fmt: skip
    assert [(r["id"], r["success"]) for r in upd] == [(NOWHERE, False), (one, True)]
    assert (
        upd[0]["errors"][0]["statusCode"] == "NOT_FOUND"
        and sf.get(f"/sobjects/Account/{one}").json()["Phone"] == "43"
    )
    # an id that cannot be one (not 15 or 18 characters of an id) is MALFORMED_ID, per record
    bad = sf.send("PATCH", "/composite/sobjects", {"records": [
        {"attributes": {"type": "Account"}, "id": "001xyz", "Phone": "44"}]}).json()  # fmt: skip
    assert bad[0]["errors"][0] == {"statusCode": "MALFORMED_ID", "fields": ["Id"],
                                   "message": "Account ID: id value of incorrect type: 001xyz"}  # fmt: skip
    gone = sf.send("DELETE", "/composite/sobjects", ids="001xyz," + NOWHERE).json()
    assert [e["errors"][0]["statusCode"] for e in gone] == ["MALFORMED_ID", "INVALID_CROSS_REFERENCE_KEY"]
    over = sf.send("POST", "/composite/sobjects", {"records": [{"attributes": {"type": "Account"}, "Name": str(i)}
                                                               for i in range(201)]})  # fmt: skip
    assert over.status_code == 400 and over.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_upsert_by_external_id_creates_then_updates(sf):
    path = "/sobjects/Account/Books_Customer_Id__c/BOOKS-1"
    first = sf.send("PATCH", path, {"Name": "Upserted Ltd"})
    assert first.status_code == 201 and first.json()["created"] is True
    second = sf.send("PATCH", path, {"Name": "Upserted Ltd (renamed)"})
    assert second.status_code == 200  # v46.0 and later: the update answers its result
    assert second.json() == {"id": first.json()["id"], "success": True, "errors": [], "created": False}
    old = sf.http.patch("/services/data/v45.0" + path, json={"Phone": "5"}, headers=sf.headers())
    assert old.status_code == 204 and old.content == b""  # before v46.0: no body
    rows = sf.rows("SELECT Id, Name FROM Account WHERE Books_Customer_Id__c = 'BOOKS-1'")
    assert rows == [
        {"attributes": rows[0]["attributes"], "Id": first.json()["id"], "Name": "Upserted Ltd (renamed)"}
    ]
    not_ext = sf.send("PATCH", "/sobjects/Account/Name/Upserted", {"Phone": "1"})
    assert not_ext.status_code == 404 and not_ext.json()[0]["errorCode"] == "NOT_FOUND"
    # collection upsert by the same field
    out = sf.send("PATCH", "/composite/sobjects/Account/Books_Customer_Id__c", {"records": [
        {"attributes": {"type": "Account"}, "Books_Customer_Id__c": "BOOKS-1", "Phone": "7"},
        {"attributes": {"type": "Account"}, "Books_Customer_Id__c": "BOOKS-2", "Name": "Second"}]}).json()  # fmt: skip
    assert [(r["success"], r["created"]) for r in out] == [(True, False), (True, True)]


def test_composite_references_and_all_or_none(sf):
    body = {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "acc", "body": {"Name": "Composite Ltd"}},
        {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "c1",
         "body": {"LastName": "Ann", "AccountId": "@{acc.id}"}},
        {"method": "GET", "url": f"{V}/sobjects/Account/@{{acc.id}}?fields=Name", "referenceId": "read"},
    ]}  # fmt: skip
    out = sf.send("POST", "/composite", body).json()["compositeResponse"]
    assert [o["httpStatusCode"] for o in out] == [201, 201, 200]
    assert out[2]["body"]["Name"] == "Composite Ltd"
    contact = sf.get(f"/sobjects/Contact/{out[1]['body']['id']}").json()
    assert contact["AccountId"] == out[0]["body"]["id"]
    bad = {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "a", "body": {"Name": "Rolled back"}},
        {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "b", "body": {"AccountId": "@{a.id}"}},
    ]}  # fmt: skip
    out = sf.send("POST", "/composite", bad).json()["compositeResponse"]
    assert [o["body"][0]["errorCode"] for o in out] == ["PROCESSING_HALTED", "REQUIRED_FIELD_MISSING"]
    assert sf.query("SELECT COUNT() FROM Account WHERE Name = 'Rolled back'").json()["totalSize"] == 0
    loose = {"compositeRequest": [
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "x", "body": {"Phone": "no name"}},
        {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "y", "body": {"LastName": "Z", "AccountId": "@{x.id}"}},
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "z", "body": {"Name": "Kept"}},
    ]}  # fmt: skip
    out = sf.send("POST", "/composite", loose).json()["compositeResponse"]
    assert [o["httpStatusCode"] for o in out] == [400, 400, 201]
    assert out[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"


def test_tooling_creates_a_custom_field_a_bare_org_then_has():
    bare = connect("bare")
    assert bare.query("SELECT Id, Books_Customer_Id__c FROM Account").status_code == 400
    made = bare.send("POST", "/tooling/sobjects/CustomField", {"FullName": "Account.Books_Customer_Id__c", "Metadata": {
        "label": "Books Customer Id", "type": "Text", "length": 64, "externalId": True, "unique": True}})  # fmt: skip
    assert made.status_code == 201 and made.json()["id"].startswith("00N") and made.json()["success"]
    again = bare.send("POST", "/tooling/sobjects/CustomField", {"FullName": "Account.Books_Customer_Id__c",
                                                                "Metadata": {"label": "x", "type": "Text"}})  # fmt: skip
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    field = next(
        f
        for f in bare.get("/sobjects/Account/describe").json()["fields"]
        if f["name"] == "Books_Customer_Id__c"
    )
    assert field["externalId"] and field["custom"] and field["length"] == 64
    assert (
        bare.send("PATCH", "/sobjects/Account/Books_Customer_Id__c/B-9", {"Name": "Now linkable"}).status_code
        == 201
    )
    assert (
        bare.query("SELECT Id, Books_Customer_Id__c FROM Account WHERE Books_Customer_Id__c = 'B-9'").json()[
            "totalSize"
        ]
        == 1
    )
    listed = bare.get(
        "/tooling/query", q="SELECT Id, DeveloperName FROM CustomField WHERE TableEnumOrId = 'Account'"
    )
    assert [r["DeveloperName"] for r in listed.json()["records"]] == ["Books_Customer_Id"]
    picklist = bare.send("POST", "/tooling/sobjects/CustomField", {"FullName": "Opportunity.Payment_Status__c", "Metadata": {
        "label": "Payment Status", "type": "Picklist", "valueSet": {"valueSetDefinition": {"value": [
            {"fullName": "Unpaid"}, {"fullName": "Paid"}]}}}})  # fmt: skip
    assert picklist.status_code == 201
    amount = Decimal("12.30")
    opp = bare.rows("SELECT Id FROM Opportunity LIMIT 1")[0]["Id"]
    bare.send("POST", "/tooling/sobjects/CustomField", {"FullName": "Opportunity.Amount_Paid__c",
                                                        "Metadata": {"label": "Amount Paid", "type": "Currency"}})  # fmt: skip
    assert bare.send("PATCH", f"/sobjects/Opportunity/{opp}", {"Payment_Status__c": "Paid",
                                                               "Amount_Paid__c": float(amount)}).status_code == 204  # fmt: skip
    assert (
        bare.rows(f"SELECT Payment_Status__c, Amount_Paid__c FROM Opportunity WHERE Id = '{opp}'")[0][
            "Amount_Paid__c"
        ]
        == 12.3
    )
