"""Reading from the Xero emulator: envelope, paging, If-Modified-Since, where/order, list filters."""

from __future__ import annotations

from datetime import UTC, datetime

from xz_pipeline_tests.sandbox.xero.support import (  # noqa: F401
    API,
    NOT_FOUND,
    day,
    make_contact,
    make_invoice,
    ms,
    xero_fixture,
)


def test_envelope_dates_and_json_only_on_request(xero):
    c = make_contact(xero.api, "Aroha Cafe", ContactNumber="ZC-1")
    resp = xero.api.get(f"{API}/Contacts/{c['ContactID']}")
    body = resp.json()
    assert set(body) >= {"Id", "Status", "ProviderName", "DateTimeUTC", "Contacts"}
    assert body["Status"] == "OK" and body["ProviderName"] == "xz-sandbox"
    assert body["DateTimeUTC"].startswith("/Date(") and "+" not in body["DateTimeUTC"]
    contact = body["Contacts"][0]
    assert ms(contact["UpdatedDateUTC"]) == xero.clock.now()
    assert contact["UpdatedDateUTC"].endswith("+0000)/")
    assert [p["PhoneType"] for p in contact["Phones"]] == ["DEFAULT", "DDI", "FAX", "MOBILE"]
    assert [a["AddressType"] for a in contact["Addresses"]] == ["POBOX", "STREET"]
    # by ContactNumber on the same path shape
    by_number = xero.api.get(f"{API}/Contacts/ZC-1").json()["Contacts"][0]
    assert by_number["ContactID"] == c["ContactID"]
    # without Accept: application/json, Xero answers XML
    xml = xero.api.get(f"{API}/Contacts/{c['ContactID']}", headers={"Accept": "*/*"})
    assert xml.headers["content-type"].startswith("text/xml")
    assert "<Contacts><Contact><ContactID>" + c["ContactID"] in xml.text


def test_not_found_is_plain_text(xero):
    resp = xero.api.get(f"{API}/Invoices/00000000-0000-0000-0000-000000000001")
    assert resp.status_code == 404 and resp.text == NOT_FOUND
    assert xero.api.get(f"{API}/NoSuchThing").status_code == 404


def test_paging_and_line_items(xero):
    c = make_contact(xero.api, "Paging Ltd")
    for i in range(7):
        make_invoice(xero.api, c["ContactID"], amount=10 + i)
    page = xero.api.get(
        f"{API}/Invoices", params={"page": 2, "pageSize": 3, "order": "InvoiceNumber ASC"}
    ).json()
    assert page["pagination"] == {"page": 2, "pageSize": 3, "pageCount": 3, "itemCount": 7}
    assert [i["InvoiceNumber"] for i in page["Invoices"]] == ["INV-0004", "INV-0005", "INV-0006"]
    assert all(i["LineItems"] for i in page["Invoices"])  # paging turns on line items
    last = xero.api.get(f"{API}/Invoices", params={"page": 3, "pageSize": 3}).json()
    assert len(last["Invoices"]) == 1
    unpaged = xero.api.get(f"{API}/Invoices").json()
    assert "pagination" not in unpaged and len(unpaged["Invoices"]) == 7
    assert all("LineItems" not in i for i in unpaged["Invoices"])  # summary rows without paging
    clamped = xero.api.get(f"{API}/Invoices", params={"page": 1, "pageSize": 5000}).json()
    assert clamped["pagination"]["pageSize"] == 1000
    default = xero.api.get(f"{API}/Contacts", params={"page": 1}).json()
    assert default["pagination"]["pageSize"] == 100


def test_later_pages_follow_the_collection_as_it_changes(xero):
    """Page 1 orders the query once for the pages after it; a write in between starts over, as a fresh
    query against Xero would (the record moves to the end of an UpdatedDateUTC order)."""
    c = make_contact(xero.api, "Paging Ltd")
    made = [make_invoice(xero.api, c["ContactID"], amount=10 + i) for i in range(6)]

    def page(n: int) -> list[str]:
        params = {"page": n, "pageSize": 2, "order": "UpdatedDateUTC ASC"}
        return [i["InvoiceID"] for i in xero.api.get(f"{API}/Invoices", params=params).json()["Invoices"]]

    ids = [m["InvoiceID"] for m in made]
    assert page(1) + page(2) + page(3) == ids
    assert page(1) == ids[:2]
    xero.clock.advance(1)
    xero.api.post(f"{API}/Invoices/{ids[2]}", {"Invoices": [{"Reference": "moved"}]})
    assert page(2) == [ids[3], ids[4]] and page(3) == [ids[5], ids[2]]


def test_if_modified_since_to_the_second(xero):
    old = make_contact(xero.api, "Old Co")
    xero.clock.advance(10.4)
    mark = xero.clock.now()
    new = make_contact(xero.api, "New Co")
    xero.clock.advance(5)
    xero.api.post(f"{API}/Contacts/{old['ContactID']}", {"Contacts": [{"EmailAddress": "hi@old.example"}]})
    # accurate to the second: a watermark with a fraction still returns the record changed in that second
    header = mark.replace(microsecond=999000).isoformat()
    names = [
        c["Name"]
        for c in xero.api.get(f"{API}/Contacts", headers={"If-Modified-Since": header}).json()["Contacts"]
    ]
    assert sorted(names) == ["New Co", "Old Co"]
    later = datetime.fromtimestamp(mark.timestamp() + 2, tz=UTC).isoformat()
    names = [
        c["Name"]
        for c in xero.api.get(f"{API}/Contacts", headers={"If-Modified-Since": later}).json()["Contacts"]
    ]
    assert names == ["Old Co"]
    assert new["Name"] == "New Co"


def test_where_order_and_list_filters(xero):
    a = make_contact(xero.api, "Alpha Traders", EmailAddress="ap@alpha.example")
    b = make_contact(xero.api, "Beta Builders")
    make_contact(xero.api, "Gamma Gone", ContactStatus="ARCHIVED")
    i1 = make_invoice(xero.api, a["ContactID"], amount=100)
    i2 = make_invoice(xero.api, b["ContactID"], amount=300, Reference="PO-77")
    make_invoice(xero.api, b["ContactID"], amount=50, status="DRAFT")
    bill = make_invoice(xero.api, a["ContactID"], amount=40, kind="ACCPAY", InvoiceNumber="SUP-9")

    def invoices(**params):
        resp = xero.api.get(f"{API}/Invoices", params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()["Invoices"]

    got = invoices(where='Type=="ACCREC" && AmountDue > 200')
    assert [i["InvoiceID"] for i in got] == [i2["InvoiceID"]]
    got = invoices(where=f'Contact.ContactID=GUID("{a["ContactID"]}") AND Status == "AUTHORISED"')
    assert {i["InvoiceID"] for i in got} == {i1["InvoiceID"], bill["InvoiceID"]}
    got = invoices(where='Status=="DRAFT" OR Reference.StartsWith("PO-")', order="Total DESC")
    assert [i["Total"] for i in got] == [345, 57.5]
    got = invoices(where="Date >= DateTime(2026, 10, 01) AND Date < DateTime(2026, 10, 02)")
    assert len(got) == 4
    assert invoices(where="Date > DateTime(2026, 10, 01)") == []
    got = invoices(where='Reference == null && Type != "ACCPAY"', order="InvoiceNumber DESC")
    assert [i["InvoiceNumber"] for i in got] == ["INV-0003", "INV-0001"]
    assert [i["InvoiceID"] for i in invoices(IDs=f"{i1['InvoiceID']},{bill['InvoiceID']}")] == [
        i1["InvoiceID"],
        bill["InvoiceID"],
    ]
    assert {i["InvoiceID"] for i in invoices(ContactIDs=b["ContactID"], Statuses="AUTHORISED")} == {
        i2["InvoiceID"]
    }
    assert [i["InvoiceID"] for i in invoices(InvoiceNumbers="INV-0002")] == [i2["InvoiceID"]]
    assert [i["InvoiceID"] for i in invoices(searchTerm="po-7")] == [i2["InvoiceID"]]

    def contacts(**params):
        return [c["Name"] for c in xero.api.get(f"{API}/Contacts", params=params).json()["Contacts"]]

    assert contacts(order="Name DESC") == ["Beta Builders", "Alpha Traders"]
    assert contacts(includeArchived="true", order="Name ASC") == [
        "Alpha Traders",
        "Beta Builders",
        "Gamma Gone",
    ]
    assert contacts(where='Name.Contains("Build")') == ["Beta Builders"]
    assert contacts(
        where='EmailAddress.EndsWith("@alpha.example") || Name.ToLower() == "beta builders"', order="Name"
    ) == [
        "Alpha Traders",
        "Beta Builders",
    ]
    assert contacts(where="IsCustomer == true AND IsSupplier == true") == ["Alpha Traders"]
    assert contacts(searchTerm="ALPHA") == ["Alpha Traders"]
    bad = xero.api.get(f"{API}/Contacts", params={"where": 'Name == "unterminated'})
    assert bad.status_code == 400 and bad.json()["Type"] == "QueryParseException"


def test_organisation_accounts_and_dates(xero):
    org = xero.api.get(f"{API}/Organisation").json()["Organisations"]
    assert (
        org[0]["OrganisationID"] == xero.tenant
        and org[0]["BaseCurrency"] == "NZD"
        and org[0]["Version"] == "NZ"
    )
    accounts = xero.api.get(f"{API}/Accounts", params={"where": 'Type=="BANK"'}).json()["Accounts"]
    assert [a["Code"] for a in accounts] == ["090"] and accounts[0]["Class"] == "ASSET"
    c = make_contact(xero.api, "Dates Ltd")
    inv = make_invoice(xero.api, c["ContactID"])
    full = xero.api.get(f"{API}/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert full["DateString"] == "2026-10-01T00:00:00" and day(full["Date"]).isoformat() == "2026-10-01"
    assert full["DueDate"] == "/Date(1793404800000+0000)/"
    assert full["UpdatedDateUTCString"] == "2026-11-02T09:00:00Z"
