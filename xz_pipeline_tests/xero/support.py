"""Test support for the Xero client: an emulator on loopback, and a spec check on every request sent.

`XeroSandbox` serves one `XeroEmulator` (optionally behind the fault middleware) with uvicorn in a
thread, with one tenant and one registered app, independent of the Zoho side. `SpecChecker` hooks a
client's `requests.Session` and validates each Accounting request against the official OpenAPI file
with openapi-core, collecting any violation so a test can assert there were none.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest

from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.sandbox.clock import Clock, ManualClock
from xz_pipeline.sandbox.faults import FaultMiddleware
from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline.sandbox.xero import XeroEmulator, XeroLimits
from xz_pipeline.xero.client import XeroClient
from xz_pipeline_tests.timers import ManualTimer, NoWaitTimer  # noqa: F401 (used by the tests)

CLIENT_ID = "A1B2C3D4E5F60718293A4B5C6D7E8F90"
CLIENT_SECRET = "s3cr3t-xero-client-secret-0123456789abcdef"
SPEC_HOST = "https://api.xero.com"
BIG_LIMITS = XeroLimits(concurrent=5, per_minute=100_000, per_day=1_000_000, app_per_minute=1_000_000)


@functools.lru_cache(maxsize=2)
def load_openapi(path: str) -> OpenAPI:
    with open(path, encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    # The official file has string defaults on booleans, which the strict spec check rejects.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


class SpecChecker:
    """Validates every Accounting request a session sends against xero_accounting.yaml."""

    def __init__(self, specs: Path) -> None:
        self.openapi = load_openapi(str(specs / "xero" / "xero_accounting.yaml"))
        self.checked = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def attach(self, session: requests.Session) -> None:
        session.hooks.setdefault("response", []).append(self._hook)

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.check(response.request)

    def check(self, prepared: requests.PreparedRequest) -> None:
        parts = urlsplit(prepared.url or "")
        if not parts.path.startswith("/api.xro/2.0/"):
            return  # identity endpoints: not in the Accounting spec
        body = prepared.body
        if isinstance(body, str):
            body = body.encode()
        request = MockRequest(
            SPEC_HOST,
            (prepared.method or "GET").lower(),
            parts.path,
            args=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=dict(prepared.headers),
            data=body,
            content_type=prepared.headers.get("Content-Type", "application/json"),
        )
        try:
            self.openapi.validate_request(request)
        except Exception as exc:  # openapi-core raises a family of validation errors
            detail = "; ".join(str(e) for e in getattr(exc, "schema_errors", []) or []) or str(exc)
            with self._lock:
                self.errors.append(f"{prepared.method} {parts.path}: {type(exc).__name__}: {detail}"[:2000])
        with self._lock:
            self.checked += 1


class TokenFormRecorder:
    """ASGI wrapper that keeps the form of every token request, to see which refresh token was spent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.forms: list[dict[str, str]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/connect/token":
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        with self._lock:
            self.forms.append(dict(parse_qsl(body.decode(), keep_blank_values=True)))
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def refresh_tokens_spent(self) -> list[str]:
        with self._lock:
            return [f["refresh_token"] for f in self.forms if f.get("grant_type") == "refresh_token"]


class XeroSandbox:
    """One Xero emulator with one tenant on a loopback port; `client()` builds a checked XeroClient."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        limits: XeroLimits | None = None,
        faults: str | None = None,
        seed: int = 1,
        custom_connection: bool = False,
    ) -> None:
        self.clock = clock or Clock()
        self.emulator = XeroEmulator(clock=self.clock, limits=limits or BIG_LIMITS)
        self.tenant_id = self.emulator.add_tenant("Harbour Test Traders")
        self.emulator.register_client(
            CLIENT_ID,
            CLIENT_SECRET,
            ["http://localhost:8765/callback"],
            custom_connection_tenant=self.tenant_id if custom_connection else None,
        )
        self.refresh_token = self.emulator.grant_refresh_token(CLIENT_ID, [self.tenant_id])
        self.token_forms = TokenFormRecorder(self.emulator.app)
        self.faults = FaultMiddleware(self.token_forms, faults, self.emulator, vendor="xero", seed=seed)
        self.server = LoopbackServer(self.faults, name="xero-test")

    def __enter__(self) -> XeroSandbox:
        self.server.start()
        self.emulator.base_url = self.server.url
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, store_dir: Path, *, checker: SpecChecker | None = None, **kw: Any) -> XeroClient:
        args: dict[str, Any] = dict(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=self.refresh_token,
            api_url=self.url,
            identity_url=self.url,
            token_store=TokenStore(store_dir),
        )
        if isinstance(self.clock, ManualClock):
            args["clock"] = self.clock
            args.setdefault("timer", ManualTimer(self.clock))
        args.update(kw)
        client = XeroClient(**args)
        if checker is not None:
            checker.attach(client.http.session)
        return client

    def requests_to(self, prefix: str, method: str | None = None, since: int = 0) -> list:
        return [
            r
            for r in self.emulator.received[since:]
            if r.path.startswith(prefix) and (method is None or r.method == method)
        ]

    def token_calls(self, since: int = 0) -> list:
        return self.requests_to("/connect/token", "POST", since)


def contacts(n: int, *, start: int = 0, prefix: str = "Contact") -> list[dict]:
    """API-shaped contacts with unique names and emails."""
    return [
        {
            "Name": f"{prefix} {i:06d} Ltd",
            "EmailAddress": f"accounts{i}@{prefix.lower()}.example",
            "ContactStatus": "ACTIVE",
        }
        for i in range(start, start + n)
    ]
