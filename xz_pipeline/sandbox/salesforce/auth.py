"""Salesforce's OAuth 2.0 endpoints on the login host: `/services/oauth2/authorize` (a consent page standing
for the login screen), `/services/oauth2/token` (authorization_code and refresh_token grants),
`/services/oauth2/revoke`, and the identity URL `/id/{orgId}/{userId}`.

Documented behaviour kept: the token response carries access_token, instance_url (the org's own host),
id, token_type, issued_at (epoch milliseconds as a string) and signature = base64(HMAC-SHA256(client
secret, id + issued_at)); a refresh answers no new refresh token unless the connected app turns rotation
on, and then the previous one stops working at once; errors are `{"error", "error_description"}` with
400. A session ends after SESSION_TIMEOUT without use (the org's session timeout), counted on the
sandbox clock; the API then answers 401 INVALID_SESSION_ID.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from xz_pipeline.sandbox.clock import Clock

SESSION_TIMEOUT = timedelta(hours=2)
CODE_TTL = timedelta(minutes=15)
TOKEN_PATH = "/services/oauth2/token"
AUTHORIZE_PATH = "/services/oauth2/authorize"
REVOKE_PATH = "/services/oauth2/revoke"


class TokenError(Exception):
    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(code)
        self.code, self.description, self.status = code, description, status


@dataclass
class Client:
    client_id: str
    secret: str
    redirect_uris: list[str]


@dataclass
class Session:
    token: str
    org_id: str
    user_id: str
    client_id: str
    grant: str
    last_used: datetime


@dataclass
class Auth:
    """Clients, grants, refresh tokens and sessions under one lock; `orgs()` gives {org id: (name, user id,
    instance url, rotates refresh tokens)} from the emulator."""

    clock: Clock
    orgs: Callable[[], dict[str, tuple[str, str, str, bool]]]
    login_url: Callable[[], str]
    clients: dict[str, Client] = field(default_factory=dict)
    refresh: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # token -> (grant, client, org)
    revoked_grants: set[str] = field(default_factory=set)
    sessions: dict[str, Session] = field(default_factory=dict)
    codes: dict[str, tuple[str, str, str, datetime]] = field(
        default_factory=dict
    )  # code -> client, uri, org, exp
    lock: threading.RLock = field(default_factory=threading.RLock)

    def grant(self, client_id: str, org_id: str) -> str:
        """A refresh token as if a person had approved the connected app for this org."""
        with self.lock:
            if client_id not in self.clients:
                raise KeyError(f"unknown client_id {client_id!r}")
            return self._new_refresh(secrets.token_hex(8), client_id, org_id)

    def _new_refresh(self, grant: str, client_id: str, org_id: str) -> str:
        token = "5Aep861" + secrets.token_urlsafe(60)
        self.refresh[token] = (grant, client_id, org_id)
        return token

    def _client(self, form: dict[str, str], headers) -> Client:
        cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                cid, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise TokenError("invalid_client", "invalid client credentials") from exc
        client = self.clients.get(cid)
        if client is None:
            raise TokenError("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(client.secret.encode(), secret.encode()):
            raise TokenError("invalid_client", "invalid client credentials")
        return client

    def _respond(self, client: Client, grant: str, org_id: str, *, refresh: str = "") -> dict:
        name, user_id, instance_url, _rotates = self.orgs()[org_id]
        now = self.clock.now()
        token = f"{org_id[:15]}!AQ" + secrets.token_urlsafe(72)
        self.sessions[token] = Session(token, org_id, user_id, client.client_id, grant, now)
        identity = f"{self.login_url()}/id/{org_id}/{user_id}"
        issued = str(int(now.timestamp() * 1000))
        signature = base64.b64encode(hmac.new(client.secret.encode(), (identity + issued).encode(),
                                              hashlib.sha256).digest()).decode()  # fmt: skip
        out = {"access_token": token, "instance_url": instance_url, "id": identity, "token_type": "Bearer",
               "issued_at": issued, "signature": signature, "scope": "api refresh_token"}  # fmt: skip
        if refresh:
            out["refresh_token"] = refresh
        return out

    def token(self, form: dict[str, str], headers) -> dict:
        with self.lock:
            client = self._client(form, headers)
            grant_type = form.get("grant_type", "")
            if grant_type == "authorization_code":
                held = self.codes.pop(form.get("code", ""), None)
                if held is None or held[0] != client.client_id or self.clock.now() >= held[3]:
                    raise TokenError("invalid_grant", "invalid authorization code")
                if form.get("redirect_uri", "") != held[1]:
                    raise TokenError("redirect_uri_mismatch", "redirect_uri must match configuration")
                grant = secrets.token_hex(8)
                return self._respond(client, grant, held[2], refresh=self._new_refresh(grant, client.client_id,
                                                                                       held[2]))  # fmt: skip
            if grant_type == "refresh_token":
                held = self.refresh.get(form.get("refresh_token", ""))
                if held is None or held[1] != client.client_id or held[0] in self.revoked_grants:
                    raise TokenError("invalid_grant", "expired access/refresh token")
                grant, _cid, org_id = held
                if org_id not in self.orgs():
                    raise TokenError("invalid_grant", "inactive organization")
                if self.orgs()[org_id][3]:  # rotation: a new refresh token, the presented one ends now
                    del self.refresh[form["refresh_token"]]
                    return self._respond(client, grant, org_id, refresh=self._new_refresh(grant, client.client_id,
                                                                                          org_id))  # fmt: skip
                return self._respond(client, grant, org_id)
            raise TokenError("unsupported_grant_type", "grant type not supported")

    def revoke(self, token: str) -> bool:
        with self.lock:
            held = self.refresh.get(token)
            session = self.sessions.get(token)
            grant = held[0] if held else session.grant if session else ""
            if not grant:
                return False
            self.revoked_grants.add(grant)
            for t in [t for t, s in self.sessions.items() if s.grant == grant]:
                del self.sessions[t]
            return True

    def resolve(self, authorization: str) -> Session | None:
        """The live session a bearer token names (its idle time restarts), or None."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "oauth"):
            return None
        with self.lock:
            session = self.sessions.get(token.strip())
            now = self.clock.now()
            if session is None or now - session.last_used >= SESSION_TIMEOUT:
                return None
            session.last_used = now
            return session

    def expire(self, token: str) -> None:
        with self.lock:
            session = self.sessions.get(token)
            if session is not None:
                session.last_used = self.clock.now() - SESSION_TIMEOUT - timedelta(seconds=1)

    def issue_code(self, client_id: str, redirect_uri: str, org_id: str) -> str:
        with self.lock:
            code = "aPrx" + secrets.token_urlsafe(40)
            self.codes[code] = (client_id, redirect_uri, org_id, self.clock.now() + CODE_TTL)
            return code


async def _form(request: Request) -> dict[str, str]:
    raw = (await request.body()).decode("utf-8", "replace")
    form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    return {**dict(request.query_params), **form}


def _redirect(uri: str, params: dict[str, str]) -> RedirectResponse:
    return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}", status_code=302)


def _consent_page(orgs: dict, params: dict[str, str]) -> str:
    rows = "".join(
        f'<li><label><input type="radio" name="org_id" value="{html.escape(oid)}"{" checked" if i == 0 else ""}> '
        f"{html.escape(info[0])}</label></li>"
        for i, (oid, info) in enumerate(orgs.items())
    )
    hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in params.items())  # fmt: skip
    return ("<!doctype html><html><head><title>Salesforce sandbox: allow access</title></head><body>"
            f"<h1>Allow Access?</h1><p>App <code>{html.escape(params.get('client_id', ''))}</code> asks to access "
            f'your data. Log in to:</p><form method="post">{hidden}<ul>{rows}</ul>'
            '<button name="action" value="allow">Allow</button> <button name="action" value="deny">Deny</button>'
            "</form></body></html>")  # fmt: skip


def auth_routes(auth: Auth) -> list[Route]:
    async def token(request: Request) -> Response:
        try:
            body = auth.token(await _form(request), request.headers)
        except TokenError as err:
            return JSONResponse(
                {"error": err.code, "error_description": err.description}, status_code=err.status
            )
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def revoke(request: Request) -> Response:
        form = await _form(request)
        if not auth.revoke(form.get("token", "")):
            return JSONResponse({"error": "unsupported_token_type", "error_description": "this token type is not "
                                 "supported"}, status_code=400)  # fmt: skip
        return Response(status_code=200)

    async def authorize(request: Request) -> Response:
        params = dict(request.query_params)
        form: dict[str, str] = {}
        if request.method == "POST":
            form = await _form(request)
            params.update({k: v for k, v in form.items() if k != "action"})
        client = auth.clients.get(params.get("client_id", ""))
        why = ""
        if client is None:
            why = "invalid_client_id: client identifier invalid"
        elif params.get("response_type") != "code":
            why = "unsupported_response_type: response type not supported"
        elif params.get("redirect_uri", "") not in client.redirect_uris:
            why = "redirect_uri_mismatch: redirect_uri must match configuration"
        if why:
            return HTMLResponse(f"<h1>error</h1><p>{html.escape(why)}</p>", status_code=400)
        state = {"state": params["state"]} if "state" in params else {}
        if request.method == "POST" and form.get("action") != "allow":
            return _redirect(params["redirect_uri"], {"error": "access_denied",
                                                      "error_description": "end-user denied authorization", **state})  # fmt: skip
        orgs = auth.orgs()
        if request.method == "GET" and params.get("auto") != "1":
            return HTMLResponse(_consent_page(orgs, {k: v for k, v in params.items() if k != "auto"}))
        org_id = params.get("org_id") or next(iter(orgs), "")
        if org_id not in orgs:
            return HTMLResponse("<h1>error</h1><p>unknown organization</p>", status_code=400)
        code = auth.issue_code(params["client_id"], params["redirect_uri"], org_id)
        return _redirect(params["redirect_uri"], {"code": code, **state})

    return [
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(REVOKE_PATH, revoke, methods=["POST", "GET"]),
        Route(AUTHORIZE_PATH, authorize, methods=["GET", "POST"]),
    ]
