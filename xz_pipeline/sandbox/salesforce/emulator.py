"""A stateful emulator of Salesforce's REST API and OAuth server, for several orgs at once.

It follows Salesforce's documented behaviour (notes/quickbooks-salesforce.md, part B): OAuth on the login
host, each org on its own instance host (`instance_url` in the token response; the sandbox gives each
org its own loopback port, and in process the Host header or, failing that, the session names the org);
`/services/data/vXX.X/` with SOQL query/queryAll and query locators, sObject rows, describe, the
replication windows, sObject Collections, upsert by external id, `/composite`, `/limits`, the Tooling
API's CustomField create; JSON errors as `[{"message", "errorCode"}]`; `Sforce-Limit-Info` on every API
answer; Outbound Messages for watched objects.

Choices where the sources are silent (kept deliberate, so clients are tested against them):
- Any API version `vNN.N` is served the same, but for what the documentation ties to a version: an upsert
  by external id that updates answers 200 with `{id, success, errors, created: false}` from v46.0, and
  204 with no body before (a create's 201 gains `created` from v46.0); `/services/data` lists 59.0 to 62.0.
- A session used on another org's instance host is INVALID_SESSION_ID, as a foreign session is.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xz_pipeline.sandbox.clock import Clock
from xz_pipeline.sandbox.salesforce import reads, writes
from xz_pipeline.sandbox.salesforce.auth import Auth, Client, auth_routes
from xz_pipeline.sandbox.salesforce.composite import collections, composite
from xz_pipeline.sandbox.salesforce.ids import KEY_PREFIXES, to18
from xz_pipeline.sandbox.salesforce.limits import DailyBudget, SalesforceLimits
from xz_pipeline.sandbox.salesforce.org import Org
from xz_pipeline.sandbox.salesforce.outbound import OutboundSender
from xz_pipeline.sandbox.salesforce.tooling import create_custom_field, tooling_query
from xz_pipeline.sandbox.salesforce.wire import SfError, dumps, not_found

__all__ = ["ReceivedRequest", "SalesforceEmulator"]

VERSIONS = ("59.0", "60.0", "61.0", "62.0")
UPSERT_ANSWERS = 46.0  # the API version from which an upsert answers `created`, and an update a body
PER_LICENCE = 1_000
# Refresh-token rotation is an opt-in setting of the connected app (notes B.2): the orgs of these profiles
# have it on, so the suite meets both kinds of org.
ROTATING_PROFILES = ("renamed",)


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request the emulator saw (for tests and for the demo's "API calls spent")."""

    method: str
    path: str
    query: dict[str, str]
    org_id: str | None
    status: int
    time: datetime

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class Call:
    org: Org
    user_id: str
    method: str
    version: str
    parts: list[str]
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    @property
    def base(self) -> str:
        return f"/services/data/v{self.version}"

    @property
    def api_version(self) -> float:
        try:
            return float(self.version)
        except ValueError:
            return 0.0


class SalesforceEmulator:
    """The outside world's Salesforce. Every state change happens under one lock; the ASGI app is `app`."""

    def __init__(self, *, clock: Clock | None = None, limits: SalesforceLimits | None = None) -> None:
        self.clock = clock or Clock()
        self.limits = limits or SalesforceLimits()
        self.base_url = "http://testserver"  # the login host (the server sets it)
        self.orgs: dict[str, Org] = {}
        self.received: list[ReceivedRequest] = []
        self._lock = threading.RLock()
        self.auth = Auth(self.clock, self._org_infos, lambda: self.base_url)
        self.budget = DailyBudget(self.clock)
        self.reader = reads.Reader()
        self.outbound = OutboundSender(self.clock)
        self._id_maps: dict[str, dict[str, str]] = {}
        routes = [
            *auth_routes(self.auth),
            Route("/id/{org}/{user}", self._identity, methods=["GET", "POST"]),
            Route("/services/data", self._versions, methods=["GET"]),
            Route("/services/data/", self._versions, methods=["GET"]),
            Route(
                "/services/data/v{version}/{path:path}",
                self._api,
                methods=["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"],
            ),  # fmt: skip
            Route("/services/data/v{version}", self._api, methods=["GET"]),
        ]
        self.app = _Recorder(Starlette(routes=routes), self)

    # ---- setup (Python API) -------------------------------------------------------------------

    def register_client(self, client_id: str, client_secret: str, redirect_uris: list[str] = ()) -> None:
        with self.auth.lock:
            self.auth.clients[client_id] = Client(client_id, client_secret, list(redirect_uris))

    def seed_world(self, world, *, profile: Any = None, rotate_refresh_tokens: bool | None = None) -> str:
        """Load a `sandbox.world.World`'s CRM side as one org; returns its org id (00D...)."""
        from xz_pipeline.sandbox.profiles import get_profile
        from xz_pipeline.sandbox.salesforce.seed import seed_org

        prof = get_profile(profile if profile is not None else world.profile)
        rotate = prof.name in ROTATING_PROFILES if rotate_refresh_tokens is None else rotate_refresh_tokens
        org, ids = seed_org(world, prof, rotate_refresh_tokens=rotate)
        with self._lock:
            org.instance_url = org.instance_url or self.base_url
            self.orgs[org.org_id] = org
            self._id_maps[org.org_id] = ids
            self.budget.max[org.org_id] = self.limits.daily or 100_000 + PER_LICENCE * len(world.crm.users)
        return org.org_id

    def id_map(self, org_id: str) -> dict[str, str]:
        """world CRM id -> Salesforce id for every seeded record of this org (the manifest's `id_maps`)."""
        return dict(self._id_maps.get(org_id, {}))

    def set_instance_url(self, org_id: str, url: str) -> None:
        with self._lock:
            self.orgs[org_id].instance_url = url.rstrip("/")

    def grant_refresh_token(self, client_id: str, org_id: str) -> str:
        return self.auth.grant(client_id, org_id)

    def expire_access_token(self, token: str) -> None:
        self.auth.expire(token)

    def set_outbound(self, org_id: str, url: str, objects: dict[str, list[str]] | None = None) -> None:
        """Outbound messages from this org to `url` for changes to `objects` ({object: fields sent})."""
        self.outbound.configure(self.orgs[org_id], url, objects)

    def flush_outbound(self) -> int:
        return self.outbound.flush(self._snapshot)

    def record(self, org_id: str, sobject: str, rid: str) -> dict | None:
        with self._lock:
            rec = self.orgs[org_id].get(sobject, rid, deleted=True)
            return dict(rec) if rec is not None else None

    def rate_limit_response(self) -> Response:
        """REQUEST_LIMIT_EXCEEDED (also the fault middleware's 429 stand-in: Salesforce answers 403)."""
        err = SfError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return Response(dumps(err.body()), 403, media_type="application/json")

    def _org_infos(self) -> dict[str, tuple[str, str, str, bool]]:
        return {oid: (o.name, o.api_user_id, o.instance_url or self.base_url, o.rotate_refresh_tokens)
                for oid, o in self.orgs.items()}  # fmt: skip

    def _snapshot(self, org_id: str, sobject: str, rid: str) -> dict | None:
        with self._lock:
            rec = self.orgs[org_id].get(sobject, rid)
            return dict(rec) if rec is not None else None

    # ---- HTTP ---------------------------------------------------------------------------------

    async def _versions(self, request: Request) -> Response:
        return JSONResponse([{"label": f"Version {v}", "url": f"/services/data/v{v}", "version": v}
                             for v in VERSIONS])  # fmt: skip

    async def _identity(self, request: Request) -> Response:
        session = self.auth.resolve(request.headers.get("authorization", ""))
        org = self.orgs.get(request.path_params["org"])
        if session is None or org is None or session.org_id != org.org_id:
            return Response("Bad_OAuth_Token", 403, media_type="text/plain")
        user = org.get("User", request.path_params["user"])
        if user is None:
            return Response("Bad_Id", 404, media_type="text/plain")
        base = org.instance_url or self.base_url
        return JSONResponse({
            "id": f"{self.base_url}/id/{org.org_id}/{user['Id']}", "organization_id": org.org_id,
            "user_id": user["Id"], "username": user["Username"], "display_name": user["Name"],
            "email": user["Email"], "active": True, "user_type": "STANDARD",
            "urls": {"rest": f"{base}/services/data/v{{version}}/", "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
                     "query": f"{base}/services/data/v{{version}}/query/"}})  # fmt: skip

    def _host_org(self, request: Request) -> Org | None:
        host = request.headers.get("host", "")
        for org in self.orgs.values():
            if (
                org.instance_url
                and org.instance_url.split("://", 1)[-1] == host
                and org.instance_url != self.base_url
            ):
                return org
        return None

    async def _api(self, request: Request) -> Response:
        session = self.auth.resolve(request.headers.get("authorization", ""))
        host_org = self._host_org(request)
        if session is None or (host_org is not None and host_org.org_id != session.org_id):
            err = SfError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            return Response(dumps(err.body()), 401, media_type="application/json",
                            headers={"WWW-Authenticate": 'Token realm="Salesforce"'})  # fmt: skip
        org = self.orgs[session.org_id]
        request.state.org_id = org.org_id
        if not self.budget.spend(org.org_id):
            resp = self.rate_limit_response()
            resp.headers["Sforce-Limit-Info"] = self.budget.header(org.org_id)
            return resp
        raw = await request.body()
        version = request.path_params["version"]
        path = request.path_params.get("path", "")
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            err = SfError(400, "JSON_PARSER_ERROR", "Unexpected character: was expecting a JSON value")
            return self._answer(org, err.status, err.body())
        call = Call(org, session.user_id, request.method, version, [p for p in path.split("/") if p],
                    dict(request.query_params), {k.lower(): v for k, v in request.headers.items()}, body)  # fmt: skip
        status, payload, headers = await run_in_threadpool(self.handle, call)
        return self._answer(org, status, payload, headers)

    def _answer(self, org: Org, status: int, payload: Any, headers: dict | None = None) -> Response:
        headers = {**(headers or {}), "Sforce-Limit-Info": self.budget.header(org.org_id)}
        if status == 204 or payload is None:
            return Response(status_code=status, headers=headers)
        return Response(dumps(payload), status, media_type="application/json;charset=UTF-8", headers=headers)

    def handle(self, call: Call) -> tuple[int, Any, dict]:
        """One API call under the lock; changes it made are offered to the outbound-message sender."""
        with self._lock:
            org = call.org
            mark = len(org.journal)
            try:
                status, payload, headers = self.route(call)
            except SfError as err:
                org.rollback(mark)
                status, payload, headers = err.status, err.body(), {}
            changed = org.journal[mark:]
            self.outbound.changed(org, [(s, rid) for s, rid, _ in changed], self.clock.now())
            del org.journal[mark:]
            return status, payload, headers

    def route(self, call: Call) -> tuple[int, Any, dict]:
        org, parts, method, now = call.org, call.parts, call.method, self.clock.now()
        base = call.base
        head = parts[0] if parts else ""
        if not parts:
            return 200, {k: f"{base}/{k}" for k in ("sobjects", "query", "queryAll", "limits", "composite",
                                                    "tooling")}, {}  # fmt: skip
        if head == "limits" and len(parts) == 1:
            return 200, self.budget.report(org.org_id), {}
        if head in ("query", "queryAll") and method == "GET":
            if len(parts) == 2:
                return 200, self.reader.more(org, parts[1], now, base), {}
            if len(parts) == 1:
                if "q" not in call.query:
                    raise SfError(400, "MALFORMED_QUERY", "A query string has to be specified")
                return 200, self.reader.query(org, call.query["q"], deleted=head == "queryAll", now=now, base=base,
                                              options=call.headers.get("sforce-query-options", ""),
                                              ceiling=self.limits.batch_size), {}  # fmt: skip
        if head == "sobjects":
            return self._sobjects(call, now)
        if head == "composite":
            if len(parts) == 1 and method == "POST":
                return 200, composite(self, call), {}
            if len(parts) >= 2 and parts[1] == "sobjects":
                return 200, collections(call, now, self.limits.collection_records), {}
        if head == "tooling":
            if parts[1:] == ["sobjects", "CustomField"] and method == "POST":
                return 201, create_custom_field(org, call.body, now), {}
            if parts[1:] == ["query"] and method == "GET":
                return 200, tooling_query(org, call.query.get("q", ""), base), {}
        raise not_found()

    def _sobjects(self, call: Call, now: datetime) -> tuple[int, Any, dict]:
        org, parts, method, base = call.org, call.parts, call.method, call.base
        if len(parts) == 1:
            if method != "GET":
                raise SfError(
                    405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET"
                )
            return 200, reads.describe_global(org, base), {}
        sobject = org.schema.sobject(parts[1])
        if not sobject:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        if len(parts) == 2:
            if method == "GET":
                desc = org.schema.describe(sobject, KEY_PREFIXES.get(sobject, ""), base)
                return (
                    200,
                    {"objectDescribe": {k: v for k, v in desc.items() if k != "fields"}, "recentItems": []},
                    {},
                )
            if method == "POST":
                rec = writes.create(org, sobject, call.body, now, call.user_id)
                return (
                    201,
                    {"id": rec["Id"], "success": True, "errors": []},
                    {"Location": f"{base}/sobjects/{sobject}/{rec['Id']}"},
                )
            raise SfError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,POST"
            )
        third = parts[2]
        if len(parts) == 3 and third == "describe" and method == "GET":
            return 200, org.schema.describe(sobject, KEY_PREFIXES.get(sobject, ""), base), {}
        if len(parts) == 3 and third in ("updated", "deleted") and method == "GET":
            fn = reads.updated if third == "updated" else reads.deleted
            return 200, fn(org, sobject, call.query, now), {}
        if len(parts) == 3:
            rid = third
            if method == "GET":
                return 200, reads.get_record(org, sobject, rid, call.query.get("fields", ""), base), {}
            full = _full_id(rid)
            if method == "PATCH":
                writes.update(org, sobject, full, call.body, now, call.user_id)
                return 204, None, {}
            if method == "DELETE":
                writes.delete(org, sobject, full, now)
                return 204, None, {}
        if len(parts) == 4:
            ext, value = parts[2], parts[3]
            if method == "GET":
                return (
                    200,
                    reads.get_record(org, sobject, value, call.query.get("fields", ""), base, ext=ext),
                    {},
                )
            if method in ("PATCH", "POST"):
                created, rec = writes.upsert(org, sobject, ext, value, call.body, now, call.user_id)
                answer = {"id": rec["Id"], "success": True, "errors": []}
                if (
                    call.api_version < UPSERT_ANSWERS
                ):  # before v46 an update answers no body, a create no `created`
                    return (201, answer, {"Location": f"{base}/sobjects/{sobject}/{rec['Id']}"}) if created else (
                        204, None, {})  # fmt: skip
                answer["created"] = created
                if created:
                    return 201, answer, {"Location": f"{base}/sobjects/{sobject}/{rec['Id']}"}
                return 200, answer, {}
            if method == "DELETE":
                f = writes.external_field(org, sobject, ext)
                found = org.find_by(sobject, f.name, value)
                if not found:
                    raise not_found()
                writes.delete(org, sobject, found[0]["Id"], now)
                return 204, None, {}
        raise not_found()


def _full_id(rid: str) -> str:
    full = to18(rid)
    if not full:
        raise SfError(
            404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {rid}"
        )
    return full


class _Recorder:
    """ASGI wrapper that records every request with its final status (the `received` log)."""

    def __init__(self, app, emulator: SalesforceEmulator) -> None:
        self.inner = app
        self.emulator = emulator

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        status = {"code": 500}

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.inner(scope, receive, capture)
        finally:
            state = scope.get("state") or {}
            params = dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True))
            self.emulator.received.append(ReceivedRequest(scope["method"], scope["path"], params,
                                                          state.get("org_id"), status["code"],
                                                          self.emulator.clock.now()))  # fmt: skip
