"""Routing of the emulated CRM API: which handler answers a path, with which scopes, credits and weight.

A route is resolved before anything is charged, so a bad URL or module never costs credits, and the
cost of a call can depend on its body (records in a write, LIMIT of a COQL query) as Zoho's does.
"""

from __future__ import annotations

from xz_pipeline.sandbox.zoho.call import (
    ApiError,
    Call,
    Route,
    bad_method,
    bad_url,
    feature_not_supported,
    invalid_module,
)
from xz_pipeline.sandbox.zoho.composite import Composite
from xz_pipeline.sandbox.zoho.limits import coql_cost, tag_cost, write_cost
from xz_pipeline.sandbox.zoho.query import QueryError, parse_coql
from xz_pipeline.sandbox.zoho.reads import Reads
from xz_pipeline.sandbox.zoho.settings import Settings
from xz_pipeline.sandbox.zoho.subforms import subform_table
from xz_pipeline.sandbox.zoho.writes import Writes


class Api:
    """Resolves a Call to a Route, using the handler modules."""

    def __init__(self, emulator) -> None:
        self.emu = emulator
        self.reads = Reads(emulator)
        self.writes = Writes(emulator)
        self.settings = Settings(emulator)
        self.composite = Composite(emulator)

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
            if not call.org.profile.composite:
                raise feature_not_supported("Composite API")
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
            table = subform_table(call.org, query.module) if mod is None else None
            if mod is not None:
                module_scope = [("modules", mod.api_name, "READ")]
            elif table is not None:  # a subform's lines are read with the parent module's scope
                module_scope = [("modules", table.parent, "READ")]
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
