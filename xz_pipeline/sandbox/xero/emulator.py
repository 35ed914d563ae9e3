"""A stateful emulator of Xero's identity service and Accounting API on one loopback origin.

It follows ../shared/specs/xero/*.yaml and the fact sheet (notes/xero-api.md): OAuth with rotating
refresh tokens, tenancy by `xero-tenant-id`, the response envelope and `/Date()/` dates, paging,
If-Modified-Since, `where`/`order`, PUT-creates/POST-upserts with both `summarizeErrors` modes,
Idempotency-Key replay, per-tenant and per-app rate limits with their headers, derived amounts,
and signed webhooks.

Choices where the sources are silent (kept deliberate, so clients are tested against them):
- JSON only to `Accept: application/json`; any other Accept gets a minimal XML rendering of the
  same fields (dates stay `/Date()/`), as real Xero defaults to XML. Request bodies are JSON.
- `pagination` appears only when `page` is sent; an unpaged list returns every row.
- If-Modified-Since keeps rows with UpdatedDateUTC >= the header, both truncated to the second.
- A missing or unconnected `xero-tenant-id` is 403 AuthenticationUnsuccessful; a missing scope is
  401 AuthorizationUnsuccessful. 429 bodies are plain text; the headers carry the meaning.
- Rate-limit headers ride on every accounting response; before a tenant is known they show that
  tenant-free view (full tenant allowance, the app's real remainder).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from xz_pipeline.sandbox.clock import Clock
from xz_pipeline.sandbox.xero.books import (
    DEFAULT_ACCOUNTS,
    DEFAULT_TAX_RATES,
    ID_FIELD,
    Books,
    add_currency,
    compute_lines,
    default_org,
    new_id,
)
from xz_pipeline.sandbox.xero.identity import DEFAULT_SCOPES, Client, Identity, identity_routes
from xz_pipeline.sandbox.xero.identity import problem as problem_response
from xz_pipeline.sandbox.xero.limits import RateLimiter, XeroLimits
from xz_pipeline.sandbox.xero.projects import PREFIX as PROJECTS_PREFIX
from xz_pipeline.sandbox.xero.projects import ProjectsApi
from xz_pipeline.sandbox.xero.webhooks import WebhookSender
from xz_pipeline.sandbox.xero.where import QueryError, apply_order, compile_where
from xz_pipeline.sandbox.xero.wire import WireError, envelope_date, from_wire, parse_datetime, to_wire, to_xml
from xz_pipeline.sandbox.xero.writes import (
    allocate,
    delete_payment,
    email_errors,
    save_account,
    save_contact,
    save_credit_note,
    save_invoice,
    save_item,
    save_payment,
)

__all__ = ["DEFAULT_SCOPES", "XeroEmulator", "XeroLimits", "ReceivedRequest"]

API_PREFIX = "/api.xro/2.0"
NOT_FOUND = "The resource you're looking for cannot be found"
IDEMPOTENCY_TTL = timedelta(minutes=6)
PAGED = {"Contacts", "Invoices", "CreditNotes", "Payments"}
ORDERS_KEPT = 16  # paged queries whose filtered order is remembered between pages
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLLECTIONS = {name.lower(): name for name in (*ID_FIELD, "Organisation")}
_TRANSACTIONS = {"accounting.transactions", "accounting.transactions.read"}
READ_SCOPES = {
    "Contacts": {"accounting.contacts", "accounting.contacts.read"},
    "Invoices": _TRANSACTIONS | {"accounting.invoices", "accounting.invoices.read"},
    "CreditNotes": _TRANSACTIONS | {"accounting.invoices", "accounting.invoices.read"},
    "Payments": _TRANSACTIONS | {"accounting.payments", "accounting.payments.read"},
    "Items": {
        "accounting.settings",
        "accounting.settings.read",
        "accounting.invoices",
        "accounting.invoices.read",
    },
    "Accounts": {"accounting.settings", "accounting.settings.read"},
    "TaxRates": {"accounting.settings", "accounting.settings.read"},
    "Currencies": {"accounting.settings", "accounting.settings.read"},
    "Organisation": {"accounting.settings", "accounting.settings.read"},
}
HAS_ERRORS_FIELD = {"Invoices": "HasErrors", "CreditNotes": "HasErrors", "Contacts": "HasValidationErrors",
                    "Payments": "HasValidationErrors"}  # fmt: skip
VIEW_ONLY = ("DateString", "DueDateString", "UpdatedDateUTCString", "IsDiscounted", "HasErrors", "HasAttachments",
             "HasValidationErrors", "StatusAttributeString", "ValidationErrors", "Warnings")  # fmt: skip
DERIVED_LISTS = {
    "Invoices": ("Payments", "CreditNotes", "Prepayments", "Overpayments", *VIEW_ONLY),
    "Contacts": ("Balances", "IsCustomer", "IsSupplier", *VIEW_ONLY),
    "CreditNotes": ("Payments", *VIEW_ONLY),
    "Payments": (*VIEW_ONLY,),
    "Accounts": ("Class", *VIEW_ONLY),
    "Items": (*VIEW_ONLY,),
}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request the emulator saw (for tests and for the demo's "API calls spent")."""

    method: str
    path: str
    query: dict[str, str]
    tenant_id: str | None
    status: int
    idempotency_key: str | None
    time: datetime

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class Reply:
    """What a handler produced: a status and a wire payload (dict), plain text, or nothing."""

    status: int
    payload: dict | None = None
    text: str | None = None
    envelope: bool = True


def _error_body(
    message: str, elements: list | None = None, number: int = 10, kind: str = "ValidationException"
) -> dict:
    return {"ErrorNumber": number, "Type": kind, "Message": message, "Elements": elements or []}


def _bool(value: str | None, default: bool) -> bool:
    return default if value is None else value.strip().lower() != "false"


def _ims(value: str) -> datetime | None:
    """If-Modified-Since: ISO 8601 (the spec's form) or an HTTP date."""
    try:
        return parse_datetime(value)
    except WireError:
        try:
            dt = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class XeroEmulator:
    """The outside world's Xero. Every state change happens under one lock; the ASGI app is `app`."""

    def __init__(
        self, *, clock: Clock | None = None, limits: XeroLimits | None = None, app_name: str = "xz-sandbox"
    ) -> None:
        self.clock = clock or Clock()
        self.limits = limits or XeroLimits()
        self.app_name = app_name
        self.base_url = "http://testserver"
        self.received: list[ReceivedRequest] = []
        self.books: dict[str, Books] = {}
        self._lock = threading.RLock()
        self._orders: dict[tuple, list[str]] = {}  # paged query -> its ids in order (see _list)
        self._tenant_names: dict[str, tuple[str, str]] = {}
        self.identity = Identity(self.clock, self._tenant_names)
        self.rate = RateLimiter(self.clock, self.limits)
        self.webhooks = WebhookSender(self.clock, self._resource_url)
        self._idempotency: dict[tuple[str, str], tuple[str, datetime, Reply, bool]] = {}
        self._online: dict[str, tuple[str, str]] = {}
        self.emails: list[dict] = []
        self.projects = ProjectsApi(self)  # the Projects API (sandbox/xero/projects.py)
        routes = [
            *identity_routes(self.identity),
            Route(API_PREFIX + "/{path:path}", self._accounting, methods=["GET", "PUT", "POST", "DELETE"]),
            Route("/online-invoice/{token}", self._online_page, methods=["GET"]),
            Route(
                PROJECTS_PREFIX + "/{path:path}",
                self.projects.handle,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]
        self.app = _Recorder(Starlette(routes=routes), self)

    # ---- setup (Python API) ----------------------------------------------------------------------

    def register_client(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: list[str] = (),
        *,
        custom_connection_tenant: str | None = None,
    ) -> None:
        with self.identity.lock:
            self.identity.clients[client_id] = Client(
                client_id, client_secret, list(redirect_uris), custom_connection_tenant
            )

    def add_tenant(
        self, name: str, *, tenant_id: str | None = None, base_currency: str = "NZD", country_code: str = "NZ"
    ) -> str:
        tid = tenant_id or new_id()
        with self._lock:
            org = default_org(tid, name, base_currency, country_code, self.clock.now())
            books = Books(
                tid,
                org,
                self.clock,
                lambda cat, kind, rid, extra, t=tid: self.webhooks.queue(t, cat, kind, rid, extra),
            )
            rates = DEFAULT_TAX_RATES.get(country_code, DEFAULT_TAX_RATES["NZ"])
            for tax_type, label, pct in rates:
                self._put_tax_rate(books, tax_type, label, pct)
            output, inp = rates[0][0], rates[1][0]
            for code, acct_name, kind, tax, system in DEFAULT_ACCOUNTS:
                tax = {"OUTPUT": output, "INPUT": inp}.get(
                    tax, tax if tax in books.records["TaxRates"] else rates[2][0]
                )
                acct = {"AccountID": str(uuid.uuid5(uuid.UUID(tid), code)), "Code": code, "Name": acct_name, "Type": kind,
                        "TaxType": tax, "Status": "ACTIVE", "EnablePaymentsToAccount": False, "ShowInExpenseClaims": False}  # fmt: skip
                if system:
                    acct["SystemAccount"] = system
                if kind == "BANK":
                    acct.update(
                        BankAccountNumber="0000000000", BankAccountType="BANK", CurrencyCode=base_currency
                    )
                books.store("Accounts", acct)
            add_currency(books, base_currency)
            self.books[tid] = books
            self._tenant_names[tid] = (name, "ORGANISATION")
        return tid

    @staticmethod
    def _put_tax_rate(books: Books, tax_type: str, name: str, pct) -> None:
        from decimal import Decimal

        rate = Decimal(str(pct))
        books.records["TaxRates"][tax_type] = {"TaxType": tax_type, "Name": name, "Status": "ACTIVE",
                                               "EffectiveRate": rate, "DisplayTaxRate": rate}  # fmt: skip

    def seed_world(self, world) -> str:
        """Load a `sandbox.world.World`'s books side; returns its tenant id."""
        from .seed import seed_books

        org = world.books
        with self._lock:
            tid = self.add_tenant(org.name, tenant_id=org.tenant_id, base_currency=org.base_currency,
                                  country_code=org.country_code)  # fmt: skip
            seed_books(self.books[tid], org, self._put_tax_rate)
            if getattr(world, "projects", None) is not None:
                self.projects.seed(tid, world.projects)
        return tid

    def load(self, tenant_id: str, collection: str, records: list[dict]) -> None:
        """Seed API-shaped records (as a GET returns them); derived amounts are recomputed, not trusted."""
        coll = COLLECTIONS.get(collection.lower()) or COLLECTIONS.get(collection.lower().rstrip("s"))
        if coll is None:
            raise ValueError(f"unknown collection {collection!r}")
        with self._lock:
            b = self.books[tenant_id]
            if coll == "Organisation":
                for rec in records:
                    b.org.update({k: v for k, v in from_wire(rec).items() if k != "OrganisationID"})
                self._tenant_names[tenant_id] = (b.org["Name"], "ORGANISATION")
                return
            if coll == "TaxRates":
                for rec in records:
                    rate = rec.get("EffectiveRate", rec.get("DisplayTaxRate", 0))
                    self._put_tax_rate(b, rec["TaxType"], rec.get("Name", rec["TaxType"]), rate)
                return
            for raw in records:
                rec = from_wire(raw)
                rec.setdefault(ID_FIELD[coll], new_id())
                has_time = isinstance(rec.get("UpdatedDateUTC"), datetime)
                for key in DERIVED_LISTS.get(coll, ()):
                    rec.pop(key, None)
                add_currency(b, rec.get("CurrencyCode") or rec.get("DefaultCurrency") or "")
                if coll in ("Invoices", "CreditNotes"):
                    rec["Contact"] = {"ContactID": rec["Contact"]["ContactID"]}
                    rec.setdefault("LineAmountTypes", "Exclusive")
                    rec.setdefault("Status", "DRAFT")
                    for ln in rec.get("LineItems") or []:
                        ln.setdefault("LineItemID", new_id())
                    if rec.get("LineItems"):
                        sales = rec["Type"] == "ACCREC"
                        rec.update(
                            compute_lines(rec["LineItems"], rec["LineAmountTypes"], b.tax_rates(), sales)
                        )
                    number_field = "InvoiceNumber" if coll == "Invoices" else "CreditNoteNumber"
                    b.note_number(
                        rec["Type"] if coll == "CreditNotes" else "ACCREC", rec.get(number_field) or ""
                    )
                if coll == "CreditNotes":
                    rec.setdefault("Allocations", [])
                    for a in rec["Allocations"]:
                        a.setdefault("AllocationID", new_id())
                        a["Invoice"] = {"InvoiceID": a["Invoice"]["InvoiceID"]}
                if coll == "Payments":
                    rec.setdefault("Status", "AUTHORISED")
                    for ref, key in (("Invoice", "InvoiceID"), ("CreditNote", "CreditNoteID")):
                        if isinstance(rec.get(ref), dict):
                            rec[ref] = {key: rec[ref][key]}
                    acct = rec.get("Account") or {}
                    by_code = b.account_by_code(acct["Code"]) if acct.get("Code") else None
                    rec["Account"] = {
                        "AccountID": acct.get("AccountID") or (by_code or {}).get("AccountID", "")
                    }
                if coll == "Accounts":  # codes are unique: a loaded account replaces one with its Code
                    for other in list(b.records["Accounts"].values()):
                        if other.get("Code") == rec.get("Code") and other["AccountID"] != rec["AccountID"]:
                            del b.records["Accounts"][other["AccountID"]]
                b.store(coll, rec, touch=not has_time)
            self._rederive(b)

    @staticmethod
    def _rederive(b: Books) -> None:
        for p in b.records["Payments"].values():
            b.link_payment(p)
        for n in b.records["CreditNotes"].values():
            b.link_allocations(n)
            b.recompute_credit_note(n)
        for inv in b.records["Invoices"].values():
            b.recompute_invoice(inv)

    def dump(self, tenant_id: str, collection: str) -> list[dict]:
        coll = COLLECTIONS[collection.lower()]
        with self._lock:
            b = self.books[tenant_id]
            if coll == "Organisation":
                return [to_wire(b.view_org())]
            return [to_wire(b.view(coll, r)) for r in b.records[coll].values()]

    def grant_refresh_token(self, client_id: str, tenant_ids: list[str], scopes: str = DEFAULT_SCOPES) -> str:
        return self.identity.bootstrap_refresh_token(client_id, tenant_ids, scopes)

    def expire_access_token(self, token: str) -> None:
        with self.identity.lock:
            tok = self.identity.access.get(token)
            if tok is not None:
                tok.expires_at = self.clock.now() - timedelta(seconds=1)

    def set_webhook(self, url: str, key: str) -> None:
        self.webhooks.configure(url, key)

    def flush_webhooks(self) -> int:
        return self.webhooks.flush()

    def validate_intent_to_receive(self) -> bool:
        return self.webhooks.intent_to_receive()

    def rate_limit_response(self, problem: str = "minute") -> Response:
        """The 429 Xero sends, for fault injection: Retry-After and X-Rate-Limit-Problem set."""
        retry = {"minute": 60, "appminute": 60, "day": 86400, "concurrent": 1}.get(problem, 60)
        headers = {"Retry-After": str(retry), "X-Rate-Limit-Problem": problem,
                   "X-MinLimit-Remaining": "0" if problem == "minute" else str(self.limits.per_minute),
                   "X-DayLimit-Remaining": "0" if problem == "day" else str(self.limits.per_day),
                   "X-AppMinLimit-Remaining": "0" if problem == "appminute" else str(self.limits.app_per_minute)}  # fmt: skip
        return Response("Rate limit exceeded", status_code=429, headers=headers, media_type="text/plain")

    def _resource_url(self, category: str, rid: str) -> str:
        coll = {"CONTACT": "Contacts", "INVOICE": "Invoices", "CREDITNOTE": "CreditNotes"}[category]
        return f"{self.base_url}{API_PREFIX}/{coll}/{rid}"

    # ---- HTTP: accounting --------------------------------------------------------------------------

    async def _accounting(self, request: Request) -> Response:
        body = await request.body()
        tok, why = self.identity.resolve(request.headers.get("authorization", ""))
        header_tenant = request.headers.get("xero-tenant-id") or None
        if tok is None:
            return self._with_limits(
                problem_response(401, why), header_tenant if header_tenant in self.books else None
            )
        tenants = self.identity.tenants_of(tok)
        tenant = header_tenant or tok.custom_tenant
        if tenant is None or tenant not in tenants or tenant not in self.books:
            return self._with_limits(problem_response(403, "AuthenticationUnsuccessful"), None)
        request.state.tenant_id = tenant
        segments = [s for s in request.path_params["path"].split("/") if s]
        coll = COLLECTIONS.get(segments[0].lower()) if segments else None
        if coll is None:
            return self._with_limits(
                Response(NOT_FOUND, 404, media_type="text/plain"), tenant, app=tok.client_id
            )
        scopes = set(tok.scopes)
        needed = (
            READ_SCOPES[coll]
            if request.method == "GET"
            else {s for s in READ_SCOPES[coll] if not s.endswith(".read")}
        )
        if not scopes & needed:
            return self._with_limits(
                problem_response(401, "AuthorizationUnsuccessful"), tenant, app=tok.client_id
            )
        decision = self.rate.admit(tenant, tok.client_id)
        if not decision.admitted:
            headers = dict(decision.headers)
            headers.update(
                {"Retry-After": str(decision.retry_after), "X-Rate-Limit-Problem": decision.problem}
            )
            return Response("Rate limit exceeded", status_code=429, headers=headers, media_type="text/plain")
        try:
            key = request.headers.get("idempotency-key")
            if key is not None and request.method in ("PUT", "POST"):
                reply, _replayed = await run_in_threadpool(self._idempotent, tok.client_id, key, request, tenant, coll,
                                                           segments, body)  # fmt: skip
            else:
                reply = await run_in_threadpool(self._dispatch, request, tenant, coll, segments, body)
            response = self._render(reply, request)
        finally:
            self.rate.release(tenant, tok.client_id)
        return self._with_limits(response, tenant, decision.headers)

    def _with_limits(
        self, response: Response, tenant: str | None, headers=None, *, app: str = ""
    ) -> Response:
        for name, value in headers or self.rate.headers(tenant, app):
            response.headers[name] = value
        return response

    def _idempotent(self, client_id, key, request, tenant, coll, segments, body) -> tuple[Reply, bool]:
        if len(key) > 128:
            return Reply(
                400,
                _error_body("The Idempotency-Key header must be 128 characters or fewer."),
                envelope=False,
            ), False
        query = sorted(parse_qsl(request.url.query, keep_blank_values=True))
        fingerprint = hashlib.sha256(
            json.dumps(
                [request.method, request.url.path, query, tenant, body.decode("utf-8", "replace")]
            ).encode()
        ).hexdigest()
        now = self.clock.now()
        with self._lock:
            for k in [k for k, v in self._idempotency.items() if v[1] <= now]:
                del self._idempotency[k]
            cached = self._idempotency.get((client_id, key))
            if cached is not None:
                if cached[0] != fingerprint:
                    message = f"Idempotency key {key} is used with a different request."
                    return Reply(400, _error_body(message), envelope=False), False
                return cached[2], True
            reply = self._dispatch(request, tenant, coll, segments, body)
            if reply.payload is not None and reply.envelope:
                reply.payload = self._envelope(reply.payload)
                reply.envelope = False
            self._idempotency[(client_id, key)] = (fingerprint, now + IDEMPOTENCY_TTL, reply, True)
            return reply, False

    def _envelope(self, payload: dict) -> dict:
        return {"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": self.app_name,
                "DateTimeUTC": envelope_date(self.clock.now()), **payload}  # fmt: skip

    def _render(self, reply: Reply, request: Request) -> Response:
        if reply.text is not None:
            return Response(reply.text, reply.status, media_type="text/plain")
        if reply.payload is None:
            return Response(status_code=reply.status)
        payload = self._envelope(reply.payload) if reply.envelope and reply.status == 200 else reply.payload
        if "application/json" in request.headers.get("accept", ""):
            return Response(json.dumps(payload), reply.status, media_type="application/json")
        root = "Response" if reply.status == 200 else "ApiException"
        return Response(to_xml(root, payload), reply.status, media_type="text/xml")

    def _dispatch(self, request: Request, tenant: str, coll: str, segments: list[str], body: bytes) -> Reply:
        method = request.method
        q = dict(request.query_params)
        with self._lock:
            b = self.books[tenant]
            rid = segments[1] if len(segments) > 1 else None
            sub = segments[2].lower() if len(segments) > 2 else None
            if len(segments) > 3 or (sub and (coll, sub) not in {("Invoices", "email"), ("Invoices", "onlineinvoice"),
                                                                 ("CreditNotes", "allocations")}):  # fmt: skip
                return Reply(404, text=NOT_FOUND)
            if coll == "Organisation":
                return (
                    Reply(200, {"Organisations": [to_wire(b.view_org())]})
                    if method == "GET" and not rid
                    else Reply(404, text=NOT_FOUND)
                )
            if method == "GET" and rid is None:
                return self._list(b, coll, q, request.headers)
            if method == "GET" and sub is None:
                rec = self._find(b, coll, rid)
                if rec is None:
                    return Reply(404, text=NOT_FOUND)
                return Reply(200, {coll: [to_wire(b.view(coll, rec))]})
            if method == "GET" and sub == "onlineinvoice":
                return self._online_invoice(b, rid)
            if method == "DELETE" and rid and coll in ("Items", "Accounts"):
                self._orders = {k: v for k, v in self._orders.items() if k[0] != id(b)}  # see _list
                return self._delete(b, coll, rid)
            if method not in ("PUT", "POST"):
                return Reply(404, text=NOT_FOUND)
            self._orders = {k: v for k, v in self._orders.items() if k[0] != id(b)}  # see _list
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return Reply(400, _error_body("JSON for post data was invalid", number=14, kind="PostDataInvalidException"),
                             envelope=False)  # fmt: skip
            return self._write(b, coll, method, rid, sub, data, q)

    @staticmethod
    def _find(b: Books, coll: str, rid: str) -> dict | None:
        rec = b.records.get(coll, {}).get(rid)
        if rec is None and coll == "Contacts" and not UUID_RE.match(rid):
            rec = b.contact_by("ContactNumber", rid)
        if rec is None and coll == "Invoices" and not UUID_RE.match(rid):
            rec = b.invoice_by_number(rid)
        if rec is None or (coll == "Accounts" and rec.get("Status") == "DELETED"):
            return None
        return rec

    def _list(self, b: Books, coll: str, q: dict[str, str], headers) -> Reply:
        if coll not in b.records:
            return Reply(404, text=NOT_FOUND)
        # A paged read asks the same query once per page: page 1 filters and sorts the whole collection
        # and remembers the order; later pages of that query slice it (rows are rendered fresh). Without
        # this, a 1,000,000-invoice read re-sorts the collection for every one of its 1,000 pages.
        # The order is dropped when the collection changes (a write through the API, or its size or
        # latest UpdatedDateUTC moving), so paging over a changing collection behaves as Xero's does.
        order_key = None
        if coll in PAGED and "page" in q:
            latest = max(
                (r.get("UpdatedDateUTC") or _EPOCH for r in b.records[coll].values()), default=_EPOCH
            )
            order_key = (id(b), coll, len(b.records[coll]), latest, headers.get("if-modified-since"),
                         tuple(sorted((k, v) for k, v in q.items() if k != "page")))  # fmt: skip
            if str(q.get("page")).strip() not in ("", "1") and order_key in self._orders:
                return self._page(b, coll, q, self._orders[order_key])
        recs = list(b.records[coll].values())
        ims = _ims(headers["if-modified-since"]) if headers.get("if-modified-since") else None
        if ims is not None:
            floor = ims.replace(microsecond=0)
            recs = [
                r
                for r in recs
                if r.get("UpdatedDateUTC") and r["UpdatedDateUTC"].replace(microsecond=0) >= floor
            ]
        id_field = ID_FIELD[coll]
        for param, fld in (("IDs", id_field), ("ContactIDs", "Contact.ContactID"), ("Statuses", "Status"),
                           ("InvoiceNumbers", "InvoiceNumber")):  # fmt: skip
            if q.get(param):
                wanted = {v.strip().lower() for v in q[param].split(",") if v.strip()}
                path = fld.split(".")
                recs = [r for r in recs if str(r.get(path[0]) if len(path) == 1 else r.get(path[0], {}).get(path[1])).lower()
                        in wanted]  # fmt: skip
        if coll == "Contacts" and not _bool(q.get("includeArchived"), False):
            recs = [r for r in recs if r.get("ContactStatus", "ACTIVE") != "ARCHIVED"]
        if coll == "Accounts":
            recs = [r for r in recs if r.get("Status") != "DELETED"]
        term = (q.get("searchTerm") or "").strip().lower()
        if term and coll in ("Contacts", "Invoices"):
            fields = (
                ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress")
                if coll == "Contacts"
                else ("InvoiceNumber", "Reference")
            )
            recs = [r for r in recs if any(term in str(r.get(f) or "").lower() for f in fields)]
        summary = _bool(q.get("summaryOnly"), False)
        # Filter and sort on the stored records (they hold the derived amounts and statuses); build
        # views first only when the query reaches into what a view adds (a nested summary, a contact's
        # Balances or IsCustomer, the *String helpers). Full views are rendered only for returned rows.
        query = f"{q.get('where', '')} {q.get('order', '')}".lower()
        view_words = (
            "contact.",
            "invoice.",
            "creditnote.",
            "account.",
            "string",
            "isdiscounted",
            "has",
            "class",
        )
        if coll == "Contacts":
            view_words = ("iscustomer", "issupplier", "balances", "has")
        raw_ok = coll != "Organisation" and not any(word in query for word in view_words)
        contact_only = coll in ("Invoices", "CreditNotes") and not any(
            word in query.replace("contact.", "")
            for word in ("invoice.", "creditnote.", "account.", "string", "isdiscounted", "has")
        )
        if raw_ok:
            rows = recs
        elif contact_only:  # only the contact summary is needed: one per contact, not one per document
            summaries: dict[str, dict] = {}
            rows = []
            for r in recs:
                cid = r["Contact"]["ContactID"]
                if cid not in summaries:
                    summaries[cid] = b.contact_summary(cid)
                rows.append({**r, "Contact": summaries[cid]})
        else:
            rows = [b.view(coll, r, detail=False, summary_only=summary) for r in recs]
        try:
            if q.get("where"):
                predicate = compile_where(q["where"])
                rows = [v for v in rows if predicate(v)]
            if q.get("order"):
                rows = apply_order(rows, q["order"])
        except QueryError as exc:
            return Reply(400, _error_body(str(exc), number=16, kind="QueryParseException"), envelope=False)
        ids = [r[ID_FIELD[coll]] for r in rows]
        if order_key is not None:
            self._orders[order_key] = ids
            while len(self._orders) > ORDERS_KEPT:
                self._orders.pop(next(iter(self._orders)))
        return self._page(b, coll, q, ids)

    def _page(self, b: Books, coll: str, q: dict[str, str], ids: list[str]) -> Reply:
        """The rows of `ids` (already filtered and ordered) the request asks for, rendered now."""
        payload: dict[str, Any] = {}
        if coll in PAGED and "page" in q:
            try:
                page = max(1, int(q.get("page") or 1))
                size = min(1000, max(1, int(q.get("pageSize") or 100)))
            except ValueError:
                return Reply(400, _error_body("page and pageSize must be integers", number=16, kind="QueryParseException"),
                             envelope=False)  # fmt: skip
            count = len(ids)
            payload["pagination"] = {
                "page": page,
                "pageSize": size,
                "pageCount": -(-count // size),
                "itemCount": count,
            }
            ids = ids[(page - 1) * size : page * size]
        detail = coll != "Invoices" or (coll in PAGED and "page" in q)
        summary = _bool(q.get("summaryOnly"), False)
        records = b.records[coll]
        views = [b.view(coll, records[i], detail=detail, summary_only=summary) for i in ids if i in records]
        payload[coll] = [to_wire(v) for v in views]
        return Reply(200, payload)

    def _delete(self, b: Books, coll: str, rid: str) -> Reply:
        rec = b.records[coll].get(rid)
        if rec is None:
            return Reply(404, text=NOT_FOUND)
        if coll == "Items":
            used = any(
                ln.get("ItemCode") == rec.get("Code")
                for d in b.records["Invoices"].values()
                for ln in d.get("LineItems", [])
            )
            if used:
                return Reply(
                    400,
                    _error_body("This item is used on transactions and cannot be deleted."),
                    envelope=False,
                )
            del b.records["Items"][rid]
            return Reply(204)
        used = any(
            ln.get("AccountCode") == rec.get("Code")
            for d in b.records["Invoices"].values()
            for ln in d.get("LineItems", [])
        )
        if used or rec.get("SystemAccount"):
            message = "This account is used by transactions or is a system account, so it cannot be deleted. Archive it instead."
            return Reply(400, _error_body(message), envelope=False)
        rec["Status"] = "DELETED"
        b.store("Accounts", rec)
        return Reply(200, {"Accounts": [to_wire(b.view("Accounts", rec))]})

    def _online_invoice(self, b: Books, rid: str) -> Reply:
        inv = b.records["Invoices"].get(rid)
        if inv is None:
            return Reply(404, text=NOT_FOUND)
        if inv["Type"] != "ACCREC" or inv["Status"] in ("DRAFT", "SUBMITTED", "DELETED"):
            message = "Online invoices are available only for approved sales invoices."
            return Reply(400, _error_body(message, [{"InvoiceID": rid, "ValidationErrors": [{"Message": message}]}]),
                         envelope=False)  # fmt: skip
        token = next((t for t, v in self._online.items() if v == (b.tenant_id, rid)), None)
        if token is None:
            token = uuid.uuid4().hex
            self._online[token] = (b.tenant_id, rid)
        return Reply(
            200, {"OnlineInvoices": [{"OnlineInvoiceUrl": f"{self.base_url}/online-invoice/{token}"}]}
        )

    async def _online_page(self, request: Request) -> Response:
        with self._lock:
            ref = self._online.get(request.path_params["token"])
            if ref is None:
                return Response(NOT_FOUND, 404, media_type="text/plain")
            b = self.books[ref[0]]
            inv = b.records["Invoices"][ref[1]]
            contact = b.records["Contacts"].get(inv["Contact"]["ContactID"], {})
            page = (f"<!doctype html><html><body><h1>{html.escape(b.org['Name'])}</h1><h2>Invoice {html.escape(inv['InvoiceNumber'])}"
                    f"</h2><p>To: {html.escape(contact.get('Name', ''))}</p><p>Total: {inv['CurrencyCode']} {inv['Total']}</p>"
                    f"<p>Amount due: {inv['CurrencyCode']} {inv['AmountDue']}</p><p>Status: {inv['Status']}</p></body></html>")  # fmt: skip
        return HTMLResponse(page)

    # ---- writes ---------------------------------------------------------------------------------

    def _write(
        self, b: Books, coll: str, method: str, rid: str | None, sub: str | None, data, q: dict
    ) -> Reply:
        summarize = _bool(q.get("summarizeErrors"), True)
        if sub == "email":
            if method != "POST":
                return Reply(404, text=NOT_FOUND)
            inv = b.records["Invoices"].get(rid)
            if inv is None:
                return Reply(404, text=NOT_FOUND)
            errors = email_errors(b, inv)
            if errors:
                element = {"InvoiceID": rid, "ValidationErrors": [{"Message": m} for m in errors]}
                return Reply(400, _error_body("A validation exception occurred", [element]), envelope=False)
            inv["SentToContact"] = True
            b.store("Invoices", inv, event="UPDATE", touch=inv.get("AmountPaid", 0) == 0)
            contact = b.records["Contacts"].get(inv["Contact"]["ContactID"], {})
            self.emails.append({"tenant_id": b.tenant_id, "InvoiceID": rid, "to": contact.get("EmailAddress"),
                                "time": self.clock.now()})  # fmt: skip
            return Reply(204)
        if sub == "allocations":
            if method != "PUT":
                return Reply(404, text=NOT_FOUND)
            if rid not in b.records["CreditNotes"]:
                return Reply(404, text=NOT_FOUND)
            elems = data.get("Allocations") if isinstance(data, dict) and "Allocations" in data else [data]
            return self._batch(b, "Allocations", elems, lambda e: allocate(b, rid, e), summarize)
        if coll == "Accounts":
            if method == "PUT" and rid is None:
                return self._batch(b, coll, [data], lambda e: save_account(b, e), True)
            if method == "POST" and rid:
                elems = data.get("Accounts") if isinstance(data, dict) and "Accounts" in data else [data]
                return self._batch(b, coll, elems[:1], lambda e: save_account(b, e, rid), True)
            return Reply(404, text=NOT_FOUND)
        if coll == "Payments":
            elems = data.get("Payments") if isinstance(data, dict) and "Payments" in data else [data]
            if rid:
                if method != "POST":
                    return Reply(404, text=NOT_FOUND)
                return self._batch(b, coll, elems[:1], lambda e: delete_payment(b, rid, e), True)
            if method == "POST":
                return self._batch(b, coll, elems[:1], lambda e: save_payment(b, e), True)
            return self._batch(b, coll, elems, lambda e: save_payment(b, e), summarize)
        saver = {
            "Contacts": save_contact,
            "Invoices": save_invoice,
            "CreditNotes": save_credit_note,
            "Items": save_item,
        }.get(coll)
        if saver is None:
            return Reply(404, text=NOT_FOUND)
        if rid and method != "POST":
            return Reply(404, text=NOT_FOUND)
        if rid and self._find(b, coll, rid) is None:
            return Reply(404, text=NOT_FOUND)
        elems = data.get(coll) if isinstance(data, dict) else None
        if not isinstance(elems, list):
            message = f"The request body must be a JSON object with a '{coll}' array."
            return Reply(
                400, _error_body(message, number=14, kind="PostDataInvalidException"), envelope=False
            )
        mode = "update" if rid else ("create" if method == "PUT" else "upsert")
        path_id = self._find(b, coll, rid)[ID_FIELD[coll]] if rid else None
        return self._batch(b, coll, elems, lambda e: saver(b, e, mode, path_id), summarize)

    def _batch(self, b: Books, coll: str, elems: list, save, summarize: bool) -> Reply:
        outcomes = [save(e) for e in elems]
        flag = HAS_ERRORS_FIELD.get(coll)

        def echo(o) -> dict:
            out = dict(o.echo)
            out["ValidationErrors"] = [{"Message": m} for m in o.errors]
            if flag:
                out[flag] = True
            return out

        if summarize and any(o.errors for o in outcomes):
            return Reply(400, _error_body("A validation exception occurred", [echo(o) for o in outcomes if o.errors]),
                         envelope=False)  # fmt: skip
        items = []
        for o in outcomes:
            if o.errors and o.record is None:
                items.append({**echo(o), "StatusAttributeString": "ERROR"})
                continue
            view = o.record if coll == "Allocations" else b.view(coll, o.record)
            item = to_wire(view)
            if not summarize:
                item["StatusAttributeString"] = "WARNING" if o.errors else "OK"
                if o.errors:
                    item["Warnings"] = [{"Message": m} for m in o.errors]
            items.append(item)
        return Reply(200, {coll: items})


class _Recorder:
    """ASGI wrapper that records every request with its final status (the `received` log)."""

    def __init__(self, app, emulator: XeroEmulator) -> None:
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
            headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
            state = scope.get("state") or {}
            query = dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True))
            self.emulator.received.append(
                ReceivedRequest(
                    scope["method"],
                    scope["path"],
                    query,
                    state.get("tenant_id") or headers.get("xero-tenant-id"),
                    status["code"],
                    headers.get("idempotency-key"),
                    self.emulator.clock.now(),
                )  # fmt: skip
            )
