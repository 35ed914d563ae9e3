"""OAuth on the login host: the token answer's fields and signature, rotation, expiry, consent and revocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

from xz_pipeline_tests.sandbox.salesforce.support import CLIENT_ID, REDIRECT, SECRET, connect


def _refresh(sf, token: str):
    return sf.http.post("/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": CLIENT_ID,
                        "client_secret": SECRET, "refresh_token": token})  # fmt: skip


def test_token_answer_carries_instance_url_id_issued_at_and_signature():
    sf = connect("full")
    body = sf.refresh()
    assert body["instance_url"] == sf.org.instance_url and body["token_type"] == "Bearer"
    assert body["id"].endswith(f"/id/{sf.org_id}/{sf.org.api_user_id}")
    assert body["issued_at"] == str(int(sf.clock.now().timestamp() * 1000))
    want = base64.b64encode(hmac.new(SECRET.encode(), (body["id"] + body["issued_at"]).encode(),
                                     hashlib.sha256).digest()).decode()  # fmt: skip
    assert body["signature"] == want
    assert "refresh_token" not in body  # no rotation unless the connected app turns it on
    assert _refresh(sf, sf.refresh_token).status_code == 200  # the same refresh token keeps working
    ident = sf.http.get(urlsplit(body["id"]).path, headers=sf.headers())
    assert ident.status_code == 200 and ident.json()["organization_id"] == sf.org_id
    wrong = sf.http.post("/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": CLIENT_ID,
                         "client_secret": "nope", "refresh_token": sf.refresh_token})  # fmt: skip
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_client"


def test_rotation_issues_a_new_refresh_token_and_ends_the_old_one():
    sf = connect("full", rotate=True)
    old = sf.refresh_token
    body = _refresh(sf, old).json()
    assert body["refresh_token"] and body["refresh_token"] != old
    again = _refresh(sf, old)
    assert again.status_code == 400 and again.json() == {"error": "invalid_grant",
                                                         "error_description": "expired access/refresh token"}  # fmt: skip
    assert _refresh(sf, body["refresh_token"]).status_code == 200
    assert connect("renamed").org.rotate_refresh_tokens  # the renamed profile's org has it on


def test_an_idle_session_expires_as_invalid_session_id():
    sf = connect("full")
    assert sf.get("/limits").status_code == 200
    sf.clock.advance(2 * 3600 + 1)
    resp = sf.get("/limits")
    assert resp.status_code == 401 and resp.json() == [{"message": "Session expired or invalid",
                                                        "errorCode": "INVALID_SESSION_ID"}]  # fmt: skip
    sf.refresh()
    sf.clock.advance(3600)
    assert sf.get("/limits").status_code == 200  # use restarts the idle time
    sf.clock.advance(3600)
    assert sf.get("/limits").status_code == 200
    assert sf.http.get("/services/data/v62.0/limits").status_code == 401


def test_authorization_code_from_the_consent_page_and_revocation():
    sf = connect("full")
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": "s1"}
    page = sf.http.get("/services/oauth2/authorize", params=params)
    assert page.status_code == 200 and sf.org.name in page.text
    allowed = sf.http.post("/services/oauth2/authorize", params=params,
                           data={"org_id": sf.org_id, "action": "allow"}, follow_redirects=False)  # fmt: skip
    assert allowed.status_code == 302
    back = parse_qs(urlsplit(allowed.headers["location"]).query)
    assert back["state"] == ["s1"]
    token = sf.http.post("/services/oauth2/token", data={"grant_type": "authorization_code", "code": back["code"][0],
                         "client_id": CLIENT_ID, "client_secret": SECRET, "redirect_uri": REDIRECT}).json()  # fmt: skip
    assert token["refresh_token"] and token["instance_url"] == sf.org.instance_url
    reused = sf.http.post("/services/oauth2/token", data={"grant_type": "authorization_code", "code": back["code"][0],
                          "client_id": CLIENT_ID, "client_secret": SECRET, "redirect_uri": REDIRECT})  # fmt: skip
    assert reused.json()["error"] == "invalid_grant"
    denied = sf.http.post(
        "/services/oauth2/authorize", params=params, data={"action": "deny"}, follow_redirects=False
    )
    assert "error=access_denied" in denied.headers["location"]
    assert sf.http.post("/services/oauth2/revoke", data={"token": token["refresh_token"]}).status_code == 200
    assert _refresh(sf, token["refresh_token"]).json()["error"] == "invalid_grant"
    assert sf.http.get("/services/data/v62.0/limits",
                       headers={"Authorization": f"Bearer {token['access_token']}"}).status_code == 401  # fmt: skip
    assert sf.get("/limits").status_code == 200  # the other grant is untouched
