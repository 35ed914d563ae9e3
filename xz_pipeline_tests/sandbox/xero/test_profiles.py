"""The Xero emulator per organisation profile: the books' country, currencies and tax, read through the API."""

from __future__ import annotations

import json

import pytest

from xz_pipeline.sandbox.fixtures import FixtureError, load_fixture_dir
from xz_pipeline.sandbox.profiles import get_profile
from xz_pipeline.sandbox.world import generate
from xz_pipeline.sandbox.xero import XeroEmulator
from xz_pipeline.sandbox.zoho import ZohoEmulator
from xz_pipeline_tests.sandbox.xero.support import API, SpecClient, accounting_spec


def _api(world) -> SpecClient:
    emu = XeroEmulator()
    tenant = emu.seed_world(world)
    emu.register_client("C", "S")
    tok = emu.identity.token({}, {"grant_type": "refresh_token", "client_id": "C", "client_secret": "S",
                                  "refresh_token": emu.grant_refresh_token("C", [tenant])})["access_token"]  # fmt: skip
    return SpecClient(
        emu.app, {"Authorization": f"Bearer {tok}", "xero-tenant-id": tenant, "Accept": "application/json"}
    )


@pytest.mark.parametrize(
    ("profile", "base", "tax_word"),
    [("full", None, None), ("single-currency", None, None), ("uk", "GBP", "VAT"), ("us", "USD", "Sales Tax")],
)
def test_currencies_organisation_and_tax_fit_the_profile(specs, profile, base, tax_word):
    accounting_spec()
    world = generate(7, "tiny", profile=profile)
    api = _api(world)
    org = api.get(f"{API}/Organisation").json()["Organisations"][0]
    assert org["BaseCurrency"] == world.books.base_currency == (base or world.books.base_currency)
    codes = [c["Code"] for c in api.get(f"{API}/Currencies").json()["Currencies"]]
    billed = {i["CurrencyCode"] for i in api.get(f"{API}/Invoices", params={"page": "1"}).json()["Invoices"]}
    assert billed <= set(codes) and org["BaseCurrency"] in codes
    if profile == "single-currency":
        assert codes == [org["BaseCurrency"]]  # one currency: nothing else was ever added
    if profile == "full":
        assert len(codes) >= 2  # the full world bills abroad in the customers' currencies
    if tax_word:
        assert org["CountryCode"] == get_profile(profile).country
        assert any(tax_word in t["Name"] for t in api.get(f"{API}/TaxRates").json()["TaxRates"])


def test_a_single_currency_fixture_refuses_a_foreign_currency(tmp_path):
    xdir = tmp_path / "xero"
    xdir.mkdir()
    (xdir / "Organisation.json").write_text(
        json.dumps({"Organisations": [{"Name": "One Coin Ltd", "BaseCurrency": "NZD"}]})
    )
    contacts = xdir / "Contacts.json"
    contacts.write_text(
        json.dumps({"Contacts": [{"ContactID": "c1", "Name": "Abroad", "DefaultCurrency": "EUR"}]})
    )
    with pytest.raises(FixtureError) as err:
        load_fixture_dir(tmp_path, XeroEmulator(), ZohoEmulator(), get_profile("single-currency"))
    assert str(contacts) in str(err.value) and "DefaultCurrency EUR" in str(err.value)
    emu = XeroEmulator()
    tenant, _ = load_fixture_dir(tmp_path, emu, ZohoEmulator(), get_profile("full"))
    assert sorted(emu.books[tenant].records["Currencies"]) == ["EUR", "NZD"]  # loading it added the currency
