"""Xero's identity service: consent, codes, rotating refresh tokens, client credentials, connections.

Lifetimes follow the fact sheet (§2): codes 5 minutes and single-use, access tokens 1,800 s,
refresh tokens 60 days unused and rotated on every refresh with a 30-minute grace for the old
one, id tokens 5 minutes. One sandbox user owns every tenant; each consent is an auth event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from xz_pipeline.sandbox.clock import Clock

ACCESS_TTL = timedelta(seconds=1800)
CODE_TTL = timedelta(minutes=5)
REFRESH_TTL = timedelta(days=60)
REFRESH_GRACE = timedelta(minutes=30)
ID_TOKEN_TTL = timedelta(minutes=5)

DEFAULT_SCOPES = (
    "openid profile email offline_access accounting.transactions accounting.contacts accounting.settings"
    " projects.read"
)
SANDBOX_USER = {
    "id": "5f0e3a40-9b6c-4d5e-8f7a-1b2c3d4e5f60",
    "email": "owner@sandbox.example",
    "given": "Sandy",
    "family": "Box",
}


class TokenError(Exception):
    """An OAuth error answered as `400 {"error": code}`."""

    def __init__(self, code: str, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


@dataclass
class Client:
    client_id: str
    secret: str  # "" for a PKCE public client
    redirect_uris: list[str]
    custom_tenant: str | None = None


@dataclass
class Grant:
    """One consent: a user let a client reach some tenants with some scopes."""

    id: str
    client_id: str
    auth_event_id: str
    scopes: list[str]
    tenants: list[str]
    revoked: bool = False


@dataclass
class AccessToken:
    token: str
    client_id: str
    scopes: list[str]
    expires_at: datetime
    auth_event_id: str
    grant_id: str | None = None  # None for client-credentials tokens
    custom_tenant: str | None = None  # set for client-credentials tokens


@dataclass
class RefreshToken:
    grant_id: str
    issued_at: datetime
    rotated_at: datetime | None = None


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    scopes: list[str]
    tenants: list[str]
    challenge: str
    method: str
    expires_at: datetime
    used: bool = False


@dataclass
class Connection:
    id: str
    tenant_id: str
    auth_event_id: str
    created: datetime
    updated: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _iso(dt: datetime) -> str:
    return dt.replace(tzinfo=None).isoformat(timespec="microseconds") + "0"


@dataclass
class Identity:
    """The identity state, guarded by one lock. `tenants` maps tenant id to (name, type), owned by the emulator."""

    clock: Clock
    tenants: dict[str, tuple[str, str]]
    clients: dict[str, Client] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, AccessToken] = field(default_factory=dict)
    refresh: dict[str, RefreshToken] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    connections: dict[str, dict[str, Connection]] = field(default_factory=dict)  # client -> tenant -> conn
    lock: threading.RLock = field(default_factory=threading.RLock)
    _signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    # ---- tokens --------------------------------------------------------------------------------

    def _jwt(self, claims: dict) -> str:
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._signing_key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{sig}"

    def _issue_access(
        self, client_id: str, scopes: list[str], auth_event_id: str, grant_id=None, tenant=None
    ) -> AccessToken:
        now = self.clock.now()
        exp = now + ACCESS_TTL
        claims = {
            "nbf": int(now.timestamp()),
            "exp": int(exp.timestamp()),
            "iss": "https://identity.xero.com",
            "aud": "https://identity.xero.com/resources",
            "client_id": client_id,
            "sub": SANDBOX_USER["id"].replace("-", ""),
            "xero_userid": SANDBOX_USER["id"],
            "authentication_event_id": auth_event_id,
            "jti": uuid.uuid4().hex,
            "scope": scopes,
        }
        tok = AccessToken(self._jwt(claims), client_id, scopes, exp, auth_event_id, grant_id, tenant)
        self.access[tok.token] = tok
        return tok

    def _token_response(self, client_id: str, grant: Grant | None, scopes: list[str], tenant=None) -> dict:
        auth_event = grant.auth_event_id if grant else str(uuid.uuid4())
        tok = self._issue_access(client_id, scopes, auth_event, grant.id if grant else None, tenant)
        out = {"access_token": tok.token, "expires_in": int(ACCESS_TTL.total_seconds()), "token_type": "Bearer",
               "scope": " ".join(scopes)}  # fmt: skip
        if grant is not None and "offline_access" in scopes:
            rt = secrets.token_urlsafe(32)
            self.refresh[rt] = RefreshToken(grant.id, self.clock.now())
            out["refresh_token"] = rt
        if "openid" in scopes:
            now = self.clock.now()
            out["id_token"] = self._jwt(
                {
                    "nbf": int(now.timestamp()),
                    "exp": int((now + ID_TOKEN_TTL).timestamp()),
                    "iss": "https://identity.xero.com",
                    "aud": client_id,
                    "sub": SANDBOX_USER["id"].replace("-", ""),
                    "email": SANDBOX_USER["email"],
                    "given_name": SANDBOX_USER["given"],
                    "family_name": SANDBOX_USER["family"],
                    "xero_userid": SANDBOX_USER["id"],
                    "global_session_id": auth_event,
                }  # fmt: skip
            )
        return out

    def new_grant(self, client_id: str, tenants: list[str], scopes: list[str]) -> Grant:
        """Record a consent: connect the tenants to the client (reconnecting bumps updatedDateUtc)."""
        now = self.clock.now()
        grant = Grant(str(uuid.uuid4()), client_id, str(uuid.uuid4()), scopes, list(tenants))
        self.grants[grant.id] = grant
        conns = self.connections.setdefault(client_id, {})
        for tid in tenants:
            if tid in conns:
                conns[tid].auth_event_id, conns[tid].updated = grant.auth_event_id, now
            else:
                conns[tid] = Connection(str(uuid.uuid4()), tid, grant.auth_event_id, now, now)
        return grant

    def bootstrap_refresh_token(self, client_id: str, tenant_ids: list[str], scopes: str) -> str:
        with self.lock:
            if client_id not in self.clients:
                raise KeyError(f"unknown client_id {client_id!r}")
            scope_list = scopes.split()
            if "offline_access" not in scope_list:
                scope_list.append("offline_access")
            grant = self.new_grant(client_id, tenant_ids, scope_list)
            rt = secrets.token_urlsafe(32)
            self.refresh[rt] = RefreshToken(grant.id, self.clock.now())
            return rt

    def _client(self, request_headers, form: dict[str, str]) -> Client:
        """HTTP Basic client auth, or client_id (+ secret) in the form for PKCE public clients."""
        auth = request_headers.get("authorization", "")
        cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        if auth.lower().startswith("basic "):
            try:
                cid, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise TokenError("invalid_client") from exc
        client = self.clients.get(cid)
        if client is None or not hmac.compare_digest(client.secret.encode(), secret.encode()):
            raise TokenError("invalid_client")
        return client

    def token(self, headers, form: dict[str, str]) -> dict:
        with self.lock:
            client = self._client(headers, form)
            grant_type = form.get("grant_type", "")
            if grant_type == "authorization_code":
                return self._grant_code(client, form)
            if grant_type == "refresh_token":
                return self._grant_refresh(client, form)
            if grant_type == "client_credentials":
                if not client.custom_tenant:
                    raise TokenError("unauthorized_client")
                scopes = form.get("scope", "").split() or [
                    s for s in DEFAULT_SCOPES.split() if s.startswith("accounting")
                ]
                return self._token_response(client.client_id, None, scopes, tenant=client.custom_tenant)
            raise TokenError("unsupported_grant_type")

    def _grant_code(self, client: Client, form: dict[str, str]) -> dict:
        code = self.codes.get(form.get("code", ""))
        now = self.clock.now()
        if code is None or code.used or code.client_id != client.client_id or now >= code.expires_at:
            raise TokenError("invalid_grant")
        if form.get("redirect_uri", "") != code.redirect_uri:
            raise TokenError("invalid_grant")
        verifier = form.get("code_verifier", "")
        if code.challenge:
            if code.method == "S256":
                ok = _b64(hashlib.sha256(verifier.encode()).digest()) == code.challenge
            else:
                ok = verifier == code.challenge
            if not verifier or not ok:
                raise TokenError("invalid_grant")
        elif not client.secret:
            raise TokenError("invalid_request")  # a public client must use PKCE
        code.used = True
        grant = self.new_grant(client.client_id, code.tenants, code.scopes)
        return self._token_response(client.client_id, grant, code.scopes)

    def _grant_refresh(self, client: Client, form: dict[str, str]) -> dict:
        rt = self.refresh.get(form.get("refresh_token", ""))
        now = self.clock.now()
        if rt is None:
            raise TokenError("invalid_grant")
        grant = self.grants[rt.grant_id]
        if grant.revoked or grant.client_id != client.client_id or now - rt.issued_at > REFRESH_TTL:
            raise TokenError("invalid_grant")
        if rt.rotated_at is not None and now - rt.rotated_at > REFRESH_GRACE:
            raise TokenError("invalid_grant")
        if rt.rotated_at is None:
            rt.rotated_at = now
        return self._token_response(client.client_id, grant, grant.scopes)

    def revoke(self, headers, form: dict[str, str]) -> None:
        with self.lock:
            client = self._client(headers, form)
            rt = self.refresh.get(form.get("token", ""))
            if rt is None:
                return  # RFC 7009: unknown tokens are not an error
            grant = self.grants[rt.grant_id]
            if grant.client_id != client.client_id:
                raise TokenError("invalid_grant")
            for g in self.grants.values():
                if g.client_id == client.client_id:
                    g.revoked = True
            self.connections.pop(client.client_id, None)
            for tok in list(self.access.values()):
                if tok.client_id == client.client_id and tok.grant_id is not None:
                    del self.access[tok.token]

    # ---- consent ------------------------------------------------------------------------------

    def issue_code(self, params: dict[str, str], tenants: list[str]) -> str:
        with self.lock:
            code = secrets.token_urlsafe(24)
            self.codes[code] = AuthCode(
                params["client_id"], params["redirect_uri"], params.get("scope", "").split(), tenants,
                params.get("code_challenge", ""), params.get("code_challenge_method", "plain"),
                self.clock.now() + CODE_TTL,
            )  # fmt: skip
            return code

    def check_authorize(self, params: dict[str, str]) -> str:
        """'' when the authorize request is acceptable, else why (shown on the page, never redirected)."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return "Unknown client_id"
        if params.get("response_type") != "code":
            return "response_type must be code"
        if params.get("redirect_uri", "") not in client.redirect_uris:
            return "redirect_uri is not registered for this app"
        if params.get("code_challenge") and params.get("code_challenge_method", "plain") not in (
            "S256",
            "plain",
        ):
            return "code_challenge_method must be S256"
        return ""

    # ---- resource-side checks -------------------------------------------------------------------

    def resolve(self, authorization: str) -> tuple[AccessToken | None, str]:
        """The bearer token's record, or the 401 Detail explaining why not."""
        if not authorization.lower().startswith("bearer "):
            return None, "AuthenticationUnsuccessful"
        with self.lock:
            tok = self.access.get(authorization[7:].strip())
            if tok is None:
                return None, "AuthenticationUnsuccessful"
            if self.clock.now() >= tok.expires_at:
                return None, f"TokenExpired: token expired at {tok.expires_at.strftime('%m/%d/%Y %H:%M:%S')}"
            return tok, ""

    def tenants_of(self, tok: AccessToken) -> list[str]:
        if tok.custom_tenant:
            return [tok.custom_tenant]
        with self.lock:
            return list(self.connections.get(tok.client_id, {}))

    def connection_list(self, tok: AccessToken, auth_event: str | None) -> list[dict]:
        with self.lock:
            if tok.custom_tenant:
                now = self.clock.now()
                conns = [Connection(str(uuid.uuid5(uuid.NAMESPACE_URL, tok.custom_tenant)), tok.custom_tenant,
                                    tok.auth_event_id, now, now)]  # fmt: skip
            else:
                conns = list(self.connections.get(tok.client_id, {}).values())
            out = []
            for c in conns:
                if auth_event and c.auth_event_id != auth_event:
                    continue
                name, ttype = self.tenants.get(c.tenant_id, ("", "ORGANISATION"))
                out.append({"id": c.id, "authEventId": c.auth_event_id, "tenantId": c.tenant_id, "tenantType": ttype,
                            "tenantName": name, "createdDateUtc": _iso(c.created), "updatedDateUtc": _iso(c.updated)})  # fmt: skip
            return out

    def disconnect(self, tok: AccessToken, connection_id: str) -> bool:
        with self.lock:
            conns = self.connections.get(tok.client_id, {})
            for tid, c in list(conns.items()):
                if c.id == connection_id:
                    del conns[tid]
                    return True
            return False


# ---- HTTP ---------------------------------------------------------------------------------------


def problem(status: int, detail: str) -> JSONResponse:
    """Xero's problem-style 401/403 body (fact sheet §9)."""
    title = {401: "Unauthorized", 403: "Forbidden"}.get(status, "Error")
    body = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    return JSONResponse(body, status_code=status)


async def _form(request: Request) -> dict[str, str]:
    raw = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _consent_page(identity: Identity, params: dict[str, str]) -> str:
    rows = "".join(
        f'<li><label><input type="checkbox" name="tenant" value="{html.escape(tid)}" checked> {html.escape(name)}</label></li>'
        for tid, (name, _t) in identity.tenants.items()
    )
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
    )
    client = html.escape(params.get("client_id", ""))
    scopes = html.escape(params.get("scope", ""))
    return (
        "<!doctype html><html><head><title>Xero sandbox: connect</title></head><body>"
        f"<h1>Allow access</h1><p>App <code>{client}</code> asks for: <code>{scopes}</code></p>"
        f'<form method="post">{hidden}<ul>{rows}</ul>'
        '<button name="action" value="allow">Allow access</button> '
        '<button name="action" value="deny">Cancel</button></form></body></html>'
    )


def _redirect(uri: str, params: dict[str, str]) -> RedirectResponse:
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(f"{uri}{sep}{urlencode(params)}", status_code=302)


def identity_routes(identity: Identity) -> list[Route]:
    async def token(request: Request) -> Response:
        form = await _form(request)
        try:
            return JSONResponse(identity.token(request.headers, form), headers={"Cache-Control": "no-store"})
        except TokenError as err:
            return JSONResponse({"error": err.code}, status_code=err.status)

    async def revocation(request: Request) -> Response:
        try:
            identity.revoke(request.headers, await _form(request))
        except TokenError as err:
            return JSONResponse({"error": err.code}, status_code=err.status)
        return Response(status_code=200)

    def _bearer(request: Request) -> tuple[AccessToken | None, Response | None]:
        tok, why = identity.resolve(request.headers.get("authorization", ""))
        return (tok, None) if tok else (None, problem(401, why))

    async def connections(request: Request) -> Response:
        tok, err = _bearer(request)
        if err:
            return err
        return JSONResponse(identity.connection_list(tok, request.query_params.get("authEventId")))

    async def delete_connection(request: Request) -> Response:
        tok, err = _bearer(request)
        if err:
            return err
        if identity.disconnect(tok, request.path_params["id"]):
            return Response(status_code=204)
        return Response(
            "The resource you're looking for cannot be found", status_code=404, media_type="text/plain"
        )

    async def authorize(request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            form = await _form(request)
            raw = (await request.body()).decode()
            chosen = parse_qs(raw).get("tenant", [])
            params.update({k: v for k, v in form.items() if k not in ("tenant", "action")})
        why = identity.check_authorize(params)
        if why:
            return HTMLResponse(f"<h1>Error</h1><p>{html.escape(why)}</p>", status_code=400)
        state = {"state": params["state"]} if "state" in params else {}
        if request.method == "POST":
            if form.get("action") != "allow":
                return _redirect(params["redirect_uri"], {"error": "access_denied", **state})
            tenants = [t for t in chosen if t in identity.tenants]
        elif params.get("auto") == "1":
            tenants = list(identity.tenants)
        else:
            return HTMLResponse(_consent_page(identity, {k: v for k, v in params.items() if k != "auto"}))
        code = identity.issue_code(params, tenants)
        return _redirect(params["redirect_uri"], {"code": code, **state})

    return [
        Route("/connect/token", token, methods=["POST"]),
        Route("/connect/revocation", revocation, methods=["POST"]),
        Route("/connections", connections, methods=["GET"]),
        Route("/Connections", connections, methods=["GET"]),
        Route("/connections/{id}", delete_connection, methods=["DELETE"]),
        Route("/Connections/{id}", delete_connection, methods=["DELETE"]),
        Route("/identity/connect/authorize", authorize, methods=["GET", "POST"]),
    ]
