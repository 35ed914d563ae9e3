"""`xz auth salesforce` end to end against the emulator's consent page: the code traded for tokens stored with
the org's instance_url, the pipeline then running on the stored grant alone; a forged state stores nothing."""

from __future__ import annotations

import threading
import webbrowser

import pytest
import requests

from xz_pipeline import cli
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.salesforce.resources import SalesforceResource
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.realtime.support import free_port
from xz_pipeline_tests.sandbox_env import export_sandbox


@pytest.fixture(scope="module")
def sb():
    with SandboxServer(seed=2, size="tiny", crm="salesforce") as server:
        yield server


@pytest.fixture
def fresh(sb, monkeypatch, xz_home):
    """The sandbox's connected app and org, but no refresh token and no instance URL: only consent connects it."""
    env = export_sandbox(monkeypatch, sb, "fresh")
    monkeypatch.delenv("SALESFORCE_REFRESH_TOKEN")
    monkeypatch.delenv("SALESFORCE_INSTANCE_URL")
    uri = f"http://127.0.0.1:{free_port()}/callback"
    monkeypatch.setenv("XZ_REDIRECT_URI", uri)
    sb.salesforce.register_client(env["SALESFORCE_CLIENT_ID"], env["SALESFORCE_CLIENT_SECRET"], [uri])
    return env


def _person(url: str, tamper: str = "") -> None:
    """The person approving: the consent page with ?auto=1 redirects at once to our callback."""
    url = url.replace("state=", f"state={tamper}") if tamper else url
    threading.Thread(
        target=requests.get, args=(url + "&auto=1",), kwargs={"timeout": 30}, daemon=True
    ).start()


def test_consent_stores_the_grant_with_its_instance(sb, fresh, xz_home, monkeypatch, capsys):
    monkeypatch.setattr(webbrowser, "open", _person)
    assert cli.main(["auth", "salesforce", "--connection", "fresh", "--timeout", "30"]) == 0
    assert "Salesforce org connected for fresh" in capsys.readouterr().out
    stored = TokenStore(xz_home / "tokens").load("fresh", "salesforce")
    org_id = sb.salesforce_org_ids[0]
    assert stored.refresh_token and stored.extra["instance_url"] == sb.salesforce.orgs[org_id].instance_url
    with SalesforceResource().client("fresh") as client:  # no SALESFORCE_REFRESH_TOKEN, no instance URL
        assert client.org_id[:15] == org_id[:15]
        names = {r["Name"] for r in client.query("select Id, Name from Product2")}
        assert names == {r["Name"] for r in sb.salesforce.orgs[org_id].records["Product2"].values()}


def test_a_forged_state_is_refused_in_one_line(sb, fresh, xz_home, monkeypatch, capsys):
    monkeypatch.setattr(webbrowser, "open", lambda url: _person(url, tamper="forged"))
    assert cli.main(["auth", "salesforce", "--connection", "fresh", "--timeout", "30"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "state" in err[0]
    assert TokenStore(xz_home / "tokens").load("fresh", "salesforce") is None
