"""Hand-made fixture folders: the example scenario loads and reads back through both APIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from xz_pipeline.sandbox.fixtures import FixtureError, dump_fixture_dir, load_fixture_dir
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.sandbox.xero import XeroEmulator
from xz_pipeline.sandbox.zoho import ZohoEmulator

SCENARIO = Path(__file__).resolve().parents[1] / "fixtures" / "scenario_small"


def _records(rel: str) -> list[dict]:
    doc = json.loads((SCENARIO / rel).read_text())
    return next(iter(doc.values()))


@pytest.fixture(scope="module")
def served():
    """The scenario behind real ports, with fresh access tokens for both vendors."""
    with SandboxServer(fixture_dir=SCENARIO) as sb:
        env = sb.env(0)
        xt = requests.post(
            f"{env['XERO_IDENTITY_URL']}/connect/token",
            data={"grant_type": "refresh_token", "refresh_token": env["XERO_REFRESH_TOKEN"]},
            auth=(env["XERO_CLIENT_ID"], env["XERO_CLIENT_SECRET"]),
            timeout=10,
        ).json()["access_token"]
        zt = requests.post(
            f"{env['ZOHO_ACCOUNTS_URL']}/oauth/v2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": env["ZOHO_REFRESH_TOKEN"],
                "client_id": env["ZOHO_CLIENT_ID"],
                "client_secret": env["ZOHO_CLIENT_SECRET"],
            },
            timeout=10,
        ).json()["access_token"]
        xero = requests.Session()
        xero.headers.update(
            {
                "Authorization": f"Bearer {xt}",
                "xero-tenant-id": env["XERO_TENANT_ID"],
                "Accept": "application/json",
            }
        )
        zoho = requests.Session()
        zoho.headers["Authorization"] = f"Zoho-oauthtoken {zt}"
        yield sb, env, xero, zoho
        xero.close()
        zoho.close()


def test_scenario_reads_back_through_the_xero_api(served):
    sb, env, xero, _ = served
    assert (
        sb.worlds == [] and env["XERO_TENANT_ID"] == _records("xero/Organisation.json")[0]["OrganisationID"]
    )
    api = f"{env['XERO_API_URL']}/api.xro/2.0"
    org = xero.get(f"{api}/Organisation", timeout=5).json()["Organisations"][0]
    assert org["Name"] == "Kōwhai Espresso Supplies" and org["BaseCurrency"] == "NZD"
    contacts = xero.get(f"{api}/Contacts", timeout=5).json()["Contacts"]
    assert sorted(c["Name"] for c in contacts) == sorted(c["Name"] for c in _records("xero/Contacts.json"))
    invoices = {
        i["InvoiceNumber"]: i
        for i in xero.get(f"{api}/Invoices", params={"page": 1}, timeout=5).json()["Invoices"]
    }
    assert set(invoices) == {"INV-0001", "INV-0002", "INV-0003"}
    assert invoices["INV-0001"]["Status"] == "PAID" and invoices["INV-0001"]["AmountDue"] == 0
    assert invoices["INV-0002"]["Total"] == 2518.5 and invoices["INV-0002"]["AmountDue"] == 2518.5
    assert len(invoices["INV-0002"]["LineItems"]) == 2
    payments = xero.get(f"{api}/Payments", timeout=5).json()["Payments"]
    assert [p["Amount"] for p in payments] == [747.5]
    assert {a["Code"] for a in xero.get(f"{api}/Accounts", timeout=5).json()["Accounts"]} >= {
        "090",
        "200",
        "610",
    }
    assert {i["Code"] for i in xero.get(f"{api}/Items", timeout=5).json()["Items"]} == {
        "BEANS-1KG",
        "GRINDER",
    }


def test_scenario_reads_back_through_the_zoho_api(served):
    _, env, _, zoho = served
    api = f"{env['ZOHO_API_DOMAIN']}/crm/v8"
    accounts = zoho.get(
        f"{api}/Accounts", params={"fields": "Account_Name,Phone,Xero_Contact_ID"}, timeout=5
    ).json()
    assert sorted(a["Account_Name"] for a in accounts["data"]) == sorted(
        a["Account_Name"] for a in _records("zoho/Accounts.json")
    )
    deals = zoho.get(f"{api}/Deals", params={"fields": "Deal_Name,Stage,Amount"}, timeout=5).json()["data"]
    assert sorted(d["Stage"] for d in deals) == [
        "Closed Won",
        "Closed Won",
        "Closed Won",
        "Negotiation/Review",
    ]
    (invoice_id,) = [
        i["id"] for i in _records("zoho/Invoices.json") if i["Subject"] == "Harbour - cafe fit-out"
    ]
    invoice = zoho.get(f"{api}/Invoices/{invoice_id}", timeout=5).json()["data"][0]
    assert len(invoice["Invoiced_Items"]) == 2 and invoice["Grand_Total"] == 2518.5
    for module, count in (("Contacts", 3), ("Products", 2), ("Invoices", 2)):
        assert len(zoho.get(f"{api}/{module}", params={"fields": "id"}, timeout=5).json()["data"]) == count


def test_the_one_disagreement_is_visible_through_the_apis(served):
    _, env, xero, zoho = served
    (truth,) = json.loads((SCENARIO / "manifest.json").read_text())["manifest"]
    assert truth["kind"] == "customer_field_mismatch" and truth["field"] == "phone"
    contact = xero.get(f"{env['XERO_API_URL']}/api.xro/2.0/Contacts/{truth['books_id']}", timeout=5).json()
    (phone,) = [p for p in contact["Contacts"][0]["Phones"] if p["PhoneType"] == "DEFAULT"]
    books_phone = f"+{phone['PhoneCountryCode']} {phone['PhoneAreaCode'].lstrip('0')} {phone['PhoneNumber']}"
    account = zoho.get(f"{env['ZOHO_API_DOMAIN']}/crm/v8/Accounts/{truth['crm_id']}", timeout=5).json()[
        "data"
    ][0]
    assert (books_phone, account["Phone"]) == (truth["books_value"], truth["crm_value"])


def test_dump_and_reload_round_trips(tmp_path):
    xero, zoho = XeroEmulator(), ZohoEmulator()
    tenant_id, org_id = load_fixture_dir(SCENARIO, xero, zoho)
    out = dump_fixture_dir(tmp_path / "copy", xero, tenant_id, zoho, org_id)
    assert json.loads((out / "xero" / "Contacts.json").read_text())["Contacts"]
    x2, z2 = XeroEmulator(), ZohoEmulator()
    t2, o2 = load_fixture_dir(out, x2, z2)
    assert t2 == tenant_id
    for collection in ("Contacts", "Invoices", "Payments", "Items", "Accounts"):
        assert x2.dump(t2, collection) == xero.dump(tenant_id, collection), collection
    for module in ("Accounts", "Contacts", "Deals", "Invoices", "Products"):
        assert sorted(r["id"] for r in z2.dump(o2, module)) == sorted(
            r["id"] for r in zoho.dump(org_id, module)
        )


def test_missing_files_are_fine_and_bad_ones_are_named(tmp_path):
    only = tmp_path / "only-contacts"
    (only / "xero").mkdir(parents=True)
    contacts = _records("xero/Contacts.json")[:1]
    (only / "xero" / "Contacts.json").write_text(json.dumps({"Contacts": contacts}))
    xero, zoho = XeroEmulator(), ZohoEmulator()
    tenant_id, org_id = load_fixture_dir(only, xero, zoho)
    assert [c["Name"] for c in xero.dump(tenant_id, "Contacts")] == [contacts[0]["Name"]]
    assert zoho.dump(org_id, "Accounts") == []

    bad = tmp_path / "bad"
    (bad / "zoho").mkdir(parents=True)
    (bad / "zoho" / "Deals.json").write_text(json.dumps({"Deals": []}))  # Zoho wraps records in "data"
    with pytest.raises(FixtureError, match=r"Deals\.json"):
        load_fixture_dir(bad, XeroEmulator(), ZohoEmulator())
    with pytest.raises(FixtureError, match="not found"):
        load_fixture_dir(tmp_path / "nowhere", XeroEmulator(), ZohoEmulator())


# -- hostile records: served as the APIs could send them --------------------------------------------

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"


def _token_sessions(env: dict[str, str]) -> tuple[requests.Session, requests.Session]:
    xt = requests.post(
        f"{env['XERO_IDENTITY_URL']}/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": env["XERO_REFRESH_TOKEN"]},
        auth=(env["XERO_CLIENT_ID"], env["XERO_CLIENT_SECRET"]),
        timeout=10,
    ).json()["access_token"]
    zt = requests.post(
        f"{env['ZOHO_ACCOUNTS_URL']}/oauth/v2/token",
        data={"grant_type": "refresh_token", "refresh_token": env["ZOHO_REFRESH_TOKEN"],
              "client_id": env["ZOHO_CLIENT_ID"], "client_secret": env["ZOHO_CLIENT_SECRET"]},
        timeout=10,
    ).json()["access_token"]  # fmt: skip
    xero, zoho = requests.Session(), requests.Session()
    xero.headers.update({"Authorization": f"Bearer {xt}", "xero-tenant-id": env["XERO_TENANT_ID"],
                         "Accept": "application/json"})  # fmt: skip
    zoho.headers["Authorization"] = f"Zoho-oauthtoken {zt}"
    return xero, zoho


def test_hostile_records_load_and_are_served_as_they_are():
    with SandboxServer(fixture_dir=HOSTILE) as sb:
        env = sb.env(0)
        xero, zoho = _token_sessions(env)
        api = f"{env['XERO_API_URL']}/api.xro/2.0"
        listed = xero.get(f"{api}/Invoices", params={"page": 1}, timeout=5)
        assert listed.status_code == 200
        invoices = {i["InvoiceNumber"]: i for i in listed.json()["Invoices"]}
        assert len(invoices) == 10
        assert invoices["INV-0001"]["LineItems"] == [] and invoices["INV-0001"]["Total"] == 0
        assert invoices["INV-0000"]["Total"] >= 1e16 and invoices["INV-0002"]["CurrencyCode"] == "ZZZ"
        contacts = {c["Name"]: c for c in xero.get(f"{api}/Contacts", timeout=5).json()["Contacts"]}
        assert contacts["Hostile List-Email"]["EmailAddress"] == ["a@b.c"]
        assert contacts["Never Updated Ltd"]["UpdatedDateUTC"].startswith("/Date(-62135596800000")
        items = {i["Code"]: i for i in xero.get(f"{api}/Items", timeout=5).json()["Items"]}
        assert items["ITEM-0"]["IsSold"] == "yes" and items["ITEM-1"]["IsSold"] is True

        crm = f"{env['ZOHO_API_DOMAIN']}/crm/v8"
        products = zoho.get(f"{crm}/Products", params={"fields": "Product_Name,Product_Active"}, timeout=5)
        assert products.status_code == 200
        assert {p["Product_Active"] for p in products.json()["data"]} == {"maybe", True}
        deals = zoho.get(f"{crm}/Deals", params={"fields": "Deal_Name,Probability,Amount"}, timeout=5).json()
        assert "high" in {d["Probability"] for d in deals["data"]}
        accounts = zoho.get(f"{crm}/Accounts", params={"fields": "Account_Name,Owner"}, timeout=5).json()
        ownerless = _records_of(HOSTILE / "zoho/Accounts.json")[0]["id"]
        (account,) = [a for a in accounts["data"] if a["id"] == ownerless]
        assert account["Owner"] is None
        contacts = zoho.get(f"{crm}/Contacts", params={"fields": "Last_Name,Owner"}, timeout=5).json()["data"]
        assert len(contacts) == 8
        xero.close()
        zoho.close()


def _records_of(path: Path) -> list[dict]:
    return next(iter(json.loads(path.read_text()).values()))


def test_an_id_twice_in_a_fixture_is_named_not_silently_collapsed(tmp_path):
    for vendor, name, key, record, field in (
        ("xero", "Contacts.json", "Contacts", {"ContactID": "c-1", "Name": "A"}, "Name"),
        ("zoho", "Accounts.json", "data", {"id": "1", "Account_Name": "A"}, "Account_Name"),
    ):
        folder = tmp_path / vendor
        (folder / vendor).mkdir(parents=True)
        (folder / vendor / name).write_text(json.dumps({key: [record, {**record, field: "B"}]}))
        with pytest.raises(FixtureError, match=r"appears twice"):
            load_fixture_dir(folder, XeroEmulator(), ZohoEmulator())
