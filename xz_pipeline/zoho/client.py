"""The Zoho CRM API (v8) client: OAuth, paging, field groups, batch writes, search, COQL, tags and
notification channels, over core.http.

Reads hand back Zoho's record dicts verbatim (mapping to the canonical model is a later step). The
costs are deliberate: a listing of N records costs ceil(N/200) calls per group of at most 50 fields
(`page` for the first 2,000 records, `page_token` after); writes go 100 records a call with
`trigger: []` unless configured, and come back as one result per input record, in input order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from typing import Any, Protocol
from urllib.parse import urlsplit

from xz_pipeline.core.errors import ApiError, AuthError
from xz_pipeline.core.http import ZOHO_LIMITS, Budgets, CallMeter, HttpClient, Reply, RetryPolicy, Timer
from xz_pipeline.core.oauth import OAuthSession, TokenStore
from xz_pipeline.core.redact import get_logger, redact, register_secret
from xz_pipeline.core.wire import jsonable
from xz_pipeline.zoho.dates import format_zoho_datetime, if_modified_since, parse_zoho_datetime

log = get_logger(__name__)

VENDOR = "zoho"
API_PREFIX = "/crm/v8"
TOKEN_PATH = "/oauth/v2/token"
PER_PAGE = 200  # Zoho's largest page
MAX_FIELDS = 50  # per listing call
DISCRETE_LIMIT = 2000  # `page` reaches only the first 2,000 records; `page_token` after
TOKEN_LIMIT = 100_000  # nothing reaches further than this by listing
IDS_CHUNK = 100  # `ids=` and writes: at most 100 a call
WRITE_CHUNK = 100
TAG_CHUNK = 500
COMPOSITE_LIMIT = 5  # sub-requests in one `__composite_requests` call
SEARCH_LIMIT = 2000
COQL_PAGE = 2000  # 3 credits a call, against 10 for the same rows 200 at a time
COQL_LIMIT = 100_000
COQL_IN = 50  # values one COQL `in` takes (zoho-api.md §7)
SUBFORM_ROWS = 100  # rows one record's subform holds at most (Zoho's Subform API page, v8)
MAX_CHANNEL_LIFETIME = timedelta(days=7)  # longer is silently cut to one hour by Zoho
CONCURRENCY = 5  # calls in flight per org: the smallest edition's limit
# Zoho's accounts server -> API domain, for a token store written without `api_domain`.
_DC_DOMAINS = {"zohocloud.ca": "https://www.zohoapis.ca"}


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True)
class WriteResult:
    """One input record's outcome: `index` in the caller's list, the record id, or the error."""

    index: int
    ok: bool
    id: str | None
    action: str | None  # insert | update | delete (upsert says which it did)
    duplicate_field: str | None
    code: str
    message: str
    field: str | None  # api_name of the field at fault
    json_path: str | None  # into the caller's list, as if it had been sent in one body
    details: dict = field(default_factory=dict, repr=False)

    def raise_for_error(self, module: str) -> None:
        if not self.ok:
            raise ApiError(VENDOR, None, self.code, self.message, record_id=self.id, field=self.field,
                           endpoint=module)  # fmt: skip


@dataclass(frozen=True)
class Channel:
    """A notification channel as Zoho confirmed it: its id, expiry and the modules it watches."""

    channel_id: str
    expiry: datetime | None
    modules: tuple[str, ...]


@dataclass(frozen=True)
class SubRequest:
    """One write inside a composite call: what `update`/`upsert`/`add_tags` would send on their own, and
    how to read its answer (`action` for writes, `key` of the per-record list)."""

    method: str
    path: str  # under /crm/v8/, e.g. "Deals" or "Accounts/upsert"
    body: dict
    records: int
    action: str
    key: str = "data"


class SearchLimitExceeded(ApiError):
    """A search matched more than Zoho's 2,000-record cap: narrow the criteria or use `coql()`."""


# -- wire helpers -----------------------------------------------------------------------------------


def _body(obj: Any) -> bytes:
    return json.dumps(
        jsonable(obj, datetime_text=format_zoho_datetime), separators=(",", ":"), ensure_ascii=False
    ).encode()


def parse_error(reply: Reply, endpoint: str) -> ApiError:
    """Zoho's whole-request errors: `{"code","details","message","status":"error"}`."""
    data = reply.data if isinstance(reply.data, dict) else {}
    code = str(data.get("code") or f"HTTP{reply.status}")
    message = redact(str(data.get("message") or ""))[:300] or "request failed"
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    fld = details.get("api_name") or details.get("param_name")
    if reply.status in (401, 403):
        return AuthError(VENDOR, reply.status, code, message, field=fld, endpoint=endpoint)
    return ApiError(VENDOR, reply.status, code, message, field=str(fld) if fld else None, endpoint=endpoint)


def _field_groups(fields: Iterable[str]) -> list[list[str]]:
    """Distinct field names (without `id`, which always comes back) in groups of at most 50."""
    seen: list[str] = []
    for f in fields:
        f = f.strip()
        if f and f != "id" and f not in seen:
            seen.append(f)
    if not seen:
        raise ValueError("Zoho listings need at least one field besides id")
    return [seen[i : i + MAX_FIELDS] for i in range(0, len(seen), MAX_FIELDS)]


def _chunks(items: Sequence, size: int) -> Iterator[tuple[int, Sequence]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


_PATH_INDEX = re.compile(r"^\$\.(\w+)\[(\d+)\]")


def _results(
    reply: Reply, sent: int, offset: int, action: str | None, key: str = "data"
) -> list[WriteResult]:
    """One WriteResult per record of a chunk; 400 with a top-level error is an ApiError instead."""
    data = reply.data if isinstance(reply.data, dict) else None
    items = data.get(key) if data else None
    if not isinstance(items, list):
        if reply.status >= 400:
            raise parse_error(reply, f"{key} write")
        raise ApiError(VENDOR, reply.status, "UnexpectedBody", f"a write answered without `{key}`")
    if len(items) != sent:
        raise ApiError(
            VENDOR, reply.status, "UnexpectedBody", f"sent {sent} records, got {len(items)} results"
        )
    out = []
    for i, item in enumerate(items):
        item = item if isinstance(item, dict) else {}
        details = item.get("details") if isinstance(item.get("details"), dict) else {}
        ok = str(item.get("status", "")).lower() == "success"
        path = details.get("json_path")
        if isinstance(path, str):
            path = _PATH_INDEX.sub(lambda m: f"$.{m.group(1)}[{int(m.group(2)) + offset}]", path)
        rid = details.get("id")
        if rid is None and ok:
            rid = item.get("id")
        out.append(
            WriteResult(
                index=offset + i,
                ok=ok,
                id=str(rid) if rid not in (None, "") else None,
                action=(item.get("action") or action) if ok else None,
                duplicate_field=item.get("duplicate_field") if ok else None,
                code=str(item.get("code") or ("SUCCESS" if ok else "UNKNOWN")),
                message=redact(str(item.get("message") or "")),
                field=str(details["api_name"]) if details.get("api_name") else None,
                json_path=path if isinstance(path, str) else None,
                details=details,
            )
        )
    return out


def _has_limit(query: str) -> bool:
    """Whether a COQL query brings its own LIMIT (string literals ignored)."""
    bare = re.sub(r"'(?:[^'\\]|\\.)*'", "''", query)
    return re.search(r"(?i)\blimit\s+\d", bare) is not None


# -- the client -------------------------------------------------------------------------------------


class ZohoClient:
    """One Zoho CRM org through one OAuth client: typed reads and writes, tokens in the token store."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str | None,
        accounts_url: str,
        token_store: TokenStore,
        connection: str = "default",
        api_domain: str | None = None,
        meter: CallMeter | None = None,
        timeout: float | tuple[float, float] = 30.0,
        trigger: Sequence[str] = (),
        clock: Clock | None = None,
        timer: Timer | None = None,
        retry: RetryPolicy | None = None,
        budgets: Budgets | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        register_secret(client_secret, refresh_token)
        self.accounts_url = accounts_url.rstrip("/")
        self.connection = connection
        self.trigger = list(trigger)
        self.meter = meter or CallMeter()
        self.http = HttpClient(
            VENDOR,
            timeout=timeout,
            meter=self.meter,
            retry=retry,
            limits=ZOHO_LIMITS,
            concurrency=concurrency,
            budgets=budgets,
            timer=timer,
            error_parser=parse_error,
            pool_size=concurrency * 2,
        )
        self._now: Callable[[], datetime] = clock.now if clock is not None else (lambda: datetime.now(UTC))
        self.auth = OAuthSession(
            vendor=VENDOR,
            token_url=f"{self.accounts_url}{TOKEN_PATH}",
            client_id=client_id,
            client_secret=client_secret,
            store=token_store,
            connection=connection,
            http=self.http,
            bootstrap_refresh_token=refresh_token,
            client_auth="form",  # Zoho takes client_id/client_secret in the form body
            header_scheme="Zoho-oauthtoken",
            now=self._now,
        )
        self._client_id = client_id
        self._api_domain = (api_domain or "").rstrip("/") or None
        # The org's schema (zoho/schema.py OrgSchema) once read: lists ask only for the fields it has.
        self.schema: Any = None

    def __repr__(self) -> str:
        return f"ZohoClient(connection={self.connection!r}, api_domain={self._api_domain!r})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ZohoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- where and how to call ------------------------------------------------------------------

    @property
    def api_domain(self) -> str:
        """The configured domain, else the one the token response named (kept in the token store)."""
        if self._api_domain is None:
            self.auth.access_token()
            tokens = self.auth.tokens
            domain = str((tokens.extra if tokens else {}).get("api_domain") or "") or _domain_for(
                self.accounts_url
            )
            if not domain:
                raise AuthError(VENDOR, None, "no_api_domain",
                                "the token response named no api_domain; set ZOHO_API_DOMAIN")  # fmt: skip
            self._api_domain = domain.rstrip("/")
        return self._api_domain

    def _budget_key(self) -> str:
        return f"{self._client_id}@{self.connection}"

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        endpoint: str | None = None,
        repeatable: bool = False,
        raise_for_status: bool = True,
    ) -> Reply:
        send = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            send["Content-Type"] = "application/json"
            data = _body(body)
        return self.http.request(
            method,
            f"{self.api_domain}{API_PREFIX}/{path}",
            endpoint=endpoint or f"{method} {path.split('/')[0]}",
            params=params,
            headers=send,
            data=data,
            retry_writes=repeatable,
            budget_key=self._budget_key(),
            auth=self.auth,
            raise_for_status=raise_for_status,
        )

    # -- listing --------------------------------------------------------------------------------

    def iter_pages(
        self,
        module: str,
        *,
        fields: Iterable[str],
        modified_since: datetime | None = None,
        sort_by: str | None = "Modified_Time",
        sort_order: str = "asc",
        per_page: int = PER_PAGE,
        ids: Iterable[str] | None = None,
    ) -> Iterator[list[dict]]:
        """Raw record dicts, page by page. Fields beyond 50 are read in further groups (same order and
        filter, ceil(N/per_page) calls each) and joined by id; a record that moved between the groups'
        reads is completed with a read by id, and one deleted meanwhile is left to `deleted()`.

        `modified_since` is inclusive to the second: records modified in that second come back again.

        Offset paging by `Modified_Time` has one hazard: a record modified during the read moves to the
        end (so it comes back twice, newer version last; callers merge by id) and shifts the rest by
        one, so one unread record slips past a page boundary. Such a move always shows as a repeated id,
        so when one is seen the listing is checked once more (ids only, one field) and what slipped
        past is read by id. With no writes during the read this costs nothing.
        """
        groups = _field_groups(self._asked(module, fields))
        size = max(1, min(PER_PAGE, per_page))
        id_list = None if ids is None else [str(i) for i in ids]
        seen: set[str] = set()
        repeated = 0
        for page in self._joined_pages(module, groups, modified_since, sort_by, sort_order, size, id_list):
            for rec in page:
                rid = str(rec["id"])
                repeated += rid in seen
                seen.add(rid)
            yield page
        if not repeated or id_list is not None or sort_by != "Modified_Time":
            return
        slipped = [
            str(r["id"])
            for page in self._group_pages(
                module, ["Modified_Time"], modified_since, sort_by, sort_order, PER_PAGE, None
            )
            for r in page
            if str(r["id"]) not in seen
        ]
        log.info("zoho %s: %d record(s) changed during the read; %d slipped past a page and are read by id",
                 module, repeated, len(slipped))  # fmt: skip
        if slipped:
            yield from self._joined_pages(module, groups, None, None, "asc", PER_PAGE, slipped)

    def _joined_pages(
        self,
        module: str,
        groups: list[list[str]],
        modified_since: datetime | None,
        sort_by: str | None,
        sort_order: str,
        size: int,
        id_list: list[str] | None,
    ) -> Iterator[list[dict]]:
        if len(groups) == 1:
            yield from self._group_pages(
                module, groups[0], modified_since, sort_by, sort_order, size, id_list
            )
            return
        streams = [
            self._group_pages(module, g, modified_since, sort_by, sort_order, size, id_list) for g in groups
        ]
        parts: dict[str, dict] = {}
        have: dict[str, set[int]] = {}
        order: list[str] = []
        for pages in zip_longest(*streams, fillvalue=None):
            for gi, page in enumerate(pages):
                for rec in page or ():
                    rid = str(rec["id"])
                    if rid not in parts:
                        parts[rid], have[rid] = {}, set()
                        order.append(rid)
                    parts[rid].update(rec)
                    have[rid].add(gi)
            done = [rid for rid in order if len(have[rid]) == len(groups)]
            if done:
                yield [parts.pop(rid) for rid in done]
                for rid in done:
                    del have[rid]
                order = [rid for rid in order if rid in parts]
        if order:
            yield from self._complete(module, groups, parts, have, order)

    def _complete(
        self, module: str, groups: list[list[str]], parts: dict, have: dict, order: list[str]
    ) -> Iterator[list[dict]]:
        """Fill in the groups a record missed (it moved between the groups' reads) by id."""
        for gi, group in enumerate(groups):
            missing = [rid for rid in order if gi not in have[rid]]
            for _, chunk in _chunks(missing, IDS_CHUNK):
                for page in self._group_pages(module, group, None, None, "asc", PER_PAGE, list(chunk)):
                    for rec in page:
                        rid = str(rec["id"])
                        if rid in parts:
                            parts[rid].update(rec)
                            have[rid].add(gi)
        complete = [parts[rid] for rid in order if len(have[rid]) == len(groups)]
        gone = len(order) - len(complete)
        if gone:
            log.info("zoho %s: %d record(s) deleted while their field groups were read", module, gone)
        if complete:
            yield complete

    def _group_pages(
        self,
        module: str,
        fields: list[str],
        modified_since: datetime | None,
        sort_by: str | None,
        sort_order: str,
        per_page: int,
        ids: list[str] | None,
    ) -> Iterator[list[dict]]:
        if ids is not None:
            base = {"fields": ",".join(fields)}
            for _, chunk in _chunks(ids, IDS_CHUNK):
                params = {"fields": base["fields"], "ids": ",".join(chunk), "per_page": PER_PAGE}
                reply = self._list_call(module, module, base, params)
                rows = _rows(reply)
                if rows:
                    yield rows
            return
        params: dict[str, Any] = {"fields": ",".join(fields), "per_page": per_page}
        if sort_by:
            params.update(sort_by=sort_by, sort_order=sort_order)
        headers = {"If-Modified-Since": if_modified_since(modified_since)} if modified_since else None
        windowed = sort_by == "Modified_Time" and sort_order == "asc" and "Modified_Time" in fields
        page, token, seen = 1, None, 0
        tail: tuple[str, set[str]] = ("", set())  # the last Modified_Time read and the ids read at it
        skip: set[str] = set()
        while True:
            query = {**params, "page_token": token} if token else {**params, "page": page}
            reply = self._list_call(module, module, params, query, headers=headers)
            raw = _rows(reply)
            rows = [r for r in raw if str(r["id"]) not in skip] if skip else raw
            if rows:
                yield rows
            for r in raw:
                stamp = str(r.get("Modified_Time") or "")
                tail = (stamp, tail[1] | {str(r["id"])}) if stamp == tail[0] else (stamp, {str(r["id"])})
            info = reply.data.get("info") if isinstance(reply.data, dict) else None
            if not raw or not isinstance(info, dict) or not info.get("more_records"):
                return
            seen += len(raw)
            if seen >= TOKEN_LIMIT:
                if not (windowed and tail[0]):
                    raise ApiError(VENDOR, reply.status, "PAGINATION_LIMIT_EXCEEDED",
                                   f"{module}: more than {TOKEN_LIMIT} records match; narrow the listing "
                                   "(modified_since) or sort by Modified_Time", endpoint=f"GET {module}")  # fmt: skip
                # A page token reaches 100,000 records at most: go on in a new time window from the last
                # Modified_Time read (inclusive, so skip the ids already read at that second).
                headers = {"If-Modified-Since": if_modified_since(parse_zoho_datetime(tail[0]))}
                skip = set(tail[1])
                page, token, seen = 1, None, 0
                continue
            if token or page * per_page + per_page > DISCRETE_LIMIT:
                token = info.get("next_page_token")
                if not token:
                    raise ApiError(
                        VENDOR,
                        reply.status,
                        "UnexpectedBody",
                        f"{module}: more records but no next_page_token",
                        endpoint=f"GET {module}",
                    )
            else:
                page += 1

    def _asked(self, module: str, fields: Iterable[str]) -> list[str]:
        """The fields of `module` the org has (all of them before its schema is known)."""
        names = list(fields)
        return self.schema.keep(module, names) if self.schema is not None else names

    def _list_call(
        self,
        module: str,
        path: str,
        base: dict[str, Any],
        query: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        endpoint: str | None = None,
    ) -> Reply:
        """A GET with `fields`; a field the org reports unknown (400 INVALID_DATA naming it) is dropped from
        this listing (`base`, the params of its later pages, too), forgotten by the schema, and the call
        made again without it."""
        while True:
            try:
                return self._call("GET", path, params=query, headers=headers, endpoint=endpoint)
            except ApiError as exc:
                names = str(query.get("fields") or "").split(",")
                if exc.code != "INVALID_DATA" or not exc.field or exc.field not in names or len(names) < 2:
                    raise
                log.warning("zoho %s: the org has no field %s; asked without it", module, exc.field)
                if self.schema is not None:
                    self.schema.forget(module, exc.field)
                kept = ",".join(n for n in names if n != exc.field)
                query["fields"] = base["fields"] = kept

    def iter_records(self, module: str, **kw: Any) -> Iterator[dict]:
        for page in self.iter_pages(module, **kw):
            yield from page

    def get(self, module: str, record_id: str) -> dict | None:
        """One record with everything, subforms included (e.g. Invoiced_Items); None when not found."""
        reply = self._call("GET", f"{module}/{record_id}", endpoint=f"GET {module}/id")
        rows = _rows(reply)
        return rows[0] if rows else None

    def get_many(self, module: str, ids: Iterable[str], fields: Iterable[str]) -> list[dict]:
        """Records by id (100 a call per field group); ids that do not exist are simply absent."""
        return [r for page in self.iter_pages(module, fields=fields, ids=ids, sort_by=None) for r in page]

    def related(self, module: str, record_id: str, related_list: str, fields: Iterable[str]) -> list[dict]:
        """A record's related list (`GET /{module}/{id}/{related_list}`, e.g. a deal's Products): the related
        records with the asked fields (mandatory; the relation's own, such as a deal product's Quantity
        and List_Price, among them), 200 a page; [] when there are none (204)."""
        names = list(fields)
        if not names or len(names) > MAX_FIELDS:
            raise ValueError(f"a related list read asks for 1 to {MAX_FIELDS} fields")
        path = f"{module}/{record_id}/{related_list}"
        out: list[dict] = []
        page = 1
        while True:
            params = {"fields": ",".join(names), "page": page, "per_page": PER_PAGE}
            reply = self._list_call(
                related_list, path, params, params, endpoint=f"GET {module}/id/{related_list}"
            )
            names = params["fields"].split(",")
            rows = _rows(reply)
            out += rows
            info = reply.data.get("info") if isinstance(reply.data, dict) else None
            if not rows or not isinstance(info, dict) or not info.get("more_records"):
                return out
            page += 1

    def deleted(self, module: str, since: datetime | None = None, *, kind: str = "all") -> Iterator[dict]:
        """`/{module}/deleted?type=all`: {id, display_name, type, deleted_by, deleted_time, created_by};
        the recycle bin keeps 60 days and the permanent list 120, so sweep more often than that."""
        headers = {"If-Modified-Since": if_modified_since(since)} if since else None
        page = 1
        while True:
            params = {"type": kind, "page": page, "per_page": PER_PAGE}
            reply = self._call(
                "GET", f"{module}/deleted", params=params, headers=headers, endpoint=f"GET {module}/deleted"
            )
            rows = _rows(reply)
            yield from rows
            info = reply.data.get("info") if isinstance(reply.data, dict) else None
            if not rows or not isinstance(info, dict) or not info.get("more_records"):
                return
            page += 1

    # -- metadata -------------------------------------------------------------------------------

    def modules(self) -> list[dict]:
        reply = self._call("GET", "settings/modules", endpoint="GET settings/modules")
        return list((reply.data or {}).get("modules") or [])

    def module_supported(self, module: str) -> bool:
        """Whether the org has the module and the API may use it (Invoices needs Professional or above)."""
        return any(m.get("api_name") == module and m.get("api_supported", True) for m in self.modules())

    def fields(self, module: str) -> list[dict]:
        reply = self._call(
            "GET", "settings/fields", params={"module": module}, endpoint="GET settings/fields"
        )
        return list((reply.data or {}).get("fields") or [])

    def create_fields(self, module: str, fields: Sequence[dict]) -> list[WriteResult]:
        """POST settings/fields, at most 5 a call; one result per field."""
        out: list[WriteResult] = []
        for start, chunk in _chunks(list(fields), 5):
            reply = self._call("POST", "settings/fields", params={"module": module}, body={"fields": list(chunk)},
                               endpoint="POST settings/fields", raise_for_status=False)  # fmt: skip
            out += _results(reply, len(chunk), start, "insert", key="fields")
        return out

    def org(self) -> dict:
        reply = self._call("GET", "org")
        rows = (reply.data or {}).get("org") or []
        if not rows:
            raise ApiError(VENDOR, reply.status, "NoOrganisation", "the org endpoint returned nothing")
        return rows[0]

    # -- writes ---------------------------------------------------------------------------------

    def _write(
        self,
        method: str,
        path: str,
        records: Iterable[dict],
        action: str,
        *,
        trigger: Sequence[str] | None,
        extra: dict | None = None,
        repeatable: bool,
    ) -> list[WriteResult]:
        records = list(records)
        triggers = list(self.trigger if trigger is None else trigger)
        results: list[WriteResult] = []
        for start, chunk in _chunks(records, WRITE_CHUNK):
            body = {"data": list(chunk), "trigger": triggers, **(extra or {})}
            reply = self._call(method, path, body=body, endpoint=f"{method} {path}", repeatable=repeatable,
                               raise_for_status=False)  # fmt: skip
            if reply.status >= 400 and not _is_item_list(reply):
                raise parse_error(reply, f"{method} {path}")
            results += _results(reply, len(chunk), start, action)
        return results

    # -- composite -------------------------------------------------------------------------------

    def write_request(
        self,
        op: str,
        module: str,
        records: Sequence[dict],
        *,
        duplicate_check_fields: Sequence[str] | None = None,
        trigger: Sequence[str] | None = None,
    ) -> SubRequest:
        """A write of at most 100 records (op: update | upsert) as a composite sub-request."""
        if not 0 < len(records) <= WRITE_CHUNK:
            raise ValueError(f"a sub-request carries 1 to {WRITE_CHUNK} records")
        body: dict[str, Any] = {
            "data": list(records),
            "trigger": list(self.trigger if trigger is None else trigger),
        }
        if op == "update":
            return SubRequest("PUT", module, body, len(records), "update")
        if op == "upsert":
            if duplicate_check_fields:
                body["duplicate_check_fields"] = list(duplicate_check_fields)
            return SubRequest("POST", f"{module}/upsert", body, len(records), "upsert")
        raise ValueError(f"no composite sub-request for {op!r}")

    def tags_request(self, module: str, ids: Sequence[str], tags: Sequence[str]) -> SubRequest:
        if not 0 < len(ids) <= TAG_CHUNK:
            raise ValueError(f"a tag sub-request carries 1 to {TAG_CHUNK} ids")
        body = {"tags": [{"name": t} for t in tags], "ids": [str(i) for i in ids], "over_write": False}
        return SubRequest("POST", f"{module}/actions/add_tags", body, len(ids), "add_tags")

    def composite(self, subs: Sequence[SubRequest]) -> list[list[WriteResult]]:
        """Up to five writes in one call (`POST __composite_requests`), run in order; one result list per
        sub-request. Not retried after a lost answer (like `insert`): the caller looks up what is unsure.
        A sub-request the API refused as a whole comes back as an ApiError in its place."""
        if not 0 < len(subs) <= COMPOSITE_LIMIT:
            raise ValueError(f"a composite call carries 1 to {COMPOSITE_LIMIT} sub-requests")
        body = {
            "rollback_on_fail": False,
            "parallel_execution": False,
            "__composite_requests": [
                {
                    "sub_request_id": f"s{i}",
                    "method": s.method,
                    "uri": f"{API_PREFIX}/{s.path}",
                    "body": s.body,
                }
                for i, s in enumerate(subs)
            ],
        }
        reply = self._call("POST", "__composite_requests", body=body, endpoint="POST __composite_requests",
                           raise_for_status=False)  # fmt: skip
        if reply.status >= 400:
            raise parse_error(reply, "POST __composite_requests")
        items = reply.data.get("__composite_requests") if isinstance(reply.data, dict) else None
        if not isinstance(items, list) or len(items) != len(subs):
            raise ApiError(VENDOR, reply.status, "UnexpectedBody", "a composite call answered without one item per sub-request")  # fmt: skip
        by_id = {str(item.get("sub_request_id")): item for item in items if isinstance(item, dict)}
        out: list[list[WriteResult]] = []
        for i, sub in enumerate(subs):
            response = ((by_id.get(f"s{i}") or {}).get("details") or {}).get("response") or {}
            sub_reply = Reply(int(response.get("status_code") or 0), response.get("headers") or {}, b"",
                              response.get("body"))  # fmt: skip
            endpoint = f"{sub.method} {sub.path}"
            if sub_reply.status >= 400 and not _is_item_list(sub_reply, sub.key):
                out.append(parse_error(sub_reply, endpoint))  # type: ignore[arg-type]
                continue
            out.append(_results(sub_reply, sub.records, 0, sub.action, sub.key))
        return out

    def insert(
        self, module: str, records: Iterable[dict], *, trigger: Sequence[str] | None = None
    ) -> list[WriteResult]:
        """Create records (not retried after a lost answer: a retry could create them twice)."""
        return self._write("POST", module, records, "insert", trigger=trigger, repeatable=False)

    def update(
        self, module: str, records: Iterable[dict], *, trigger: Sequence[str] | None = None
    ) -> list[WriteResult]:
        """Update records by their `id` (setting the same values twice is harmless, so retried)."""
        return self._write("PUT", module, records, "update", trigger=trigger, repeatable=True)

    def upsert(
        self,
        module: str,
        records: Iterable[dict],
        duplicate_check_fields: Sequence[str] | None = None,
        *,
        trigger: Sequence[str] | None = None,
    ) -> list[WriteResult]:
        """Insert or update by the duplicate-check fields (retried: a replay finds what the first made)."""
        extra = {"duplicate_check_fields": list(duplicate_check_fields)} if duplicate_check_fields else None
        return self._write(
            "POST", f"{module}/upsert", records, "upsert", trigger=trigger, extra=extra, repeatable=True
        )

    def delete(
        self, module: str, ids: Iterable[str], *, trigger: Sequence[str] | None = None
    ) -> list[WriteResult]:
        """Delete by id, 100 a call; workflows run only when `trigger` names them (`wf_trigger`)."""
        id_list = [str(i) for i in ids]
        triggers = list(self.trigger if trigger is None else trigger)
        results: list[WriteResult] = []
        for start, chunk in _chunks(id_list, IDS_CHUNK):
            params = {"ids": ",".join(chunk), "wf_trigger": "true" if "workflow" in triggers else "false"}
            reply = self._call(
                "DELETE", module, params=params, endpoint=f"DELETE {module}", raise_for_status=False
            )
            if reply.status >= 400 and not _is_item_list(reply):
                raise parse_error(reply, f"DELETE {module}")
            results += _results(reply, len(chunk), start, "delete")
        return results

    # -- search and COQL ------------------------------------------------------------------------

    def search(
        self,
        module: str,
        *,
        criteria: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        word: str | None = None,
        fields: Iterable[str] | None = None,
    ) -> list[dict]:
        """Records matching exactly one of criteria/email/phone/word. Zoho serves at most 2,000 matches and
        cannot say whether there were more, so 2,000 raises SearchLimitExceeded (no silent truncation):
        use `coql()` for wide reads.
        Search is indexed with a delay; for read-after-write use `coql()` or `get()`."""
        given = {
            k: v for k, v in (("criteria", criteria), ("email", email), ("phone", phone), ("word", word)) if v
        }
        if len(given) != 1:
            raise ValueError("search takes exactly one of criteria, email, phone or word")
        params: dict[str, Any] = {**given, "per_page": PER_PAGE}
        if fields is not None:
            groups = _field_groups(self._asked(module, fields))
            if len(groups) > 1:
                raise ValueError(f"search returns at most {MAX_FIELDS} fields; use get_many() for more")
            params["fields"] = ",".join(groups[0])
        found: list[dict] = []
        for page in range(1, SEARCH_LIMIT // PER_PAGE + 1):
            reply = self._list_call(module, f"{module}/search", params, {**params, "page": page},
                                    endpoint=f"GET {module}/search")  # fmt: skip
            rows = _rows(reply)
            found += rows
            info = reply.data.get("info") if isinstance(reply.data, dict) else None
            more = isinstance(info, dict) and bool(info.get("more_records"))
            if not rows or not more:
                break
        # Zoho cuts a search at 2,000 matches and may then say there are no more: a full 2,000 is
        # taken as "possibly more", never as the whole answer.
        if len(found) >= SEARCH_LIMIT:
            raise SearchLimitExceeded(VENDOR, 400, "LIMIT_REACHED",
                                      f"{module}: {SEARCH_LIMIT} or more records match the search (Zoho's cap); "
                                      "narrow it or use coql()", endpoint=f"GET {module}/search")  # fmt: skip
        return found

    def coql(self, select_query: str) -> Iterator[dict]:
        """Rows of a COQL SELECT, 2,000 a call by LIMIT/OFFSET, up to Zoho's 100,000; a query with its
        own LIMIT runs once as given. Past 100,000 matching rows it raises rather than stop short."""
        query = select_query.strip().rstrip(";")
        if _has_limit(query):
            reply = self._call("POST", "coql", body={"select_query": query}, repeatable=True)
            yield from _rows(reply)
            return
        offset = 0
        while offset < COQL_LIMIT:
            limit = min(COQL_PAGE, COQL_LIMIT - offset)
            reply = self._call("POST", "coql", body={"select_query": f"{query} limit {limit} offset {offset}"},
                               repeatable=True)  # fmt: skip
            rows = _rows(reply)
            yield from rows
            info = reply.data.get("info") if isinstance(reply.data, dict) else None
            if not rows or not isinstance(info, dict) or not info.get("more_records"):
                return
            offset += len(rows)
        raise ApiError(VENDOR, 400, "LIMIT_EXCEEDED", f"the COQL query matches more than {COQL_LIMIT} rows; "
                       "narrow its WHERE", endpoint="POST coql")  # fmt: skip

    def subform_rows(
        self,
        subform: str,
        parent_ids: Iterable[str],
        fields: Sequence[str],
        names: Mapping[str, str] | None = None,
    ) -> dict[str, list[dict]]:
        """The rows of a subform module (`Invoiced_Items`) of these parent records, by parent id (every id
        a key, [] when it has none), each as a single-record GET nests it: the parent lookup dropped, and
        each lookup in `names` (lookup -> its target's display field) as `{"id", "name"}` by a COQL join.

        Zoho returns subforms in no listing, but COQL reads a subform module ("To retrieve records from a
        Subform, specify the Subform module's API name",
        https://www.zoho.com/crm/developer/docs/api/COQL-Overview.html): one call per 50 parents
        (`Parent_Id in (...)`, Zoho's limit), its LIMIT sized at 100 rows a parent (Zoho's cap per record)
        up to 2,000, so a handful of parents costs one credit; more calls only past 2,000 rows. Rows come
        in row-id order, the order Zoho keeps them in. Needs `ZohoCRM.coql.READ`: without it Zoho answers
        OAUTH_SCOPE_MISMATCH and the caller reads records one by one (`get`)."""
        out: dict[str, list[dict]] = {str(p): [] for p in parent_ids}
        joins = {f"{lookup}.{shown}": lookup for lookup, shown in (names or {}).items()}
        select = ", ".join(dict.fromkeys([*fields, *joins, "Parent_Id"]))
        for _, chunk in _chunks(list(out), COQL_IN):
            where = "Parent_Id in (" + ", ".join("'" + i.replace("'", "''") + "'" for i in chunk) + ")"
            limit = min(COQL_PAGE, SUBFORM_ROWS * len(chunk))
            offset = 0
            while True:
                query = f"select {select} from {subform} where {where} limit {limit} offset {offset}"
                reply = self._call("POST", "coql", body={"select_query": query}, endpoint="POST coql",
                                   repeatable=True)  # fmt: skip
                rows = _rows(reply)
                for row in rows:
                    parent = row.pop("Parent_Id", None)
                    for join, lookup in joins.items():
                        shown = row.pop(join, None)
                        if isinstance(row.get(lookup), dict):
                            row[lookup] = {**row[lookup], "name": shown}
                    pid = str(parent.get("id") if isinstance(parent, dict) else parent)
                    if pid in out:
                        out[pid].append(row)
                info = reply.data.get("info") if isinstance(reply.data, dict) else None
                if len(rows) < limit or not isinstance(info, dict) or not info.get("more_records"):
                    break
                offset += len(rows)
                if offset >= COQL_LIMIT:
                    raise ApiError(VENDOR, 400, "LIMIT_EXCEEDED", f"{subform}: more than {COQL_LIMIT} rows "
                                   "for 50 parents", endpoint="POST coql")  # fmt: skip
        return out

    # -- tags -----------------------------------------------------------------------------------

    def add_tags(
        self, module: str, ids: Iterable[str], tags: Sequence[str | dict], *, over_write: bool = False
    ) -> list[WriteResult]:
        """Tag records (500 ids a call); unknown tag names are created."""
        return self._tags("add_tags", module, ids, tags, {"over_write": over_write})

    def remove_tags(self, module: str, ids: Iterable[str], tags: Sequence[str | dict]) -> list[WriteResult]:
        return self._tags("remove_tags", module, ids, tags, {})

    def _tags(
        self, action: str, module: str, ids: Iterable[str], tags: Sequence[str | dict], extra: dict
    ) -> list[WriteResult]:
        tag_list = [{"name": t} if isinstance(t, str) else dict(t) for t in tags]
        if not tag_list:
            raise ValueError("no tags given")
        id_list = [str(i) for i in ids]
        results: list[WriteResult] = []
        path = f"{module}/actions/{action}"
        for start, chunk in _chunks(id_list, TAG_CHUNK):
            body = {"tags": tag_list, "ids": list(chunk), **extra}
            reply = self._call(
                "POST", path, body=body, endpoint=f"POST {path}", repeatable=True, raise_for_status=False
            )
            if reply.status >= 400 and not _is_item_list(reply):
                raise parse_error(reply, f"POST {path}")
            results += _results(reply, len(chunk), start, action)
        return results

    # -- notification channels ------------------------------------------------------------------

    def _expiry(self, expiry: datetime) -> str:
        now = self._now()
        if expiry <= now:
            raise ValueError("a channel expiry must be in the future")
        if expiry - now > MAX_CHANNEL_LIFETIME:
            raise ValueError("a channel lives at most 7 days; Zoho would silently make a longer one 1 hour")
        return format_zoho_datetime(expiry)

    def enable_notifications(
        self,
        channel_id: str,
        events: Sequence[str],
        notify_url: str,
        token: str,
        expiry: datetime,
        *,
        return_affected_field_values: bool = False,
        notify_on_related_action: bool = False,
    ) -> Channel:
        """Subscribe `notify_url` to events such as "Deals.edit" or "Accounts.all" until `expiry`
        (at most 7 days ahead); Zoho echoes `token` in every callback, which is how a receiver knows it."""
        register_secret(token)
        item = {
            "channel_id": str(channel_id),
            "events": list(events),
            "notify_url": notify_url,
            "token": token,
            "channel_expiry": self._expiry(expiry),
            "return_affected_field_values": return_affected_field_values,
            "notify_on_related_action": notify_on_related_action,
        }
        reply = self._call("POST", "actions/watch", body={"watch": [item]}, endpoint="POST actions/watch",
                           repeatable=True, raise_for_status=False)  # fmt: skip
        return _channel(reply, str(channel_id))

    def renew_notifications(
        self,
        channel_id: str,
        expiry: datetime,
        *,
        events: Sequence[str] | None = None,
        notify_url: str | None = None,
        token: str | None = None,
    ) -> Channel:
        """PATCH a live channel: a new expiry (and optionally more events, a new URL or token)."""
        item: dict[str, Any] = {"channel_id": str(channel_id), "channel_expiry": self._expiry(expiry)}
        if events is not None:
            item["events"] = list(events)
        if notify_url is not None:
            item["notify_url"] = notify_url
        if token is not None:
            register_secret(token)
            item["token"] = token
        reply = self._call("PATCH", "actions/watch", body={"watch": [item]}, endpoint="PATCH actions/watch",
                           repeatable=True, raise_for_status=False)  # fmt: skip
        return _channel(reply, str(channel_id))

    def disable_notifications(self, channel_ids: Iterable[str]) -> list[WriteResult]:
        ids = [str(c) for c in channel_ids]
        results: list[WriteResult] = []
        for start, chunk in _chunks(ids, 50):
            reply = self._call(
                "DELETE",
                "actions/watch",
                params={"channel_ids": ",".join(chunk)},
                endpoint="DELETE actions/watch",
                repeatable=True,
                raise_for_status=False,
            )
            if reply.status >= 400 and not _is_item_list(reply, "watch"):
                raise parse_error(reply, "DELETE actions/watch")
            for r in _results(reply, len(chunk), start, "delete", key="watch"):
                results.append(_with_id(r, chunk[r.index - start]))
        return results

    def list_notifications(self) -> list[dict]:
        """Every live channel of the org (Zoho's objects: channel_id, events, channel_expiry, ...)."""
        out: list[dict] = []
        page = 1
        while True:
            reply = self._call("GET", "actions/watch", params={"page": page, "per_page": PER_PAGE},
                               endpoint="GET actions/watch")  # fmt: skip
            data = reply.data if isinstance(reply.data, dict) else {}
            rows = list(data.get("watch") or [])
            out += rows
            if not rows or not (data.get("info") or {}).get("more_records"):
                return out
            page += 1


def _rows(reply: Reply) -> list[dict]:
    """`data` of a read; 204 (nothing there) and 304 (nothing changed) are empty."""
    if reply.status in (204, 304) or not reply.content:
        return []
    if not isinstance(reply.data, dict):
        raise ApiError(VENDOR, reply.status, "UnexpectedBody", "the answer is not a JSON object")
    return list(reply.data.get("data") or [])


def _is_item_list(reply: Reply, key: str = "data") -> bool:
    return isinstance(reply.data, dict) and isinstance(reply.data.get(key), list)


def _with_id(result: WriteResult, fallback: str) -> WriteResult:
    if result.id is not None:
        return result
    cid = result.details.get("channel_id")
    return WriteResult(result.index, result.ok, str(cid or fallback), result.action, result.duplicate_field,
                       result.code, result.message, result.field, result.json_path, result.details)  # fmt: skip


def _channel(reply: Reply, channel_id: str) -> Channel:
    if reply.status >= 400 and not _is_item_list(reply, "watch"):
        raise parse_error(reply, "actions/watch")
    items = (reply.data or {}).get("watch") if isinstance(reply.data, dict) else None
    item = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
    details = item.get("details") if isinstance(item.get("details"), dict) else {}
    if str(item.get("status", "")).lower() != "success":
        raise ApiError(VENDOR, reply.status, str(item.get("code") or f"HTTP{reply.status}"),
                       redact(str(item.get("message") or "the channel was refused")),
                       record_id=channel_id, field=details.get("api_name"), endpoint="actions/watch")  # fmt: skip
    events = [e for e in details.get("events") or [] if isinstance(e, dict)]
    expiry = None
    if events and events[0].get("channel_expiry"):
        expiry = parse_zoho_datetime(events[0]["channel_expiry"])
    return Channel(channel_id, expiry, tuple(str(e.get("resource_name")) for e in events))


def _domain_for(accounts_url: str) -> str:
    """The API domain of an accounts server's data centre (accounts.zoho.eu -> www.zohoapis.eu)."""
    host = urlsplit(accounts_url).hostname or ""
    for suffix, domain in _DC_DOMAINS.items():
        if host.endswith(suffix):
            return domain
    if host.startswith("accounts.zoho."):
        return f"https://www.zohoapis.{host[len('accounts.zoho.') :]}"
    return ""
