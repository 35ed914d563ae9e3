"""Organisation profiles across the sandbox: what each world injects, the data centres, fixtures and options."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import requests

from xz_pipeline.sandbox.fixtures import FixtureError, load_fixture_dir
from xz_pipeline.sandbox.profiles import PROFILE_NAMES, get_profile
from xz_pipeline.sandbox.server import SandboxServer, build_parser
from xz_pipeline.sandbox.world import DISCREPANCY_KINDS, generate, manifest_document
from xz_pipeline.sandbox.xero import XeroEmulator
from xz_pipeline.sandbox.zoho import ZohoEmulator


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_manifest_lists_what_each_profile_can_show_and_injects_only_that(profile):
    world = generate(7, "tiny", profile=profile)
    doc = manifest_document(world)
    assert doc["profile"] == profile
    undetectable = doc["undetectable"]
    assert all(reason.strip() for reason in undetectable.values())
    assert doc["detectable"] == [k for k in DISCREPANCY_KINDS if k not in undetectable]
    injected = Counter(m["kind"] for m in doc["manifest"])
    assert not set(injected) & set(undetectable), injected
    assert all(injected[kind] >= 1 for kind in doc["detectable"]), injected
    expected = {
        "full": set(),
        "single-currency": {"currency_mismatch"},
        "bare": {"payment_status_stale", "balance_mismatch"},
        "standard": {"invoice_missing_in_crm"},
        "renamed": set(),
        "uk": set(),
        "us": set(),
    }[profile]
    assert set(undetectable) == expected


def test_tiny_is_a_few_dozen_customers_and_a_few_hundred_invoices():
    world = generate(7, "tiny")
    sales = [i for i in world.books.invoices if i.type == "ACCREC"]
    customers = [c for c in world.books.contacts if any(i.contact_id == c.id for i in sales)]
    assert 24 <= len(customers) <= 99 and 200 <= len(sales) <= 900


def test_full_is_the_default_world():
    assert repr(generate(7, "tiny", profile="full")) == repr(generate(7, "tiny"))


def test_single_currency_books_and_crm_keep_one_currency():
    world = generate(7, "tiny", profile="single-currency")
    base = world.books.base_currency
    assert {i.currency for i in world.books.invoices} == {base}
    assert {c.currency for c in world.books.contacts} <= {base}
    assert {d.currency for d in world.crm.deals} == {base} == {world.crm.currency}
    assert {n.currency for n in world.books.credit_notes} <= {base}
    several = generate(7, "tiny", profile="full")
    assert len({i.currency for i in several.books.invoices}) > 1  # the full world does bill abroad


@pytest.mark.parametrize(
    ("profile", "currency", "tax_word", "zone"),
    [("uk", "GBP", "VAT", "Europe/London"), ("us", "USD", "Sales Tax", "America/")],
)
def test_uk_and_us_orgs(profile, currency, tax_word, zone):
    for seed in (1, 2, 3):  # whatever country the seed would have drawn
        world = generate(seed, "tiny", profile=profile)
        assert world.books.base_currency == currency == world.crm.currency
        assert world.books.country_code == get_profile(profile).country
        assert any(tax_word in t.name for t in world.books.tax_rates)
        assert world.crm.timezone.startswith(zone) and world.books.timezone.startswith(zone)


def _token(accounts_url: str, sb: SandboxServer) -> requests.Response:
    return requests.post(
        f"{accounts_url}/oauth/v2/token",
        data={"grant_type": "refresh_token", "client_id": sb.zoho_client_id,
              "client_secret": sb.zoho_client_secret, "refresh_token": sb.env(0)["ZOHO_REFRESH_TOKEN"]},
        timeout=10,
    )  # fmt: skip


def test_eu_data_centre_serves_the_accounts_server_and_the_api_on_separate_ports():
    with SandboxServer(size="tiny", profile="uk") as sb:
        env = sb.env(0)
        accounts, api = env["ZOHO_ACCOUNTS_URL"], sb.zoho_url
        assert (
            accounts != api
            and accounts.startswith("http://127.0.0.1:")
            and api.startswith("http://127.0.0.1:")
        )
        assert "ZOHO_API_DOMAIN" not in env  # as a person configures an EU org: the token names the API
        body = _token(accounts, sb).json()
        assert body["api_domain"] == api
        headers = {"Authorization": f"Zoho-oauthtoken {body['access_token']}"}
        org = requests.get(f"{api}/crm/v8/org", headers=headers, timeout=10)
        assert org.status_code == 200
        info = org.json()["org"][0]
        assert (info["time_zone"], info["iso_code"], info["country_code"]) == ("Europe/London", "GBP", "GB")
        assert requests.get(f"{accounts}/crm/v8/org", headers=headers, timeout=10).status_code == 404
        assert _token(api, sb).status_code == 404  # the API host is not an accounts server
        consent = requests.get(
            f"{accounts}/oauth/v2/auth",
            params={"client_id": sb.zoho_client_id, "response_type": "code", "scope": "ZohoCRM.modules.ALL",
                    "redirect_uri": "http://localhost:8765/callback", "access_type": "offline", "auto": "1"},
            allow_redirects=False,
            timeout=10,
        )  # fmt: skip
        assert consent.status_code == 302
        assert (
            "location=eu" in consent.headers["location"] and "accounts-server=" in consent.headers["location"]
        )
    with SandboxServer(size="tiny") as sb:  # the US default: one origin for both
        assert sb.env(0)["ZOHO_ACCOUNTS_URL"] == sb.env(0)["ZOHO_API_DOMAIN"] == sb.zoho_url


def test_a_fixture_record_with_a_field_the_profile_lacks_is_refused_naming_file_and_field(tmp_path):
    zdir = tmp_path / "zoho"
    zdir.mkdir()
    deals = zdir / "Deals.json"
    deals.write_text(
        json.dumps({"data": [{"id": "1", "Deal_Name": "D", "Stage": "Qualification", "Currency": "EUR"}]})
    )
    with pytest.raises(FixtureError) as err:
        load_fixture_dir(tmp_path, XeroEmulator(), ZohoEmulator(), get_profile("single-currency"))
    assert (
        str(deals) in str(err.value) and "Currency" in str(err.value) and "single-currency" in str(err.value)
    )
    tenant, org = load_fixture_dir(tmp_path, XeroEmulator(), zoho := ZohoEmulator(), get_profile("full"))
    assert zoho.dump(org, "Deals")[0]["Currency"] == "EUR"
    deals.write_text(
        json.dumps(
            {"data": [{"id": "1", "Deal_Name": "D", "Stage": "Qualification", "Payment_Status": "Paid"}]}
        )
    )
    with pytest.raises(FixtureError, match="Payment_Status"):
        load_fixture_dir(tmp_path, XeroEmulator(), ZohoEmulator(), get_profile("bare"))
    (zdir / "Invoices.json").write_text(json.dumps({"data": [{"id": "2", "Subject": "I"}]}))
    deals.unlink()
    with pytest.raises(FixtureError, match="no Invoices module"):
        load_fixture_dir(tmp_path, XeroEmulator(), ZohoEmulator(), get_profile("standard"))


def test_profile_option_and_unknown_profiles():
    args = build_parser().parse_args(["--profile", "bare", "--size", "tiny"])
    assert (args.profile, args.size) == ("bare", "tiny")
    assert build_parser().parse_args([]).profile == "full"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--profile", "nonesuch"])
    with pytest.raises(ValueError, match="unknown profile 'nonesuch'; choose one of full"):
        SandboxServer(profile="nonesuch")


def test_without_link_fields_a_mismatched_deal_is_named_on_its_invoice():
    """In a bare org nothing carries the Xero invoice id: the invoice's reference is what finds the deal
    whose amount or currency disagrees (else it would look like an invoice without deal plus a deal not
    invoiced, and the manifest would promise a kind nobody can see)."""
    world = generate(7, "tiny", profile="bare")
    deals = {d.id: d for d in world.crm.deals}
    invoices = {i.id: i for i in world.books.invoices}
    mismatched = [m for m in world.manifest if m.kind in ("amount_mismatch", "currency_mismatch")]
    assert mismatched
    for m in mismatched:
        ref, deal = invoices[m.books_id].reference, deals[m.crm_id]
        assert ref in (deal.name, f"DEAL-{deal.id}"), (m.kind, ref)
        assert not deal.xero_invoice_id
    full = generate(7, "tiny", profile="full")
    refs = [i.reference for i in full.books.invoices]
    assert any(r.startswith("PO-") for r in refs)  # elsewhere some invoices name a purchase order instead
