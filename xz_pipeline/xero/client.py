"""The Xero Accounting API client: OAuth, tenancy, paging, batch writes and idempotency, over core.http.

Reads hand back Xero's payload dicts verbatim (mapping to the canonical model is a later, separate
step); writes go in chunks of at most 50 elements with `summarizeErrors=false`, so one bad element
never hides the ids of the good ones, and each chunk carries an Idempotency-Key derived from its
content, so a retried or repeated write is answered from Xero's replay cache instead of creating twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from xz_pipeline.core.errors import ApiError, AuthError
from xz_pipeline.core.http import XERO_LIMITS, Budgets, CallMeter, HttpClient, Reply, RetryPolicy, Timer
from xz_pipeline.core.oauth import (
    AuthorizationRequest,
    OAuthSession,
    TokenSet,
    TokenStore,
    authorization_url,
    exchange_code,
)
from xz_pipeline.core.redact import redact, register_secret
from xz_pipeline.core.wire import jsonable
from xz_pipeline.xero.dates import if_modified_since

VENDOR = "xero"
API_PREFIX = "/api.xro/2.0"
PAGE_SIZE = 1000  # Xero's largest page
WRITE_CHUNK = 50  # Xero's advice: at most ~50 elements per write
IDS_CHUNK = 50  # more than ~52 GUIDs in IDs= gives a 404
DEFAULT_ORDER = "UpdatedDateUTC ASC"
CONCURRENCY = 5  # calls in flight per tenant
AUTHORIZE_PATH = "/identity/connect/authorize"
TOKEN_PATH = "/connect/token"
# Granular scopes (apps created from March 2026 get only these); offline_access yields a refresh token.
GRANULAR_SCOPES = ("openid", "profile", "email", "offline_access", "accounting.contacts", "accounting.invoices",
                   "accounting.payments", "accounting.settings", "projects.read")  # fmt: skip
BROAD_SCOPES = ("openid", "profile", "email", "offline_access", "accounting.contacts", "accounting.transactions",
                "accounting.settings", "projects.read")  # fmt: skip

# Collections with page/pageSize; IDs= filter; `order` parameter (from the spec's parameter lists).
PAGED = frozenset({"Contacts", "Invoices", "CreditNotes", "Payments", "BankTransactions", "ManualJournals",
                   "Prepayments", "Overpayments", "PurchaseOrders"})  # fmt: skip
WITH_IDS = frozenset({"Contacts", "Invoices"})
ORDERED_BY_DEFAULT = PAGED | frozenset({"Items", "Accounts"})  # these carry UpdatedDateUTC
NO_ID = "00000000-0000-0000-0000-000000000000"
ID_FIELDS = {
    "Contacts": "ContactID",
    "Invoices": "InvoiceID",
    "CreditNotes": "CreditNoteID",
    "Payments": "PaymentID",
    "Items": "ItemID",
    "Accounts": "AccountID",
    "Organisation": "OrganisationID",
}


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass
class WriteResult:
    """One element of a batch write: its index in the caller's list, the id Xero gave it, or its errors."""

    index: int
    record_id: str | None
    status: str  # OK | WARNING | ERROR
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status != "ERROR" and not self.errors

    def raise_for_error(self, collection: str) -> None:
        if not self.ok:
            raise ApiError(VENDOR, 200, "ValidationException", "; ".join(self.errors) or "element rejected",
                           record_id=self.record_id, endpoint=collection)  # fmt: skip


# -- wire helpers -----------------------------------------------------------------------------------


def canonical_json(body: Any) -> str:
    return json.dumps(jsonable(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def idempotency_key(method: str, path: str, body: Any, tenant_id: str | None) -> str:
    """sha256 of method, path, canonical JSON body and tenant: the same logical write, the same key."""
    text = "\n".join([method.upper(), path, canonical_json(body), tenant_id or ""])
    return hashlib.sha256(text.encode()).hexdigest()


def parse_error(reply: Reply, endpoint: str) -> ApiError:
    """Xero's error shapes: ValidationException envelopes, problem JSON on 401/403, plain-text 404."""
    data = reply.data if isinstance(reply.data, dict) else None
    status = reply.status
    if status in (401, 403):
        detail = str((data or {}).get("Detail") or (data or {}).get("Title") or "Unauthorized")
        code = detail.split(":", 1)[0].strip() or f"HTTP{status}"
        return AuthError(VENDOR, status, code, redact(detail)[:300], endpoint=endpoint)
    if data and ("Type" in data or "Elements" in data):
        code = str(data.get("Type") or f"HTTP{status}")
        message = str(data.get("Message") or "")
        record_id = None
        for element in data.get("Elements") or []:
            errors = [
                e.get("Message", "") for e in element.get("ValidationErrors") or [] if isinstance(e, dict)
            ]
            if errors:
                message = "; ".join(errors)
                record_id = next((str(element[k]) for k in ID_FIELDS.values() if element.get(k)), None)
                break
        return ApiError(VENDOR, status, code, redact(message)[:500], record_id=record_id, endpoint=endpoint)
    if data and ("Title" in data or "Detail" in data):
        return ApiError(VENDOR, status, str(data.get("Title") or f"HTTP{status}"), redact(str(data.get("Detail") or ""))[:300],
                        endpoint=endpoint)  # fmt: skip
    text = reply.content[:200].decode("utf-8", "replace").strip()
    code = "NotFound" if status == 404 else f"HTTP{status}"
    return ApiError(VENDOR, status, code, redact(text) or "request failed", endpoint=endpoint)


# -- the client -------------------------------------------------------------------------------------


class XeroClient:
    """One Xero connection (app + tenant): typed reads and writes, with tokens kept in the token store."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str | None,
        api_url: str,
        identity_url: str,
        token_store: TokenStore,
        connection: str = "default",
        tenant_id: str | None = None,
        meter: CallMeter | None = None,
        timeout: float | tuple[float, float] = 30.0,
        custom_connection: bool = False,
        scope: str | None = None,
        clock: Clock | None = None,
        timer: Timer | None = None,
        retry: RetryPolicy | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        register_secret(client_secret, refresh_token)
        self.api_url = api_url.rstrip("/")
        self.identity_url = identity_url.rstrip("/")
        self.connection = connection
        self.custom_connection = custom_connection
        self.meter = meter or CallMeter()
        self.http = HttpClient(
            VENDOR,
            timeout=timeout,
            meter=self.meter,
            retry=retry,
            limits=XERO_LIMITS,
            concurrency=CONCURRENCY,
            budgets=budgets,
            timer=timer,
            error_parser=parse_error,
            pool_size=CONCURRENCY * 2,
        )
        now: Callable[[], datetime] = clock.now if clock is not None else (lambda: datetime.now(UTC))
        self.auth = OAuthSession(
            vendor=VENDOR,
            token_url=f"{self.identity_url}{TOKEN_PATH}",
            client_id=client_id,
            client_secret=client_secret,
            store=token_store,
            connection=connection,
            http=self.http,
            bootstrap_refresh_token=refresh_token,
            grant="client_credentials" if custom_connection else "refresh_token",
            scope=scope,
            now=now,
        )
        self._client_id = client_id
        self._tenant_id = tenant_id or None

    def __repr__(self) -> str:
        return f"XeroClient(connection={self.connection!r}, tenant_id={self._tenant_id!r})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> XeroClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tenancy --------------------------------------------------------------------------------

    def tenants(self) -> list[dict]:
        """GET /connections: the organisations this grant reaches (a bare JSON array). A remembered tenant
        the grant no longer reaches (a re-consent to another organisation) is forgotten."""
        reply = self.http.request(
            "GET", f"{self.api_url}/connections", endpoint="GET connections", headers={"Accept": "application/json"},
            auth=self.auth,
        )  # fmt: skip
        found = list(reply.data or [])
        remembered = self._remembered_tenant()
        if remembered and remembered not in {str(t.get("tenantId")) for t in found}:
            self._tenant_file().unlink(missing_ok=True)
        return found

    @property
    def tenant_id(self) -> str:
        """The configured tenant, else the one remembered in the token store, else the first ORGANISATION
        this grant reaches (then remembered): the tenant never changes, so `/connections` is asked once per
        grant, not once per run (it would spend half a busy minute's 60 calls)."""
        if self._tenant_id is None:
            self._tenant_id = self._remembered_tenant()
        if self._tenant_id is None:
            orgs = [t for t in self.tenants() if (t.get("tenantType") or "").upper() == "ORGANISATION"]
            if not orgs:
                raise AuthError(
                    VENDOR,
                    None,
                    "NoTenant",
                    "this grant reaches no Xero organisation; reconnect with `xz auth xero`",
                )
            self._tenant_id = str(orgs[0]["tenantId"])
            self._remember_tenant(self._tenant_id)
        return self._tenant_id

    def _tenant_file(self) -> Path:
        return self.auth.store.path(self.connection, "xero-tenant")

    def _remembered_tenant(self) -> str | None:
        """The tenant discovered earlier for this connection and app (none for another app's grant)."""
        try:
            data = json.loads(self._tenant_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("client_id") != self._client_id:
            return None
        return str(data["tenant_id"]) if data.get("tenant_id") else None

    def _remember_tenant(self, tenant_id: str) -> None:
        path = self._tenant_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(
                json.dumps({"tenant_id": tenant_id, "client_id": self._client_id}), encoding="utf-8"
            )
            os.replace(tmp, path)
        except OSError:
            pass  # not remembered: the next process asks /connections again, nothing worse

    def _tenant_header(self) -> dict[str, str]:
        # A custom connection's token is bound to one organisation and needs no tenant header.
        if self.custom_connection and self._tenant_id is None:
            return {}
        return {"xero-tenant-id": self.tenant_id}

    def _budget_key(self) -> str:
        return self._tenant_id or f"client:{self._client_id}"

    # -- one call -------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        key: str | None = None,
        endpoint: str | None = None,
    ) -> Reply:
        send = {"Accept": "application/json", **self._tenant_header(), **(headers or {})}
        data = None
        if body is not None:
            send["Content-Type"] = "application/json"
            data = canonical_json(body).encode()
        return self.http.request(
            method,
            f"{self.api_url}{API_PREFIX}/{path}",
            endpoint=endpoint or f"{method} {path.split('/')[0]}",
            params=params,
            headers=send,
            data=data,
            idempotency_key=key,
            budget_key=self._budget_key(),
            auth=self.auth,
        )

    # -- reading --------------------------------------------------------------------------------

    def iter_pages(
        self,
        collection: str,
        *,
        modified_since: datetime | None = None,
        where: str | None = None,
        order: str | None = None,
        ids: list[str] | None = None,
        page_size: int = PAGE_SIZE,
        params: dict | None = None,
    ) -> Iterator[list[dict]]:
        """Raw payload dicts, page by page. Paged collections cost ceil(N/page_size) calls (the
        `pagination.pageCount` Xero returns saves the trailing empty page); the rest cost one call."""
        if ids is not None:
            yield from self._pages_by_ids(collection, list(ids), modified_since=modified_since, where=where,
                                          order=order, page_size=page_size, params=params)  # fmt: skip
            return
        query: dict[str, Any] = dict(params or {})
        if where:
            query["where"] = where
        if order or collection in ORDERED_BY_DEFAULT:
            query["order"] = order or DEFAULT_ORDER
        headers = {"If-Modified-Since": if_modified_since(modified_since)} if modified_since else None
        if collection not in PAGED:
            reply = self._call("GET", collection, params=query, headers=headers)
            rows = _rows(reply, collection)
            if rows:
                yield rows
            return
        size = max(1, min(PAGE_SIZE, page_size))
        page = 1
        while True:
            reply = self._call(
                "GET", collection, params={**query, "page": page, "pageSize": size}, headers=headers
            )
            rows = _rows(reply, collection)
            if rows:
                yield rows
            pagination = reply.data.get("pagination") if isinstance(reply.data, dict) else None
            page_count = pagination.get("pageCount") if isinstance(pagination, dict) else None
            if len(rows) < size or (isinstance(page_count, int) and page >= page_count):
                return
            page += 1

    def _pages_by_ids(self, collection: str, ids: list[str], **kw: Any) -> Iterator[list[dict]]:
        if collection in WITH_IDS:
            base = kw.pop("params", None) or {}
            for start in range(0, len(ids), IDS_CHUNK):
                chunk = ids[start : start + IDS_CHUNK]
                yield from self.iter_pages(collection, params={**base, "IDs": ",".join(chunk)}, **kw)
            return
        found = [r for r in (self._get_or_none(collection, i) for i in ids) if r is not None]
        if found:
            yield found

    def iter_records(self, collection: str, **kw: Any) -> Iterator[dict]:
        for page in self.iter_pages(collection, **kw):
            yield from page

    def get(self, collection: str, record_id: str) -> dict:
        """GET /Collection/{id}: one record (Xero still wraps it in a list)."""
        reply = self._call("GET", f"{collection}/{record_id}", endpoint=f"GET {collection}/id")
        rows = _rows(reply, collection)
        if not rows:
            raise ApiError(VENDOR, 404, "NotFound", f"{collection} record not found", record_id=record_id)
        return rows[0]

    def _get_or_none(self, collection: str, record_id: str) -> dict | None:
        try:
            return self.get(collection, record_id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    # typed reads
    def contacts(self, *, include_archived: bool = True, **kw: Any) -> Iterator[dict]:
        params = {
            **(kw.pop("params", None) or {}),
            **({"includeArchived": "true"} if include_archived else {}),
        }
        return self.iter_records("Contacts", params=params, **kw)

    def invoices(self, **kw: Any) -> Iterator[dict]:
        return self.iter_records("Invoices", **kw)

    def payments(self, **kw: Any) -> Iterator[dict]:
        return self.iter_records("Payments", **kw)

    def credit_notes(self, **kw: Any) -> Iterator[dict]:
        return self.iter_records("CreditNotes", **kw)

    def items(self, **kw: Any) -> Iterator[dict]:
        return self.iter_records("Items", **kw)

    def accounts(self, **kw: Any) -> Iterator[dict]:
        return self.iter_records("Accounts", **kw)

    def organisation(self) -> dict:
        reply = self._call("GET", "Organisation")
        rows = _rows(reply, "Organisations")
        if not rows:
            raise ApiError(
                VENDOR, reply.status, "NoOrganisation", "the Organisation endpoint returned nothing"
            )
        return rows[0]

    # -- writing --------------------------------------------------------------------------------

    def write(
        self, collection: str, records: Iterable[dict], *, method: str = "POST", chunk_size: int = WRITE_CHUNK
    ) -> list[WriteResult]:
        """PUT (create only) or POST (create or update) in chunks of at most 50, `summarizeErrors=false`.

        Returns one result per input element, in order; a bad element never costs the others their ids.
        """
        method = method.upper()
        if method not in ("PUT", "POST"):
            raise ValueError("Xero writes are PUT (create) or POST (create or update)")
        records = list(records)
        size = max(1, min(WRITE_CHUNK, chunk_size))
        results: list[WriteResult] = []
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            body = {collection: chunk}
            key = idempotency_key(method, f"{API_PREFIX}/{collection}", body, self._tenant_key())
            reply = self._call(method, collection, params={"summarizeErrors": "false"}, body=body, key=key)
            results.extend(_results(reply, collection, chunk, start))
        return results

    def _tenant_key(self) -> str | None:
        return self.tenant_id if not self.custom_connection or self._tenant_id else None

    def create_contacts(self, contacts: Iterable[dict]) -> list[WriteResult]:
        return self.write("Contacts", contacts, method="PUT")

    def update_contacts(self, contacts: Iterable[dict]) -> list[WriteResult]:
        return self.write("Contacts", contacts, method="POST")

    def create_invoices(self, invoices: Iterable[dict]) -> list[WriteResult]:
        return self.write("Invoices", invoices, method="PUT")

    def update_invoices(self, invoices: Iterable[dict]) -> list[WriteResult]:
        return self.write("Invoices", invoices, method="POST")

    def create_credit_notes(self, notes: Iterable[dict]) -> list[WriteResult]:
        return self.write("CreditNotes", notes, method="PUT")

    def update_credit_notes(self, notes: Iterable[dict]) -> list[WriteResult]:
        return self.write("CreditNotes", notes, method="POST")

    def create_items(self, items: Iterable[dict]) -> list[WriteResult]:
        return self.write("Items", items, method="PUT")

    def update_items(self, items: Iterable[dict]) -> list[WriteResult]:
        return self.write("Items", items, method="POST")

    def create_payments(self, payments: Iterable[dict]) -> list[WriteResult]:
        """PUT /Payments takes a batch (POST /Payments takes only one)."""
        return self.write("Payments", payments, method="PUT")

    def delete_payment(self, payment_id: str) -> WriteResult:
        """Xero deletes a payment by POSTing Status DELETED to it; there is no HTTP DELETE."""
        body = {"Status": "DELETED"}  # the spec's PaymentDelete, as the official SDK sends it
        path = f"Payments/{payment_id}"
        key = idempotency_key("POST", f"{API_PREFIX}/{path}", body, self._tenant_key())
        reply = self._call("POST", path, body=body, key=key, endpoint="POST Payments/id")
        return _results(reply, "Payments", [body], 0)[0]

    def create_account(self, account: dict) -> WriteResult:
        """PUT /Accounts takes one account, not wrapped."""
        key = idempotency_key("PUT", f"{API_PREFIX}/Accounts", account, self._tenant_key())
        reply = self._call("PUT", "Accounts", body=account, key=key)
        return _results(reply, "Accounts", [account], 0)[0]

    def email_invoice(self, invoice_id: str) -> None:
        """POST /Invoices/{id}/Email with an empty JSON body: Xero emails the contact and answers 204."""
        path = f"Invoices/{invoice_id}/Email"
        key = idempotency_key("POST", f"{API_PREFIX}/{path}", {}, self._tenant_key())
        self._call("POST", path, body={}, key=key, endpoint="POST Invoices/id/Email")


# -- consent (authorization code + PKCE) ------------------------------------------------------------


def consent_request(
    login_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Iterable[str] = GRANULAR_SCOPES,
    state: str | None = None,
) -> AuthorizationRequest:
    """The URL a person opens to connect an organisation, with its `state` and PKCE verifier to keep."""
    return authorization_url(
        f"{login_url.rstrip('/')}{AUTHORIZE_PATH}",
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=list(scopes),
        state=state,
    )


def complete_consent(
    *,
    identity_url: str,
    client_id: str,
    client_secret: str,
    request: AuthorizationRequest,
    code: str,
    returned_state: str | None,
    redirect_uri: str,
    token_store: TokenStore,
    connection: str = "default",
    timeout: float = 30.0,
) -> TokenSet:
    """Trade the callback's code for tokens and store them (under the lock) for the connection."""
    http = HttpClient(VENDOR, timeout=timeout, error_parser=parse_error)
    try:
        tokens = exchange_code(
            http,
            f"{identity_url.rstrip('/')}{TOKEN_PATH}",
            vendor=VENDOR,
            client_id=client_id,
            client_secret=client_secret,
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=request.code_verifier,
            returned_state=returned_state,
            expected_state=request.state,
        )
    finally:
        http.close()
    with token_store.lock(connection, VENDOR):
        token_store.save(connection, VENDOR, tokens)
    return tokens


def _rows(reply: Reply, collection: str) -> list[dict]:
    data = reply.data
    if not isinstance(data, dict):
        if reply.status == 200 and not reply.content:
            return []
        raise ApiError(
            VENDOR, reply.status, "UnexpectedBody", f"{collection}: the answer is not a JSON object"
        )
    rows = data.get(collection)
    if rows is None and collection == "Organisation":
        rows = data.get("Organisations")
    return list(rows or [])


def _results(reply: Reply, collection: str, sent: list[dict], offset: int) -> list[WriteResult]:
    rows = _rows(reply, collection)
    id_field = ID_FIELDS.get(collection, "")
    if len(rows) != len(sent):
        raise ApiError(VENDOR, reply.status, "UnexpectedBody",
                       f"{collection}: sent {len(sent)} elements, got {len(rows)} back")  # fmt: skip
    out = []
    for i, row in enumerate(rows):
        errors = [str(e.get("Message", "")) for e in row.get("ValidationErrors") or [] if isinstance(e, dict)]
        warnings = [str(e.get("Message", "")) for e in row.get("Warnings") or [] if isinstance(e, dict)]
        status = str(row.get("StatusAttributeString") or ("ERROR" if errors else "OK")).upper()
        if row.get("HasErrors") or row.get("HasValidationErrors"):
            status = "ERROR"
        if status == "ERROR" and not errors:
            errors = warnings or ["rejected without a message"]
        out.append(
            WriteResult(
                index=offset + i,
                record_id=None if row.get(id_field) in (None, "", NO_ID) else str(row[id_field]),
                status=status,
                errors=errors if status == "ERROR" else [],
                warnings=warnings if status != "ERROR" else [],
                record=row,
            )
        )
    return out
