"""The emulated Composite API: `POST /crm/v8/__composite_requests`, up to five sub-requests in one call.

As Zoho documents it (developer docs, "Composite API", v3-v8): the body carries `__composite_requests`
(1 to 5 items, each `sub_request_id`, `uri` under `/crm/.../v<n>/`, `method`, optional `params`,
`body`, `headers`), `rollback_on_fail` (default false) and `parallel_execution` (default true, false
when rolling back; both true is AMBIGUITY_DURING_PROCESSING). A sub-request may take a value from an
earlier one's answer with `@{sub_request_id:$.json.path}`. The answer lists each sub-request's own
answer (`details.response`: status_code, body, headers) in input order. The call needs the
`ZohoCRM.composite_requests.CUSTOM` scope and each sub-request's own; it costs the sub-requests'
credits together. Sub-requests run one after the other here (parallel independent ones cannot be told
apart from that). Rolling back on failure is not emulated: a request asking for it is refused by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from xz_pipeline.sandbox.zoho.call import ApiError, Call, Route

MAX_SUB_REQUESTS = 5
URI = re.compile(r"^/crm(/.*)?/v[0-9]+([.][0-9]+)?/.*")
SUB_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_]*$")
REFERENCE = re.compile(r"@\{([a-zA-Z0-9][a-zA-Z0-9_]*):(\$[^}]*)\}")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FORBIDDEN_HEADERS = ("authorization", "x-crm-org")


def _bad(message: str, **details: Any) -> ApiError:
    return ApiError(400, "INVALID_DATA", message, details)


@dataclass
class Sub:
    """One parsed sub-request, before its references are resolved."""

    sub_id: str
    method: str
    version: str
    parts: list[str]
    params: dict[str, str]
    headers: dict[str, str]
    body: Any


def parse(call: Call) -> list[Sub]:
    """The sub-requests of a composite call; a malformed one makes the whole call a 400."""
    body = call.json()
    if not isinstance(body, dict):
        raise ApiError(
            400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "__composite_requests"}
        )
    if body.get("rollback_on_fail") is True and body.get("parallel_execution") is True:
        raise ApiError(400, "AMBIGUITY_DURING_PROCESSING", "rollback_on_fail and parallel_execution cannot both be true",
                       {"ambiguity_due_to": ["rollback_on_fail", "parallel_execution"]})  # fmt: skip
    if body.get("rollback_on_fail") is True:
        raise ApiError(400, "NOT_SUPPORTED", "rollback_on_fail is not emulated by this sandbox", {"api_name": "rollback_on_fail"})  # fmt: skip
    items = body.get("__composite_requests")
    if not isinstance(items, list) or not items:
        raise ApiError(
            400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "__composite_requests"}
        )
    if len(items) > MAX_SUB_REQUESTS:
        raise ApiError(400, "LIMIT_EXCEEDED", "sub-request limit exceeded",
                       {"api_name": "__composite_requests", "limit": MAX_SUB_REQUESTS})  # fmt: skip
    subs, seen = [], set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad("invalid data", json_path=f"$.__composite_requests[{i}]")
        sub_id = str(item.get("sub_request_id") or i)
        if not SUB_ID.match(sub_id) or sub_id in seen:
            raise _bad("invalid data", json_path=f"$.__composite_requests[{i}].sub_request_id")
        seen.add(sub_id)
        method, uri = str(item.get("method") or "").upper(), str(item.get("uri") or "")
        if method not in METHODS:
            raise _bad("invalid data", json_path=f"$.__composite_requests[{i}].method")
        split = urlsplit(uri)
        if not URI.match(split.path):
            raise _bad("invalid data", json_path=f"$.__composite_requests[{i}].uri")
        segments = [p for p in split.path.split("/") if p]
        k = next(j for j, p in enumerate(segments) if re.fullmatch(r"v[0-9]+([.][0-9]+)?", p))
        headers = {str(h).lower(): str(v) for h, v in (item.get("headers") or {}).items()}
        if any(h in FORBIDDEN_HEADERS for h in headers):
            raise _bad("invalid data", json_path=f"$.__composite_requests[{i}].headers")
        params = {
            **dict(parse_qsl(split.query)),
            **{str(k2): str(v) for k2, v in (item.get("params") or {}).items()},
        }
        subs.append(Sub(sub_id, method, segments[k], segments[k + 1 :], params, headers, item.get("body")))
    return subs


def _pick(value: Any, path: str) -> Any:
    """A value by a small JSONPath: `$.data[0].details.id`."""
    for key, index in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path[1:]):
        if key:
            value = value.get(key) if isinstance(value, dict) else None
        else:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
    return value


def _resolve(value: Any, answers: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole:
            return _pick(answers.get(whole.group(1)), whole.group(2))
        return REFERENCE.sub(lambda m: str(_pick(answers.get(m.group(1)), m.group(2))), value)
    if isinstance(value, list):
        return [_resolve(v, answers) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, answers) for k, v in value.items()}
    return value


class Composite:
    """Runs the sub-requests through the emulator's own routes (scopes, validation, notifications)."""

    def __init__(self, emulator) -> None:
        self.emu = emulator

    def sub_call(self, call: Call, sub: Sub, answers: dict[str, Any]) -> Call:
        body = _resolve(sub.body, answers)
        return Call(
            method=sub.method, version=sub.version, parts=list(sub.parts), query=_resolve(sub.params, answers),
            headers=sub.headers, body=b"" if body is None else json.dumps(body).encode(), org=call.org,
            token=call.token,
        )  # fmt: skip

    def route(self, call: Call) -> Route:
        """The composite route: its scopes and credits are the sub-requests' (a sub-request that does not
        route costs nothing and answers its own error)."""
        scopes: list[tuple[str, ...]] = [("composite_requests", "CUSTOM")]
        credits = 0
        try:
            subs = parse(call)
        except ApiError:
            return Route(self.handle, scopes)
        for sub in subs:
            try:
                r = self.emu.api.route(self.sub_call(call, sub, {}))
            except ApiError:
                continue
            scopes += [s for s in r.scopes if s not in scopes]
            credits += r.credits
        return Route(self.handle, scopes, complex=True, credits=max(1, credits))

    def handle(self, call: Call) -> tuple[int, Any]:
        subs = parse(call)
        answers: dict[str, Any] = {}
        out = []
        for sub in subs:
            sc = self.sub_call(call, sub, answers)
            try:
                status, body = self.emu.api.route(sc).handler(sc)
            except ApiError as exc:
                status, body = exc.status, exc.body()
            answers[sub.sub_id] = body
            out.append({
                "code": "SUCCESS" if status < 400 else "ERROR",
                "details": {"response": {"status_code": status, "body": body, "headers": {}}},
                "message": "success" if status < 400 else "the sub-request failed",
                "status": "success" if status < 400 else "error",
                "sub_request_id": sub.sub_id,
            })  # fmt: skip
        return 200, {"__composite_requests": out}
