"""The Salesforce REST API client: OAuth refresh (rotation persisted), SOQL, replication, describe, sObject
Collections, upsert by external id, Composite and the Tooling API, over core.http.

Reads hand back Salesforce's record dicts verbatim (`attributes` included; mapping is a later step).
- SOQL (`/query/?q=…`) answers at most 2,000 records a batch and names the next one in `nextRecordsUrl`;
  the iterators follow it until `done`. Incremental reads filter on `SystemModstamp` (it moves for every
  change, system ones included; `LastModifiedDate` does not) and deletions come from the replication
  endpoint `/sobjects/{type}/deleted/` (30 days back at most, minute precision).
- Writes: sObject Collections (200 records a call, `allOrNone=false`, one result per record in order),
  upsert by an external-id field, and Composite (25 subrequests, run in order, `@{ref.id}` references).
- Limits: `REQUEST_LIMIT_EXCEEDED` is the org's rolling 24-hour allocation spent (or its concurrent
  long-request cap): it fails at once with one line, never retried here. `Sforce-Limit-Info`
  (`api-usage=used/max`) on every answer feeds the day budget; `limits()` reads `/limits`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from xz_pipeline.core.errors import ApiError, AuthError, RateLimitExhausted
from xz_pipeline.core.http import Budgets, CallMeter, HttpClient, LimitSpec, Reply, RetryPolicy, Timer
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
from xz_pipeline.salesforce.dates import format_sf_datetime, parse_sf_datetime

VENDOR = "salesforce"
API_VERSION = "62.0"  # pinned: every path says which version it speaks
LOGIN_URL = "https://login.salesforce.com"
TOKEN_PATH = "/services/oauth2/token"
AUTHORIZE_PATH = "/services/oauth2/authorize"
SCOPES = ("api", "refresh_token")
QUERY_BATCH = 2000  # records in one SOQL answer (Salesforce's largest batch)
COLLECTION_MAX = 200  # records in one sObject Collections call
COMPOSITE_MAX = 25  # subrequests in one Composite call
IDS_CHUNK = 200  # ids in one `Id IN (...)` filter
DELETED_WINDOW = timedelta(days=30)  # how far back /deleted/ answers
CONCURRENCY = 5  # calls in flight per org: a Developer Edition's long-request cap
# `Sforce-Limit-Info: api-usage=18/15000` becomes this header (remaining = max - used) before core.http reads it.
REMAINING_HEADER = "X-Xz-Sf-Day-Remaining"
SALESFORCE_LIMITS = (LimitSpec("day", REMAINING_HEADER, 86400.0, wait=False),)
AUTH_CODES = frozenset(
    {"INVALID_SESSION_ID", "INVALID_AUTH_HEADER", "API_DISABLED_FOR_ORG", "INSUFFICIENT_ACCESS"}
)


class Clock(Protocol):
    def now(self) -> datetime: ...


# -- errors -----------------------------------------------------------------------------------------


def errors_of(data: Any) -> list[dict]:
    """Salesforce's error list (`[{"errorCode"|"statusCode", "message", "fields"}]`), from a whole answer or
    a record's `errors`."""
    items = data if isinstance(data, list) else (data.get("errors") if isinstance(data, dict) else None)
    return [e for e in items or [] if isinstance(e, dict) and (e.get("errorCode") or e.get("statusCode"))]


def _code(error: Mapping) -> str:
    return str(error.get("errorCode") or error.get("statusCode") or "")


def parse_error(reply: Reply, endpoint: str) -> ApiError:
    """A whole-request error: Salesforce's `[{"errorCode","message","fields"}]`, or the token endpoint's
    `{"error","error_description"}`. REQUEST_LIMIT_EXCEEDED is a spent allocation, never a passing fault."""
    errors = errors_of(reply.data)
    status = reply.status
    if errors:
        e = errors[0]
        code, message = _code(e), redact(str(e.get("message") or ""))[:300] or "request failed"
        fields = e.get("fields") if isinstance(e.get("fields"), list) else []
        fld = str(fields[0]) if fields else None
        if code == "REQUEST_LIMIT_EXCEEDED":
            limit = "concurrent" if "concurrent" in message.lower() else "day"
            return RateLimitExhausted(VENDOR, limit, endpoint=endpoint)
        if status == 401 or code in AUTH_CODES:
            return AuthError(VENDOR, status, code, message, field=fld, endpoint=endpoint)
        return ApiError(VENDOR, status, code, message, field=fld, endpoint=endpoint)
    if isinstance(reply.data, dict) and reply.data.get("error"):
        code = str(reply.data["error"])
        message = redact(str(reply.data.get("error_description") or ""))[:300] or "request failed"
        if status in (400, 401, 403):
            return AuthError(VENDOR, status, code, message, endpoint=endpoint)
        return ApiError(VENDOR, status, code, message, endpoint=endpoint)
    text = redact(reply.content[:200].decode("utf-8", "replace").strip()) or "request failed"
    if status == 401:
        return AuthError(VENDOR, status, "INVALID_SESSION_ID", text, endpoint=endpoint)
    return ApiError(
        VENDOR, status, "NOT_FOUND" if status == 404 else f"HTTP{status}", text, endpoint=endpoint
    )


def usage(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """(used, max) from `Sforce-Limit-Info: api-usage=used/max`, or None."""
    raw = headers.get("Sforce-Limit-Info") or ""
    for part in raw.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "api-usage" and "/" in value:
            used, _, most = value.partition("/")
            try:
                return int(used), int(most)
            except ValueError:
                return None
    return None


def _remaining_hook(response, *args, **kwargs):
    """requests response hook: expose the day's remaining calls under a header core.http's budget reads."""
    seen = usage(response.headers)
    if seen is not None:
        response.headers[REMAINING_HEADER] = str(max(0, seen[1] - seen[0]))
    return response


# -- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaveResult:
    """One record of a write: its id, whether it was created (upserts say), or its errors."""

    index: int
    ok: bool
    id: str | None
    created: bool | None = None
    errors: tuple[dict, ...] = ()

    @property
    def code(self) -> str:
        return _code(self.errors[0]) if self.errors else ("SUCCESS" if self.ok else "UNKNOWN")

    @property
    def message(self) -> str:
        return "; ".join(redact(str(e.get("message") or "")) for e in self.errors)[:500]

    @property
    def field(self) -> str | None:
        for e in self.errors:
            if isinstance(e.get("fields"), list) and e["fields"]:
                return str(e["fields"][0])
        return None


def save_results(items: Any, sent: int, offset: int = 0) -> list[SaveResult]:
    """One SaveResult per record sent, from a Collections answer (`[{id, success, errors, created}]`)."""
    if not isinstance(items, list) or len(items) != sent:
        got = len(items) if isinstance(items, list) else "no list"
        raise ApiError(VENDOR, 200, "UnexpectedBody", f"sent {sent} records, got {got} results")
    out = []
    for i, item in enumerate(items):
        item = item if isinstance(item, dict) else {}
        ok = bool(item.get("success"))
        rid = item.get("id")
        out.append(SaveResult(offset + i, ok, str(rid) if rid else None,
                              item.get("created") if isinstance(item.get("created"), bool) else None,
                              tuple(errors_of(item))))  # fmt: skip
    return out


@dataclass(frozen=True)
class SubRequest:
    """One Composite subrequest: method, a path under /services/data/vXX.X/, its body and reference id."""

    method: str
    path: str
    body: Any = None
    reference: str = ""


@dataclass(frozen=True)
class SubResponse:
    reference: str
    status: int
    body: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> ApiError | None:
        if self.ok:
            return None
        return parse_error(Reply(self.status, {}, b"", self.body), f"composite {self.reference}")


@dataclass
class Deleted:
    """What /deleted/ answered: (id, deletedDate) pairs, and how far it covered."""

    records: list[dict]
    latest_covered: datetime | None


# -- wire helpers -----------------------------------------------------------------------------------


def literal(value: str) -> str:
    """A SOQL string literal: single-quoted, `\\` and `'` escaped."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _dump(body: Any) -> bytes:
    return json.dumps(jsonable(body, datetime_text=format_sf_datetime), separators=(",", ":"),
                      ensure_ascii=False).encode()  # fmt: skip


def instance_of(tokens: TokenSet | None) -> str:
    return str((tokens.extra if tokens else {}).get("instance_url") or "").rstrip("/")


def org_id_of(tokens: TokenSet | None) -> str | None:
    """The org id (`00D…`) from the token response's identity URL (`…/id/<org id>/<user id>`)."""
    ident = str((tokens.extra if tokens else {}).get("id") or "")
    parts = [p for p in urlsplit(ident).path.split("/") if p]
    return parts[-2] if len(parts) >= 3 and parts[-3] == "id" else None


# -- the client -------------------------------------------------------------------------------------


class SalesforceClient:
    """One Salesforce org through one connected app: typed reads and writes, tokens in the token store."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str | None,
        token_store: TokenStore,
        login_url: str = LOGIN_URL,
        instance_url: str | None = None,
        connection: str = "default",
        api_version: str = API_VERSION,
        meter: CallMeter | None = None,
        timeout: float | tuple[float, float] = 30.0,
        clock: Clock | None = None,
        timer: Timer | None = None,
        retry: RetryPolicy | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        register_secret(client_secret, refresh_token)
        self.login_url = login_url.rstrip("/")
        self.connection = connection
        self.api_version = api_version
        self.meter = meter or CallMeter()
        self.http = HttpClient(VENDOR, timeout=timeout, meter=self.meter, retry=retry, limits=SALESFORCE_LIMITS,
                               concurrency=CONCURRENCY, budgets=budgets, timer=timer, error_parser=parse_error,
                               pool_size=CONCURRENCY * 2)  # fmt: skip
        self.http.session.hooks["response"].append(_remaining_hook)
        self._now: Callable[[], datetime] = clock.now if clock is not None else (lambda: datetime.now(UTC))
        self.auth = OAuthSession(
            vendor=VENDOR,
            token_url=f"{self.login_url}{TOKEN_PATH}",
            client_id=client_id,
            client_secret=client_secret,
            store=token_store,
            connection=connection,
            http=self.http,
            bootstrap_refresh_token=refresh_token,
            client_auth="form",  # Salesforce takes client_id/client_secret in the form body
            now=self._now,
        )
        self._client_id = client_id
        self._configured_instance = (instance_url or "").rstrip("/") or None
        # The org's schema (salesforce/schema.py OrgSchema) once read: queries ask only for what it has.
        self.schema: Any = None

    def __repr__(self) -> str:
        return f"SalesforceClient(connection={self.connection!r}, api_version={self.api_version!r})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- where and how to call ------------------------------------------------------------------

    @property
    def instance_url(self) -> str:
        """The org's instance, as the token response named it (SALESFORCE_INSTANCE_URL when it named none)."""
        self.auth.access_token()
        found = instance_of(self.auth.tokens) or self._configured_instance
        if not found:
            raise AuthError(VENDOR, None, "no_instance_url",
                            "the token response named no instance_url; set SALESFORCE_INSTANCE_URL")  # fmt: skip
        return found

    @property
    def org_id(self) -> str | None:
        self.auth.access_token()
        return org_id_of(self.auth.tokens)

    def now(self) -> datetime:
        return self._now()

    @property
    def base(self) -> str:
        return f"/services/data/v{self.api_version}"

    def _budget_key(self) -> str:
        return f"{self._client_id}@{self.connection}"

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        endpoint: str | None = None,
        repeatable: bool = False,
        raise_for_status: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One call to `path` (under /services/data/vXX.X/ unless it starts with /services/)."""
        full = path if path.startswith("/services/") else f"{self.base}/{path.lstrip('/')}"
        headers = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = _dump(body)
        return self.http.request(
            method,
            f"{self.instance_url}{full}",
            endpoint=endpoint or f"{method} {path.split('?')[0].split('/')[0] or path}",
            params=params,
            headers=headers,
            data=data,  # type: ignore[arg-type]  # bytes are sent as they are
            retry_writes=repeatable,
            budget_key=self._budget_key(),
            auth=self.auth,
            raise_for_status=raise_for_status,
        )

    # -- reading --------------------------------------------------------------------------------

    def query_pages(
        self, soql: str, *, all_rows: bool = False, batch_size: int | None = None
    ) -> Iterator[list[dict]]:
        """The records of one SOQL query, a batch (up to 2,000; `batch_size` asks for fewer, 200 at least)
        at a time, following `nextRecordsUrl`."""
        resource = "queryAll" if all_rows else "query"
        options = (
            {"Sforce-Query-Options": f"batchSize={max(200, min(QUERY_BATCH, batch_size))}"}
            if batch_size
            else None
        )
        reply = self.call(
            "GET", f"{resource}/", params={"q": soql}, endpoint=f"GET {resource}", headers=options
        )
        while True:
            data = reply.data if isinstance(reply.data, dict) else None
            if data is None or not isinstance(data.get("records"), list):
                raise ApiError(VENDOR, reply.status, "UnexpectedBody", "a query answered without records")
            if data["records"]:
                yield list(data["records"])
            nxt = data.get("nextRecordsUrl")
            if data.get("done", True) or not nxt:
                return
            reply = self.call("GET", str(nxt), endpoint=f"GET {resource} more", headers=options)

    def query(self, soql: str) -> list[dict]:
        return [r for page in self.query_pages(soql) for r in page]

    def select(
        self,
        sobject: str,
        fields: Iterable[str],
        *,
        since: datetime | None = None,
        ids: Sequence[str] | None = None,
        where: str | None = None,
    ) -> Iterator[list[dict]]:
        """Records of `sobject` with the org's share of `fields` (never a field it lacks: INVALID_FIELD
        costs the call), changed at or after `since` in SystemModstamp order, or exactly `ids`."""
        asked = self._asked(sobject, fields)
        cols = ", ".join(dict.fromkeys(["Id", *asked]))
        conds = [where] if where else []
        if ids is not None:
            unique = list(dict.fromkeys(str(i) for i in ids))
            for start in range(0, len(unique), IDS_CHUNK):
                chunk = ", ".join(literal(i) for i in unique[start : start + IDS_CHUNK])
                clause = " and ".join([*conds, f"Id in ({chunk})"])
                yield from self.query_pages(f"select {cols} from {sobject} where {clause}")
            return
        if since is not None:
            conds.append(f"SystemModstamp >= {format_sf_datetime(since)}")
        clause = f" where {' and '.join(conds)}" if conds else ""
        yield from self.query_pages(
            f"select {cols} from {sobject}{clause} order by SystemModstamp asc, Id asc"
        )

    def changed_since(self, sobject: str, since: datetime, limit: int = 200) -> list[dict]:
        """One call: `Id` and `SystemModstamp` of up to `limit` records changed after `since`, oldest first
        (what a poll needs to ask for exactly those records)."""
        soql = (f"select Id, SystemModstamp from {sobject} where SystemModstamp > {format_sf_datetime(since)} "
                f"order by SystemModstamp asc, Id asc limit {int(limit)}")  # fmt: skip
        reply = self.call("GET", "query/", params={"q": soql}, endpoint="GET query")
        data = reply.data if isinstance(reply.data, dict) else {}
        return [r for r in data.get("records") or [] if isinstance(r, dict)]

    def _asked(self, sobject: str, fields: Iterable[str]) -> list[str]:
        wanted = [f for f in fields if f and f != "Id"]
        return self.schema.keep(sobject, wanted) if self.schema is not None else wanted

    def deleted(self, sobject: str, start: datetime, end: datetime | None = None) -> Deleted:
        """GET /sobjects/{type}/deleted/: records deleted between `start` and `end` (at most 30 days back,
        minute precision: the window is widened to whole minutes, never narrowed)."""
        now = self._now()
        end = min(end or now, now)
        start = max(start, now - DELETED_WINDOW + timedelta(minutes=5))
        start = start.replace(second=0, microsecond=0)
        end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if end - start < timedelta(minutes=1):
            start = end - timedelta(minutes=1)
        reply = self.call("GET", f"sobjects/{sobject}/deleted/",
                          params={"start": format_sf_datetime(start), "end": format_sf_datetime(end)},
                          endpoint=f"GET {sobject}/deleted")  # fmt: skip
        data = reply.data if isinstance(reply.data, dict) else {}
        rows = [r for r in data.get("deletedRecords") or [] if isinstance(r, dict) and r.get("id")]
        try:
            covered = parse_sf_datetime(data.get("latestDateCovered"))
        except ValueError:
            covered = None
        return Deleted(rows, covered)

    def describe(self, sobject: str) -> dict:
        """GET /sobjects/{type}/describe: the object's fields (name, type, picklistValues, externalId…)."""
        reply = self.call("GET", f"sobjects/{sobject}/describe", endpoint=f"GET {sobject}/describe")
        if not isinstance(reply.data, dict):
            raise ApiError(
                VENDOR, reply.status, "UnexpectedBody", f"{sobject}: the describe is not an object"
            )
        return reply.data

    def sobjects(self) -> list[dict]:
        """GET /sobjects/: every object the org offers this user (name, queryable, createable…)."""
        reply = self.call("GET", "sobjects/", endpoint="GET sobjects")
        data = reply.data if isinstance(reply.data, dict) else {}
        return [s for s in data.get("sobjects") or [] if isinstance(s, dict)]

    def limits(self) -> dict:
        """GET /limits: each limit's Max and Remaining (DailyApiRequests among them)."""
        reply = self.call("GET", "limits/", endpoint="GET limits")
        return reply.data if isinstance(reply.data, dict) else {}

    def organization(self) -> dict:
        """The Organization record (default currency, edition), or {} when the user may not read it."""
        try:
            rows = self.query(
                "select Id, Name, DefaultCurrencyIsoCode, OrganizationType, IsSandbox from Organization"
            )
        except ApiError as exc:
            if exc.transient:
                raise
            return {}
        return rows[0] if rows else {}

    # -- writing --------------------------------------------------------------------------------

    def _collection(self, method: str, path: str, sobject: str, records: Sequence[Mapping], repeatable: bool,
                    endpoint: str) -> list[SaveResult]:  # fmt: skip
        results: list[SaveResult] = []
        for start in range(0, len(records), COLLECTION_MAX):
            chunk = [
                {"attributes": {"type": sobject}, **dict(r)} for r in records[start : start + COLLECTION_MAX]
            ]
            reply = self.call(method, path, body={"allOrNone": False, "records": chunk}, endpoint=endpoint,
                              repeatable=repeatable)  # fmt: skip
            results += save_results(reply.data, len(chunk), start)
        return results

    def create(self, sobject: str, records: Sequence[Mapping]) -> list[SaveResult]:
        """POST /composite/sobjects, 200 a call (not retried after a lost answer: it could create twice)."""
        return self._collection(
            "POST", "composite/sobjects", sobject, records, False, f"POST {sobject} collection"
        )

    def update(self, sobject: str, records: Sequence[Mapping]) -> list[SaveResult]:
        """PATCH /composite/sobjects by each record's `id` (the same values twice are harmless: retried)."""
        for r in records:
            if not r.get("id"):
                raise ValueError("an update record needs its id")
        return self._collection(
            "PATCH", "composite/sobjects", sobject, records, True, f"PATCH {sobject} collection"
        )

    def upsert(self, sobject: str, external_field: str, records: Sequence[Mapping]) -> list[SaveResult]:
        """PATCH /composite/sobjects/{type}/{ExtField}: insert or update by the external id each record
        carries (retried: a replay finds what the first made); `created` says which it did."""
        for r in records:
            if not r.get(external_field):
                raise ValueError(f"an upsert record needs its {external_field}")
        return self._collection("PATCH", f"composite/sobjects/{sobject}/{external_field}", sobject, records, True,
                                f"PATCH {sobject} upsert")  # fmt: skip

    def upsert_one(self, sobject: str, external_field: str, value: str, record: Mapping) -> SaveResult:
        """PATCH /sobjects/{type}/{ExtField}/{value}: 201 created, 200 or 204 updated."""
        body = {k: v for k, v in record.items() if k not in (external_field, "id", "Id")}
        reply = self.call("PATCH", f"sobjects/{sobject}/{external_field}/{quote(str(value), safe='')}", body=body,
                          endpoint=f"PATCH {sobject} upsert one", repeatable=True)  # fmt: skip
        data = reply.data if isinstance(reply.data, dict) else {}
        created = reply.status == 201 or bool(data.get("created"))
        rid = data.get("id")
        if not rid:  # 204 (before v46: an update answers no body): the record is read by its external id
            found = self.call("GET", f"sobjects/{sobject}/{external_field}/{quote(str(value), safe='')}",
                              params={"fields": "Id"}, endpoint=f"GET {sobject} by external id")  # fmt: skip
            rid = found.data.get("Id") if isinstance(found.data, dict) else None
        return SaveResult(0, True, str(rid) if rid else None, created)

    def delete(self, ids: Sequence[str]) -> list[SaveResult]:
        results: list[SaveResult] = []
        for start in range(0, len(ids), COLLECTION_MAX):
            chunk = [str(i) for i in ids[start : start + COLLECTION_MAX]]
            reply = self.call("DELETE", "composite/sobjects", params={"ids": ",".join(chunk), "allOrNone": "false"},
                              endpoint="DELETE collection", repeatable=True)  # fmt: skip
            results += save_results(reply.data, len(chunk), start)
        return results

    def composite(self, subrequests: Sequence[SubRequest], *, all_or_none: bool = False,
                  repeatable: bool = False) -> list[SubResponse]:  # fmt: skip
        """POST /composite: up to 25 subrequests run in order; a later one may name an earlier one's result
        (`@{acct.id}`). One SubResponse per subrequest, in order."""
        if not 0 < len(subrequests) <= COMPOSITE_MAX:
            raise ValueError(f"a composite call carries 1 to {COMPOSITE_MAX} subrequests")
        items = []
        for n, s in enumerate(subrequests):
            item: dict[str, Any] = {"method": s.method, "url": f"{self.base}/{s.path.lstrip('/')}",
                                    "referenceId": s.reference or f"r{n}"}  # fmt: skip
            if s.body is not None:
                item["body"] = s.body
            items.append(item)
        reply = self.call("POST", "composite", body={"allOrNone": all_or_none, "compositeRequest": items},
                          endpoint="POST composite", repeatable=repeatable)  # fmt: skip
        answers = reply.data.get("compositeResponse") if isinstance(reply.data, dict) else None
        if not isinstance(answers, list):
            raise ApiError(
                VENDOR, reply.status, "UnexpectedBody", "a composite call answered without compositeResponse"
            )
        by_ref = {str(a.get("referenceId")): a for a in answers if isinstance(a, dict)}
        out = []
        for item in items:
            a = by_ref.get(item["referenceId"]) or {}
            out.append(SubResponse(item["referenceId"], int(a.get("httpStatusCode") or 0), a.get("body")))
        return out

    # -- Tooling API ----------------------------------------------------------------------------

    def tooling_query(self, soql: str) -> list[dict]:
        reply = self.call("GET", "tooling/query/", params={"q": soql}, endpoint="GET tooling query")
        data = reply.data if isinstance(reply.data, dict) else {}
        return [r for r in data.get("records") or [] if isinstance(r, dict)]

    def create_custom_field(self, full_name: str, metadata: Mapping[str, Any]) -> str:
        """POST /tooling/sobjects/CustomField: a custom field (`Account.Books_Customer_Id__c`); its id."""
        reply = self.call("POST", "tooling/sobjects/CustomField", body={"FullName": full_name, "Metadata": dict(metadata)},
                          endpoint="POST tooling CustomField")  # fmt: skip
        data = reply.data if isinstance(reply.data, dict) else {}
        return str(data.get("id") or "")


# -- consent (authorization code) -------------------------------------------------------------------


def consent_request(
    login_url: str, *, client_id: str, redirect_uri: str, state: str | None = None
) -> AuthorizationRequest:
    """The URL a person opens to connect a Salesforce org (PKCE, refresh_token scope), with its state."""
    return authorization_url(f"{login_url.rstrip('/')}{AUTHORIZE_PATH}", client_id=client_id,
                             redirect_uri=redirect_uri, scopes=list(SCOPES), state=state)  # fmt: skip


def complete_consent(
    *,
    login_url: str,
    client_id: str,
    client_secret: str,
    request: AuthorizationRequest,
    params: Mapping[str, str],
    redirect_uri: str,
    token_store: TokenStore,
    connection: str = "default",
    timeout: float = 30.0,
) -> TokenSet:
    """Trade the callback's code for tokens (the answer names the org's instance_url) and store them."""
    http = HttpClient(VENDOR, timeout=timeout, error_parser=parse_error)
    try:
        tokens = exchange_code(http, f"{login_url.rstrip('/')}{TOKEN_PATH}", vendor=VENDOR, client_id=client_id,
                               client_secret=client_secret, code=params.get("code", ""), redirect_uri=redirect_uri,
                               code_verifier=request.code_verifier, returned_state=params.get("state"),
                               expected_state=request.state, client_auth="form")  # fmt: skip
    finally:
        http.close()
    if not instance_of(tokens):
        raise AuthError(VENDOR, None, "no_instance_url", "the token answer named no instance_url")
    with token_store.lock(connection, VENDOR):
        token_store.save(connection, VENDOR, tokens)
    return tokens
