"""Fault injection seen from a real HTTP client: the grammar, every kind, and determinism."""

from __future__ import annotations

import json
import time

import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xz_pipeline.sandbox.faults import (
    FAULTS_HELP,
    Fault,
    FaultMiddleware,
    format_faults,
    parse_faults,
    truncate_json,
)
from xz_pipeline.sandbox.server import LoopbackServer

# --------------------------------------------------------------------------------------------
# The grammar


def test_parse_full_example():
    faults = parse_faults(
        "429@nth=3,burst=2; 5xx:503@rate=0.1;slow:5@nth=7;drop@every=10;expired@nth=2;"
        "malformed@rate=0.05,path=/api.xro/2.0/Invoices,method=GET|post,vendor=xero,seed=11"
    )
    assert faults == [
        Fault("429", nth=3, burst=2),
        Fault("5xx", "503", rate=0.1),
        Fault("slow", "5", nth=7),
        Fault("drop", every=10),
        Fault("expired", nth=2),
        Fault(
            "malformed",
            rate=0.05,
            path="/api.xro/2.0/Invoices",
            methods=("GET", "POST"),
            vendor="xero",
            seed=11,
        ),
    ]
    assert faults[2].seconds == 5.0
    assert parse_faults(format_faults(faults)) == faults  # the spec round-trips
    assert parse_faults("") == [] and parse_faults(" ; \n") == []


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("430@nth=1", ["'430@nth=1'", "unknown fault kind"]),
        ("429@nth=0", ["'429@nth=0'", "nth must be >= 1"]),
        ("5xx@rate=1.5", ["rate must be in (0, 1]"]),
        ("5xx@rate=0", ["rate must be in (0, 1]"]),
        ("5xx:404", ["'5xx:404'", "5xx code"]),
        ("slow:soon", ["slow takes seconds"]),
        ("drop:sideways", ["drop takes before|after"]),
        ("expired:5", ["expired takes no argument"]),
        ("429:hour", ["429 problem"]),
        ("429@nth=2,every=3", ["at most one of rate=, nth=, every="]),
        ("429@often=2", ["unknown option 'often'"]),
        ("429@nth", ["'nth' must be key=value"]),
        ("429@nth=two", ["nth= needs a number"]),
        ("429@", ["must be followed by options"]),
        ("429@path=api", ["path must start with '/'"]),
        ("429@vendor=sage", ["vendor must be one of"]),
        ("429@burst=0", ["burst must be >= 1"]),
        ("429@nth=1,nth=2", ["given twice"]),
        ("5xx;drop@every=-1", ["'drop@every=-1'"]),
    ],
)
def test_bad_specs_name_the_token(spec, names):
    with pytest.raises(ValueError) as err:
        parse_faults(spec)
    for name in names:
        assert name in str(err.value)


def test_help_documents_every_kind():
    for word in (
        "429",
        "5xx",
        "slow",
        "drop",
        "expired",
        "malformed",
        "rate=",
        "nth=",
        "every=",
        "burst=",
        "path=",
    ):
        assert word in FAULTS_HELP


def test_truncated_json_never_parses():
    for body in (b'{"Contacts": [{"Name": "Acme"}]}', b"[]", b"123", b"", b'"x"', b"{}"):
        with pytest.raises(ValueError):
            json.loads(truncate_json(body))


# --------------------------------------------------------------------------------------------
# A tiny app of our own: counts what reaches it, so tests see whether a fault let a call through


class Tiny:
    def __init__(self) -> None:
        self.hits: list[str] = []
        self.items: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/api/items", self.list_items, methods=["GET"]),
                Route("/api/items", self.add_item, methods=["POST"]),
                Route("/connect/token", self.token, methods=["POST"]),
            ]
        )

    async def list_items(self, request: Request) -> JSONResponse:
        self.hits.append("GET")
        return JSONResponse({"Items": [{"Name": n} for n in self.items] or [{"Name": "seed"}]})

    async def add_item(self, request: Request) -> JSONResponse:
        self.hits.append("POST")
        self.items.append((await request.json())["Name"])
        return JSONResponse({"Items": [{"Name": self.items[-1]}]})

    async def token(self, request: Request) -> JSONResponse:
        self.hits.append("TOKEN")
        return JSONResponse({"access_token": "a", "expires_in": 1800})


@pytest.fixture
def tiny_served():
    """Serve Tiny behind given faults on a real port; yields a function (spec, vendor) -> (tiny, mw, url)."""
    servers = []

    def serve(spec, vendor="xero", seed=0):
        tiny = Tiny()
        mw = FaultMiddleware(tiny.app, spec, None, vendor=vendor, seed=seed)
        server = LoopbackServer(mw).start()
        servers.append((server, mw))
        return tiny, mw, server.url

    yield serve
    for server, mw in servers:
        mw.close()
        server.stop()


def test_5xx_vendor_bodies(tiny_served):
    tiny, mw, url = tiny_served("5xx:500@nth=1;5xx:503@nth=2;5xx:502@nth=3", vendor="xero")
    first = requests.get(f"{url}/api/items", timeout=5)
    assert first.status_code == 500
    assert first.json()["Title"] == "An error occurred" and first.json()["Status"] == 500
    second = requests.get(f"{url}/api/items", timeout=5)
    assert second.status_code == 503 and second.text == "The Xero API is temporarily unavailable"
    third = requests.get(f"{url}/api/items", timeout=5)
    assert third.status_code == 502 and "502 Bad Gateway" in third.text
    assert requests.get(f"{url}/api/items", timeout=5).status_code == 200
    assert tiny.hits == ["GET"]  # the failed calls never reached the app
    assert mw.injected == {"5xx": 3}

    _, _, zurl = tiny_served("5xx:500", vendor="zoho")
    body = requests.get(f"{zurl}/api/items", timeout=5).json()
    assert body == {
        "code": "INTERNAL_ERROR",
        "details": {},
        "message": "Internal Server Error",
        "status": "error",
    }


def test_slow_times_out_the_client_but_the_write_happens(tiny_served):
    tiny, mw, url = tiny_served("slow:3@method=POST")
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        requests.post(f"{url}/api/items", json={"Name": "late"}, timeout=0.3)
    assert time.monotonic() - started < 2
    assert tiny.items == ["late"]  # processed; only the answer was held back
    assert requests.get(f"{url}/api/items", timeout=5).status_code == 200  # GETs are not slowed
    assert mw.injected == {"slow": 1}


def test_drop_closes_without_a_response(tiny_served):
    tiny, mw, url = tiny_served("drop@nth=1;drop:after@nth=2,method=POST")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/items", timeout=5)
    assert tiny.hits == []  # `before`: never reached the app
    with requests.Session() as s:  # the server keeps serving, also on pooled connections
        assert s.post(f"{url}/api/items", json={"Name": "seen"}, timeout=5).status_code == 200
        with pytest.raises(requests.ConnectionError):
            s.post(f"{url}/api/items", json={"Name": "ghost"}, timeout=5)  # 2nd POST: drop after
        assert s.get(f"{url}/api/items", timeout=5).json()["Items"][-1] == {"Name": "ghost"}
    assert tiny.items == ["seen", "ghost"]  # `after`: the write happened, the answer never came
    assert mw.injected == {"drop": 2}


def test_malformed_is_a_200_that_does_not_parse(tiny_served):
    tiny, mw, url = tiny_served("malformed@every=2")
    assert requests.get(f"{url}/api/items", timeout=5).json() == {"Items": [{"Name": "seed"}]}
    bad = requests.get(f"{url}/api/items", timeout=5)
    assert bad.status_code == 200 and bad.headers["content-type"].startswith("application/json")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        bad.json()
    assert len(tiny.hits) == 2 and mw.injected == {"malformed": 1}


def test_token_endpoint_is_skipped_unless_named(tiny_served):
    tiny, mw, url = tiny_served("5xx:500")
    assert requests.post(f"{url}/connect/token", timeout=5).status_code == 200
    assert requests.get(f"{url}/api/items", timeout=5).status_code == 500
    _, _, url2 = tiny_served("5xx:503@path=/connect/token")
    assert requests.post(f"{url2}/connect/token", timeout=5).status_code == 503
    assert requests.get(f"{url2}/api/items", timeout=5).status_code == 200


def test_vendor_filter(tiny_served):
    _, mw, url = tiny_served("5xx:500@vendor=zoho", vendor="xero")
    assert requests.get(f"{url}/api/items", timeout=5).status_code == 200
    assert mw.injected == {}


# --------------------------------------------------------------------------------------------
# Triggers: nth, every, burst, rate — deterministic


def _pattern(spec: str, calls: int, *, seed: int = 0, path: str = "/api/items", method: str = "GET") -> str:
    """Which of `calls` identical requests a middleware would hit ("x") or pass ("."), without HTTP."""
    mw = FaultMiddleware(None, spec, None, vendor="xero", seed=seed)
    return "".join("." if mw._decide(method, path) is None else "x" for _ in range(calls))


def test_nth_every_burst():
    assert _pattern("5xx@nth=3", 6) == "..x..."
    assert _pattern("429@nth=3,burst=2", 6) == "..xx.."
    assert _pattern("drop@every=3", 9) == "..x..x..x"
    assert _pattern("drop@every=4,burst=2", 10) == "...xx..xx."
    assert _pattern("malformed", 3) == "xxx"
    assert _pattern("5xx@nth=1,path=/api/other", 3) == "..."
    assert _pattern("5xx@nth=1,method=POST", 3) == "..."


def test_rate_is_seeded_and_reproducible():
    a = _pattern("5xx@rate=0.3", 400, seed=1)
    assert a == _pattern("5xx@rate=0.3", 400, seed=1)
    assert a != _pattern("5xx@rate=0.3", 400, seed=2)
    assert 80 <= a.count("x") <= 160  # ~30% of 400
    pinned = _pattern("5xx@rate=0.3,seed=5", 100, seed=1)
    assert pinned == _pattern("5xx@rate=0.3,seed=5", 100, seed=99)  # seed= overrides the server's


def test_first_fault_in_the_spec_wins_and_counters_are_independent():
    mw = FaultMiddleware(None, "5xx:500@nth=2;5xx:503@every=2", None, vendor="xero")
    hits = [mw._decide("GET", "/x") for _ in range(4)]
    assert hits[0] is None and hits[2] is None
    assert hits[1][0].arg == "500" and hits[3][0].arg == "503"


def test_rate_over_http_matches_the_plan(tiny_served):
    expected = _pattern("5xx:503@rate=0.25", 40, seed=3)
    _, mw, url = tiny_served("5xx:503@rate=0.25", seed=3)
    with requests.Session() as s:
        seen = "".join(
            "x" if s.get(f"{url}/api/items", timeout=5).status_code == 503 else "." for _ in range(40)
        )
    assert seen == expected and mw.injected["5xx"] == expected.count("x") > 0


# --------------------------------------------------------------------------------------------
# Against the real emulators: the vendor's own 429 and 401


@pytest.fixture
def emulator_served():
    """Serve a fresh emulator behind faults; yields (vendor, spec) -> (emulator, middleware, url, headers)."""
    servers = []

    def serve(vendor: str, spec: str):
        if vendor == "xero":
            from xz_pipeline.sandbox.xero import XeroEmulator as Emulator
        else:
            from xz_pipeline.sandbox.zoho import ZohoEmulator as Emulator
        emulator = Emulator()
        mw = FaultMiddleware(emulator.app, spec, emulator)
        server = LoopbackServer(mw).start()
        servers.append((server, mw))
        emulator.base_url = server.url
        emulator.register_client("client-1", "secret-1", ["http://localhost/cb"])
        if vendor == "xero":
            tenant = emulator.add_tenant("Faulty Ltd")
            refresh = emulator.grant_refresh_token("client-1", [tenant])
            token = requests.post(
                f"{server.url}/connect/token",
                data={"grant_type": "refresh_token", "refresh_token": refresh},
                auth=("client-1", "secret-1"),
                timeout=5,
            ).json()["access_token"]
            headers = {
                "Authorization": f"Bearer {token}",
                "xero-tenant-id": tenant,
                "Accept": "application/json",
            }
        else:
            org = emulator.add_org("Faulty CRM Ltd")
            refresh = emulator.grant_refresh_token("client-1", org)
            token = requests.post(
                f"{server.url}/oauth/v2/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh,
                    "client_id": "client-1",
                    "client_secret": "secret-1",
                },
                timeout=5,
            ).json()["access_token"]
            headers = {"Authorization": f"Zoho-oauthtoken {token}"}
        return emulator, mw, server.url, headers

    yield serve
    for server, mw in servers:
        mw.close()
        server.stop()


def test_429_burst_is_the_xero_emulators_own_answer(emulator_served):
    emulator, mw, url, headers = emulator_served("xero", "429:minute@nth=2,burst=2")
    contacts = f"{url}/api.xro/2.0/Contacts"
    with requests.Session() as s:
        s.headers.update(headers)
        codes = []
        for _ in range(4):
            r = s.get(contacts, timeout=5)
            codes.append(r.status_code)
            if r.status_code == 429:
                assert r.headers["X-Rate-Limit-Problem"] == "minute"
                assert int(r.headers["Retry-After"]) >= 1
                for h in ("X-MinLimit-Remaining", "X-DayLimit-Remaining", "X-AppMinLimit-Remaining"):
                    assert h in r.headers
    assert codes == [200, 429, 429, 200]
    assert mw.injected == {"429": 2}


def test_429_from_the_zoho_emulator(emulator_served):
    _, mw, url, headers = emulator_served("zoho", "429@nth=1")
    r = requests.get(f"{url}/crm/v8/Accounts", params={"fields": "Account_Name"}, headers=headers, timeout=5)
    assert r.status_code == 429 and r.json()["code"] == "TOO_MANY_REQUESTS"
    r = requests.get(f"{url}/crm/v8/Accounts", params={"fields": "Account_Name"}, headers=headers, timeout=5)
    assert r.status_code in (200, 204)


def test_expired_token_gets_the_vendors_real_401(emulator_served):
    _, mw, url, headers = emulator_served("xero", "expired@nth=2")
    contacts = f"{url}/api.xro/2.0/Contacts"
    assert requests.get(contacts, headers=headers, timeout=5).status_code == 200  # the token was valid
    r = requests.get(contacts, headers=headers, timeout=5)
    assert r.status_code == 401 and r.json()["Detail"].startswith("TokenExpired")
    assert requests.get(contacts, headers=headers, timeout=5).status_code == 401  # it stays expired
    assert mw.injected == {"expired": 1}

    _, zmw, zurl, zheaders = emulator_served("zoho", "expired@nth=1")
    r = requests.get(
        f"{zurl}/crm/v8/Accounts", params={"fields": "Account_Name"}, headers=zheaders, timeout=5
    )
    assert r.status_code == 401 and r.json()["code"] == "INVALID_TOKEN"


def test_faults_spare_the_token_endpoint_of_the_emulator(emulator_served):
    # Every call fails, yet the fixture could still refresh its token through /connect/token.
    _, mw, url, headers = emulator_served("xero", "5xx:503")
    assert requests.get(f"{url}/api.xro/2.0/Contacts", headers=headers, timeout=5).status_code == 503
    assert mw.injected == {"5xx": 1}
