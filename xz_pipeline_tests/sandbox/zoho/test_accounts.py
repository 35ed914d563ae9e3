"""The emulated Zoho Accounts server and API authentication (zoho-api.md §2, §14)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from xz_pipeline_tests.sandbox.zoho.support import CLIENT_ID, CLIENT_SECRET, REDIRECT, make_org


def _token(org, **params):
    return org.client.post("/oauth/v2/token", data=params)


def test_refresh_grant_in_form_or_query_gives_an_hour_long_token_on_the_emulator_domain():
    org = make_org()
    org.emu.base_url = "http://127.0.0.1:5999"
    params = {
        "grant_type": "refresh_token",
        "refresh_token": org.refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    by_form = _token(org, **params)
    by_query = org.client.post("/oauth/v2/token", params=params)
    for r in (by_form, by_query):
        body = r.json()
        assert r.status_code == 200
        assert body["expires_in"] == 3600 and body["token_type"] == "Bearer"
        assert body["api_domain"] == "http://127.0.0.1:5999"
        assert "refresh_token" not in body
    assert by_form.json()["access_token"] != by_query.json()["access_token"]
    # secrets never reach the request log
    logged = [r for r in org.emu.received if r.path == "/oauth/v2/token"][-1]
    assert logged.query["client_secret"] == "***" and logged.query["refresh_token"] == "***"


def test_token_failures_are_json_errors_with_http_200():
    org = make_org()
    cases = {
        "invalid_client": {
            "grant_type": "refresh_token",
            "refresh_token": org.refresh_token,
            "client_id": "nope",
            "client_secret": CLIENT_SECRET,
        },
        "invalid_client_secret": {
            "grant_type": "refresh_token",
            "refresh_token": org.refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": "wrong",
        },
        "invalid_code": {
            "grant_type": "refresh_token",
            "refresh_token": "1000.bad",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        "unsupported_grant_type": {
            "grant_type": "password",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    }
    for error, params in cases.items():
        r = _token(org, **params)
        assert r.status_code == 200 and r.json() == {"error": error}


def test_access_token_expires_after_an_hour_and_the_api_says_invalid_token():
    org = make_org()
    assert org.get("org").status_code == 200
    org.clock.advance(3599)
    assert org.get("org").status_code == 200
    org.clock.advance(1)
    r = org.get("org")
    assert r.status_code == 401
    assert r.json() == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }


def test_expire_hook_and_authentication_failures():
    org = make_org()
    org.emu.expire_access_token(org.access_token)
    assert org.get("org").json()["code"] == "INVALID_TOKEN"
    missing = org.client.get("/crm/v8/org")
    bearer = org.client.get("/crm/v8/org", headers={"Authorization": f"Bearer {org.access_token}"})
    for r in (missing, bearer):
        assert r.status_code == 401 and r.json()["code"] == "AUTHENTICATION_FAILURE"


def test_scope_mismatch():
    org = make_org(scopes="ZohoCRM.modules.accounts.READ,ZohoCRM.org.READ")
    assert org.get("Accounts", params={"fields": "Account_Name"}).status_code == 204
    for r in (
        org.get("Deals", params={"fields": "Deal_Name"}),
        org.post("Accounts", json={"data": [{"Account_Name": "x"}]}),
        org.get("settings/modules"),
    ):
        assert r.status_code == 401 and r.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    assert org.emu.dump(org.org_id, "Accounts") == []


def test_ten_access_tokens_per_refresh_token_per_ten_minutes():
    org = make_org()  # make_org already minted one
    bodies = [org.refresh() for _ in range(10)]
    assert all("access_token" in b for b in bodies[:9])
    assert bodies[9]["error"] == "Access Denied" and "access_token" not in bodies[9]
    org.clock.advance(601)
    assert "access_token" in org.refresh()


def test_twenty_refresh_tokens_per_user_the_oldest_goes():
    org = make_org()
    first = org.refresh_token
    for _ in range(19):
        org.emu.grant_refresh_token(CLIENT_ID, org.org_id)
    assert "access_token" in org.refresh()
    org.emu.grant_refresh_token(CLIENT_ID, org.org_id)  # the 21st
    assert org.refresh() == {"error": "invalid_code"}
    assert first not in org.emu.accounts.grants


def test_revoke_kills_the_refresh_token_and_its_access_tokens():
    org = make_org()
    r = org.client.post("/oauth/v2/token/revoke", params={"token": org.refresh_token})
    assert r.json() == {"status": "success"}
    assert org.refresh() == {"error": "invalid_code"}
    assert org.get("org").json()["code"] == "INVALID_TOKEN"


def test_consent_page_then_code_exchange():
    org = make_org()
    org.emu.base_url = "http://127.0.0.1:5999"
    query = {
        "scope": "ZohoCRM.modules.ALL,ZohoCRM.org.READ",
        "client_id": CLIENT_ID,
        "response_type": "code",
        "access_type": "offline",
        "redirect_uri": REDIRECT,
        "state": "s1",
    }
    page = org.client.get("/oauth/v2/auth", params=query)
    assert page.status_code == 200 and "<form" in page.text and "ZohoCRM.org.READ" in page.text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    assert fields["client_id"] == CLIENT_ID
    accepted = org.client.post(
        "/oauth/v2/auth", data={**query, "org_id": org.org_id, "approve": "accept"}, follow_redirects=False
    )
    assert accepted.status_code == 302
    location = urlsplit(accepted.headers["location"])
    q = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert (
        q["state"] == ["s1"] and q["location"] == ["us"] and q["accounts-server"] == ["http://127.0.0.1:5999"]
    )
    exchange = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        "code": q["code"][0],
    }
    body = _token(org, **exchange).json()
    assert (
        body["refresh_token"]
        and body["access_token"]
        and body["scope"] == "ZohoCRM.modules.ALL ZohoCRM.org.READ"
    )
    assert _token(org, **exchange).json() == {"error": "invalid_code"}  # a code is single-use
    headers = {"Authorization": f"Zoho-oauthtoken {body['access_token']}"}
    assert org.client.get("/crm/v8/org", headers=headers).json()["org"][0]["id"] == org.org_id


def test_consent_auto_redirects_and_rejects_unknown_redirect_uris():
    org = make_org()
    query = {
        "scope": "ZohoCRM.modules.ALL",
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "auto": "1",
    }
    r = org.client.get("/oauth/v2/auth", params=query, follow_redirects=False)
    assert r.status_code == 302 and "code=" in r.headers["location"]
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    body = _token(
        org,
        grant_type="authorization_code",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT,
        code=code,
    ).json()
    assert "access_token" in body and "refresh_token" not in body  # online access: no refresh token
    bad = org.client.get(
        "/oauth/v2/auth", params={**query, "redirect_uri": "https://evil.example/cb"}, follow_redirects=False
    )
    assert bad.status_code == 400
    rejected = org.client.post(
        "/oauth/v2/auth", data={**query, "auto": "0", "approve": "reject"}, follow_redirects=False
    )
    assert "error=access_denied" in rejected.headers["location"]
