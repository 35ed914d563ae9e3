"""The official xero-python SDK against the emulator on a real loopback port.

If Xero's own SDK can refresh a token, list contacts and create one here, the emulator speaks
the wire format real clients expect (dates, envelope, field names, token responses).
"""

from __future__ import annotations

import time

import pytest
import requests

from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline.sandbox.world import generate
from xz_pipeline.sandbox.xero import XeroEmulator

sdk = pytest.importorskip("xero_python", reason="xero-python (dev extra) is not installed")


@pytest.fixture
def served():
    emu = XeroEmulator()  # real clock: the SDK judges token expiry by wall time
    with LoopbackServer(emu.app, name="xero-sdk-test") as server:
        emu.base_url = server.url
        yield emu, server.url


@pytest.mark.parametrize("profile", ["full", "single-currency", "uk"])
def test_sdk_refreshes_lists_and_creates_contacts(served, monkeypatch, profile):
    from xero_python.accounting import AccountingApi, Contact, Contacts
    from xero_python.api_client import ApiClient, Configuration
    from xero_python.api_client.oauth2 import OAuth2Token, TokenApi

    emu, url = served
    world = generate(7, "tiny", profile=profile)  # the profile's books: its country, currency, tax
    tenant = emu.seed_world(world)
    emu.register_client("SDKCLIENT", "sdk-secret", ["http://localhost:8765/callback"])
    emu.load(tenant, "Contacts", [{"Name": "Seeded Customer", "EmailAddress": "seed@example.com",
                                   "UpdatedDateUTC": "/Date(1793610000000+0000)/"}])  # fmt: skip
    refresh = emu.grant_refresh_token("SDKCLIENT", [tenant])
    monkeypatch.setattr(TokenApi, "refresh_token_url", f"{url}/connect/token")

    store: dict = {}
    scopes = ["offline_access", "accounting.contacts", "accounting.settings", "accounting.transactions"]
    # an already-expired token: the SDK must refresh through the emulator's token endpoint first
    store["token"] = {"access_token": "stale", "refresh_token": refresh, "scope": scopes, "expires_in": 1800,
                      "token_type": "Bearer", "expires_at": time.time() - 10}  # fmt: skip
    client = ApiClient(
        Configuration(oauth2_token=OAuth2Token(client_id="SDKCLIENT", client_secret="sdk-secret")),
        pool_threads=1,
        oauth2_token_getter=lambda: store["token"],
        oauth2_token_saver=lambda token: store.update(token=token),
    )
    api = AccountingApi(client, base_url=f"{url}/api.xro/2.0")

    listed = api.get_contacts(tenant, where='Name=="Seeded Customer"')
    assert [c.name for c in listed.contacts] == ["Seeded Customer"]
    assert listed.contacts[0].updated_date_utc.year == 2026  # /Date()/ parsed by the SDK
    assert store["token"]["refresh_token"] != refresh  # rotated on refresh
    assert emu.received[0].path == "/connect/token"

    created = api.create_contacts(tenant, contacts=Contacts(contacts=[Contact(name="Made By SDK", email_address="sdk@example.com")]),
                                  summarize_errors=True)  # fmt: skip
    new = created.contacts[0]
    assert new.contact_id and new.name == "Made By SDK"
    again = api.get_contact(tenant, new.contact_id).contacts[0]
    assert again.email_address == "sdk@example.com" and str(again.contact_status).endswith("ACTIVE")
    # the emulator saw the SDK's calls on its own port, with the tenant header
    # the profile's organisation, read by the SDK: its base currency, and invoices in it alone when single
    org = api.get_organisations(tenant).organisations[0]
    assert str(org.base_currency).endswith(world.books.base_currency)
    assert str(org.country_code).endswith(world.books.country_code)
    codes = {str(i.currency_code).rsplit(".", 1)[-1] for i in api.get_invoices(tenant, page=1).invoices}
    assert (
        codes == {world.books.base_currency}
        if profile == "single-currency"
        else world.books.base_currency in codes
    )
    calls = [(r.method, r.path, r.status) for r in emu.received if r.path.startswith("/api.xro")]
    assert calls == [("GET", "/api.xro/2.0/Contacts", 200), ("PUT", "/api.xro/2.0/Contacts", 200),
                     ("GET", f"/api.xro/2.0/Contacts/{new.contact_id}", 200),
                     ("GET", "/api.xro/2.0/Organisation", 200), ("GET", "/api.xro/2.0/Invoices", 200)]  # fmt: skip
    # and over plain HTTP too, without JSON accept, it answers XML as Xero does
    xml = requests.get(f"{url}/api.xro/2.0/Organisation", timeout=5,
                       headers={"Authorization": f"Bearer {store['token']['access_token']}", "xero-tenant-id": tenant})  # fmt: skip
    assert xml.status_code == 200 and xml.text.startswith("<Response>")
