"""Fixtures for the Xero emulator tests: a seeded tenant, a token, and a client that checks every answer.

`SpecClient` sends requests through Starlette's TestClient and validates each accounting request
and response against the official OpenAPI file with openapi-core. Statuses the spec does not
declare for an operation (401/403/404/429, and 400 bodies the spec leaves untyped) are checked
against the fact sheet's shapes instead, with the spec's own `Error` schema where it applies.
Every accounting response must carry the three rate-limit headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml
from starlette.testclient import TestClient

from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.xero import XeroEmulator, XeroLimits
from xz_pipeline_tests.conftest import specs_dir

SPEC_HOST = "https://api.xero.com"
API = "/api.xro/2.0"
LIMIT_HEADERS = ("x-daylimit-remaining", "x-minlimit-remaining", "x-appminlimit-remaining")
NOT_FOUND = "The resource you're looking for cannot be found"


@lru_cache(maxsize=1)
def _spec(path: str):
    from openapi_core import Config, OpenAPI

    with open(path, encoding="utf-8") as fh:
        raw = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return OpenAPI.from_dict(raw, config=Config(spec_validator_cls=None)), raw


def accounting_spec():
    root = specs_dir()
    if root is None:
        pytest.skip(
            "official API specs not found: set XZ_SPECS_DIR or place shared/specs beside the checkout"
        )
    return _spec(str(Path(root) / "xero" / "xero_accounting.yaml"))


def validate_schema(instance, schema_name: str) -> None:
    """Validate a body against one of the spec's component schemas (for statuses the spec leaves untyped)."""
    from openapi_schema_validator import OAS30Validator, validate

    _api, raw = accounting_spec()
    validate(
        instance,
        {"$ref": f"#/components/schemas/{schema_name}", "components": raw["components"]},
        cls=OAS30Validator,
    )


def check_problem(resp, status: int) -> dict:
    """Fact sheet §9: problem-style JSON for 401/403."""
    body = resp.json()
    assert resp.status_code == status
    assert set(body) == {"Type", "Title", "Status", "Detail", "Instance", "Extensions"}
    assert body["Status"] == status and body["Title"] == {401: "Unauthorized", 403: "Forbidden"}[status]
    return body


class SpecClient:
    """A TestClient whose every accounting call is validated against the spec."""

    def __init__(self, app, headers: dict[str, str]) -> None:
        self.http = TestClient(app)
        self.headers = headers
        self.validated = 0

    def request(self, method: str, path: str, *, json_body=None, params=None, headers=None, raw: bytes | None = None,
                check_request: bool = True):  # fmt: skip
        hdrs = {**self.headers, **(headers or {})}
        hdrs = {k: v for k, v in hdrs.items() if v is not None}
        data = raw if raw is not None else (json.dumps(json_body).encode() if json_body is not None else None)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        resp = self.http.request(method, path, content=data, params=params, headers=hdrs)
        if path.startswith(API):
            self._validate(method, path, params, hdrs, data, resp, check_request)
        return resp

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def put(self, path: str, body=None, **kw):
        return self.request("PUT", path, json_body=body, **kw)

    def post(self, path: str, body=None, **kw):
        return self.request("POST", path, json_body=body, **kw)

    def delete(self, path: str, **kw):
        return self.request("DELETE", path, **kw)

    def _validate(self, method, path, params, hdrs, data, resp, check_request) -> None:
        from openapi_core.templating.paths.exceptions import PathNotFound
        from openapi_core.templating.responses.exceptions import ResponseNotFound
        from openapi_core.testing import MockRequest, MockResponse

        for name in LIMIT_HEADERS:
            assert name in resp.headers, f"{name} missing on {method} {path} ({resp.status_code})"
            assert int(resp.headers[name]) >= 0
        api, _raw = accounting_spec()
        args = {k: str(v) for k, v in (params or {}).items()}
        req = MockRequest(SPEC_HOST, method.lower(), path, args=args, headers={k.lower(): v for k, v in hdrs.items()},
                          data=data, content_type="application/json")  # fmt: skip
        if check_request:
            try:
                with warnings.catch_warnings():
                    # openapi-core cannot check the spec's OAuth2 scheme; the identity tests cover auth
                    warnings.filterwarnings("ignore", message="Unsupported scheme type")
                    api.validate_request(req)
            except PathNotFound:
                assert resp.status_code == 404 and resp.text == NOT_FOUND, f"{path} is not in the spec"
                self.validated += 1
                return
        ctype = resp.headers.get("content-type", "").split(";")[0]
        if resp.status_code in (401, 403):
            check_problem(resp, resp.status_code)
        elif resp.status_code == 404:
            assert resp.text == NOT_FOUND
        elif resp.status_code == 429:
            assert resp.headers["retry-after"].isdigit()
            assert resp.headers["x-rate-limit-problem"] in ("minute", "day", "appminute", "concurrent")
        elif ctype != "application/json" and resp.status_code != 204:
            assert ctype == "text/xml" and resp.text.startswith("<")
        else:
            try:
                api.validate_response(
                    req,
                    MockResponse(resp.content, resp.status_code, content_type=ctype or "application/json"),
                )
            except ResponseNotFound:
                assert resp.status_code == 400, (
                    f"status {resp.status_code} not in the spec for {method} {path}"
                )
                validate_schema(resp.json(), "Error")
            except Exception:
                if resp.status_code != 400:
                    raise
                validate_schema(resp.json(), "Error")  # the spec declares a 400 without a body schema
        self.validated += 1


@dataclass
class XeroSetup:
    emu: XeroEmulator
    clock: ManualClock
    tenant: str
    client_id: str
    client_secret: str
    token: str
    api: SpecClient
    extras: dict = field(default_factory=dict)

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()

    def token_for(self, refresh_token: str) -> dict:
        resp = self.api.http.post("/connect/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                                  headers={"Authorization": self.basic()})  # fmt: skip
        assert resp.status_code == 200, resp.text
        return resp.json()


def make_setup(limits: XeroLimits | None = None) -> XeroSetup:
    clock = ManualClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    emu = XeroEmulator(clock=clock, limits=limits)
    tenant = emu.add_tenant("Kiwi Widgets Ltd")
    emu.register_client("CLIENT1", "secret-1", ["http://localhost:8765/callback"])
    refresh = emu.grant_refresh_token("CLIENT1", [tenant])
    setup = XeroSetup(emu, clock, tenant, "CLIENT1", "secret-1", "", SpecClient(emu.app, {}))
    setup.token = setup.token_for(refresh)["access_token"]
    setup.api.headers.update(
        {"Authorization": f"Bearer {setup.token}", "xero-tenant-id": tenant, "Accept": "application/json"}
    )
    return setup


@pytest.fixture(name="xero")
def xero_fixture(specs) -> XeroSetup:
    """A fresh emulator with one tenant, a client and a valid access token (skips without the specs)."""
    accounting_spec()
    return make_setup()


def make_contact(api: SpecClient, name: str, **fields) -> dict:
    resp = api.put(
        f"{API}/Contacts", {"Contacts": [{"Name": name, **fields}]}, params={"summarizeErrors": "true"}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["Contacts"][0]


def make_invoice(
    api: SpecClient, contact_id: str, amount=100, status="AUTHORISED", kind="ACCREC", **fields
) -> dict:
    body = {"Type": kind, "Contact": {"ContactID": contact_id}, "Status": status, "Date": "2026-10-01",
            "DueDate": "2026-10-31", "LineItems": [{"Description": "Widgets", "Quantity": 1, "UnitAmount": amount,
                                                    "AccountCode": "200" if kind == "ACCREC" else "429"}], **fields}  # fmt: skip
    resp = api.put(f"{API}/Invoices", {"Invoices": [body]}, params={"summarizeErrors": "true"})
    assert resp.status_code == 200, resp.text
    return resp.json()["Invoices"][0]


def ms(value: str) -> datetime:
    """Read `/Date(ms+0000)/`, independently of the emulator's own parser."""
    inner = value[value.index("(") + 1 : value.index(")")]
    millis = int(inner[:-5] if len(inner) > 5 and inner[-5] in "+-" else inner)
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def day(value: str) -> date:
    return ms(value).date()


def dec(value) -> Decimal:
    return Decimal(str(value))


# ---- a webhook receiver on a real port -------------------------------------------------------------


class Receiver:
    """A tiny HTTP receiver that verifies `x-xero-signature` like a real one: 200 if valid, 401 if not."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.bodies: list[bytes] = []
        self.signatures: list[str] = []
        self.force_status: int | None = None
        self.on_body = None  # optional callable(raw body), run before answering (e.g. call back into Xero)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sig = self.headers.get("x-xero-signature", "")
                outer.bodies.append(raw)
                outer.signatures.append(sig)
                if outer.on_body is not None:
                    outer.on_body(raw)
                expected = base64.b64encode(
                    hmac.new(outer.key.encode(), raw, hashlib.sha256).digest()
                ).decode()
                status = outer.force_status or (200 if hmac.compare_digest(sig, expected) else 401)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/xero"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))
