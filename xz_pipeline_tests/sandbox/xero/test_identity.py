"""The Xero emulator's identity service: consent, PKCE, rotation with grace, client credentials, tenancy."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import yaml
from openapi_schema_validator import OAS30Validator

from xz_pipeline_tests.sandbox.xero.support import API, check_problem, query_of, xero_fixture  # noqa: F401

CALLBACK = "http://localhost:8765/callback"


def _identity_schema(specs: Path, name: str, instance) -> None:
    """Validate against xero-identity.yaml (no format checks: Xero's own example dates carry no zone)."""
    raw = yaml.safe_load((specs / "xero" / "xero-identity.yaml").read_text())
    OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": raw["components"]}).validate(
        instance
    )


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _token(xero, auth: str | None = None, **form):
    headers = {"Authorization": auth or xero.basic()}
    return xero.api.http.post("/connect/token", data=form, headers=headers)


def _authorize(xero, client_id="CLIENT1", **extra) -> dict:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK, "state": "st-1",
              "scope": "openid offline_access accounting.contacts.read", **extra}  # fmt: skip
    resp = xero.api.http.get(
        "/identity/connect/authorize", params={**params, "auto": "1"}, follow_redirects=False
    )
    assert resp.status_code == 302, resp.text
    assert resp.headers["location"].startswith(CALLBACK + "?")
    return query_of(resp.headers["location"])


def test_authorization_code_single_use_and_connections(xero, specs):
    second = xero.emu.add_tenant("Second Org")
    got = _authorize(xero)
    assert got["state"] == "st-1"
    resp = _token(xero, grant_type="authorization_code", code=got["code"], redirect_uri=CALLBACK)
    assert resp.status_code == 200
    tok = resp.json()
    assert (
        tok["token_type"] == "Bearer"
        and tok["expires_in"] == 1800
        and tok["refresh_token"]
        and tok["id_token"]
    )
    assert tok["scope"] == "openid offline_access accounting.contacts.read"
    _identity_schema(specs, "AccessToken", tok)
    event = _claims(tok["access_token"])["authentication_event_id"]
    assert _claims(tok["id_token"])["aud"] == "CLIENT1"
    reuse = _token(xero, grant_type="authorization_code", code=got["code"], redirect_uri=CALLBACK)
    assert reuse.status_code == 400 and reuse.json() == {"error": "invalid_grant"}
    bearer = {"Authorization": f"Bearer {tok['access_token']}"}
    conns = xero.api.http.get("/connections", headers=bearer).json()
    assert isinstance(conns, list) and {c["tenantId"] for c in conns} == {xero.tenant, second}
    for conn in conns:
        _identity_schema(specs, "Connection", conn)
    assert set(conns[0]) == {
        "id",
        "tenantId",
        "authEventId",
        "tenantType",
        "tenantName",
        "createdDateUtc",
        "updatedDateUtc",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}", conns[0]["createdDateUtc"])
    only = xero.api.http.get("/connections", params={"authEventId": event}, headers=bearer).json()
    assert {c["tenantId"] for c in only} == {xero.tenant, second}
    assert xero.api.http.get("/connections", params={"authEventId": "00000000-0000-0000-0000-000000000000"},
                             headers=bearer).json() == []  # fmt: skip
    # the granted scope is read-only on contacts: invoices are out of reach
    h = {**bearer, "xero-tenant-id": second, "Accept": "application/json"}
    assert xero.api.get(f"{API}/Contacts", headers=h).status_code == 200
    check_problem(xero.api.get(f"{API}/Invoices", headers=h), 401)
    assert check_problem(xero.api.put(f"{API}/Contacts", {"Contacts": [{"Name": "x"}]}, headers=h), 401)[
        "Detail"
    ] == ("AuthorizationUnsuccessful")


def test_code_expiry_redirect_mismatch_and_consent_form(xero):
    got = _authorize(xero)
    bad = _token(
        xero, grant_type="authorization_code", code=got["code"], redirect_uri="http://localhost:9999/cb"
    )
    assert bad.json() == {"error": "invalid_grant"}
    late = _authorize(xero)
    xero.clock.advance(5 * 60 + 1)
    assert (
        _token(xero, grant_type="authorization_code", code=late["code"], redirect_uri=CALLBACK).status_code
        == 400
    )
    # an unregistered redirect URI is an error page, never a redirect
    page = xero.api.http.get("/identity/connect/authorize", params={"response_type": "code", "client_id": "CLIENT1",
                                                                     "redirect_uri": "https://evil.example/cb"})  # fmt: skip
    assert page.status_code == 400 and "redirect_uri" in page.text
    # the consent page: a form with one checkbox per organisation; Cancel redirects with access_denied
    params = {
        "response_type": "code",
        "client_id": "CLIENT1",
        "redirect_uri": CALLBACK,
        "state": "s9",
        "scope": "openid",
    }
    page = xero.api.http.get("/identity/connect/authorize", params=params)
    assert page.status_code == 200 and xero.tenant in page.text and "<form" in page.text
    allow = xero.api.http.post("/identity/connect/authorize", params=params, data={"tenant": xero.tenant, "action": "allow"},
                               follow_redirects=False)  # fmt: skip
    assert allow.status_code == 302 and query_of(allow.headers["location"])["state"] == "s9"
    deny = xero.api.http.post(
        "/identity/connect/authorize", params=params, data={"action": "deny"}, follow_redirects=False
    )
    assert query_of(deny.headers["location"]) == {"error": "access_denied", "state": "s9"}


def test_pkce_public_client(xero):
    xero.emu.register_client("PUBLIC", "", [CALLBACK])
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    got = _authorize(xero, client_id="PUBLIC", code_challenge=challenge, code_challenge_method="S256")
    form = {
        "grant_type": "authorization_code",
        "code": got["code"],
        "redirect_uri": CALLBACK,
        "client_id": "PUBLIC",
    }
    wrong = xero.api.http.post("/connect/token", data={**form, "code_verifier": "w" * 50})
    assert wrong.json() == {"error": "invalid_grant"}
    got = _authorize(xero, client_id="PUBLIC", code_challenge=challenge, code_challenge_method="S256")
    form["code"] = got["code"]
    ok = xero.api.http.post("/connect/token", data={**form, "code_verifier": verifier})
    assert ok.status_code == 200 and ok.json()["refresh_token"]
    # a public client without PKCE gets nothing
    got = _authorize(xero, client_id="PUBLIC")
    form["code"] = got["code"]
    assert xero.api.http.post("/connect/token", data=form).status_code == 400


def test_refresh_rotation_grace_and_invalid_grant(xero):
    rt0 = xero.emu.grant_refresh_token("CLIENT1", [xero.tenant])
    first = xero.token_for(rt0)
    assert first["refresh_token"] != rt0
    xero.clock.advance(10 * 60)
    again = xero.token_for(rt0)  # the response was "lost": the old token still works within 30 minutes
    assert again["refresh_token"] not in (rt0, first["refresh_token"])
    xero.clock.advance(20 * 60 + 1)  # 30 minutes after the first rotation
    dead = _token(xero, grant_type="refresh_token", refresh_token=rt0)
    assert dead.status_code == 400 and dead.json() == {"error": "invalid_grant"}
    newest = xero.token_for(first["refresh_token"])  # the rotated token is fine
    bearer = {"Authorization": f"Bearer {newest['access_token']}"}
    assert xero.api.get(f"{API}/Contacts", headers=bearer).status_code == 200
    unused = xero.emu.grant_refresh_token("CLIENT1", [xero.tenant])
    xero.clock.advance(61 * 86400)
    assert _token(xero, grant_type="refresh_token", refresh_token=unused).json() == {"error": "invalid_grant"}
    wrong_secret = "Basic " + base64.b64encode(b"CLIENT1:nope").decode()
    assert _token(xero, wrong_secret, grant_type="refresh_token", refresh_token="x").json() == {
        "error": "invalid_client"
    }


def test_access_token_expiry_and_tenancy(xero):
    resp = xero.api.get(f"{API}/Contacts")
    assert resp.status_code == 200
    # the spec requires the header, so the request itself is off-spec: skip request validation
    check_problem(xero.api.get(f"{API}/Contacts", headers={"xero-tenant-id": None}, check_request=False), 403)
    other = xero.emu.add_tenant("Not Connected")
    assert check_problem(xero.api.get(f"{API}/Contacts", headers={"xero-tenant-id": other}), 403)[
        "Detail"
    ] == ("AuthenticationUnsuccessful")
    assert check_problem(xero.api.get(f"{API}/Contacts", headers={"Authorization": "Bearer junk"}), 401)
    xero.clock.advance(1800)
    body = check_problem(xero.api.get(f"{API}/Contacts"), 401)
    assert body["Detail"].startswith("TokenExpired: token expired at 11/02/2026 09:30:00")
    fresh = xero.token_for(xero.emu.grant_refresh_token("CLIENT1", [xero.tenant]))["access_token"]
    xero.emu.expire_access_token(fresh)  # the fault-injection hook
    assert check_problem(xero.api.get(f"{API}/Contacts", headers={"Authorization": f"Bearer {fresh}"}), 401)


def test_client_credentials_custom_connection(xero):
    xero.emu.register_client("CUSTOM", "s3cret", custom_connection_tenant=xero.tenant)
    auth = "Basic " + base64.b64encode(b"CUSTOM:s3cret").decode()
    tok = _token(
        xero, auth, grant_type="client_credentials", scope="accounting.contacts accounting.settings"
    ).json()
    assert "refresh_token" not in tok and tok["expires_in"] == 1800
    h = {"Authorization": f"Bearer {tok['access_token']}", "xero-tenant-id": None}
    # no xero-tenant-id needed (fact sheet §2.3), though the spec marks it required
    resp = xero.api.get(f"{API}/Contacts", headers=h, check_request=False)
    assert resp.status_code == 200
    assert xero.emu.received[-1].tenant_id == xero.tenant
    conns = xero.api.http.get("/connections", headers={"Authorization": h["Authorization"]}).json()
    assert [c["tenantId"] for c in conns] == [xero.tenant]
    plain = _token(xero, grant_type="client_credentials")
    assert plain.json() == {"error": "unauthorized_client"}  # CLIENT1 has no custom connection


def test_revocation_and_disconnect(xero):
    rt = xero.emu.grant_refresh_token("CLIENT1", [xero.tenant])
    tok = xero.token_for(rt)
    bearer = {"Authorization": f"Bearer {tok['access_token']}"}
    conns = xero.api.http.get("/connections", headers=bearer).json()
    gone = xero.api.http.delete(f"/connections/{conns[0]['id']}", headers=bearer)
    assert gone.status_code == 204
    assert xero.api.http.delete(f"/connections/{conns[0]['id']}", headers=bearer).status_code == 404
    check_problem(xero.api.get(f"{API}/Contacts", headers=bearer), 403)
    resp = xero.api.http.post(
        "/connect/revocation", data={"token": tok["refresh_token"]}, headers={"Authorization": xero.basic()}
    )
    assert resp.status_code == 200 and resp.content == b""
    assert _token(xero, grant_type="refresh_token", refresh_token=tok["refresh_token"]).json() == {
        "error": "invalid_grant"
    }
    check_problem(xero.api.get(f"{API}/Contacts", headers=bearer), 401)
