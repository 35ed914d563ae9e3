"""The official SDKs (python-quickbooks + intuit-oauth) against the emulator on a real loopback port.

intuit-oauth reads its endpoints from a discovery document: it is given the emulator's own, and
python-quickbooks' API base is pointed at the emulator, so nothing leaves loopback. If Intuit's client
can refresh, page through customers, create one and read it back, and read an invoice here, the
emulator speaks the wire format real clients expect.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from xz_pipeline.sandbox.quickbooks import QuickBooksEmulator
from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline_tests.sandbox.quickbooks.support import CLIENT_ID, REDIRECT, SECRET, world

pytest.importorskip("quickbooks", reason="python-quickbooks (dev extra) is not installed")
pytest.importorskip("intuitlib", reason="intuit-oauth (dev extra) is not installed")


@pytest.fixture(scope="module")
def served():
    emu = QuickBooksEmulator()  # real clock: the SDK judges nothing by it, but tokens expire by it
    realm = emu.seed_world(world("full"))
    emu.register_client(CLIENT_ID, SECRET, [REDIRECT])
    with LoopbackServer(emu.app, name="qbo-sdk-test") as server:
        emu.base_url = server.url
        yield emu, server.url, realm


def test_sdk_refreshes_pages_creates_and_reads(served, monkeypatch):
    from intuitlib.client import AuthClient
    from quickbooks import QuickBooks
    from quickbooks.cdc import change_data_capture
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.invoice import Invoice

    emu, url, realm = served
    refresh = emu.grant_refresh_token(CLIENT_ID, realm)
    auth = AuthClient(CLIENT_ID, SECRET, REDIRECT, environment=f"{url}/.well-known/openid_configuration")
    assert auth.token_endpoint == f"{url}/oauth2/v1/tokens/bearer"
    monkeypatch.setattr(QuickBooks, "api_url_v3", f"{url}/v3")
    monkeypatch.setenv(
        "OAUTHLIB_INSECURE_TRANSPORT", "1"
    )  # requests-oauthlib's switch for plain-HTTP loopback
    qb = QuickBooks(auth_client=auth, refresh_token=refresh, company_id=realm, minorversion=75)
    assert auth.access_token and auth.refresh_token != refresh  # refreshed through the emulator, rotated

    pages, start = [], 1
    while True:
        page = Customer.all(start_position=start, max_results=20, qb=qb)
        if not page:
            break
        pages.append(page)
        start += len(page)
    ids = [c.Id for p in pages for c in p]
    active = [c for c in emu.companies[realm].records["Customer"].values() if c["Active"]]
    assert len(pages) > 1 and len(ids) == len(set(ids)) == len(active)

    before = (emu.clock.now() - timedelta(seconds=1)).isoformat(timespec="seconds")
    made = Customer()
    made.DisplayName = "Made By The SDK"
    made.CompanyName = "Made By The SDK Ltd"
    made.save(qb=qb, request_id="sdk-create-1")
    assert made.Id
    again = Customer.get(made.Id, qb=qb)
    assert again.DisplayName == "Made By The SDK" and again.CompanyName == "Made By The SDK Ltd"
    assert again.SyncToken == "0" and again.MetaData["CreateTime"]

    sample = next(i for i in world("full").books.invoices if i.type == "ACCREC" and i.status == "AUTHORISED")
    qbo_id = emu.id_map(realm)[sample.id]
    inv = Invoice.get(qbo_id, qb=qb)
    assert inv.DocNumber == sample.number and Decimal(str(inv.TotalAmt)) == sample.total
    assert inv.CustomerRef.value == emu.id_map(realm)[sample.contact_id]
    assert [ln.DetailType for ln in inv.Line][-1] == "SubTotalLineDetail"

    changed = change_data_capture([Customer], before, qb=qb)
    assert made.Id in [c.Id for c in changed.Customer]

    paths = [(r.method, r.path.replace(realm, "R"), r.status) for r in emu.received]
    assert paths[0] == ("GET", "/.well-known/openid_configuration", 200)
    assert ("POST", "/oauth2/v1/tokens/bearer", 200) in paths and (
        "POST",
        "/v3/company/R/customer",
        200,
    ) in paths
    assert all(status == 200 for _m, _p, status in paths)
