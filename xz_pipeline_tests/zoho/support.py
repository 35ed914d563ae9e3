"""Test support for the Zoho client: one emulated org on loopback, behind the fault middleware.

`ZohoSandbox` serves a `ZohoEmulator` (one org, one registered client, a consented refresh token)
with uvicorn in a thread; `client()` builds a `ZohoClient` against it exactly as the resource does,
without ZOHO_API_DOMAIN, so the client must adopt the token response's `api_domain`. `AfterCall` lets
a test change the org between two of the client's calls (a record modified mid-read), and
`SentRecorder` keeps what the client sent (headers, JSON bodies) for assertions the emulator cannot
make (it logs paths and queries only).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from openapi_core.testing import MockRequest

from xz_pipeline.core.http import Budgets
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.sandbox.clock import Clock, ManualClock
from xz_pipeline.sandbox.faults import FaultMiddleware
from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline.sandbox.zoho import ZohoEmulator, ZohoLimits
from xz_pipeline.zoho.client import ZohoClient
from xz_pipeline_tests.sandbox.zoho.support import zoho_spec
from xz_pipeline_tests.timers import ManualTimer, NoWaitTimer  # noqa: F401 (used by the tests)

CLIENT_ID = "1000.ZOHOCLIENTTEST0123456789"
CLIENT_SECRET = "zoho-client-secret-0123456789abcdef"
T0 = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)


class AfterCall:
    """ASGI wrapper: after the n-th request whose path starts with `prefix` is answered, run a hook."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hooks: dict[tuple[str, int], Callable[[], None]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def at(self, prefix: str, n: int, hook: Callable[[], None]) -> None:
        self.hooks[(prefix, n)] = hook

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] != "http":
            return
        due = []
        with self._lock:
            for prefix, n in list(self.hooks):
                if scope["path"].startswith(prefix) and scope["method"] == "GET":
                    self._counts[prefix] = self._counts.get(prefix, 0) + 1
                    if self._counts[prefix] == n:
                        due.append(self.hooks.pop((prefix, n)))
        for hook in due:
            hook()


class SentRecorder:
    """Keeps (method, path, headers, JSON body) of every request a client's session sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict, Any]] = []

    def attach(self, session: requests.Session) -> None:
        session.hooks.setdefault("response", []).append(self._hook)

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        req = response.request
        body = req.body
        try:
            parsed = json.loads(body) if body and "json" in req.headers.get("Content-Type", "") else None
        except ValueError:
            parsed = None
        self.sent.append((req.method or "", req.path_url.split("?")[0], dict(req.headers), parsed))

    def bodies(self, method: str, path_end: str) -> list[Any]:
        return [b for m, p, _, b in self.sent if m == method and p.endswith(path_end)]


# Operations whose request schema in the official v8 files is the response schema (every response key
# required), so no real request can pass; Zoho's own docs show the bodies we send (zoho-api.md §9-§11).
SPEC_DEFECTS = {
    ("POST", "tags"): "Tag requires color_code, created_time, ...; docs: name or id is enough",
    ("POST", "fields"): "Field requires all of its metadata; docs: field_label and data_type",
    ("POST", "notifications"): "channel_id typed object; docs and examples send a number string",
    ("PATCH", "notifications"): "channel_id typed object; docs and examples send a number string",
}


def spec_stem(path: str) -> str:
    """Which official v8 file describes a /crm/v8 path."""
    rest = path[len("/crm/v8/") :]
    fixed = {"coql": "coql", "org": "org", "actions/watch": "notifications"}
    if rest in fixed:
        return fixed[rest]
    if rest.startswith("settings/"):
        return rest.split("/")[1]
    if rest.endswith(("/add_tags", "/remove_tags")):
        return "tags"
    if rest.endswith("/search"):
        return "module_search"
    return "record"


class SpecChecker:
    """Validates every /crm/v8 request a client sends against the official v8 OpenAPI files."""

    def __init__(self, specs: Path) -> None:
        self.spec = zoho_spec(str(specs))
        self.checked: list[str] = []
        self.exempt: list[str] = []
        self.errors: list[str] = []

    def attach(self, session: requests.Session) -> None:
        session.hooks.setdefault("response", []).append(self._hook)

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        req = response.request
        parts = urlsplit(req.url or "")
        if not parts.path.startswith("/crm/v8/"):
            return
        method, stem = (req.method or "GET").upper(), spec_stem(parts.path)
        where = f"{method} {parts.path}"
        if (method, stem) in SPEC_DEFECTS:
            self.exempt.append(where)
            return
        body = req.body.encode() if isinstance(req.body, str) else req.body
        mock = MockRequest(
            "https://zohoapis.com",
            method.lower(),
            parts.path,
            args=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=dict(req.headers),
            data=body,
            content_type=req.headers.get("Content-Type", "application/json"),
        )
        try:
            self.spec.api(stem).validate_request(mock)
        except Exception as exc:  # openapi-core raises a family of validation errors
            cause = exc.__cause__ or exc
            detail = "; ".join(str(e)[:200] for e in getattr(cause, "schema_errors", None) or []) or str(
                cause
            )
            self.errors.append(f"{where}: {type(exc).__name__}: {detail}"[:1500])
        self.checked.append(where)


class ZohoSandbox:
    """One Zoho emulator with one org on a loopback port; `client()` builds a ZohoClient for it."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        limits: ZohoLimits | None = None,
        faults: str | None = None,
        seed: int = 1,
        edition: str | None = None,
    ) -> None:
        self.clock = clock or ManualClock(T0)
        self.emulator = ZohoEmulator(clock=self.clock, limits=limits or ZohoLimits(credits_per_day=1_000_000))
        self.emulator.register_client(CLIENT_ID, CLIENT_SECRET, ["http://localhost:8765/callback"])
        self.org_id = self.emulator.add_org("Pōhutukawa Test Ltd", edition=edition)
        self.refresh_token = self.emulator.grant_refresh_token(CLIENT_ID, self.org_id)
        self.hooks = AfterCall(self.emulator.app)
        self.faults = FaultMiddleware(self.hooks, faults, self.emulator, vendor="zoho", seed=seed)
        self.server = LoopbackServer(self.faults, name="zoho-client-test")

    def __enter__(self) -> ZohoSandbox:
        self.server.start()
        self.emulator.base_url = self.server.url
        return self

    def __exit__(self, *exc: object) -> None:
        self.faults.close()
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def org(self):
        return self.emulator.orgs[self.org_id]

    def client(self, store_dir: Path, **kw: Any) -> ZohoClient:
        args: dict[str, Any] = dict(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=self.refresh_token,
            accounts_url=self.url,
            token_store=TokenStore(store_dir),
            budgets=Budgets(),
        )
        if isinstance(self.clock, ManualClock):
            args["clock"] = self.clock
            args.setdefault("timer", ManualTimer(self.clock))
        args.update(kw)
        return ZohoClient(**args)

    def load(self, module: str, records: list[dict]) -> None:
        self.emulator.load(self.org_id, module, records)

    def requests_to(self, prefix: str, method: str | None = None, since: int = 0) -> list:
        return [
            r
            for r in self.emulator.received[since:]
            if r.path.startswith(prefix) and (method is None or r.method == method)
        ]

    def token_calls(self, since: int = 0) -> list:
        return self.requests_to("/oauth/v2/token", "POST", since)

    def modify(self, module: str, record_id: str, values: dict, *, seconds: float = 5) -> None:
        """Change a record as a CRM user would, a few seconds later (its Modified_Time moves)."""
        if isinstance(self.clock, ManualClock):
            self.clock.advance(seconds)
        with self.emulator.lock:
            org = self.org
            rec = org.records[module][record_id]
            org.update(module, rec, values, org.api_user, self.clock.now())


def accounts(n: int, *, start: int = 0, modified: datetime | None = None, step: float = 1.0) -> list[dict]:
    """API-shaped accounts with fixed ids and Modified_Time `step` seconds apart from `modified`."""
    base = modified or T0.replace(hour=1)
    out = []
    for i in range(start, start + n):
        stamp = datetime.fromtimestamp(base.timestamp() + i * step, UTC).isoformat()
        out.append(
            {
                "id": str(5_725_767_000_000_000_000 + i),
                "Account_Name": f"Account {i:05d}",
                "Tax_Number": f"GST-{i:06d}",
                "Created_Time": stamp,
                "Modified_Time": stamp,
            }
        )
    return out
