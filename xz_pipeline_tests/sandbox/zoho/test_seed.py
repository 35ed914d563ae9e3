"""Seeding from a world's CRM side, tags, and custom fields created through the metadata API."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from xz_pipeline.sandbox.world import (
    Address,
    BooksOrg,
    CrmAccount,
    CrmContact,
    CrmInvoice,
    CrmInvoiceLine,
    CrmOrg,
    CrmProduct,
    CrmUser,
    Deal,
    World,
)
from xz_pipeline.sandbox.zoho import ZohoEmulator
from xz_pipeline_tests.sandbox.zoho.support import make_org

T = datetime(2026, 9, 15, 2, 30, tzinfo=UTC)


def _world() -> World:
    crm = CrmOrg(
        "20098765432",
        "Kowhai Espresso",
        "NZD",
        "Pacific/Auckland",
        "Professional",
        T,
        users=[CrmUser("5725767000000000001", "Ana Kowhai", "ana@kowhai.example")],
    )
    crm.accounts.append(
        CrmAccount(
            "5725767000000000101",
            "Harbour Coffee",
            "+64 9 555 0100",
            "https://h.nz",
            Address("12 Quay St", "", "Auckland", "Auckland", "1010", "New Zealand"),
            "NZD",
            "5725767000000000001",
            T,
            T,
            xero_contact_id="xc-1",
            outstanding_balance=Decimal("747.50"),
            tags=["Xero-Synced"],
        )
    )
    crm.contacts.append(
        CrmContact(
            "5725767000000000201",
            "5725767000000000101",
            "Mere",
            "Ngata",
            "mere@h.nz",
            "021 555 0101",
            "5725767000000000001",
            T,
            T,
        )
    )
    crm.products.append(
        CrmProduct(
            "5725767000000000301",
            "BEANS",
            "Beans 1 kg",
            Decimal("32.50"),
            "Beans",
            "5725767000000000001",
            T,
            T,
            tax_percent=Decimal("15"),
        )
    )
    crm.deals.append(
        Deal(
            "5725767000000000401",
            "Harbour beans",
            "5725767000000000101",
            "5725767000000000201",
            "Closed Won",
            Decimal("650"),
            "NZD",
            date(2026, 8, 3),
            "5725767000000000001",
            T,
            T,
            probability=100,
            xero_invoice_id="inv-1",
            payment_status="Paid",
        )
    )
    crm.invoices.append(
        CrmInvoice(
            "5725767000000000501",
            "Harbour beans",
            "INV-77",
            "5725767000000000101",
            "5725767000000000201",
            "5725767000000000401",
            date(2026, 8, 3),
            date(2026, 8, 23),
            "Approved",
            "NZD",
            [CrmInvoiceLine("5725767000000000301", Decimal("20"), Decimal("32.50"), Decimal("15"))],
            "5725767000000000001",
            T,
            T,
        )
    )
    books = BooksOrg("t", "n", "n", "s", "NZD", "NZ", "Pacific/Auckland", T)
    return World(seed=1, size="demo", index=0, as_of=T, books=books, crm=crm)


def test_seed_world_loads_the_crm_side_in_api_shapes():
    emu = ZohoEmulator()
    org_id = emu.seed_world(_world())
    assert org_id == "20098765432" and emu.orgs[org_id].edition == "Professional"
    (acc,) = emu.dump(org_id, "Accounts")
    assert (acc["Account_Name"], acc["Billing_Code"], acc["Xero_Contact_ID"]) == (
        "Harbour Coffee",
        "1010",
        "xc-1",
    )
    assert acc["Outstanding_Balance"] == 747.5 and [t["name"] for t in acc["Tag"]] == ["Xero-Synced"]
    assert acc["Owner"] == {"id": "5725767000000000001", "name": "Ana Kowhai", "email": "ana@kowhai.example"}
    assert acc["Modified_Time"] == "2026-09-15T14:30:00+12:00"
    (contact,) = emu.dump(org_id, "Contacts")
    assert contact["Account_Name"] == {"id": "5725767000000000101", "name": "Harbour Coffee"}
    assert contact["Full_Name"] == "Mere Ngata"
    (deal,) = emu.dump(org_id, "Deals")
    assert (deal["Stage"], deal["Pipeline"], deal["Payment_Status"]) == (
        "Closed Won",
        "Standard (Standard)",
        "Paid",
    )
    (inv,) = emu.dump(org_id, "Invoices")
    assert inv["Deal_Name"]["id"] == "5725767000000000401" and inv["Invoice_Number"] == "INV-77"
    (line,) = inv["Invoiced_Items"]
    assert (line["Total"], line["Tax"], line["Net_Total"], inv["Grand_Total"]) == (650.0, 97.5, 747.5, 747.5)


def test_tags_add_remove_and_admin():
    org = make_org()
    ids = [
        i["details"]["id"]
        for i in org.post("Accounts", json={"data": [{"Account_Name": "A"}, {"Account_Name": "B"}]}).json()[
            "data"
        ]
    ]
    r = org.post("Accounts/actions/add_tags", json={"tags": [{"name": "Xero-Synced"}], "ids": ids + ["42"]})
    assert r.status_code == 207
    assert r.json()["data"][0]["message"] == "tags updated successfully"
    assert [t["name"] for t in r.json()["data"][0]["details"]["tags"]] == ["Xero-Synced"]
    (tag,) = org.get("settings/tags", params={"module": "Accounts"}).json()["tags"]
    org.post(f"Accounts/{ids[0]}/actions/remove_tags", json={"tags": [{"id": tag["id"]}]})
    tags = {a["id"]: [t["name"] for t in a["Tag"]] for a in org.emu.dump(org.org_id, "Accounts")}
    assert tags == {ids[0]: [], ids[1]: ["Xero-Synced"]}
    org.put(f"settings/tags/{tag['id']}", params={"module": "Accounts"}, json={"tags": [{"name": "Synced"}]})
    assert org.get(f"Accounts/{ids[1]}").json()["data"][0]["Tag"][0]["name"] == "Synced"


def test_custom_fields_are_created_then_writable_and_limited():
    org = make_org(edition="Standard")
    r = org.post(
        "settings/fields",
        params={"module": "Deals"},
        json={
            "fields": [
                {"field_label": "Xero Branding Theme", "data_type": "text", "length": 10},
                {"field_label": "Nope", "data_type": "formula"},
            ]
        },
    )
    assert r.status_code == 207 and r.json()["fields"][1]["code"] == "INVALID_DATA"
    names = [f["api_name"] for f in org.get("settings/fields", params={"module": "Deals"}).json()["fields"]]
    assert "Xero_Branding_Theme" in names
    ok = org.post(
        "Deals",
        json={"data": [{"Deal_Name": "D", "Stage": "Qualification", "Xero_Branding_Theme": "Standard"}]},
    )
    assert ok.status_code == 201
    too_long = org.post(
        "Deals",
        json={"data": [{"Deal_Name": "E", "Stage": "Qualification", "Xero_Branding_Theme": "x" * 11}]},
    )
    assert too_long.json()["data"][0]["details"]["maximum_length"] == "10"
    for i in range(2):  # Standard allows 10 custom fields per module; Deals ships with 5, now 6
        org.post(
            "settings/fields",
            params={"module": "Deals"},
            json={"fields": [{"field_label": f"Extra {i}-{j}", "data_type": "text"} for j in range(2)]},
        )
    full = org.post(
        "settings/fields",
        params={"module": "Deals"},
        json={"fields": [{"field_label": "One too many", "data_type": "text"}]},
    )
    assert full.status_code == 400 and full.json()["fields"][0]["code"] == "LIMIT_EXCEEDED"
    assert org.get("org").json()["org"][0]["license_details"]["paid_type"] == "Standard"
