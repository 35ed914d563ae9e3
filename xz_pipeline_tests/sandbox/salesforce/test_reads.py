"""SOQL, describe, records by id and the replication windows, as a client meets them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from xz_pipeline.sandbox.salesforce import SalesforceLimits
from xz_pipeline.sandbox.salesforce.ids import checksum, to18
from xz_pipeline_tests.sandbox.salesforce.support import V, connect, world


@pytest.fixture(scope="module")
def sf():
    return connect("full")


@pytest.fixture(scope="module")
def renamed():
    return connect("renamed")


def test_ids_are_18_characters_with_the_key_prefix_and_checksum(sf):
    for sobject, prefix in (("Account", "001"), ("Contact", "003"), ("Opportunity", "006"),
                            ("OpportunityLineItem", "00k"), ("Product2", "01t")):  # fmt: skip
        rows = sf.rows(f"SELECT Id FROM {sobject} LIMIT 5")
        assert rows, sobject
        for r in rows:
            rid = r["Id"]
            assert len(rid) == 18 and rid.startswith(prefix) and rid[15:] == checksum(rid[:15])
            assert to18(rid[:15]) == rid
    assert sf.org_id.startswith("00D") and len(sf.org_id) == 18
    # the same world gives the same ids
    again = connect("full")
    assert again.org_id == sf.org_id and again.emu.id_map(again.org_id) == sf.emu.id_map(sf.org_id)


def test_query_pages_with_next_records_url_until_done(sf):
    total = len(world("full").crm.deals)
    first = sf.query("SELECT Id, Name FROM Opportunity", batch=200)
    body = first.json()
    assert first.status_code == 200 and body["totalSize"] == total and body["done"] is False
    assert len(body["records"]) == 200 and body["nextRecordsUrl"].startswith(f"{V}/query/01g")
    seen = [r["Id"] for r in body["records"]]
    while not body["done"]:
        nxt = sf.http.get(body["nextRecordsUrl"], headers=sf.headers())
        assert nxt.status_code == 200
        body = nxt.json()
        seen += [r["Id"] for r in body["records"]]
    assert len(seen) == len(set(seen)) == total
    # the default batch is 2,000: this org's opportunities come in one
    whole = sf.query("SELECT Id FROM Opportunity").json()
    assert whole["done"] is True and len(whole["records"]) == total and "nextRecordsUrl" not in whole


def test_a_smaller_batch_limit_and_a_spent_locator(sf):
    small = connect("full", SalesforceLimits(batch_size=50))
    body = small.query("SELECT Id FROM Account").json()
    assert len(body["records"]) == 50 and not body["done"]
    bad = small.http.get(body["nextRecordsUrl"].replace("-50", "-99999"), headers=small.headers())
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    small.clock.advance(16 * 60)  # a locator unused for 15 minutes is gone
    small.refresh()
    gone = small.http.get(body["nextRecordsUrl"], headers=small.headers())
    assert gone.status_code == 400 and gone.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_where_order_limit_and_relationship_fields(sf):
    deals = world("full").crm.deals
    won = [d for d in deals if d.stage == "Closed Won"]
    rows = sf.rows("SELECT Id, Name, Amount, Account.Name, IsWon FROM Opportunity WHERE IsWon = true "
                   "AND Amount > 100 ORDER BY Amount DESC LIMIT 5")  # fmt: skip
    expected = sorted((d for d in won if d.amount > 100), key=lambda d: d.amount, reverse=True)[:5]
    assert [Decimal(str(r["Amount"])) for r in rows] == [d.amount for d in expected]
    accounts = {a.id: a.name for a in world("full").crm.accounts}
    assert [r["Account"]["Name"] for r in rows] == [accounts[d.account_id] for d in expected]
    assert all(r["IsWon"] is True and r["attributes"]["type"] == "Opportunity" for r in rows)
    # IN, LIKE (case-insensitive), != null, a datetime literal, and keywords in any case
    some = [a.name for a in world("full").crm.accounts[:3]]
    quoted = ", ".join("'" + n.replace("'", "\\'") + "'" for n in some)
    assert sorted(r["Name"] for r in sf.rows(f"select Name from account where Name in ({quoted})")) == sorted(
        some
    )
    word = some[0].split()[0].upper()
    like = sf.rows(f"SELECT Name FROM Account WHERE Name LIKE '%{word}%'")
    assert like and all(word.lower() in r["Name"].lower() for r in like)
    cut = world("full").as_of - timedelta(days=90)
    recent = sf.rows(f"SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp > {cut:%Y-%m-%dT%H:%M:%SZ} "
                     "AND Email != null")  # fmt: skip
    want = [c for c in world("full").crm.contacts if c.modified.replace(microsecond=0) > cut and c.email]
    assert len(recent) == len(want) > 0
    count = sf.query("SELECT COUNT() FROM Opportunity WHERE StageName = 'Closed Won'").json()
    assert count["totalSize"] == len(won) and count["records"] == []
    no_account = sf.rows("SELECT Id, Account.Name FROM Contact WHERE AccountId = null LIMIT 1")
    assert all(r["Account"] is None for r in no_account)


def test_query_errors_name_the_problem(sf):
    missing = sf.query("SELECT Id, Nope__c FROM Account")
    assert missing.status_code == 400
    assert (
        missing.json()[0]["errorCode"] == "INVALID_FIELD"
        and "No such column 'Nope__c'" in missing.json()[0]["message"]
    )
    assert sf.query("SELECT Id FROM Nothing__c").json()[0]["errorCode"] == "INVALID_TYPE"
    assert sf.query("SELECT FROM Account").json()[0]["errorCode"] == "MALFORMED_QUERY"
    quoted = sf.query("SELECT Id FROM Account WHERE CreatedDate > '2026-01-01T00:00:00Z'")
    assert quoted.status_code == 400 and "should not be enclosed in quotes" in quoted.json()[0]["message"]
    # a bare org has none of the integration's fields: asking for one is INVALID_FIELD
    bare = connect("bare")
    resp = bare.query("SELECT Id, Payment_Status__c FROM Opportunity")
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "INVALID_FIELD"
    assert (
        sf.query("SELECT Id, Payment_Status__c, Books_Invoice_Id__c FROM Opportunity LIMIT 1").status_code
        == 200
    )


def test_trailing_slashes_and_query_all(sf):
    plain = sf.http.get(f"{V}/query", params={"q": "SELECT Id FROM Product2"}, headers=sf.headers())
    slash = sf.http.get(f"{V}/query/", params={"q": "SELECT Id FROM Product2"}, headers=sf.headers())
    assert plain.status_code == slash.status_code == 200 and plain.json() == slash.json()
    assert sf.get("/sobjects/").status_code == 200 and sf.get("/sobjects").status_code == 200


def test_renamed_won_stage_is_still_won(renamed):
    deals = world("renamed").crm.deals
    won = [d for d in deals if d.stage == "Deal Won"]
    assert won and not any(d.stage == "Closed Won" for d in deals)
    rows = renamed.rows(
        "SELECT Id, StageName, IsWon, IsClosed, ForecastCategoryName FROM Opportunity WHERE IsWon = true"
    )
    assert len(rows) == len(won) and {r["StageName"] for r in rows} == {"Deal Won"}
    assert all(r["IsClosed"] and r["ForecastCategoryName"] == "Closed" for r in rows)
    stages = renamed.rows("SELECT MasterLabel, IsWon, IsClosed FROM OpportunityStage WHERE IsWon = true")
    assert [s["MasterLabel"] for s in stages] == ["Deal Won"]
    picklist = next(
        f for f in renamed.get("/sobjects/Opportunity/describe").json()["fields"] if f["name"] == "StageName"
    )
    assert "Deal Won" in [p["value"] for p in picklist["picklistValues"]]
    # the renamed org keeps our link field under its own name
    fields = {f["name"]: f for f in renamed.get("/sobjects/Account/describe").json()["fields"]}
    assert fields["Xero_ID__c"]["externalId"] and "Books_Customer_Id__c" not in fields


def test_describe_and_records_by_id(sf):
    desc = sf.get("/sobjects/Account/describe")
    assert desc.status_code == 200 and desc.json()["keyPrefix"] == "001"
    fields = {f["name"]: f for f in desc.json()["fields"]}
    assert fields["Books_Customer_Id__c"]["externalId"] and fields["Books_Customer_Id__c"]["custom"]
    assert not fields["Name"]["nillable"] and not fields["Id"]["createable"] and "CurrencyIsoCode" in fields
    assert {"Fax", "ShippingStreet", "ShippingCountry", "Industry", "ParentId"} <= set(
        fields
    )  # standard fields
    line = {f["name"]: f for f in sf.get("/sobjects/OpportunityLineItem/describe").json()["fields"]}
    assert line["Discount"]["type"] == "percent" and not line["SortOrder"]["createable"]
    opp = {f["name"]: f for f in sf.get("/sobjects/Opportunity/describe").json()["fields"]}
    assert [p["value"] for p in opp["Payment_Status__c"]["picklistValues"]] == [
        "Unpaid",
        "Partially Paid",
        "Paid",
        "Overdue",
    ]
    names = [o["name"] for o in sf.get("/sobjects").json()["sobjects"]]
    assert {"Account", "Contact", "Opportunity", "OpportunityLineItem", "Product2"} <= set(names)
    a = world("full").crm.accounts[0]
    rid = sf.emu.id_map(sf.org_id)[a.id]
    got = sf.get(f"/sobjects/Account/{rid}")
    assert (
        got.status_code == 200
        and got.json()["Name"] == a.name
        and got.json()["attributes"]["type"] == "Account"
    )
    assert sf.get(f"/sobjects/Account/{rid[:15]}").json()["Id"] == rid  # a 15-character id works too
    some = sf.get(f"/sobjects/Account/{rid}", fields="Name,Phone").json()
    assert set(some) == {"attributes", "Name", "Phone"}
    if a.xero_contact_id:
        by_ext = sf.get(f"/sobjects/Account/Books_Customer_Id__c/{a.xero_contact_id}")
        assert by_ext.json()["Id"] == rid
    assert sf.get("/sobjects/Account/001000000000000AAA").json()[0]["errorCode"] == "NOT_FOUND"


def test_single_currency_org_has_no_currency_field():
    one = connect("single-currency")
    assert one.query("SELECT Id, CurrencyIsoCode FROM Account").json()[0]["errorCode"] == "INVALID_FIELD"


def test_updated_and_deleted_windows():
    sf = connect("full")
    start = sf.clock.now()
    sf.clock.advance(120)
    ids = sf.emu.id_map(sf.org_id)
    acc = ids[world("full").crm.accounts[1].id]
    opp = ids[world("full").crm.deals[0].id]
    assert sf.send("PATCH", f"/sobjects/Account/{acc}", {"Phone": "+1 555 0100"}).status_code == 204
    assert sf.send("DELETE", f"/sobjects/Opportunity/{opp}").status_code == 204
    sf.clock.advance(120)
    end = sf.clock.now()
    fmt = "%Y-%m-%dT%H:%M:%S+00:00"
    up = sf.get("/sobjects/Account/updated/", start=start.strftime(fmt), end=end.strftime(fmt)).json()
    assert up["ids"] == [acc] and up["latestDateCovered"].endswith(":00.000+0000")
    gone = sf.get("/sobjects/Opportunity/deleted/", start=start.strftime(fmt), end=end.strftime(fmt)).json()
    assert [d["id"] for d in gone["deletedRecords"]] == [opp] and gone["earliestDateAvailable"]
    # the deleted opportunity leaves query, stays in queryAll with IsDeleted, and its lines go with it
    assert sf.rows(f"SELECT Id FROM Opportunity WHERE Id = '{opp}'") == []
    everything = sf.query(f"SELECT Id, IsDeleted FROM Opportunity WHERE Id = '{opp}'", all_rows=True).json()
    assert everything["records"][0]["IsDeleted"] is True
    assert sf.rows(f"SELECT Id FROM OpportunityLineItem WHERE OpportunityId = '{opp}'") == []
    earlier = sf.get("/sobjects/Account/updated", start=(start - timedelta(days=2)).strftime(fmt),
                     end=(start - timedelta(days=1)).strftime(fmt)).json()  # fmt: skip
    assert acc not in earlier["ids"]
    assert (
        sf.get("/sobjects/Account/updated", start=start.strftime(fmt)).json()[0]["errorCode"]
        == "MISSING_ARGUMENT"
    )
    wide = sf.get(
        "/sobjects/Account/updated", start=(end - timedelta(days=40)).strftime(fmt), end=end.strftime(fmt)
    )
    assert wide.status_code == 400


def test_limits_header_on_every_answer_and_request_limit_exceeded():
    sf = connect("full", SalesforceLimits(daily=5))
    first = sf.get("/limits")
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/5"
    assert first.json()["DailyApiRequests"] == {"Max": 5, "Remaining": 4}
    for n in range(2, 6):
        assert sf.get("/sobjects").headers["Sforce-Limit-Info"] == f"api-usage={n}/5"
    spent = sf.query("SELECT Id FROM Account")
    assert spent.status_code == 403 and spent.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert spent.headers["Sforce-Limit-Info"] == "api-usage=5/5"
    assert sf.refresh()["access_token"]  # OAuth does not count
    sf.clock.advance(86_401)  # a rolling 24 hours (the session timed out meanwhile)
    assert sf.get("/limits").json()[0]["errorCode"] == "INVALID_SESSION_ID"
    sf.refresh()
    assert sf.get("/limits").json()["DailyApiRequests"] == {"Max": 5, "Remaining": 4}
