"""`xz auth quickbooks` end to end against the QBO emulator's consent page: the code traded for tokens, the
callback's realmId remembered, and the pipeline then running on the stored grant alone."""

from __future__ import annotations

import threading
import webbrowser

import pytest
import requests

from xz_pipeline import cli
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.quickbooks.resources import QuickBooksResource
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.realtime.support import free_port
from xz_pipeline_tests.sandbox_env import export_sandbox


@pytest.fixture(scope="module")
def sb():
    with SandboxServer(seed=2, size="tiny", books="quickbooks") as server:
        yield server


@pytest.fixture
def fresh(sb, monkeypatch, xz_home):
    """The sandbox's app and company, but no refresh token and no realm id: only consent can connect it."""
    env = export_sandbox(monkeypatch, sb, "fresh")
    monkeypatch.delenv("QBO_REFRESH_TOKEN")
    monkeypatch.delenv("QBO_REALM_ID")
    uri = f"http://127.0.0.1:{free_port()}/callback"  # its own port: never the one other consent tests use
    monkeypatch.setenv("XZ_REDIRECT_URI", uri)
    sb.quickbooks.register_client(env["QBO_CLIENT_ID"], env["QBO_CLIENT_SECRET"], [uri])
    return env


def _person(url: str, tamper: str = "") -> None:
    """The person approving: the consent page with ?auto=1 redirects at once to our callback."""
    url = url.replace("state=", f"state={tamper}") if tamper else url
    threading.Thread(
        target=requests.get, args=(url + "&auto=1",), kwargs={"timeout": 30}, daemon=True
    ).start()


def test_consent_stores_the_grant_and_the_realm(sb, fresh, xz_home, monkeypatch, capsys):
    monkeypatch.setattr(webbrowser, "open", _person)
    assert cli.main(["auth", "quickbooks", "--connection", "fresh", "--timeout", "30"]) == 0
    realm = sb.realm_ids[0]
    assert f"QuickBooks Online company {realm} connected for fresh" in capsys.readouterr().out
    assert TokenStore(xz_home / "tokens").load("fresh", "quickbooks").refresh_token
    with QuickBooksResource().client("fresh") as client:  # no QBO_REFRESH_TOKEN, no QBO_REALM_ID
        assert client.realm_id == realm
        assert (
            client.company_info()["CompanyName"]
            == sb.quickbooks.companies[realm].records["CompanyInfo"]["1"]["CompanyName"]
        )


def test_a_forged_state_is_refused_in_one_line(sb, fresh, xz_home, monkeypatch, capsys):
    monkeypatch.setattr(webbrowser, "open", lambda url: _person(url, tamper="forged"))
    assert cli.main(["auth", "quickbooks", "--connection", "fresh", "--timeout", "30"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "state" in err[0]
    assert TokenStore(xz_home / "tokens").load("fresh", "quickbooks") is None
