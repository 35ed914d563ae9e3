"""The official Zoho CRM SDK (zohocrmsdk8-0) against the emulator: token refresh, reads, upserts, loopback only."""

from __future__ import annotations

import contextlib
import socket

import pytest

from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.profiles import get_profile
from xz_pipeline.sandbox.zoho import ZohoEmulator
from xz_pipeline_tests.sandbox.zoho.support import CLIENT_ID, CLIENT_SECRET, served

sdk = pytest.importorskip("zohocrmsdk.src.com.zoho.crm.api.initializer", reason="zohocrmsdk8-0 not installed")


@pytest.fixture
def loopback_only(monkeypatch):
    """Refuse every connection that is not to 127.0.0.1/::1, so a real Zoho host can never be reached."""
    original = socket.create_connection
    attempts: list[str] = []

    def guarded(address, *args, **kwargs):
        host = address[0]
        attempts.append(host)
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"test refuses non-loopback host {host}")
        return original(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    real_getaddrinfo = socket.getaddrinfo

    def no_dns(host, *args, **kwargs):
        if host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(str(host))
            raise OSError(f"test refuses to resolve {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    return attempts


ORGS = {  # profile -> add_org options: the home currency and time zone such an org has
    "full": {},
    "single-currency": {},
    "uk": {"currency": "GBP", "timezone": "Europe/London"},
}


@contextlib.contextmanager
def _origins(emu: ZohoEmulator, profile: str):
    """(API URL, accounts URL): one origin, or two for a data centre that splits them (the uk profile)."""
    if not get_profile(profile).separate_accounts_server:
        with served(emu.app) as url:
            emu.base_url = url
            yield url, url
        return
    with served(emu.api_app) as api, served(emu.accounts_app) as accounts:
        emu.base_url, emu.accounts_url = api, accounts
        yield api, accounts


@pytest.mark.parametrize("profile", list(ORGS))
def test_official_sdk_refreshes_reads_and_upserts(tmp_path, loopback_only, profile):
    from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
    from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
    from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
    from zohocrmsdk.src.com.zoho.crm.api.header_map import HeaderMap
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
    from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap
    from zohocrmsdk.src.com.zoho.crm.api.record import (
        ActionWrapper,
        BodyWrapper,
        GetRecordsParam,
        Record,
        RecordOperations,
        ResponseWrapper,
        SuccessResponse,
    )
    from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig

    emu = ZohoEmulator(clock=ManualClock())
    emu.register_client(CLIENT_ID, CLIENT_SECRET)
    org_id = emu.add_org("SDK Test Ltd", profile=profile, **ORGS[profile])
    multi = profile != "single-currency"
    seeded = {"id": "5725767000000000101", "Account_Name": "Harbour Coffee", "Xero_Contact_ID": "xc-1"}
    emu.load(org_id, "Accounts", [{**seeded, "Currency": "EUR"} if multi else seeded])
    refresh = emu.grant_refresh_token(CLIENT_ID, org_id)
    with _origins(emu, profile) as (url, accounts_url):
        environment = DataCenter.Environment(url, f"{accounts_url}/oauth/v2/token", accounts_url)
        token = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=refresh)
        resources = tmp_path / "sdk"
        resources.mkdir()
        Initializer.initialize(
            environment=environment,
            token=token,
            store=FileStore(str(tmp_path / "tokens.csv")),
            sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
            resource_path=str(resources),
        )
        ops = RecordOperations("Accounts")
        params = ParameterMap()
        params.add(GetRecordsParam.fields, "Account_Name,Xero_Contact_ID" + (",Currency" if multi else ""))
        got = ops.get_records(params, HeaderMap())
        assert got.get_status_code() == 200
        wrapper = got.get_object()
        assert isinstance(wrapper, ResponseWrapper), wrapper
        (rec,) = wrapper.get_data()
        assert rec.get_key_value("Account_Name") == "Harbour Coffee"
        assert rec.get_key_value("Xero_Contact_ID") == "xc-1"
        currency = rec.get_key_value("Currency")  # a picklist: the SDK hands it over as a Choice
        assert (currency.get_value() if currency is not None else None) == ("EUR" if multi else None)
        if not multi:  # the field does not exist here: asking for it is refused, as Zoho refuses it
            params = ParameterMap()
            params.add(GetRecordsParam.fields, "Account_Name,Currency")
            refused = ops.get_records(params, HeaderMap())
            assert refused.get_status_code() == 400
            assert refused.get_object().get_code().get_value() == "INVALID_DATA"

        body = BodyWrapper()
        upd, new = Record(), Record()
        upd.add_key_value("Account_Name", "Harbour Coffee")
        upd.add_key_value("Phone", "09 555 0100")
        new.add_key_value("Account_Name", "Kauri Joinery")
        body.set_data([upd, new])
        body.set_duplicate_check_fields(["Account_Name"])
        up = RecordOperations("Accounts").upsert_records(body, HeaderMap())
        assert up.get_status_code() == 200
        actions = up.get_object()
        assert isinstance(actions, ActionWrapper)
        results = actions.get_data()
        assert all(isinstance(r, SuccessResponse) for r in results)
        assert [r.get_details()["id"] for r in results][0] == "5725767000000000101"

    accounts = {a["Account_Name"]: a for a in emu.dump(org_id, "Accounts")}
    assert accounts["Harbour Coffee"]["Phone"] == "09 555 0100" and "Kauri Joinery" in accounts
    paths = [(r.method, r.path) for r in emu.received]
    assert paths[0] == ("POST", "/oauth/v2/token")  # the SDK refreshed its token first
    assert ("GET", "/crm/v8/Accounts") in paths and ("POST", "/crm/v8/Accounts/upsert") in paths
    ok = [r for r in emu.received if r.status in (200, 201, 204)]
    assert len(ok) == len(emu.received) - (not multi), [(r.path, r.status) for r in emu.received]
    assert all(host in ("127.0.0.1", "::1", "localhost") for host in loopback_only), loopback_only
