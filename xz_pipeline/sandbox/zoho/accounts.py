"""The Zoho Accounts (OAuth 2.0) server of the emulator: codes, refresh and access tokens, consent, revoke.

Zoho's token endpoint answers failures as `{"error": "..."}` with HTTP 200 and the SDK detects them only
by `access_token` missing (zoho-api.md §2), so every failure here is a 200 with an `error` key. Limits
enforced per user (a user = one org's API user): at most 20 refresh tokens (the 21st deletes the oldest),
at most 5 new refresh tokens a minute, at most 30 live access tokens per refresh token (the 31st deletes
the oldest) and at most 10 access tokens per refresh token per rolling 10 minutes.
"""

from __future__ import annotations

import html
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from xz_pipeline.sandbox.clock import Clock

ACCESS_TOKEN_SECONDS = 3600
CODE_SECONDS = 180
MAX_REFRESH_TOKENS_PER_USER = 20
MAX_REFRESH_TOKENS_PER_MINUTE = 5
MAX_LIVE_ACCESS_TOKENS = 30
MAX_ACCESS_TOKENS_PER_WINDOW = 10
ACCESS_TOKEN_WINDOW = timedelta(minutes=10)

DEFAULT_SCOPES = (
    "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.coql.READ,ZohoCRM.notifications.ALL,"
    "ZohoCRM.users.READ,ZohoCRM.org.READ,ZohoCRM.bulk.ALL,ZohoCRM.composite_requests.CUSTOM"
)
TOO_MANY = {
    "error": "Access Denied",
    "error_description": "You have made too many requests continuously. Please try again after some time.",
}


@dataclass(slots=True)
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str]


@dataclass(slots=True)
class Grant:
    """A refresh token: who granted what to which client, and when it minted access tokens."""

    token: str
    client_id: str
    org_id: str
    user_id: str
    scopes: str
    created: datetime
    minted: deque = field(default_factory=deque)  # times access tokens were minted
    live: deque = field(default_factory=deque)  # access tokens, oldest first


@dataclass(slots=True)
class AccessToken:
    token: str
    client_id: str
    org_id: str
    user_id: str
    scopes: str
    expires: datetime
    refresh_token: str = ""


@dataclass(slots=True)
class Code:
    code: str
    client_id: str
    redirect_uri: str
    org_id: str
    user_id: str
    scopes: str
    offline: bool
    expires: datetime


class ZohoAccounts:
    """Token state. `user_of(org_id)` names the org's API user (the emulator supplies it)."""

    def __init__(self, clock: Clock, user_of, base_url, accounts_url=None, location=None) -> None:
        self.clock = clock
        self._user_of = user_of
        self._base_url = base_url  # a callable: the API's URL once bound (the token's api_domain)
        self._accounts_url = accounts_url or base_url  # a callable: this accounts server's own URL
        self._location = location or (lambda: "us")  # a callable: the data centre the redirect names
        self.lock = threading.RLock()
        self.clients: dict[str, Client] = {}
        self.grants: dict[str, Grant] = {}
        self.access: dict[str, AccessToken] = {}
        self.codes: dict[str, Code] = {}
        self._grant_times: dict[str, deque] = {}

    # -- bootstrap -----------------------------------------------------------------------------

    def register_client(self, client_id: str, client_secret: str, redirect_uris=()) -> None:
        with self.lock:
            self.clients[client_id] = Client(client_id, client_secret, list(redirect_uris))

    def grant_refresh_token(self, client_id: str, org_id: str, scopes: str) -> str:
        with self.lock:
            if client_id not in self.clients:
                raise KeyError(f"unknown client {client_id!r}")
            return self._new_grant(client_id, org_id, self._user_of(org_id), scopes, limit_rate=False)

    def expire(self, token: str) -> None:
        with self.lock:
            at = self.access.get(token)
            if at is not None:
                at.expires = self.clock.now() - timedelta(seconds=1)

    def authenticate(self, token: str) -> AccessToken | None:
        """The live access token, or None when unknown, revoked or expired."""
        with self.lock:
            at = self.access.get(token)
            if at is None or at.expires <= self.clock.now():
                return None
            return at

    # -- token endpoint ------------------------------------------------------------------------

    def token(self, params: dict[str, str]) -> dict:
        grant_type = params.get("grant_type", "")
        with self.lock:
            if grant_type == "authorization_code":
                return self._exchange_code(params)
            if grant_type == "refresh_token":
                return self._refresh(params)
            if not grant_type:
                return {"error": "invalid_request"}
            return {"error": "unsupported_grant_type"}

    def _client(self, params: dict[str, str]) -> Client | dict:
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return {"error": "invalid_client"}
        if not secrets.compare_digest(client.client_secret, params.get("client_secret", "")):
            return {"error": "invalid_client_secret"}
        return client

    def _exchange_code(self, params: dict[str, str]) -> dict:
        client = self._client(params)
        if isinstance(client, dict):
            return client
        code = self.codes.pop(params.get("code", ""), None)
        if code is None or code.client_id != client.client_id or code.expires <= self.clock.now():
            return {"error": "invalid_code"}
        if params.get("redirect_uri", "") != code.redirect_uri:
            return {"error": "invalid_redirect_uri"}
        body: dict = {}
        refresh = ""
        if code.offline:
            if not self._may_grant(code.user_id):
                return dict(TOO_MANY)
            refresh = self._new_grant(client.client_id, code.org_id, code.user_id, code.scopes)
            body["refresh_token"] = refresh
        at = self._mint(client.client_id, code.org_id, code.user_id, code.scopes, refresh)
        return {"access_token": at.token, **body, **self._token_fields(code.scopes)}

    def _refresh(self, params: dict[str, str]) -> dict:
        client = self._client(params)
        if isinstance(client, dict):
            return client
        grant = self.grants.get(params.get("refresh_token", ""))
        if grant is None or grant.client_id != client.client_id:
            return {"error": "invalid_code"}
        now = self.clock.now()
        while grant.minted and grant.minted[0] <= now - ACCESS_TOKEN_WINDOW:
            grant.minted.popleft()
        if len(grant.minted) >= MAX_ACCESS_TOKENS_PER_WINDOW:
            return dict(TOO_MANY)
        at = self._mint(client.client_id, grant.org_id, grant.user_id, grant.scopes, grant.token)
        return {"access_token": at.token, **self._token_fields(grant.scopes)}

    def _token_fields(self, scopes: str) -> dict:
        return {
            "scope": scopes.replace(",", " "),
            "api_domain": self._base_url(),
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
        }

    def _may_grant(self, user_id: str) -> bool:
        now = self.clock.now()
        times = self._grant_times.setdefault(user_id, deque())
        while times and times[0] <= now - timedelta(minutes=1):
            times.popleft()
        return len(times) < MAX_REFRESH_TOKENS_PER_MINUTE

    def _new_grant(self, client_id, org_id, user_id, scopes, *, limit_rate: bool = True) -> str:
        now = self.clock.now()
        if limit_rate:
            self._grant_times.setdefault(user_id, deque()).append(now)
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self.grants[token] = Grant(token, client_id, org_id, user_id, scopes, now)
        mine = sorted((g for g in self.grants.values() if g.user_id == user_id), key=lambda g: g.created)
        for old in mine[: max(0, len(mine) - MAX_REFRESH_TOKENS_PER_USER)]:
            self._drop_grant(old.token)
        return token

    def _mint(self, client_id, org_id, user_id, scopes, refresh: str) -> AccessToken:
        now = self.clock.now()
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        at = AccessToken(
            token, client_id, org_id, user_id, scopes, now + timedelta(seconds=ACCESS_TOKEN_SECONDS), refresh
        )
        self.access[token] = at
        grant = self.grants.get(refresh)
        if grant is not None:
            grant.minted.append(now)
            grant.live.append(token)
            while len(grant.live) > MAX_LIVE_ACCESS_TOKENS:
                self.access.pop(grant.live.popleft(), None)
        return at

    def _drop_grant(self, token: str) -> None:
        grant = self.grants.pop(token, None)
        if grant is not None:
            for at in grant.live:
                self.access.pop(at, None)

    def revoke(self, token: str) -> dict:
        with self.lock:
            if token in self.grants:
                self._drop_grant(token)
                return {"status": "success"}
            if self.access.pop(token, None) is not None:
                return {"status": "success"}
            return {"error": "invalid_token"}

    # -- consent -------------------------------------------------------------------------------

    def check_consent(self, params: dict[str, str]) -> str:
        """An error text for a bad authorization request, or "" when it may be shown."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return "invalid_client"
        if params.get("response_type", "code") != "code":
            return "unsupported_response_type"
        if params.get("redirect_uri", "") not in client.redirect_uris:
            return "invalid_redirect_uri"
        if not params.get("scope"):
            return "invalid_scope"
        return ""

    def issue_code(self, params: dict[str, str], org_id: str) -> str:
        with self.lock:
            code = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self.codes[code] = Code(
                code,
                params["client_id"],
                params["redirect_uri"],
                org_id,
                self._user_of(org_id),
                params["scope"],
                params.get("access_type", "online") == "offline",
                self.clock.now() + timedelta(seconds=CODE_SECONDS),
            )
            return code

    def redirect_for(self, params: dict[str, str], org_id: str) -> str:
        code = self.issue_code(params, org_id)
        query = {"code": code, "location": self._location(), "accounts-server": self._accounts_url()}
        if params.get("state"):
            query["state"] = params["state"]
        parts = urlsplit(params["redirect_uri"])
        joined = "&".join(q for q in (parts.query, urlencode(query)) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, ""))


# --------------------------------------------------------------------------------------------
# HTTP handlers (the emulator mounts them on its app)

CONSENT_KEYS = ("client_id", "redirect_uri", "scope", "state", "access_type", "response_type", "prompt")


async def params_of(request: Request) -> dict[str, str]:
    """Query string and form body merged (Zoho documents both for the token endpoint)."""
    params = dict(request.query_params)
    if request.method == "POST":
        form = await request.form()
        params.update({k: str(v) for k, v in form.items()})
    return params


def consent_page(params: dict[str, str], orgs: list[tuple[str, str]], error: str = "") -> Response:
    if error:
        return HTMLResponse(
            f"<!doctype html><title>Zoho Accounts</title><h1>Invalid request</h1><p>{html.escape(error)}</p>",
            status_code=400,
        )
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(params[k], quote=True)}">'
        for k in CONSENT_KEYS
        if k in params
    )
    options = "".join(
        f'<option value="{html.escape(oid, quote=True)}">{html.escape(name)}</option>' for oid, name in orgs
    )
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in params.get("scope", "").split(","))
    body = (
        "<!doctype html><html><head><title>Zoho Accounts - consent</title></head><body>"
        "<h1>Allow access to Zoho CRM?</h1>"
        f"<p>The application <code>{html.escape(params['client_id'])}</code> asks for:</p><ul>{scopes}</ul>"
        f'<form method="post" action="/oauth/v2/auth">{hidden}'
        f'<label>Organisation <select name="org_id">{options}</select></label> '
        '<button type="submit" name="approve" value="accept">Accept</button> '
        '<button type="submit" name="approve" value="reject">Reject</button></form></body></html>'
    )
    return HTMLResponse(body)


def deny_redirect(params: dict[str, str]) -> Response:
    parts = urlsplit(params["redirect_uri"])
    query = {"error": "access_denied"}
    if params.get("state"):
        query["state"] = params["state"]
    joined = "&".join(q for q in (parts.query, urlencode(query)) if q)
    return RedirectResponse(urlunsplit((parts.scheme, parts.netloc, parts.path, joined, "")), 302)


def token_response(body: dict) -> Response:
    return JSONResponse(body, status_code=200, headers={"Cache-Control": "no-store"})
