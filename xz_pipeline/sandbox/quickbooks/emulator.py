"""A stateful emulator of QuickBooks Online's Accounting API (v3) and Intuit's OAuth server on one origin.

It follows Intuit's XSD entity types (../shared/specs/quickbooks/) and the fact sheet
(notes/quickbooks-salesforce.md, part A): several companies (realms) addressed by
`/v3/company/{realmId}/...`; OAuth 2.0 with rotating refresh tokens; the query language by GET
`?query=` or POST `application/text`; reads by id; creates, full and sparse updates guarded by
SyncToken; deletes and voids; `requestid` idempotency; batch; CDC; per-realm throttles answered with
429 ThrottleExceeded; and signed webhooks in the classic and the CloudEvents format.

Choices where the sources are silent (kept deliberate, so clients are tested against them):
- JSON always (QBO answers XML to a client that does not ask for JSON; ours always asks).
- `minorversion` is accepted and ignored: since August 2025 everything is served as 75.
- A token for another company, or a realm that does not exist, is 403 ApplicationAuthorizationFailed.
- A repeated `requestid` (per realm) answers the first response again without acting, whatever the body.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xz_pipeline.sandbox.clock import Clock
from xz_pipeline.sandbox.quickbooks import cdc, query
from xz_pipeline.sandbox.quickbooks.auth import Auth, Client, auth_routes
from xz_pipeline.sandbox.quickbooks.company import BY_LOWER, Company
from xz_pipeline.sandbox.quickbooks.limits import QboLimits, RateLimiter
from xz_pipeline.sandbox.quickbooks.seed import company_info_record, preferences_record, seed_company
from xz_pipeline.sandbox.quickbooks.webhooks import WebhookSender
from xz_pipeline.sandbox.quickbooks.wire import QboFault, dumps, fault_payload, iso_ms, not_found, to_wire
from xz_pipeline.sandbox.quickbooks.writes import Writer, batch

__all__ = ["QuickBooksEmulator", "QboLimits", "ReceivedRequest"]

API_PREFIX = "/v3/company"
REQUEST_IDS_KEPT = 10_000
ORDERS_KEPT = 16  # paged queries whose filtered order is remembered between pages


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request the emulator saw (for tests and for the demo's "API calls spent")."""

    method: str
    path: str
    query: dict[str, str]
    realm_id: str | None
    status: int
    request_id: str | None
    time: datetime

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def realm_for(world_tenant_id: str) -> str:
    """A QBO-looking realm id (16 digits) derived from the world's tenant id: stable per world."""
    digest = int(hashlib.sha256(world_tenant_id.encode()).hexdigest(), 16)
    return "9130" + str(digest % 10**12).zfill(12)


class QuickBooksEmulator:
    """The outside world's QuickBooks Online. Every state change happens under one lock; the ASGI app is `app`."""

    def __init__(self, *, clock: Clock | None = None, limits: QboLimits | None = None) -> None:
        self.clock = clock or Clock()
        self.limits = limits or QboLimits()
        self.base_url = "http://testserver"
        self.received: list[ReceivedRequest] = []
        self.companies: dict[str, Company] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.RLock()
        self.auth = Auth(self.clock, self._names)
        self.rate = RateLimiter(self.clock, self.limits)
        self.webhooks = WebhookSender(self.clock)
        self._request_ids: dict[tuple[str, str], tuple[int, dict]] = {}
        self._orders: dict[tuple, list[str]] = {}
        routes = [
            *auth_routes(self.auth, lambda: self.base_url),
            Route(API_PREFIX + "/{realm}/{path:path}", self._api, methods=["GET", "POST"]),
        ]
        self.app = _Recorder(Starlette(routes=routes), self)

    # ---- setup (Python API) ----------------------------------------------------------------------

    def register_client(self, client_id: str, client_secret: str, redirect_uris: list[str] = ()) -> None:
        with self.auth.lock:
            self.auth.clients[client_id] = Client(client_id, client_secret, list(redirect_uris))

    def add_company(
        self,
        name: str,
        *,
        realm_id: str | None = None,
        country: str = "US",
        currency: str = "USD",
        timezone: str = "America/Los_Angeles",
        multicurrency: bool = True,
    ) -> str:
        """An empty company with QBO's defaults (CompanyInfo, Preferences, an A/R account, a Services item)."""
        realm = realm_id or realm_for(str(uuid.uuid4()))
        with self._lock:
            company = self._new_company(realm, name, timezone)
            created = self.clock.now()
            company.put("CompanyInfo", company_info_record(realm, name, name, country, timezone, created.date()),
                        created=created, updated=created)  # fmt: skip
            company.put("Preferences", preferences_record(currency, multicurrency, country == "US"),
                        created=created, updated=created)  # fmt: skip
            for rec in (
                {"Id": company.next_id("Account"), "Name": "Accounts Receivable (A/R)", "AccountType": "Accounts Receivable",
                 "Classification": "Asset", "AccountSubType": "AccountsReceivable", "Active": True},
                {"Id": company.next_id("Account"), "Name": "Sales", "AccountType": "Income", "Classification": "Revenue",
                 "AccountSubType": "SalesOfProductIncome", "Active": True},
            ):  # fmt: skip
                rec["FullyQualifiedName"] = rec["Name"]
                rec["CurrencyRef"] = {"value": currency}
                company.put("Account", rec, created=created, updated=created)
            company.put("Item", {"Id": company.next_id("Item"), "Name": "Services", "Type": "Service", "Active": True,
                                 "FullyQualifiedName": "Services", "IncomeAccountRef": {"value": "2", "name": "Sales"}},
                        created=created, updated=created)  # fmt: skip
            for days, label in ((0, "Due on receipt"), (30, "Net 30")):
                company.put("Term", {"Id": company.next_id("Term"), "Name": label, "Active": True, "Type": "STANDARD",
                                     "DueDays": days}, created=created, updated=created)  # fmt: skip
        return realm

    def _new_company(self, realm: str, name: str, timezone: str) -> Company:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        company = Company(realm, self.clock, zone, on_change=lambda e, rid, op, when, r=realm: self.webhooks.queue(r, e, rid, op, when))  # fmt: skip
        self.companies[realm] = company
        self._names[realm] = name
        return company

    def seed_world(self, world, *, multicurrency: bool | None = None) -> str:
        """Load a `sandbox.world.World`'s books side as one company; returns its realm id."""
        from xz_pipeline.sandbox.profiles import get_profile

        org = world.books
        if multicurrency is None:
            multicurrency = not get_profile(world.profile).single_currency
        realm = realm_for(org.tenant_id)
        with self._lock:
            company = self._new_company(realm, org.name, org.timezone)
            customers = {i for t in world.truth for i in t.books_ids}
            seed_company(company, org, multicurrency=multicurrency, customer_ids=customers)
        return realm

    def id_map(self, realm_id: str) -> dict[str, str]:
        """world id -> QBO id for every seeded record of this realm (the manifest's `id_maps`). A world
        invoice QBO keeps as an Estimate (a draft: seed.py) is `Estimate/<Id>`: its Id is not an invoice's."""
        with self._lock:
            company = self.companies[realm_id]
            return {
                k: f"Estimate/{v}" if company.id_entity.get(k) == "Estimate" else v
                for k, v in company.id_map.items()
                if ":" not in k
            }

    def record(self, realm_id: str, entity: str, rid: str) -> dict | None:
        """One record as the API would send it (None when absent)."""
        with self._lock:
            company = self.companies[realm_id]
            rec = company.get(entity, rid)
            return to_wire(company.view(entity, rec), company.zone) if rec is not None else None

    def grant_refresh_token(self, client_id: str, realm_id: str) -> str:
        return self.auth.grant(client_id, realm_id)

    def expire_access_token(self, token: str) -> None:
        self.auth.expire(token)

    def set_webhook(self, url: str, verifier: str, fmt: str = "cloudevents") -> None:
        self.webhooks.configure(url, verifier, fmt)

    def flush_webhooks(self) -> int:
        return self.webhooks.flush()

    def rate_limit_response(self, problem: str = "minute", retry_after: int = 60) -> Response:
        """QBO's 429 (also used by fault injection): a ThrottleExceeded Fault."""
        detail = {"concurrent": "Too many concurrent requests.",
                  "batch": "The batch request limit was reached."}.get(problem, "The request limit was reached.")  # fmt: skip
        fault = QboFault("003001", "message=ThrottleExceeded; errorCode=003001; statusCode=429", detail,
                         status=429, kind="ThrottleExceeded")  # fmt: skip
        return Response(dumps(fault_payload(fault, self.clock.now())), 429, media_type="application/json",
                        headers={"Retry-After": str(retry_after)})  # fmt: skip

    # ---- HTTP ---------------------------------------------------------------------------------------

    def _auth_fault(self, status: int, detail: str) -> Response:
        if status == 401:
            fault = QboFault("3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401", detail,
                             status=401, kind="AUTHENTICATION")  # fmt: skip
        else:
            fault = QboFault("003100", "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                             detail, status=403, kind="AUTHORIZATION")  # fmt: skip
        return Response(dumps(fault_payload(fault, self.clock.now())), status, media_type="application/json")

    async def _api(self, request: Request) -> Response:
        realm = request.path_params["realm"]
        request.state.realm_id = realm
        tok, why = self.auth.resolve(request.headers.get("authorization", ""))
        if tok is None:
            return self._auth_fault(401, why)
        if tok.realm_id != realm or realm not in self.companies:
            return self._auth_fault(403, f"The token is not authorized for company {realm}.")
        body = await request.body()
        path = request.path_params["path"].strip("/")
        is_batch = path.lower() == "batch"
        decision = self.rate.admit(realm, tok.client_id, batch=is_batch)
        if not decision.admitted:
            return self.rate_limit_response(decision.problem, decision.retry_after)
        try:
            status, payload = await run_in_threadpool(
                self._handle, request.method, realm, path, dict(request.query_params),
                request.headers.get("content-type", ""), body,
            )  # fmt: skip
        finally:
            self.rate.release(realm, tok.client_id)
        return Response(dumps(payload), status, media_type="application/json",
                        headers={"intuit_tid": str(uuid.uuid4())})  # fmt: skip

    def _handle(
        self, method: str, realm: str, path: str, q: dict, ctype: str, body: bytes
    ) -> tuple[int, dict]:
        with self._lock:
            company = self.companies[realm]
            now = self.clock.now()
            request_id = q.get("requestid")
            if request_id and method == "POST" and (realm, request_id) in self._request_ids:
                return self._request_ids[(realm, request_id)]
            try:
                if q.get("minorversion") and not q["minorversion"].isdigit():
                    raise QboFault("2010", "Request has invalid or unsupported property",
                                   "minorversion must be a number", element="minorversion")  # fmt: skip
                status, payload = 200, self._route(company, method, path, q, ctype, body)
            except QboFault as fault:
                status, payload = fault.status, fault_payload(fault, now, company.zone)
            if "time" not in payload:
                payload["time"] = iso_ms(now, company.zone)
            if request_id and method == "POST":
                self._request_ids[(realm, request_id)] = (status, payload)
                while len(self._request_ids) > REQUEST_IDS_KEPT:
                    self._request_ids.pop(next(iter(self._request_ids)))
            return status, payload

    def _route(self, company: Company, method: str, path: str, q: dict, ctype: str, body: bytes) -> dict:
        segments = [s for s in path.split("/") if s]
        head = segments[0].lower() if segments else ""
        zone = company.zone
        if head == "query":
            if method == "GET":
                text = q.get("query", "")
            else:
                if "application/text" not in ctype and "text/plain" not in ctype:
                    raise QboFault("2310", "Invalid Request",
                                   "A query sent by POST must have Content-Type application/text.")  # fmt: skip
                text = body.decode("utf-8", "replace")
            return {"QueryResponse": to_wire(self._query(company, text), zone)}
        if head == "cdc" and method == "GET":
            found = cdc.changes(company, q.get("entities"), q.get("changedSince"), self.clock.now())
            return {"CDCResponse": [{"QueryResponse": to_wire(found, zone)}]}
        if head == "batch" and method == "POST":
            items = self._json(body).get("BatchItemRequest")
            answers = batch(company, items, lambda text: self._query(company, text))
            return {"BatchItemResponse": to_wire(answers, zone)}
        if head == "companyinfo" and method == "GET" and len(segments) == 2:
            if segments[1] not in (company.realm_id, "1"):
                raise not_found("CompanyInfo", segments[1])
            return {"CompanyInfo": to_wire(company.records["CompanyInfo"]["1"], zone)}
        if head == "preferences" and method == "GET" and len(segments) == 1:
            return {"Preferences": to_wire(company.records["Preferences"]["1"], zone)}
        entity = BY_LOWER.get(head)
        if entity is None or len(segments) > 2:
            raise QboFault("500", "Unsupported Operation", f"Operation {path} is not supported.")
        if method == "GET":
            if len(segments) != 2:
                raise QboFault("500", "Unsupported Operation", f"Operation GET {path} is not supported.")
            rec = company.get(entity, segments[1])
            if rec is None:
                raise not_found(entity, segments[1])
            return {entity: to_wire(company.view(entity, rec), zone)}
        if len(segments) != 1:
            raise QboFault("500", "Unsupported Operation", f"Operation POST {path} is not supported.")
        rec = Writer(company).write(entity, self._json(body), q.get("operation", ""))
        return {entity: to_wire(company.view(entity, rec) if "SyncToken" in rec else rec, zone)}

    @staticmethod
    def _json(body: bytes) -> dict:
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise QboFault("2310", "Invalid Request", "Request has invalid JSON.") from exc
        if not isinstance(data, dict):
            raise QboFault("2310", "Invalid Request", "The request body must be a JSON object.")
        return data

    def _query(self, company: Company, text: str) -> dict:
        """Answer a query. A paged read asks the same query once per page: the first filters and sorts the
        whole entity and keeps the order (until the company changes); later pages slice it, rendered fresh."""
        q = query.parse(text)
        key = (company.realm_id, q.entity, repr(q.conditions), repr(q.order), company.version)
        ids = self._orders.get(key)
        if ids is None:
            rows = [company.view(q.entity, r) for r in company.records[q.entity].values()]
            ids = [r["Id"] for r in query.select(q, rows)]
            self._orders[key] = ids
            while len(self._orders) > ORDERS_KEPT:
                self._orders.pop(next(iter(self._orders)))
        if q.count:
            return {"totalCount": len(ids)}
        records = company.records[q.entity]
        page = [company.view(q.entity, records[i]) for i in ids[q.start - 1 : q.start - 1 + q.max_results]]
        if not page:
            return {}
        return {q.entity: page, "startPosition": q.start, "maxResults": len(page)}


class _Recorder:
    """ASGI wrapper that records every request with its final status (the `received` log)."""

    def __init__(self, app, emulator: QuickBooksEmulator) -> None:
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
            query_params = dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True))
            self.emulator.received.append(
                ReceivedRequest(
                    scope["method"],
                    scope["path"],
                    query_params,
                    state.get("realm_id"),
                    status["code"],
                    query_params.get("requestid"),
                    self.emulator.clock.now(),
                )  # fmt: skip
            )
