"""Intuit's OAuth 2.0 server for QBO: consent (appcenter), the bearer-token endpoint, revocation, discovery.

Facts (notes A.2): token endpoint `/oauth2/v1/tokens/bearer` with HTTP Basic client authentication;
grant types `authorization_code` and `refresh_token`; access tokens live 3,600 s; the consent redirect
carries `code`, `state` and `realmId`; scope `com.intuit.quickbooks.accounting`. A grant is for one
company (realm): its tokens reach that realm only.

Choices where the sources are silent: every refresh rotates the refresh token, and the old one keeps
working for REFRESH_GRACE after its first use (so a client that lost the response can retry), then
answers `invalid_grant`. Codes live 5 minutes and are single-use. Times come from the sandbox clock.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from xz_pipeline.sandbox.clock import Clock

ACCESS_TTL = timedelta(seconds=3600)
REFRESH_TTL = timedelta(days=100)  # rolling: each refresh token is good for 100 days unused
HARD_EXPIRY = timedelta(days=5 * 365)  # the 2025 policy: a grant ends 5 years after consent
REFRESH_GRACE = timedelta(minutes=30)
CODE_TTL = timedelta(minutes=5)
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/oauth2/v1/tokens/revoke"
CONSENT_PATH = "/connect/oauth2"
DISCOVERY_PATH = "/.well-known/openid_configuration"


class TokenError(Exception):
    def __init__(self, code: str, status: int = 400) -> None:
        super().__init__(code)
        self.code, self.status = code, status


@dataclass
class Client:
    client_id: str
    secret: str
    redirect_uris: list[str]


@dataclass
class Grant:
    id: str
    client_id: str
    realm_id: str
    scopes: list[str]
    consented: datetime
    revoked: bool = False


@dataclass
class AccessToken:
    token: str
    grant_id: str
    client_id: str
    realm_id: str
    scopes: list[str]
    expires_at: datetime


@dataclass
class RefreshToken:
    grant_id: str
    issued_at: datetime
    used_at: datetime | None = None


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    realm_id: str
    scopes: list[str]
    expires_at: datetime
    used: bool = False


@dataclass
class Auth:
    """Clients, grants and tokens, under one lock. `realms` maps realm id -> company name (the emulator's)."""

    clock: Clock
    realms: dict[str, str]
    clients: dict[str, Client] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, AccessToken] = field(default_factory=dict)
    refresh: dict[str, RefreshToken] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def grant(self, client_id: str, realm_id: str, scopes: list[str] | None = None) -> str:
        """Record a consent as if a person had connected the company; returns a refresh token."""
        with self.lock:
            if client_id not in self.clients:
                raise KeyError(f"unknown client_id {client_id!r}")
            g = self._new_grant(client_id, realm_id, scopes or [ACCOUNTING_SCOPE])
            return self._new_refresh(g)

    def _new_grant(self, client_id: str, realm_id: str, scopes: list[str]) -> Grant:
        g = Grant(secrets.token_hex(8), client_id, realm_id, scopes, self.clock.now())
        self.grants[g.id] = g
        return g

    def _new_refresh(self, g: Grant) -> str:
        token = "AB11" + secrets.token_urlsafe(36)
        self.refresh[token] = RefreshToken(g.id, self.clock.now())
        return token

    def _client(self, headers, form: dict[str, str]) -> Client:
        auth = headers.get("authorization", "")
        cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        if auth.lower().startswith("basic "):
            try:
                cid, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise TokenError("invalid_client", 401) from exc
        client = self.clients.get(cid)
        if client is None or not hmac.compare_digest(client.secret.encode(), secret.encode()):
            raise TokenError("invalid_client", 401)
        return client

    def _respond(self, g: Grant) -> dict:
        now = self.clock.now()
        tok = AccessToken("eyJlbmMi" + secrets.token_urlsafe(48), g.id, g.client_id, g.realm_id, g.scopes,
                          now + ACCESS_TTL)  # fmt: skip
        self.access[tok.token] = tok
        hard = g.consented + HARD_EXPIRY
        return {
            "token_type": "bearer",
            "access_token": tok.token,
            "expires_in": int(ACCESS_TTL.total_seconds()),
            "refresh_token": self._new_refresh(g),
            "x_refresh_token_expires_in": int(min(REFRESH_TTL, hard - now).total_seconds()),
        }

    def token(self, headers, form: dict[str, str]) -> dict:
        with self.lock:
            client = self._client(headers, form)
            grant_type = form.get("grant_type", "")
            now = self.clock.now()
            if grant_type == "authorization_code":
                code = self.codes.get(form.get("code", ""))
                if code is None or code.used or code.client_id != client.client_id or now >= code.expires_at:
                    raise TokenError("invalid_grant")
                if form.get("redirect_uri", "") != code.redirect_uri:
                    raise TokenError("invalid_grant")
                code.used = True
                out = self._respond(self._new_grant(client.client_id, code.realm_id, code.scopes))
                return {**out, "realmId": code.realm_id}
            if grant_type == "refresh_token":
                rt = self.refresh.get(form.get("refresh_token", ""))
                if rt is None:
                    raise TokenError("invalid_grant")
                g = self.grants[rt.grant_id]
                if g.revoked or g.client_id != client.client_id or now - rt.issued_at > REFRESH_TTL:
                    raise TokenError("invalid_grant")
                if now - g.consented > HARD_EXPIRY:
                    raise TokenError("invalid_grant")
                if rt.used_at is not None and now - rt.used_at > REFRESH_GRACE:
                    raise TokenError("invalid_grant")
                rt.used_at = rt.used_at or now
                return self._respond(g)
            raise TokenError("unsupported_grant_type")

    def revoke(self, headers, token: str) -> None:
        """End the grant a refresh or access token belongs to (an unknown token is not an error, RFC 7009)."""
        with self.lock:
            client = self._client(headers, {})
            held = self.refresh.get(token) or self.access.get(token)
            g = self.grants.get(held.grant_id) if held is not None else None
            if g is None or g.client_id != client.client_id:
                return
            g.revoked = True
            for t in [t for t, a in self.access.items() if a.grant_id == g.id]:
                del self.access[t]

    def resolve(self, authorization: str) -> tuple[AccessToken | None, str]:
        """The bearer token's record, or why not (the 401's Detail)."""
        if not authorization.lower().startswith("bearer "):
            return None, "Authorization header is missing or not a bearer token"
        with self.lock:
            tok = self.access.get(authorization[7:].strip())
            if tok is None or self.grants[tok.grant_id].revoked:
                return None, "Token revoked or invalid"
            if self.clock.now() >= tok.expires_at:
                return None, f"Token expired: {tok.token[:12]}..."
            return tok, ""

    def expire(self, token: str) -> None:
        with self.lock:
            tok = self.access.get(token)
            if tok is not None:
                tok.expires_at = self.clock.now() - timedelta(seconds=1)

    def issue_code(self, client_id: str, redirect_uri: str, realm_id: str, scopes: list[str]) -> str:
        with self.lock:
            code = "AB11" + secrets.token_urlsafe(24)
            self.codes[code] = AuthCode(
                client_id, redirect_uri, realm_id, scopes, self.clock.now() + CODE_TTL
            )
            return code


# ---- HTTP ---------------------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    raw = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _redirect(uri: str, params: dict[str, str]) -> RedirectResponse:
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(f"{uri}{sep}{urlencode(params)}", status_code=302)


def _consent_page(auth: Auth, params: dict[str, str]) -> str:
    rows = "".join(
        f'<li><label><input type="radio" name="realmId" value="{html.escape(rid)}"{" checked" if i == 0 else ""}> '
        f"{html.escape(name)}</label></li>"
        for i, (rid, name) in enumerate(auth.realms.items())
    )
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
    )
    return (
        "<!doctype html><html><head><title>QuickBooks sandbox: connect</title></head><body>"
        f"<h1>Connect to QuickBooks</h1><p>App <code>{html.escape(params.get('client_id', ''))}</code> asks for "
        f"<code>{html.escape(params.get('scope', ''))}</code>. Choose a company:</p>"
        f'<form method="post">{hidden}<ul>{rows}</ul>'
        '<button name="action" value="allow">Connect</button> '
        '<button name="action" value="deny">Cancel</button></form></body></html>'
    )


def auth_routes(auth: Auth, base_url) -> list[Route]:
    """The OAuth endpoints; `base_url()` gives the emulator's origin for the discovery document."""

    async def token(request: Request) -> Response:
        try:
            body = auth.token(request.headers, await _form(request))
        except TokenError as err:
            return JSONResponse({"error": err.code}, status_code=err.status)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def revoke(request: Request) -> Response:
        raw = await request.body()
        try:
            token_value = json.loads(raw or b"{}").get("token", "")
        except ValueError:
            token_value = (await _form(request)).get("token", "")
        try:
            auth.revoke(request.headers, token_value)
        except TokenError as err:
            return JSONResponse({"error": err.code}, status_code=err.status)
        return Response(status_code=200)

    async def consent(request: Request) -> Response:
        params = dict(request.query_params)
        form: dict[str, str] = {}
        if request.method == "POST":
            form = await _form(request)
            params.update({k: v for k, v in form.items() if k != "action"})
        client = auth.clients.get(params.get("client_id", ""))
        why = ""
        if client is None:
            why = "Unknown client_id"
        elif params.get("response_type") != "code":
            why = "response_type must be code"
        elif params.get("redirect_uri", "") not in client.redirect_uris:
            why = "redirect_uri is not registered for this app"
        elif ACCOUNTING_SCOPE not in params.get("scope", "").split():
            why = f"scope must include {ACCOUNTING_SCOPE}"
        if why:
            return HTMLResponse(f"<h1>Error</h1><p>{html.escape(why)}</p>", status_code=400)
        state = {"state": params["state"]} if "state" in params else {}
        if request.method == "POST" and form.get("action") != "allow":
            return _redirect(params["redirect_uri"], {"error": "access_denied", **state})
        if request.method == "GET" and params.get("auto") != "1":
            return HTMLResponse(_consent_page(auth, {k: v for k, v in params.items() if k != "auto"}))
        realm = params.get("realmId") or next(iter(auth.realms), "")
        if realm not in auth.realms:
            return HTMLResponse("<h1>Error</h1><p>Unknown company</p>", status_code=400)
        code = auth.issue_code(params["client_id"], params["redirect_uri"], realm, params["scope"].split())
        return _redirect(params["redirect_uri"], {"code": code, **state, "realmId": realm})

    async def discovery(request: Request) -> Response:
        origin = base_url()
        return JSONResponse(
            {
                "issuer": f"{origin}/op/v1",
                "authorization_endpoint": f"{origin}{CONSENT_PATH}",
                "token_endpoint": f"{origin}{TOKEN_PATH}",
                "userinfo_endpoint": f"{origin}/v1/openid_connect/userinfo",
                "revocation_endpoint": f"{origin}{REVOKE_PATH}",
                "jwks_uri": f"{origin}/op/v1/jwks",
                "response_types_supported": ["code"],
                "scopes_supported": ["openid", "email", "profile", "address", "phone", ACCOUNTING_SCOPE],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    return [
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(REVOKE_PATH, revoke, methods=["POST"]),
        Route(CONSENT_PATH, consent, methods=["GET", "POST"]),
        Route(DISCOVERY_PATH, discovery, methods=["GET"]),
    ]
