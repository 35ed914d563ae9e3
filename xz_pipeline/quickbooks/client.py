"""The QuickBooks Online Accounting API (v3) client: OAuth, the realm, queries, CDC, batch writes, over core.http.

Reads hand back QBO's payload dicts verbatim (mapping is a later step). Every call carries
`minorversion=75` (Intuit serves 75 whatever is asked since August 2025; asking makes it explicit).
- Queries page by keyset on `MetaData.LastUpdatedTime` (ties skipped by STARTPOSITION), so records
  changed while a long read runs are neither skipped nor lost, and pages come in modified order (a read
  cut short resumes from its cursor).
- Incremental reads use CDC (`/cdc?entities=…&changedSince=…`), which also reports deletions; CDC covers 30
  days and returns at most 1,000 objects an entity, so an older cursor reads by query instead, and a full
  answer is followed by another from its newest change (narrowing the window) until one is not full.
- Writes go through `/batch` (at most 30 items, 40 batches a minute a realm), each with a `requestid`
  derived from its content: a repeated or retried write is answered from QBO's replay of that request.
- Limits: 500 requests a minute and 10 at a time per realm (QBO sends no remaining-count headers, so the
  minute is counted here), 429 and 5xx retried by core.http.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from xz_pipeline.core.errors import ApiError, AuthError
from xz_pipeline.core.http import Budgets, CallMeter, HttpClient, Reply, RetryPolicy, Timer
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
from xz_pipeline.quickbooks.dates import parse_qbo_datetime, query_instant

VENDOR = "quickbooks"
MINOR_VERSION = "75"
PAGE_SIZE = 1000  # QBO's largest MAXRESULTS
IDS_CHUNK = 100  # ids in one `Id in (...)` query
BATCH_MAX = 30  # items in one /batch (Intuit's safe cap)
CONCURRENCY = 10  # calls in flight per realm
PER_MINUTE = 500  # calls a minute per realm (batch included)
BATCHES_PER_MINUTE = 40
CDC_WINDOW = timedelta(days=30)
CDC_MARGIN = timedelta(hours=1)  # a cursor this close to 30 days old reads by query: clocks differ
CDC_MAX = 1000  # objects of one entity in one CDC answer
SCOPE = "com.intuit.quickbooks.accounting"
MODIFIED = "MetaData.LastUpdatedTime"
# Entities whose queries hide inactive records unless the query names `Active` (QBO's documented default).
HAS_ACTIVE = frozenset({"Customer", "Item", "Account", "Vendor", "Employee", "Class", "Department", "Term"})
AUTH_CODES = frozenset({"3200", "3201", "3202", "100", "120"})  # authentication/authorization faults


class Clock(Protocol):
    def now(self) -> datetime: ...


# -- errors -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One error of a QBO Fault: its code (5010 stale object, 6000 business validation, 3200 auth...)."""

    code: str
    message: str
    detail: str = ""
    element: str = ""

    def text(self) -> str:
        return redact(f"{self.message}: {self.detail}" if self.detail else self.message)[:500]


def faults_of(doc: Any) -> list[Fault]:
    """The errors of a `Fault` (or lower-case `fault`, as 401 answers write it) in `doc`."""
    if not isinstance(doc, dict):
        return []
    fault = doc.get("Fault") or doc.get("fault")
    if not isinstance(fault, dict):
        return []
    out = []
    for e in fault.get("Error") or fault.get("error") or []:
        if isinstance(e, dict):
            out.append(Fault(str(e.get("code") or ""), str(e.get("Message") or e.get("message") or ""),
                             str(e.get("Detail") or e.get("detail") or ""), str(e.get("element") or "")))  # fmt: skip
    return out


def parse_error(reply: Reply, endpoint: str) -> ApiError:
    """QBO's Fault envelopes (`ValidationFault`, `AuthenticationFault`, ...) as ApiError/AuthError."""
    status = reply.status
    faults = faults_of(reply.data)
    if faults:
        f = faults[0]
        if status in (401, 403) or f.code in AUTH_CODES:
            return AuthError(VENDOR, status, f.code or f"HTTP{status}", f.text(), endpoint=endpoint)
        return ApiError(
            VENDOR, status, f.code or f"HTTP{status}", f.text(), field=f.element or None, endpoint=endpoint
        )
    text = reply.content[:200].decode("utf-8", "replace").strip()
    if status in (401, 403):
        return AuthError(VENDOR, status, "3200", redact(text) or "unauthorized", endpoint=endpoint)
    return ApiError(VENDOR, status, "NotFound" if status == 404 else f"HTTP{status}", redact(text) or "request failed",
                    endpoint=endpoint)  # fmt: skip


# -- the minute budget ------------------------------------------------------------------------------


class MinuteWindow:
    """At most `limit` calls in any 60 s, counted here (QBO sends no remaining-count headers)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: deque[float] = deque()
        self.lock = threading.Lock()

    def reserve(self, timer: Timer) -> float:
        waited = 0.0
        while True:
            with self.lock:
                now = timer.monotonic()
                while self.sent and self.sent[0] <= now - 60.0:
                    self.sent.popleft()
                if len(self.sent) < self.limit:
                    self.sent.append(now)
                    return waited
                delay = self.sent[0] + 60.0 - now + 0.01
            timer.sleep(delay)
            waited += delay


_WINDOWS: dict[tuple[str, str], MinuteWindow] = {}
_WINDOWS_LOCK = threading.Lock()


def window(realm: str, kind: str, limit: int) -> MinuteWindow:
    """The process-wide window of one realm (every client of a realm shares it)."""
    with _WINDOWS_LOCK:
        return _WINDOWS.setdefault((realm, kind), MinuteWindow(limit))


# -- results ----------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """One item of a batch: its bId, the entity QBO returned, or its faults."""

    bid: str
    entity: str
    record: dict[str, Any] = field(default_factory=dict, repr=False)
    faults: list[Fault] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.faults and bool(self.record)

    @property
    def record_id(self) -> str | None:
        return str(self.record["Id"]) if self.record.get("Id") is not None else None

    @property
    def code(self) -> str:
        return self.faults[0].code if self.faults else ""

    def error(self) -> str:
        return "; ".join(f"{f.code} {f.text()}".strip() for f in self.faults)


@dataclass
class Changes:
    """An incremental read: pages of live records (in modified order) and the ids CDC reported deleted."""

    pages: Iterable[list[dict]]
    deleted: list[tuple[str, dict]] = field(default_factory=list)
    how: str = "cdc"  # cdc | query (the cursor is older than CDC's 30 days)


# -- wire helpers -----------------------------------------------------------------------------------


def canonical_json(body: Any) -> str:
    return json.dumps(jsonable(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_id(realm: str, path: str, body: Any) -> str:
    """The same logical write, the same `requestid`: QBO replays its first answer to a repeat."""
    return hashlib.sha256("\n".join([realm, path, canonical_json(body)]).encode()).hexdigest()[:36]


def quote(value: str) -> str:
    """A query string literal: single-quoted, `'` and `\\` escaped."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _modified(record: dict) -> datetime | None:
    try:
        return parse_qbo_datetime((record.get("MetaData") or {}).get("LastUpdatedTime"))
    except (TypeError, ValueError):
        return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- the client -------------------------------------------------------------------------------------


class QuickBooksClient:
    """One QBO connection (app + realm): typed reads and writes, with tokens kept in the token store."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str | None,
        api_url: str,
        token_url: str,
        token_store: TokenStore,
        connection: str = "default",
        realm_id: str | None = None,
        meter: CallMeter | None = None,
        timeout: float | tuple[float, float] = 30.0,
        clock: Clock | None = None,
        timer: Timer | None = None,
        retry: RetryPolicy | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        register_secret(client_secret, refresh_token)
        self.api_url = api_url.rstrip("/")
        self.connection = connection
        self.meter = meter or CallMeter()
        self.http = HttpClient(VENDOR, timeout=timeout, meter=self.meter, retry=retry, concurrency=CONCURRENCY,
                               budgets=budgets, timer=timer, error_parser=parse_error, pool_size=CONCURRENCY)  # fmt: skip
        self._now: Callable[[], datetime] = clock.now if clock is not None else (lambda: datetime.now(UTC))
        self.auth = OAuthSession(
            vendor=VENDOR,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            store=token_store,
            connection=connection,
            http=self.http,
            bootstrap_refresh_token=refresh_token,
            client_auth="basic",
            now=self._now,
        )
        self._client_id = client_id
        self._realm_id = realm_id or None

    def __repr__(self) -> str:
        return f"QuickBooksClient(connection={self.connection!r}, realm_id={self._realm_id!r})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> QuickBooksClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the realm ------------------------------------------------------------------------------

    @property
    def realm_id(self) -> str:
        """The configured realm, else the one `xz auth quickbooks` remembered for this connection and app."""
        if self._realm_id is None:
            self._realm_id = remembered_realm(self.auth.store, self.connection, self._client_id)
        if self._realm_id is None:
            raise AuthError(VENDOR, None, "NoRealm", "no QuickBooks company (realm) for this connection: set "
                            "QBO_REALM_ID or run `xz auth quickbooks`")  # fmt: skip
        return self._realm_id

    # -- one call -------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        requestid: str | None = None,
        endpoint: str | None = None,
        content_type: str | None = None,
    ) -> Reply:
        realm = self.realm_id
        window(realm, "minute", PER_MINUTE).reserve(self.http.timer)
        query = {**(params or {}), "minorversion": MINOR_VERSION}
        if requestid:
            query["requestid"] = requestid
        headers = {"Accept": "application/json", **({"Content-Type": content_type} if content_type else {})}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = canonical_json(body).encode()
        reply = self.http.request(
            method,
            f"{self.api_url}/v3/company/{realm}/{path}",
            endpoint=endpoint or f"{method} {path.split('/')[0]}",
            params=query,
            headers=headers,
            data=data,  # type: ignore[arg-type]  # bytes: requests sends them as they are
            retry_writes=bool(requestid),  # a repeated requestid is answered, not applied twice
            budget_key=realm,
            auth=self.auth,
        )
        faults = faults_of(reply.data)  # QBO sometimes answers 200 with a Fault
        if faults and 200 <= reply.status < 300:
            raise parse_error(Reply(400, reply.headers, reply.content, reply.data), endpoint or path)
        return reply

    # -- reading --------------------------------------------------------------------------------

    def query(self, text: str) -> dict:
        """GET /query: the QueryResponse object (`{<Entity>: [...], startPosition, maxResults}`)."""
        reply = self._call("GET", "query", params={"query": text}, endpoint="GET query")
        data = reply.data if isinstance(reply.data, dict) else {}
        response = data.get("QueryResponse")
        if not isinstance(response, dict):
            raise ApiError(VENDOR, reply.status, "UnexpectedBody", "the query answer has no QueryResponse")
        return response

    def _select(self, entity: str, conditions: Sequence[str], tail: str) -> str:
        where = list(conditions)
        if entity in HAS_ACTIVE and not any(c.lower().startswith("active") for c in where):
            where.append("Active in (true, false)")  # inactive records too: they are still books records
        clause = f" where {' and '.join(where)}" if where else ""
        return f"select * from {entity}{clause} {tail}".rstrip()

    def iter_query(
        self,
        entity: str,
        *,
        since: datetime | None = None,
        where: Sequence[str] = (),
        page_size: int = PAGE_SIZE,
    ) -> Iterator[list[dict]]:
        """Every record (changed after `since`), page by page in modified order: each page starts at the last
        page's newest change (`>=`) and skips the records already read at that instant by STARTPOSITION."""
        size = max(1, min(PAGE_SIZE, page_size))
        lower, op, skip = since, ">", 0
        while True:
            conds = [*where, f"{MODIFIED} {op} {quote(query_instant(lower))}"] if lower else list(where)
            text = self._select(
                entity, conds, f"orderby {MODIFIED} startposition {skip + 1} maxresults {size}"
            )
            rows = list(self.query(text).get(entity) or [])
            if rows:
                yield rows
            if len(rows) < size:
                return
            newest = _modified(rows[-1])
            if newest is None:
                raise ApiError(
                    VENDOR, 200, "UnexpectedBody", f"{entity}: a record without MetaData.LastUpdatedTime"
                )
            same = sum(1 for r in rows if _modified(r) == newest)
            if lower is not None and op == ">=" and newest == lower:
                skip += same  # a whole page at one instant: carry on past it
            else:
                skip = same
            lower, op = newest, ">="

    def by_ids(self, entity: str, ids: Sequence[str]) -> list[dict]:
        """Exactly these records (those that exist), by `Id in (...)` queries of at most 100 ids."""
        found: list[dict] = []
        unique = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(unique), IDS_CHUNK):
            chunk = unique[start : start + IDS_CHUNK]
            cond = f"Id in ({', '.join(quote(i) for i in chunk)})"
            found += self.query(self._select(entity, [cond], f"maxresults {PAGE_SIZE}")).get(entity) or []
        return found

    def get(self, entity: str, record_id: str) -> dict:
        """GET /{entity}/{id}: one record."""
        reply = self._call("GET", f"{entity.lower()}/{record_id}", endpoint=f"GET {entity.lower()}/id")
        record = reply.data.get(entity) if isinstance(reply.data, dict) else None
        if not isinstance(record, dict):
            raise ApiError(
                VENDOR, reply.status, "UnexpectedBody", f"{entity} {record_id}: no {entity} in the answer"
            )
        return record

    def company_info(self) -> dict:
        rows = self.query("select * from CompanyInfo").get("CompanyInfo") or []
        if not rows:
            raise ApiError(VENDOR, 200, "NoCompanyInfo", "the company has no CompanyInfo")
        return rows[0]

    def preferences(self) -> dict:
        reply = self._call("GET", "preferences", endpoint="GET preferences")
        prefs = reply.data.get("Preferences") if isinstance(reply.data, dict) else None
        if not isinstance(prefs, dict):
            raise ApiError(
                VENDOR, reply.status, "UnexpectedBody", "the preferences answer has no Preferences"
            )
        return prefs

    def cdc(self, entities: Sequence[str], since: datetime) -> dict[str, list[dict]]:
        """GET /cdc: the objects of each entity changed since `since` (deleted ones carry `status: Deleted`)."""
        reply = self._call("GET", "cdc", params={"entities": ",".join(entities), "changedSince": query_instant(since)},
                           endpoint="GET cdc")  # fmt: skip
        out: dict[str, list[dict]] = {e: [] for e in entities}
        data = reply.data if isinstance(reply.data, dict) else {}
        for block in data.get("CDCResponse") or []:
            responses = block.get("QueryResponse") if isinstance(block, dict) else None
            for response in responses if isinstance(responses, list) else [responses]:
                if not isinstance(response, dict):
                    continue
                for entity in entities:
                    out[entity] += [r for r in response.get(entity) or [] if isinstance(r, dict)]
        return out

    def changes(self, entity: str, since: datetime) -> Changes:
        """What changed after `since`: by CDC when the cursor is within its 30 days (deletions included), else
        by query (deletions then show at the next full sweep)."""
        if self._now() - since > CDC_WINDOW - CDC_MARGIN:
            return Changes(self.iter_query(entity, since=since), how="query")
        result = Changes([], how="cdc")
        result.pages = self._cdc_pages(entity, since, result)
        return result

    def _cdc_pages(self, entity: str, since: datetime, result: Changes) -> Iterator[list[dict]]:
        lower = since
        while True:
            objects = self.cdc([entity], lower)[entity]
            live = [o for o in objects if str(o.get("status", "")).lower() != "deleted"]
            result.deleted += [
                (str(o["Id"]), o) for o in objects if o not in live and o.get("Id") is not None
            ]
            live.sort(key=lambda r: _modified(r) or _EPOCH)
            if live:
                yield live
            if len(objects) < CDC_MAX:
                return
            newest = max((m for m in map(_modified, objects) if m is not None), default=None)
            if newest is None or newest <= lower:
                # 1,000 changes at one instant: the window cannot narrow; the query pages through them.
                yield from self.iter_query(entity, since=lower - timedelta(seconds=1))
                return
            lower = newest

    # -- writing --------------------------------------------------------------------------------

    def batch(
        self, items: Sequence[dict], *, entity_of: Callable[[dict], str] | None = None
    ) -> list[BatchResult]:
        """POST /batch with at most 30 items (`bId` given or numbered here); one result per item, in order.
        A failed item costs only itself. The call's `requestid` comes from its content."""
        if len(items) > BATCH_MAX:
            raise ValueError(f"at most {BATCH_MAX} items a batch")
        if not items:
            return []
        sent = [{"bId": str(n), **item} if "bId" not in item else dict(item) for n, item in enumerate(items)]
        body = {"BatchItemRequest": sent}
        window(self.realm_id, "batch", BATCHES_PER_MINUTE).reserve(self.http.timer)
        reply = self._call("POST", "batch", body=body, requestid=request_id(self.realm_id, "batch", body),
                           endpoint="POST batch")  # fmt: skip
        answers = reply.data.get("BatchItemResponse") if isinstance(reply.data, dict) else None
        if not isinstance(answers, list):
            raise ApiError(
                VENDOR, reply.status, "UnexpectedBody", "the batch answer has no BatchItemResponse"
            )
        by_bid = {str(a.get("bId")): a for a in answers if isinstance(a, dict)}
        out = []
        for item in sent:
            answer = by_bid.get(item["bId"])
            entity = next((k for k in item if k not in ("bId", "operation", "optionsData")), "")
            if answer is None:
                out.append(
                    BatchResult(
                        item["bId"], entity, faults=[Fault("NoAnswer", "the batch answer lacks this item")]
                    )
                )
                continue
            record = answer.get(entity) if isinstance(answer.get(entity), dict) else {}
            out.append(BatchResult(item["bId"], entity, record, faults_of(answer)))
        return out

    def send_invoice(self, invoice_id: str) -> dict:
        """POST /invoice/{id}/send (no body, `application/octet-stream`): QBO emails the invoice to its
        BillEmail and answers the invoice with its EmailStatus."""
        path = f"invoice/{invoice_id}/send"
        reply = self._call("POST", path, requestid=request_id(self.realm_id, path, {}), endpoint="POST invoice/id/send",
                           content_type="application/octet-stream")  # fmt: skip
        return reply.data.get("Invoice") if isinstance(reply.data, dict) else {}


# -- the realm a consent chose ----------------------------------------------------------------------


def _realm_file(store: TokenStore, connection: str):
    return store.path(connection, "quickbooks-realm")


def remembered_realm(store: TokenStore, connection: str, client_id: str) -> str | None:
    try:
        data = json.loads(_realm_file(store, connection).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("client_id") != client_id:
        return None
    return str(data["realm_id"]) if data.get("realm_id") else None


def remember_realm(store: TokenStore, connection: str, client_id: str, realm_id: str) -> None:
    path = _realm_file(store, connection)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps({"realm_id": realm_id, "client_id": client_id}), encoding="utf-8")
    os.replace(tmp, path)


# -- consent (authorization code) -------------------------------------------------------------------


def consent_request(
    auth_url: str, *, client_id: str, redirect_uri: str, state: str | None = None
) -> AuthorizationRequest:
    """The URL a person opens to connect a QuickBooks company (appcenter), with its `state` to keep."""
    return authorization_url(
        auth_url, client_id=client_id, redirect_uri=redirect_uri, scopes=[SCOPE], state=state
    )


def complete_consent(
    *,
    token_url: str,
    client_id: str,
    client_secret: str,
    request: AuthorizationRequest,
    params: dict[str, str],
    redirect_uri: str,
    token_store: TokenStore,
    connection: str = "default",
    timeout: float = 30.0,
) -> tuple[TokenSet, str]:
    """Trade the callback's code for tokens, store them (under the lock) and remember the callback's
    `realmId` for the connection; returns the tokens and the realm."""
    realm = params.get("realmId") or ""
    if not realm:
        raise AuthError(VENDOR, None, "NoRealm", "the consent callback named no company (realmId)")
    http = HttpClient(VENDOR, timeout=timeout, error_parser=parse_error)
    try:
        tokens = exchange_code(http, token_url, vendor=VENDOR, client_id=client_id, client_secret=client_secret,
                               code=params.get("code", ""), redirect_uri=redirect_uri,
                               code_verifier=request.code_verifier, returned_state=params.get("state"),
                               expected_state=request.state)  # fmt: skip
    finally:
        http.close()
    with token_store.lock(connection, VENDOR):
        token_store.save(connection, VENDOR, tokens)
    remember_realm(token_store, connection, client_id, realm)
    return tokens, realm
