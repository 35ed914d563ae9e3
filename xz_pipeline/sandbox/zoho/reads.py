"""Reads of the emulated CRM API: list (page / page_token), get by id or external id, deleted, search, COQL.

The rules a client trips over are enforced here (zoho-api.md §4, §6, §7): `fields` mandatory and at most
50; `per_page` at most 200; `page` only for the first 2,000 records, then `page_token`, which is bound
to the other parameters, to the user, and expires after 24 hours; 204 when nothing matches; 304 when
nothing changed since `If-Modified-Since`; subforms only on a single record, or by COQL over the subform
module (subforms.py).
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from xz_pipeline.sandbox.zoho.call import ApiError, Call
from xz_pipeline.sandbox.zoho.query import (
    NUMBER_TYPES,
    TEXT_TYPES,
    QueryError,
    criteria_fields,
    eval_criteria,
    eval_where,
    parse_coql,
    parse_criteria,
    where_fields,
)
from xz_pipeline.sandbox.zoho.records import OrgState, parse_datetime
from xz_pipeline.sandbox.zoho.subforms import subform_table

MAX_FIELDS = 50
MAX_PER_PAGE = 200
DISCRETE_LIMIT = 2000
TOKEN_LIMIT = 100_000
SEARCH_LIMIT = 2000
MAX_IDS = 100
PAGE_TOKEN_LIFETIME = timedelta(hours=24)
SORTABLE = ("id", "Created_Time", "Modified_Time")
BOUND_PARAMS = (
    "fields",
    "per_page",
    "sort_by",
    "sort_order",
    "ids",
    "cvid",
    "converted",
    "approved",
    "territory_id",
    "include_child",
)


@dataclass
class PageToken:
    org_id: str
    user_id: str
    module: str
    bound: tuple
    start: int
    page: int
    expiry: datetime
    modified_since: str
    # The ids the first page filtered and sorted, in order, for the later pages to slice: without it a
    # 300,000-record module is sorted again for each of its pages (most of an hour at the large size).
    # Records deleted meanwhile are skipped; those changed keep their place and show their new values.
    order: tuple[str, ...] = ()


def _param_error(code: str, message: str, **details) -> ApiError:
    return ApiError(400, code, message, details)


def _int_param(call: Call, name: str, default: int, lo: int, hi: int | None) -> int:
    raw = call.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _param_error("INVALID_DATA", "invalid data", param_name=name) from None
    if value < lo or (hi is not None and value > hi):
        raise _param_error("INVALID_DATA", "invalid data", param_name=name)
    return value


def _fields(
    call: Call, mandatory: bool, module: str | None = None, also: tuple[str, ...] = ()
) -> list[str] | None:
    """The `fields` asked for; a field the org's module does not have is refused (400 INVALID_DATA naming
    it) as Zoho refuses it: an org without Currency or our custom fields does not serve them empty."""
    raw = call.query.get("fields")
    if not raw:
        if mandatory:
            raise _param_error(
                "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="fields"
            )
        return None
    names = [f.strip() for f in raw.split(",") if f.strip()]
    if len(names) > MAX_FIELDS:
        raise _param_error(
            "LIMIT_EXCEEDED", "Max field limit exceeded", limit=MAX_FIELDS, param_name="fields"
        )
    mdef = call.org.module(module or call.parts[0])
    for name in names:
        if name != "id" and name not in also and mdef.field(name) is None:
            raise _param_error("INVALID_DATA", "invalid data", api_name=name, param_name="fields")
    return names


def _modified_since(call: Call) -> datetime | None:
    raw = call.headers.get("if-modified-since")
    if not raw:
        return None
    dt = parse_datetime(raw)
    if dt is None:
        raise _param_error("INVALID_DATA", "invalid data", param_name="If-Modified-Since")
    return dt


class Reads:
    def __init__(self, emulator) -> None:
        self.emu = emulator
        self.tokens: dict[str, PageToken] = {}

    # -- list ----------------------------------------------------------------------------------

    def list(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = call.parts[0]
        fields = _fields(call, mandatory=True)
        per_page = _int_param(call, "per_page", MAX_PER_PAGE, 1, MAX_PER_PAGE)
        sort_by = call.query.get("sort_by", "id")
        sort_order = call.query.get("sort_order", "desc")
        if sort_by not in SORTABLE:
            raise _param_error(
                "INVALID_DATA", "invalid data", param_name="sort_by", supported_values=list(SORTABLE)
            )
        if sort_order not in ("asc", "desc"):
            raise _param_error("INVALID_DATA", "invalid data", param_name="sort_order")
        if "page" in call.query and "page_token" in call.query:
            raise _param_error(
                "AMBIGUITY_DURING_PROCESSING",
                "page and page_token cannot be given together",
                ambiguity_due_to=["page", "page_token"],
            )
        if "cvid" in call.query and "sort_by" in call.query:
            raise _param_error(
                "AMBIGUITY_DURING_PROCESSING",
                "cvid and sort_by cannot be given together",
                ambiguity_due_to=["cvid", "sort_by"],
            )
        bound = tuple((k, call.query.get(k)) for k in BOUND_PARAMS)
        since_raw = call.headers.get("if-modified-since", "")
        now = self.emu.clock.now()
        token_value = call.query.get("page_token")
        if token_value:
            tok = self.tokens.get(token_value)
            if (
                tok is None
                or tok.org_id != org.org_id
                or tok.user_id != call.token.user_id
                or tok.module != module
            ):
                raise _param_error("INVALID_DATA", "invalid data", param_name="page_token")
            if tok.expiry <= now:
                raise _param_error("EXPIRED_VALUE", "the page token has expired", param_name="page_token")
            if tok.bound != bound or tok.modified_since != since_raw:
                raise _param_error(
                    "TOKEN_BOUND_DATA_MISMATCH",
                    "the parameters do not match the page token",
                    param_name="page_token",
                )
            start, page, order = tok.start, tok.page, tok.order
        else:
            order = ()
            page = _int_param(call, "page", 1, 1, None)
            start = (page - 1) * per_page
            if start + per_page > DISCRETE_LIMIT:
                raise _param_error(
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    "you cannot fetch more than 2000 records with page; use page_token",
                    limit=DISCRETE_LIMIT,
                )
        if start + per_page > TOKEN_LIMIT:
            raise _param_error(
                "PAGINATION_LIMIT_EXCEEDED", "you cannot fetch more than 100000 records", limit=TOKEN_LIMIT
            )
        ids = [i for i in call.query.get("ids", "").split(",") if i]
        if len(ids) > MAX_IDS:
            raise _param_error("LIMIT_EXCEEDED", "Record count exceeded", limit=MAX_IDS, param_name="ids")
        since = _modified_since(call)
        if not order:
            records = list(org.records[module].values())
            if ids:
                wanted = set(ids)
                records = [r for r in records if r["id"] in wanted]
            if since is not None:
                records = [r for r in records if r["_Modified_Time"] >= since.replace(microsecond=0)]
            records.sort(key=_sort_key(sort_by), reverse=sort_order == "desc")
            if not records:
                return (304 if since is not None else 204), None
            order = tuple(r["id"] for r in records)
        stored = org.records[module]
        chunk = [stored[i] for i in order[start : start + per_page] if i in stored]
        if not chunk:
            return 204, None
        more = start + per_page < len(order)
        info: dict = {
            "per_page": per_page,
            "count": len(chunk),
            "page": page,
            "sort_by": sort_by,
            "sort_order": sort_order,
            "more_records": more,
        }
        if more:
            new = secrets.token_hex(24)
            expiry = now + PAGE_TOKEN_LIFETIME
            self.tokens[new] = PageToken(
                org.org_id,
                call.token.user_id,
                module,
                bound,
                start + per_page,
                page + 1,
                expiry,
                since_raw,
                order,
            )
            info["next_page_token"] = new
            info["page_token_expiry"] = org.fmt(expiry)
        wanted_fields = [f for f in fields if f != "id"] if fields else None
        data = [org.render(module, r, wanted_fields, subforms=False) for r in chunk]
        return 200, {"data": data, "info": info}

    # -- get one -------------------------------------------------------------------------------

    def _one(self, call: Call) -> dict | None:
        org: OrgState = call.org
        module, key = call.parts[0], call.parts[1]
        external = call.headers.get("x-external")
        if external:
            f = _external_field(org, module, external)
            return org.find_by(module, f, key)
        return org.records[module].get(key)

    def get(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = call.parts[0]
        rec = self._one(call)
        if rec is None:
            return 204, None
        fields = _fields(call, mandatory=False)
        return 200, {"data": [org.render(module, rec, [f for f in fields if f != "id"] if fields else None)]}

    # -- related list --------------------------------------------------------------------------

    def related(self, call: Call) -> tuple[int, Any]:
        """`GET /{module}/{id}/{related_list}`: the related records with the asked fields (mandatory), the
        relation's own fields among them; 204 when the record has none; page/per_page as on lists."""
        org: OrgState = call.org
        module, rid, name = call.parts
        target, rel_fields = org.related_list(module, name)
        if target is None:
            raise _param_error("INVALID_DATA", "The relation name given seems to be invalid", api_name=name)
        fields = _fields(call, mandatory=True, module=target, also=rel_fields) or []
        per_page = _int_param(call, "per_page", MAX_PER_PAGE, 1, MAX_PER_PAGE)
        page = _int_param(call, "page", 1, 1, None)
        if rid not in org.records[module]:
            raise _param_error("INVALID_DATA", "the id given seems to be invalid", api_name="id")
        rows = [
            (org.records[target][r["id"]], r)
            for r in org.relations.get((module, rid, name), [])
            if r["id"] in org.records[target]
        ]
        chunk = rows[(page - 1) * per_page : page * per_page]
        if not chunk:
            return 204, None
        own = [f for f in fields if f != "id" and f not in rel_fields]
        data = []
        for rec, relation in chunk:
            out = org.render(target, rec, own, subforms=False)
            out.update({f: relation.get(f) for f in rel_fields if f in fields})
            data.append(out)
        more = page * per_page < len(rows)
        return 200, {"data": data, "info": {"per_page": per_page, "count": len(data), "page": page,
                                            "more_records": more}}  # fmt: skip

    # -- deleted -------------------------------------------------------------------------------

    def deleted(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = call.parts[0]
        kind = call.query.get("type", "all")
        if kind not in ("all", "recycle", "permanent"):
            raise _param_error("INVALID_DATA", "invalid data", param_name="type")
        per_page = _int_param(call, "per_page", MAX_PER_PAGE, 1, MAX_PER_PAGE)
        page = _int_param(call, "page", 1, 1, None)
        now = self.emu.clock.now()
        items = []
        for d in org.deleted[module]:
            age = now - d["_deleted"]
            if age > timedelta(days=120):
                continue
            dtype = "recycle" if age <= timedelta(days=60) else "permanent"
            if kind != "all" and kind != dtype:
                continue
            items.append({**d, "type": dtype})
        since = _modified_since(call)
        if since is not None:
            items = [d for d in items if d["_deleted"] >= since.replace(microsecond=0)]
        items.sort(key=lambda d: d["_deleted"], reverse=True)
        chunk = items[(page - 1) * per_page : page * per_page]
        if not chunk:
            return (304 if since is not None else 204), None
        data = [
            {k: v for k, v in d.items() if not k.startswith("_")} | {"deleted_time": org.fmt(d["_deleted"])}
            for d in chunk
        ]
        info = {
            "per_page": per_page,
            "count": len(chunk),
            "page": page,
            "more_records": page * per_page < len(items),
        }
        return 200, {"data": data, "info": info}

    def count(self, call: Call) -> tuple[int, Any]:
        return 200, {"count": len(call.org.records[call.parts[0]])}

    # -- search --------------------------------------------------------------------------------

    def search(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = call.parts[0]
        mdef = org.modules[module]
        q = call.query
        per_page = _int_param(call, "per_page", MAX_PER_PAGE, 1, MAX_PER_PAGE)
        page = _int_param(call, "page", 1, 1, None)
        if page * per_page > SEARCH_LIMIT:
            raise _param_error(
                "LIMIT_REACHED", "search results are limited to 2000 records", limit=SEARCH_LIMIT
            )
        fields = _fields(call, mandatory=False)

        def getter_for(rec):
            return lambda path: org.value(module, rec, path)

        def typer(path):
            return org.type_of(module, path)

        if q.get("criteria"):
            try:
                node = parse_criteria(q["criteria"])
            except QueryError as exc:
                raise ApiError(400, exc.code, str(exc), exc.details) from None
            for name in criteria_fields(node):
                if not org.path_exists(module, name):
                    raise ApiError(400, "INVALID_QUERY", "invalid query formed", {"api_name": name})
            match = lambda rec: eval_criteria(node, getter_for(rec), typer)  # noqa: E731
        elif q.get("email"):
            email = q["email"].strip().lower()
            names = [f.api_name for f in mdef.fields if f.data_type == "email"]
            match = lambda rec: any(str(rec.get(n) or "").lower() == email for n in names)  # noqa: E731
        elif q.get("phone"):
            digits = "".join(ch for ch in q["phone"] if ch.isdigit())
            if not digits:
                raise ApiError(400, "INVALID_DATA", "invalid data", {"param_name": "phone"})
            names = [f.api_name for f in mdef.fields if f.data_type == "phone"]
            match = lambda rec: any(  # noqa: E731
                digits in "".join(ch for ch in str(rec.get(n) or "") if ch.isdigit()) for n in names
            )
        elif "word" in q:
            word = q["word"].strip()
            if len(word) < 2 or any(ch in word for ch in "()\\,:"):
                raise ApiError(400, "INVALID_DATA", "invalid data", {"param_name": "word"})
            low = word.lower()
            names = [f.api_name for f in mdef.fields if f.data_type in TEXT_TYPES or f.data_type == "lookup"]

            def match(rec):
                for n in names:
                    v = org.value(module, rec, n)
                    text = v.get("name", "") if isinstance(v, dict) else v
                    if isinstance(text, str) and low in text.lower():
                        return True
                return False
        else:
            raise ApiError(
                400,
                "EXPECTED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"expected_params": ["criteria", "email", "phone", "word"]},
            )
        hits = sorted((r for r in org.records[module].values() if match(r)), key=lambda r: int(r["id"]))
        hits = hits[:SEARCH_LIMIT]
        chunk = hits[(page - 1) * per_page : page * per_page]
        if not chunk:
            return 204, None
        wanted = [f for f in fields if f != "id"] if fields else None
        info = {
            "per_page": per_page,
            "count": len(chunk),
            "page": page,
            "more_records": page * per_page < len(hits),
        }
        return 200, {"data": [org.render(module, r, wanted, subforms=False) for r in chunk], "info": info}

    # -- COQL ----------------------------------------------------------------------------------

    def coql(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        body = call.json()
        if not isinstance(body, dict) or not body.get("select_query"):
            raise ApiError(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "select_query"},
            )
        try:
            query = parse_coql(str(body["select_query"]))
        except QueryError as exc:
            raise ApiError(400, exc.code, str(exc), exc.details) from None
        mdef = org.find_module(query.module)
        table = subform_table(org, query.module) if mdef is None else None
        if table is not None:  # a subform module: its lines, each with Parent_Id
            records, value, typer = table.rows(), table.value, table.type_of
        elif mdef is not None:
            module = mdef.api_name
            records = list(org.records[module].values())

            def value(rec, path, module=module):
                return org.value(module, rec, path)

            def typer(path, module=module):
                return org.type_of(module, path)
        else:
            raise ApiError(
                400,
                "INVALID_QUERY",
                "invalid query formed",
                {"reason": "invalid module", "module": query.module},
            )
        for name in [*query.fields, *where_fields(query.where), *(o[0] for o in query.order)]:
            if name.lower() != "id" and typer(name) is None:
                raise ApiError(400, "INVALID_QUERY", "invalid query formed", {"column_name": name})
            head = mdef.field_ci(name.split(".")[0]) if mdef is not None else None
            if head is not None and head.data_type == "subform":
                raise ApiError(
                    400,
                    "INVALID_QUERY",
                    "invalid query formed",
                    {"column_name": name, "reason": "subforms cannot be queried"},
                )

        rows = [r for r in records if eval_where(query.where, lambda path, r=r: value(r, path), typer)]
        order = query.order or [("id", False)]
        for name, desc in reversed(order):
            rows.sort(key=_coql_key(value, typer, name), reverse=desc)
        page = rows[query.offset : query.offset + query.limit]
        if not page:
            return 204, None
        data = [self._coql_row(org, value, typer, query.fields, r) for r in page]
        info = {"count": len(data), "more_records": query.offset + query.limit < len(rows)}
        return 200, {"data": data, "info": info}

    @staticmethod
    def _coql_row(org: OrgState, value, typer, fields: list[str], rec: dict) -> dict:
        row: dict = {}
        for name in fields:
            v = value(rec, name)
            dtype = typer(name)
            if isinstance(v, datetime):
                v = org.fmt(v)
            elif isinstance(v, dict) and dtype in ("lookup", "ownerlookup"):
                v = {"id": v.get("id")}
            elif isinstance(v, (dict, list)):
                v = copy.deepcopy(v)
            row[name] = v
        row["id"] = rec["id"]
        return row


def _sort_key(sort_by: str):
    if sort_by == "id":
        return lambda r: int(r["id"])
    return lambda r: (r["_" + sort_by], int(r["id"]))


def _coql_key(value, typer, name: str):
    dtype = typer(name)

    def key(rec):
        v = value(rec, name)
        if name.lower() == "id":
            return (0, int(rec["id"]))
        if isinstance(v, dict):
            v = v.get("name") or v.get("id")
        if v is None:
            return (1, "")
        if dtype in NUMBER_TYPES:
            return (0, float(v))
        if isinstance(v, datetime):
            return (0, v.timestamp())
        return (0, str(v).lower())

    return key


def _external_field(org: OrgState, module: str, header: str) -> str:
    """`X-EXTERNAL: Accounts.Xero_Contact_ID` → the external field's api name (checked)."""
    mod, _, name = header.partition(".")
    mdef = org.modules[module]
    f = mdef.field(name)
    if mod.lower() != module.lower() or f is None or not f.external:
        raise ApiError(
            400, "INVALID_DATA", "The value of the external field is invalid.", {"api_name": name or header}
        )
    return f.api_name


# Re-exported for the write handlers (X-EXTERNAL updates and upserts).
external_field = _external_field
