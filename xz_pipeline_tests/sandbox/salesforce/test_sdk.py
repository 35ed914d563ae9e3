"""The official Python client (simple-salesforce) against the emulator on real loopback ports.

simple-salesforce builds `https://{host}/services/data/...` from the instance URL; the emulator serves
plain HTTP on loopback, so the client gets a `requests.Session` whose adapter sends loopback https URLs
as http. Nothing else is bent: if the SDK can page a query across batches, create, upsert by an external
id and read both back, the emulator speaks the wire format real clients expect.
"""

from __future__ import annotations

import pytest
import requests
from requests.adapters import HTTPAdapter

from xz_pipeline.sandbox.salesforce import SalesforceEmulator, SalesforceLimits
from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline_tests.sandbox.salesforce.support import CLIENT_ID, REDIRECT, SECRET, world

pytest.importorskip("simple_salesforce", reason="simple-salesforce (dev extra) is not installed")


class LoopbackHttp(HTTPAdapter):
    """Sends https://127.0.0.1:… as http://127.0.0.1:… (the SDK always says https)."""

    def send(self, request, **kwargs):
        if request.url.startswith("https://127.0.0.1:"):
            request.url = "http://" + request.url[len("https://") :]
        return super().send(request, **kwargs)


@pytest.fixture(scope="module")
def served():
    emu = SalesforceEmulator(limits=SalesforceLimits(batch_size=200))  # real clock; several batches per query
    org_id = emu.seed_world(world("full"))
    emu.register_client(CLIENT_ID, SECRET, [REDIRECT])
    with (
        LoopbackServer(emu.app, name="sf-login") as login,
        LoopbackServer(emu.app, name="sf-instance") as inst,
    ):
        emu.base_url = login.url
        emu.set_instance_url(org_id, inst.url)
        yield emu, login.url, org_id


def test_sdk_pages_creates_upserts_and_reads(served):
    from simple_salesforce import Salesforce

    emu, login, org_id = served
    token = requests.post(f"{login}/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": CLIENT_ID,
                          "client_secret": SECRET, "refresh_token": emu.grant_refresh_token(CLIENT_ID, org_id)}).json()  # fmt: skip
    session = requests.Session()
    session.mount("https://127.0.0.1:", LoopbackHttp())
    sf = Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session, version="62.0"
    )

    deals = world("full").crm.deals
    found = sf.query_all("SELECT Id, Name, StageName, IsWon, Account.Name FROM Opportunity")
    assert found["totalSize"] == len(deals) and found["done"] is True
    assert len({r["Id"] for r in found["records"]}) == len(deals) > 400
    pages = [r for r in emu.received if "/query" in r.path]
    assert len(pages) == -(-len(deals) // 200)  # one request per batch of 200, following nextRecordsUrl
    assert sum(r["IsWon"] for r in found["records"]) == sum(d.stage == "Closed Won" for d in deals)
    assert sf.api_usage["api-usage"].used == len(pages)  # read from Sforce-Limit-Info

    made = sf.Account.create({"Name": "Made By The SDK", "Phone": "+1 555 0199"})
    assert made["success"] and made["id"].startswith("001")
    assert sf.Account.upsert("Books_Customer_Id__c/SDK-1", {"Name": "Upserted By The SDK"}) == 201
    assert sf.Account.upsert("Books_Customer_Id__c/SDK-1", {"Phone": "+1 555 0100"}) == 200  # v46.0+

    again = sf.Account.get(made["id"])
    assert again["Name"] == "Made By The SDK" and again["attributes"]["type"] == "Account"
    upserted = sf.Account.get_by_custom_id("Books_Customer_Id__c", "SDK-1")
    assert upserted["Name"] == "Upserted By The SDK" and upserted["Phone"] == "+1 555 0100"
    both = sf.query("SELECT Name FROM Account WHERE Name LIKE '%By The SDK' ORDER BY Name")
    assert [r["Name"] for r in both["records"]] == ["Made By The SDK", "Upserted By The SDK"]
    assert all(r.status < 300 for r in emu.received)
