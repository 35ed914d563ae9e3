"""Routing of the emulated CRM API: which handler answers a path, with which scopes, credits and weight.

A route is resolved before anything is charged, so a bad URL or module never costs credits, and the
cost of a call can depend on its body (records in a write, LIMIT of a COQL query) as Zoho's does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xz_pipeline.sandbox.zoho_limits import coql_cost, tag_cost, write_cost
from xz_pipeline.sandbox.zoho_query import QueryError, parse_coql


class ApiError(Exception):
    """A whole-request error in Zoho's shape `{code, details, message, status}`."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}

    def body(self) -> dict:
        return {"code": self.code, "details": self.details, "message": self.message, "status": "error"}


@dataclass
class Call:
    method: str
    version: str
    parts: list[str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    org: Any = None
    token: Any = None
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    def json(self) -> Any:
        """The JSON body; a body that does not parse is a 400 INVALID_DATA."""
        if not self._parsed:
            self._parsed = True
            if self.body.strip():
                try:
                    self._json = json.loads(self.body)
                except ValueError:
                    raise ApiError(
                        400, "INVALID_DATA", "invalid data", {"reason": "body is not JSON"}
                    ) from None
        return self._json

    def data_count(self) -> int:
        try:
            body = self.json()
        except ApiError:
            return 0
        data = body.get("data") if isinstance(body, dict) else None
        return len(data) if isinstance(data, list) else 0


@dataclass
class Route:
    handler: Callable[[Call], tuple[int, Any]]
    scopes: list[tuple[str, ...]]
    complex: bool = False
    credits: int = 1


def invalid_module(index: int = 0) -> ApiError:
    return ApiError(
        400, "INVALID_MODULE", "The module name given seems to be invalid", {"resource_path_index": index}
    )


def bad_method() -> ApiError:
    return ApiError(400, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one")


def bad_url() -> ApiError:
    return ApiError(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")


class Api:
    """Resolves a Call to a Route, using the handler modules."""

    def __init__(self, emulator) -> None:
        from xz_pipeline.sandbox import zoho_composite, zoho_reads, zoho_settings, zoho_writes

        self.emu = emulator
        self.reads = zoho_reads.Reads(emulator)
        self.writes = zoho_writes.Writes(emulator)
        self.settings = zoho_settings.Settings(emulator)
        self.composite = zoho_composite.Composite(emulator)

    def route(self, call: Call) -> Route:
        p, m = call.parts, call.method
        if not p:
            raise bad_url()
        head = p[0]
        if head == "org" and len(p) == 1:
            return self._only(m, "GET", Route(self.settings.org, [("org", "READ")]))
        if head == "users" and len(p) <= 2:
            return self._only(m, "GET", Route(self.settings.users, [("users", "READ")]))
        if head == "__composite_requests" and len(p) == 1:
            return self._only(m, "POST", self.composite.route(call))
        if head == "coql" and len(p) == 1:
            return self._only(m, "POST", self._coql(call))
        if head == "settings" and len(p) >= 2:
            return self._settings(call)
        if head == "actions" and p[1:] == ["watch"]:
            op = {"GET": "READ", "POST": "CREATE", "PUT": "UPDATE", "PATCH": "UPDATE", "DELETE": "DELETE"}[m]
            return Route(self.settings.watch, [("notifications", op)])
        return self._module(call)

    @staticmethod
    def _only(method: str, allowed: str, route: Route) -> Route:
        if method != allowed:
            raise bad_method()
        return route

    def _coql(self, call: Call) -> Route:
        cost = 1
        module_scope: list[tuple[str, ...]] = []
        try:
            body = call.json()
            query = parse_coql(str((body or {}).get("select_query", "")))
            cost = coql_cost(query.limit)
            mod = call.org.find_module(query.module)
            if mod is not None:
                module_scope = [("modules", mod.api_name, "READ")]
        except (ApiError, QueryError, AttributeError):
            pass
        return Route(self.reads.coql, [("coql", "READ"), *module_scope], complex=True, credits=cost)

    def _settings(self, call: Call) -> Route:
        p, m = call.parts, call.method
        area = p[1]
        if area == "modules" and len(p) <= 3:
            return self._only(m, "GET", Route(self.settings.modules, [("settings", "modules", "READ")]))
        if area == "fields" and len(p) <= 3:
            if m == "GET":
                return Route(self.settings.fields, [("settings", "fields", "READ")])
            if m == "POST" and len(p) == 2:
                return Route(self.settings.create_fields, [("settings", "fields", "CREATE")])
            raise bad_method()
        if area == "tags":
            if len(p) == 2 and m in ("GET", "POST"):
                op = "READ" if m == "GET" else "CREATE"
                return Route(self.settings.tags, [("settings", "tags", op)])
            if len(p) == 3 and m in ("PUT", "DELETE"):
                op = "UPDATE" if m == "PUT" else "DELETE"
                return Route(self.settings.tag, [("settings", "tags", op)])
            if len(p) == 2 or len(p) == 3:
                raise bad_method()
        raise bad_url()

    def _module(self, call: Call) -> Route:
        p, m = call.parts, call.method
        mod = call.org.find_module(p[0])
        if mod is None:
            raise invalid_module()
        call.parts[0] = name = mod.api_name
        n = call.data_count() if m in ("POST", "PUT") else 0

        def scope(op: str) -> list[tuple[str, ...]]:
            return [("modules", name, op)]

        if len(p) == 1:
            if m == "GET":
                complex_read = "sort_by" in call.query or "cvid" in call.query
                return Route(self.reads.list, scope("READ"), complex=complex_read)
            if m == "POST":
                return Route(self.writes.insert, scope("CREATE"), complex=n > 10, credits=write_cost(n))
            if m == "PUT":
                return Route(self.writes.update, scope("UPDATE"), complex=n > 10, credits=write_cost(n))
            if m == "DELETE":
                return Route(self.writes.delete, scope("DELETE"))
            raise bad_method()
        sub = p[1]
        if len(p) == 2 and sub == "upsert":
            route = Route(
                self.writes.upsert, scope("CREATE") + scope("UPDATE"), complex=n > 10, credits=write_cost(n)
            )
            return self._only(m, "POST", route)
        if len(p) == 2 and sub == "search":
            return self._only(m, "GET", Route(self.reads.search, scope("READ"), complex=True))
        if len(p) == 2 and sub == "deleted":
            return self._only(m, "GET", Route(self.reads.deleted, scope("READ")))
        if len(p) == 3 and sub == "actions" and p[2] == "count":
            return self._only(m, "GET", Route(self.reads.count, scope("READ")))
        if len(p) == 3 and sub == "actions" and p[2] in ("add_tags", "remove_tags"):
            ids = self._tag_ids(call)
            return self._only(m, "POST", Route(self.writes.tags, scope("UPDATE"), credits=tag_cost(ids)))
        if len(p) == 2:
            if m == "GET":
                return Route(self.reads.get, scope("READ"))
            if m == "PUT":
                return Route(self.writes.update, scope("UPDATE"), credits=write_cost(max(n, 1)))
            if m == "DELETE":
                return Route(self.writes.delete, scope("DELETE"))
            raise bad_method()
        if len(p) == 4 and p[2] == "actions" and p[3] in ("add_tags", "remove_tags"):
            return self._only(m, "POST", Route(self.writes.tags, scope("UPDATE")))
        if len(p) == 3 and sub != "actions":  # a record's related list
            return self._only(m, "GET", Route(self.reads.related, scope("READ")))
        raise bad_url()

    @staticmethod
    def _tag_ids(call: Call) -> int:
        try:
            body = call.json()
        except ApiError:
            return 1
        ids = body.get("ids") if isinstance(body, dict) else None
        if isinstance(ids, list):
            return len(ids)
        return len([i for i in call.query.get("ids", "").split(",") if i]) or 1
