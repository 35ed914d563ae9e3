"""Helpers for the Zoho emulator tests: an org with a token, a served emulator, and the official v8 spec.

The v8 JSON files reference each other through raw.githubusercontent.com URLs; `ZohoSpec` embeds every
file under `x-files` and rewrites each `$ref` to a local JSON pointer, so nothing is fetched. Two known
defects of these files are worked around, visibly: `Notification.notify_url` carries a pattern no real
URL matches (README caveat), and success responses are declared as `oneOf [wrapper, API_Exception]`
where API_Exception has no required keys, so every body matches both branches; the success branch is
kept for 2xx bodies (the first, JSON branch where a file branch is also offered). Operations that declare only `200` have their 201/207 bodies checked against it
(the richer OAS 3.1 generation documents the same body for those codes).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from starlette.testclient import TestClient

from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline.sandbox.zoho import DEFAULT_SCOPES, ZohoEmulator, ZohoLimits

CLIENT_ID = "1000.TESTCLIENT"
CLIENT_SECRET = "test-secret-0123456789"
REDIRECT = "http://127.0.0.1:8765/callback"
RAW_PREFIX = "https://raw.githubusercontent.com/Zohocorp-Pvt-Ltd/crm-oas/refs/heads/main/v8.0/"


@dataclass
class Org:
    """An emulator, one org with a consented client, and an authorised TestClient."""

    emu: ZohoEmulator
    org_id: str
    refresh_token: str
    access_token: str
    client: TestClient
    clock: ManualClock

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Zoho-oauthtoken {self.access_token}"}

    def get(self, path: str, **kw) -> Any:
        return self.client.get(f"/crm/v8/{path}", headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, path: str, **kw) -> Any:
        return self.client.post(f"/crm/v8/{path}", headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def put(self, path: str, **kw) -> Any:
        return self.client.put(f"/crm/v8/{path}", headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def patch(self, path: str, **kw) -> Any:
        return self.client.patch(f"/crm/v8/{path}", headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def delete(self, path: str, **kw) -> Any:
        return self.client.delete(f"/crm/v8/{path}", headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def refresh(self) -> dict:
        return self.client.post(
            "/oauth/v2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": self.refresh_token,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        ).json()


def make_org(
    *,
    limits: ZohoLimits | None = None,
    scopes: str = DEFAULT_SCOPES,
    edition: str | None = None,
    timezone: str = "Pacific/Auckland",
    profile: str | None = None,
) -> Org:
    clock = ManualClock()
    emu = ZohoEmulator(clock=clock, limits=limits)
    emu.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT])
    org_id = emu.add_org("Kōwhai Test Ltd", edition=edition, timezone=timezone, profile=profile)
    rt = emu.grant_refresh_token(CLIENT_ID, org_id, scopes)
    client = TestClient(emu.app)
    org = Org(emu, org_id, rt, "", client, clock)
    org.access_token = org.refresh()["access_token"]
    return org


def accounts(n: int, start: int = 0, **extra) -> list[dict]:
    return [{"Account_Name": f"Account {i:05d}", **extra} for i in range(start, start + n)]


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """An ASGI app on 127.0.0.1 (a free port) in a daemon thread; yields its base URL."""
    server = LoopbackServer(app, name="zoho-test").start()
    try:
        yield server.url
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# The official v8 OpenAPI files, resolved locally


def _rewrite(obj: Any, stem: str) -> Any:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "$ref" and isinstance(v, str):
                if v.startswith(RAW_PREFIX):
                    other, _, frag = v[len(RAW_PREFIX) :].partition("#")
                    v = f"#/x-files/{Path(other).stem}{frag}"
                elif v.startswith("#/"):
                    v = f"#/x-files/{stem}{v[1:]}"
            out[k] = _rewrite(v, stem)
        return out
    if isinstance(obj, list):
        return [_rewrite(v, stem) for v in obj]
    return obj


def _success_branch(schema: Any) -> Any:
    """Replace `oneOf [X, API_Exception]` by X (API_Exception requires nothing, so it matches anything)."""
    if isinstance(schema, dict):
        one = schema.get("oneOf")
        if isinstance(one, list):
            rest = [o for o in one if not _is_exception(o)]
            if rest and len(one) > 1:
                return rest[0]  # the JSON wrapper; a File_Body_Wrapper alternative matches any object too
    return schema


def _is_exception(schema: Any) -> bool:
    return isinstance(schema, dict) and str(schema.get("$ref", "")).rsplit("/", 1)[-1] in (
        "API_Exception",
        "APIException",
        "ErrorResponse",
    )


def _top_level_success(doc: dict) -> dict:
    """Apply `_success_branch` to each response body's top schema only (items keep their oneOf)."""
    responses = list((doc.get("components", {}).get("responses") or {}).values())
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            if isinstance(op, dict):
                responses += list((op.get("responses") or {}).values())
    for resp in responses:
        for media in (resp.get("content") or {}).values():
            if "schema" in media:
                media["schema"] = _success_branch(media["schema"])
    return doc


class ZohoSpec:
    """openapi-core validators for the v8 files (one per file), built once per test session."""

    def __init__(self, folder: Path) -> None:
        files = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
        notif = files.get("notifications", {}).get("components", {}).get("schemas", {}).get("Notification")
        if notif:
            notif["properties"]["notify_url"].pop("pattern", None)  # the known-broken pattern (README)
        self.files = {s: _top_level_success(_rewrite(d, s)) for s, d in files.items()}
        self._apis: dict[str, OpenAPI] = {}

    def api(self, stem: str) -> OpenAPI:
        if stem not in self._apis:
            doc = dict(self.files[stem])
            doc["x-files"] = self.files
            self._apis[stem] = OpenAPI.from_dict(doc)
        return self._apis[stem]

    def declared(self, stem: str, method: str, path: str) -> set[str]:
        return set(self.files[stem]["paths"][path][method.lower()].get("responses", {}))

    def validate(
        self, stem: str, template: str, method: str, path: str, response, query: dict | None = None
    ) -> None:
        """Check one emulator response against the operation `template` of file `stem`."""
        status = str(response.status_code)
        declared = self.declared(stem, method, template)
        if status not in declared:
            assert status in ("201", "207") and "200" in declared, f"{status} not declared for {template}"
            status = "200"
        request = MockRequest("https://zohoapis.com", method.lower(), path, args=query or {})
        body = response.content
        self.api(stem).validate_response(
            request, MockResponse(body, status_code=int(status), content_type="application/json")
        )


@functools.cache
def zoho_spec(specs_dir: str) -> ZohoSpec:
    return ZohoSpec(Path(specs_dir) / "zoho" / "v8.0")
