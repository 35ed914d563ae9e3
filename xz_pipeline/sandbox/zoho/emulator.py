"""A stateful Zoho CRM emulator on loopback: the accounts server and the CRM API (v8, aliases v7 and v2).

It follows zoho-api.md and the official v8 OpenAPI files, including the unpleasant parts a client must
survive: `fields` mandatory, page numbers only for the first 2,000 records and then bound, expiring page
tokens, 204/304 on empty reads, per-record write results with 207, credits per rolling 24 hours and
concurrency per edition answered with 429, expiring notification channels. Everything time-related comes
from the injected clock. The module imports nothing from the pipeline: it is the outside world.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from xz_pipeline.sandbox.clock import Clock
from xz_pipeline.sandbox.profiles import Profile, get_profile
from xz_pipeline.sandbox.zoho.accounts import (
    DEFAULT_SCOPES,
    AccessToken,
    ZohoAccounts,
    consent_page,
    deny_redirect,
    params_of,
    token_response,
)
from xz_pipeline.sandbox.zoho.call import ApiError, Call
from xz_pipeline.sandbox.zoho.limits import TOO_MANY_MESSAGE, Meter, ZohoLimits
from xz_pipeline.sandbox.zoho.notify import Notifier
from xz_pipeline.sandbox.zoho.records import OrgState
from xz_pipeline.sandbox.zoho.router import Api
from xz_pipeline.sandbox.zoho.seed import seed_org

__all__ = ["DEFAULT_SCOPES", "ZohoEmulator", "ZohoLimits", "Received"]

VERSIONS = ("v8", "v7", "v2")
REDACT = ("client_secret", "refresh_token", "code", "token", "access_token")
ID_START = 9_100_000_000_000_000_000


@dataclass(slots=True)
class Received:
    """One request the emulator answered (secrets in the query are masked)."""

    method: str
    path: str
    query: dict
    org_id: str | None
    status: int
    credits: int
    time: datetime


class ZohoEmulator:
    """Zoho Accounts + Zoho CRM for any number of orgs, as one Starlette app."""

    def __init__(self, *, clock: Clock | None = None, limits: ZohoLimits | None = None) -> None:
        self.clock = clock or Clock()
        self.limits = limits or ZohoLimits()
        self.base_url = "http://testserver"  # the API's origin: the token response's api_domain
        self.accounts_url: str | None = None  # a separate accounts server's origin (non-US data centres)
        self.location = "us"  # the data centre the consent redirect names
        self.lock = threading.RLock()
        self.orgs: dict[str, OrgState] = {}
        self.received: list[Received] = []
        self.workflow_runs: list[tuple[str, str, str]] = []
        self.meter = Meter()
        self.notifier = Notifier(self.clock)
        self.accounts = ZohoAccounts(
            self.clock,
            self._api_user_of,
            lambda: self.base_url,
            lambda: self.accounts_url or self.base_url,
            lambda: self.location,
        )
        self._ids = itertools.count(ID_START)
        self._known_ids: set[str] = set()
        self._org_seq = itertools.count(1)
        self.api = Api(self)
        oauth = [
            Route("/oauth/v2/token", self._token, methods=["POST"]),
            Route("/oauth/v2/token/revoke", self._revoke, methods=["POST"]),
            Route("/oauth/v2/auth", self._auth, methods=["GET", "POST"]),
        ]
        crm = [
            Route("/crm/{version}/{rest:path}", self._crm, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        ]
        rest = [Route("/{rest:path}", self._not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
        self.app = Starlette(routes=oauth + crm + rest)  # one origin for both, as a test double may want
        # A data centre as Zoho runs it: the accounts server and the API on two origins (accounts.zoho.eu,
        # www.zohoapis.eu), each answering 404 for the other's paths.
        self.accounts_app = Starlette(routes=oauth + rest)
        self.api_app = Starlette(routes=crm + rest)

    # -- setup ---------------------------------------------------------------------------------

    def new_id(self) -> str:
        with self.lock:
            while True:
                rid = str(next(self._ids))
                if rid not in self._known_ids:
                    self._known_ids.add(rid)
                    return rid

    def register_client(self, client_id: str, client_secret: str, redirect_uris=()) -> None:
        self.accounts.register_client(client_id, client_secret, list(redirect_uris))

    def add_org(
        self,
        company_name: str,
        *,
        org_id: str | None = None,
        timezone: str = "Pacific/Auckland",
        currency: str = "NZD",
        edition: str | None = None,
        profile: str | Profile | None = None,
    ) -> str:
        """A new org; `profile` (sandbox.profiles, default full) sets its modules, fields and features."""
        prof = get_profile(profile)
        with self.lock:
            oid = str(org_id or f"{800000000 + next(self._org_seq)}")
            if oid in self.orgs:
                raise ValueError(f"org {oid} already exists")
            org = OrgState(
                oid,
                company_name,
                timezone,
                currency,
                prof.edition or edition or self.limits.edition,
                self.clock.now(),
                self._tracked_id,
                profile=prof,
            )
            slug = "".join(ch for ch in company_name.lower() if ch.isascii() and ch.isalnum())[:20] or "org"
            org.add_user(self.new_id(), "Sandbox Admin", f"admin@{slug}.example")
            self.orgs[oid] = org
            return oid

    def _tracked_id(self) -> str:
        return self.new_id()

    def seed_world(self, world) -> str:
        """Load a generated world's CRM side (users, accounts, contacts, products, deals, invoices)."""
        crm = world.crm
        oid = self.add_org(
            crm.company_name,
            org_id=crm.org_id,
            timezone=crm.timezone,
            currency=crm.currency,
            edition=crm.edition,
            profile=getattr(world, "profile", None),
        )
        with self.lock:
            org = self.orgs[oid]
            if crm.users:
                org.users.clear()
            seed_org(org, crm, self.clock.now())
            self._remember(org)
        return oid

    def load(self, org_id: str, module: str, records: list[dict]) -> None:
        """Add records in the shape GET returns them (fixtures); ids and times are kept as given."""
        with self.lock:
            org = self._org(org_id)
            if org.module(module) is None:
                raise KeyError(f"unknown module {module!r}")
            now = self.clock.now()
            for item in records:
                org.load(module, item, now)
            self._remember(org)

    def field_names(self, org_id: str, module: str) -> set[str] | None:
        """The API names of a module's fields in this org (None: the org has no such module)."""
        with self.lock:
            mdef = self._org(org_id).module(module)
            return None if mdef is None else {f.api_name for f in mdef.fields}

    def relate(self, org_id: str, module: str, record_id: str, related_list: str, rows: list[dict]) -> None:
        """Set a record's related list, e.g. a deal's Products: [{"id", "Quantity", "List_Price"}]."""
        with self.lock:
            self._org(org_id).relate(module, record_id, related_list, rows)

    def dump(self, org_id: str, module: str) -> list[dict]:
        """Every record of a module as GET by id returns it (with subforms), ordered by id."""
        with self.lock:
            org = self._org(org_id)
            if org.module(module) is None:
                raise KeyError(f"unknown module {module!r}")
            recs = sorted(org.records[module].values(), key=lambda r: int(r["id"]))
            return [org.render(module, r) for r in recs]

    def _remember(self, org: OrgState) -> None:
        for recs in org.records.values():
            self._known_ids.update(recs)

    def _org(self, org_id: str) -> OrgState:
        org = self.orgs.get(org_id)
        if org is None:
            raise KeyError(f"unknown org {org_id!r}")
        return org

    def _api_user_of(self, org_id: str) -> str:
        return self._org(org_id).api_user["id"]

    def org_limits(self, org: OrgState) -> ZohoLimits:
        return (
            self.limits if org.edition == self.limits.edition else replace(self.limits, edition=org.edition)
        )

    def grant_refresh_token(self, client_id: str, org_id: str, scopes: str = DEFAULT_SCOPES) -> str:
        """A refresh token as if a person had consented (bootstrap for the sandbox and tests)."""
        self._org(org_id)
        return self.accounts.grant_refresh_token(client_id, org_id, scopes)

    # -- hooks ---------------------------------------------------------------------------------

    def flush_notifications(self) -> int:
        return self.notifier.deliver()

    def expire_access_token(self, token: str) -> None:
        self.accounts.expire(token)

    def rate_limit_response(self) -> Response:
        """The 429 Zoho answers when credits or concurrency run out (zoho-api.md §13)."""
        return JSONResponse(
            {"code": "TOO_MANY_REQUESTS", "details": {}, "message": TOO_MANY_MESSAGE, "status": "error"},
            status_code=429,
        )

    def credits_used(self, org_id: str) -> int:
        return self.meter.used(org_id, self.clock.now())

    def resource_uri(self, version: str, module: str) -> str:
        return f"{self.base_url}/crm/{version}/{module}"

    # -- accounts server -----------------------------------------------------------------------

    def _log(self, request: Request, status: int, org_id: str | None = None, credits: int = 0) -> None:
        query = {k: ("***" if k in REDACT else v) for k, v in request.query_params.items()}
        with self.lock:
            self.received.append(
                Received(request.method, request.url.path, query, org_id, status, credits, self.clock.now())
            )

    async def _token(self, request: Request) -> Response:
        params = await params_of(request)
        body = self.accounts.token(params)
        org_id = None
        if "access_token" in body:
            at = self.accounts.authenticate(body["access_token"])
            org_id = at.org_id if at else None
        self._log(request, 200, org_id)
        return token_response(body)

    async def _revoke(self, request: Request) -> Response:
        params = await params_of(request)
        self._log(request, 200)
        return token_response(self.accounts.revoke(params.get("token", "")))

    async def _auth(self, request: Request) -> Response:
        params = await params_of(request)
        error = self.accounts.check_consent(params)
        with self.lock:
            orgs = [(oid, o.company_name) for oid, o in self.orgs.items()]
        if not orgs and not error:
            error = "no organisation to grant access to"
        if error:
            self._log(request, 400)
            return consent_page(params, orgs, error)
        org_id = params.get("org_id") or orgs[0][0]
        if org_id not in self.orgs:
            self._log(request, 400)
            return consent_page(params, orgs, "unknown organisation")
        if request.method == "GET" and params.get("auto") != "1":
            self._log(request, 200)
            return consent_page(params, orgs)
        if request.method == "POST" and params.get("approve") == "reject":
            self._log(request, 302)
            return deny_redirect(params)
        self._log(request, 302, org_id)
        return RedirectResponse(self.accounts.redirect_for(params, org_id), status_code=302)

    # -- CRM API -------------------------------------------------------------------------------

    async def _not_found(self, request: Request) -> Response:
        self._log(request, 404)
        return _error(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")

    async def _crm(self, request: Request) -> Response:
        version = request.path_params["version"]
        if version not in VERSIONS:
            return await self._not_found(request)
        body = await request.body()
        call = Call(
            method=request.method,
            version=version,
            parts=[p for p in request.path_params["rest"].split("/") if p],
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        status, payload, headers, org_id, credits = await run_in_threadpool(self._serve, call)
        self._log(request, status, org_id, credits)
        if payload is None:
            return Response(status_code=status, headers=headers)
        return JSONResponse(payload, status_code=status, headers=headers)

    def _serve(self, call: Call) -> tuple[int, Any, dict, str | None, int]:
        """Authenticate, route, meter, handle: (status, body or None, headers, org id, credits)."""
        auth = call.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme != "Zoho-oauthtoken" or not token.strip():
            return (*_err(401, "AUTHENTICATION_FAILURE", "Authentication failed"), {}, None, 0)
        at: AccessToken | None = self.accounts.authenticate(token.strip())
        if at is None:
            return (*_err(401, "INVALID_TOKEN", "invalid oauth token"), {}, None, 0)
        org = self.orgs.get(at.org_id)
        if org is None:
            return (*_err(401, "INVALID_TOKEN", "invalid oauth token"), {}, None, 0)
        call.org = org
        call.token = at
        try:
            route = self.api.route(call)
        except ApiError as exc:
            return exc.status, exc.body(), {}, org.org_id, 0
        if not _scope_ok(at.scopes, route.scopes):
            return (*_err(401, "OAUTH_SCOPE_MISMATCH", "Unauthorized"), {}, org.org_id, 0)
        limits = self.org_limits(org)
        key = (org.org_id, at.client_id)
        if not self.meter.enter(key, route.complex, limits.max_concurrency(), limits.sub_concurrency):
            return 429, self._too_many(), {}, org.org_id, 0
        try:
            daily = limits.daily_credits()
            if not self.meter.charge(org.org_id, route.credits, daily, self.clock.now()):
                return 429, self._too_many(), {}, org.org_id, 0
            headers = {}
            if daily:
                remaining = max(0, daily - self.meter.used(org.org_id, self.clock.now()))
                if remaining <= daily // 2:
                    headers["X-API-CREDITS-REMAINING"] = str(remaining)
            try:
                status, payload = self._handle(route, call)
            except ApiError as exc:
                status, payload = exc.status, exc.body()
            return status, payload, headers, org.org_id, route.credits
        finally:
            self.meter.leave(key, route.complex)

    def _handle(self, route, call: Call) -> tuple[int, Any]:
        with self.lock:
            return route.handler(call)

    def _too_many(self) -> dict:
        return {"code": "TOO_MANY_REQUESTS", "details": {}, "message": TOO_MANY_MESSAGE, "status": "error"}

    def record_changes(
        self, org: OrgState, module: str, changes: list, version: str, workflows: bool
    ) -> None:
        """After a write: notifications for watched modules, workflow runs when the trigger allows."""
        if not changes:
            return
        now = self.clock.now()
        by_op: dict[str, list] = {}
        for c in changes:
            by_op.setdefault(c.operation, []).append(c)
            if workflows:
                self.workflow_runs.append((module, c.id, c.operation))
        for op, items in by_op.items():
            self.notifier.publish(org.org_id, module, op, items, self.resource_uri, now)


def _scope_ok(granted: str, required: list[tuple[str, ...]]) -> bool:
    """Every required scope (area path..., OP) is covered by a granted `ZohoCRM.<area>.<OP>` scope."""
    have = [s.strip().lower().split(".") for s in granted.replace(" ", ",").split(",") if s.strip()]
    for need in required:
        area, op = [p.lower() for p in need[:-1]], need[-1].lower()
        ok = False
        for g in have:
            if len(g) < 2 or g[0] != "zohocrm":
                continue
            g_area, g_op = g[1:-1], g[-1]
            if area[: len(g_area)] != g_area:
                continue
            if g_op == "all" or g_op == op or (g_op == "write" and op in ("create", "update", "delete")):
                ok = True
                break
        if not ok:
            return False
    return True


def _err(status: int, code: str, message: str, details: dict | None = None) -> tuple[int, dict]:
    return status, {"code": code, "details": details or {}, "message": message, "status": "error"}


def _error(status: int, code: str, message: str, details: dict | None = None) -> Response:
    return JSONResponse(_err(status, code, message, details)[1], status_code=status)
