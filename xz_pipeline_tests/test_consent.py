"""`xz auth xero|zoho` end to end against the sandboxes' consent pages: tokens stored, then used."""

from __future__ import annotations

import threading

import pytest
import requests

from xz_pipeline import consent
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.sandbox_env import export_sandbox


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=3, size="demo") as sb:
        yield sb


@pytest.fixture
def env_without_refresh_tokens(sandbox, monkeypatch):
    export_sandbox(monkeypatch, sandbox)
    monkeypatch.delenv("XERO_REFRESH_TOKEN")
    monkeypatch.delenv("ZOHO_REFRESH_TOKEN")
    monkeypatch.setenv("XZ_CONNECTION", "fresh")


def _approve(url: str) -> None:
    """The person approving: the sandbox's consent page with ?auto=1 redirects at once to our callback."""
    threading.Thread(
        target=requests.get, args=(url + "&auto=1",), kwargs={"timeout": 30}, daemon=True
    ).start()


def test_xero_consent_stores_rotating_tokens_and_lists_tenants(sandbox, env_without_refresh_tokens, xz_home):
    tenants = consent.authorize_xero("fresh", _approve, timeout=30)
    assert sandbox.env(0)["XERO_TENANT_ID"] in {t["tenantId"] for t in tenants}
    stored = TokenStore(xz_home / "tokens").load("fresh", "xero")
    assert stored is not None and stored.refresh_token
    # The pipeline now runs on the stored token alone (no XERO_REFRESH_TOKEN in the environment).
    from xz_pipeline.xero.resources import XeroResource

    with XeroResource().client("fresh") as client:
        assert len(list(client.contacts(include_archived=True))) == len(
            sandbox.xero.dump(tenants[0]["tenantId"], "Contacts")
        )


def test_zoho_consent_stores_tokens_with_api_domain(sandbox, env_without_refresh_tokens, xz_home):
    tokens = consent.authorize_zoho("fresh", _approve, timeout=30)
    assert tokens.refresh_token and tokens.extra.get("api_domain") == sandbox.zoho_url
    from xz_pipeline.zoho.resources import ZohoResource

    with ZohoResource().client("fresh") as client:
        assert client.org()


def test_a_forged_state_is_refused(sandbox, env_without_refresh_tokens):
    def forge(url: str) -> None:
        threading.Thread(
            target=requests.get,
            args=(url.replace("state=", "state=forged") + "&auto=1",),
            kwargs={"timeout": 30},
            daemon=True,
        ).start()

    with pytest.raises(Exception, match="state"):
        consent.authorize_xero("fresh", forge, timeout=30)
