"""Intuit's OAuth 2.0 as the emulator serves it: rotation with a grace, consent with realmId, 1-hour tokens."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from xz_pipeline_tests.sandbox.quickbooks.support import CLIENT_ID, REDIRECT, SECRET, connect

TOKEN = "/oauth2/v1/tokens/bearer"


def _refresh(qbo, token: str):
    return qbo.http.post(
        TOKEN, auth=(CLIENT_ID, SECRET), data={"grant_type": "refresh_token", "refresh_token": token}
    )


def test_refresh_rotates_and_the_old_token_lapses_after_its_grace():
    qbo = connect()
    old = qbo.refresh_token
    body = qbo.refresh()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600 and body["refresh_token"] != old
    assert body["x_refresh_token_expires_in"] > 0
    qbo.clock.advance(60)
    assert _refresh(qbo, old).status_code == 200  # within the grace a lost response can be retried
    qbo.clock.advance(31 * 60)
    resp = _refresh(qbo, old)
    assert resp.status_code == 400 and resp.json() == {"error": "invalid_grant"}
    assert _refresh(qbo, qbo.refresh_token).status_code == 200  # the newest one still works
    bad = qbo.http.post(
        TOKEN, auth=(CLIENT_ID, "wrong"), data={"grant_type": "refresh_token", "refresh_token": old}
    )
    assert bad.status_code == 401 and bad.json() == {"error": "invalid_client"}


def test_access_tokens_expire_after_an_hour_and_reach_only_their_company():
    qbo = connect()
    assert qbo.get("CompanyInfo", qbo.realm).status_code == 200
    qbo.clock.advance(3600)
    resp = qbo.get("CompanyInfo", qbo.realm)
    assert resp.status_code == 401 and resp.json()["Fault"]["type"] == "AUTHENTICATION"
    qbo.refresh()
    other = qbo.http.get("/v3/company/9130000000000001/companyinfo/9130000000000001", headers=qbo.headers())
    assert other.status_code == 403
    statuses = [
        (r.path.rsplit("/", 1)[-1], r.status, r.realm_id)
        for r in qbo.emu.received
        if r.path.startswith("/v3/")
    ]
    assert statuses == [
        (qbo.realm, 200, qbo.realm),
        (qbo.realm, 401, qbo.realm),
        ("9130000000000001", 403, "9130000000000001"),
    ]


def test_consent_redirects_with_code_state_and_realm_and_the_code_is_single_use():
    qbo = connect()
    params = {"client_id": CLIENT_ID, "response_type": "code", "scope": "com.intuit.quickbooks.accounting",
              "redirect_uri": REDIRECT, "state": "s-123"}  # fmt: skip
    page = qbo.http.get("/connect/oauth2", params=params)
    assert page.status_code == 200 and qbo.realm in page.text
    resp = qbo.http.post("/connect/oauth2", params=params, data={"realmId": qbo.realm, "action": "allow"},
                         follow_redirects=False)  # fmt: skip
    assert resp.status_code == 302
    back = parse_qs(urlsplit(resp.headers["location"]).query)
    assert back["state"] == ["s-123"] and back["realmId"] == [qbo.realm]
    form = {"grant_type": "authorization_code", "code": back["code"][0], "redirect_uri": REDIRECT}
    first = qbo.http.post(TOKEN, auth=(CLIENT_ID, SECRET), data=form)
    assert first.status_code == 200 and first.json()["realmId"] == qbo.realm
    hdr = {"Authorization": f"Bearer {first.json()['access_token']}", "Accept": "application/json"}
    assert qbo.http.get(f"{qbo.base}/preferences", headers=hdr).status_code == 200
    assert qbo.http.post(TOKEN, auth=(CLIENT_ID, SECRET), data=form).json() == {"error": "invalid_grant"}
    denied = qbo.http.post("/connect/oauth2", params=params, data={"action": "deny"}, follow_redirects=False)
    assert parse_qs(urlsplit(denied.headers["location"]).query) == {
        "error": ["access_denied"],
        "state": ["s-123"],
    }


def test_discovery_document_points_at_the_emulator():
    qbo = connect()
    doc = qbo.http.get("/.well-known/openid_configuration").json()
    assert doc["token_endpoint"].endswith(TOKEN) and doc["authorization_endpoint"].endswith("/connect/oauth2")


def test_revoking_ends_the_grant_for_both_tokens():
    qbo = connect()
    resp = qbo.http.post(
        "/oauth2/v1/tokens/revoke", auth=(CLIENT_ID, SECRET), json={"token": qbo.refresh_token}
    )
    assert resp.status_code == 200
    assert qbo.get("CompanyInfo", qbo.realm).status_code == 401
    assert _refresh(qbo, qbo.refresh_token).json() == {"error": "invalid_grant"}
