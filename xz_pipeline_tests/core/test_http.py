"""core.http against a small Starlette app on loopback: retries, throttling, budgets, caps, metering, redaction."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xz_pipeline.core.errors import ApiError, RateLimitExhausted, TransportError
from xz_pipeline.core.http import XERO_LIMITS, Budgets, CallMeter, HttpClient, RetryPolicy
from xz_pipeline.core.redact import register_secret
from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.faults import FaultMiddleware
from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline_tests.timers import ManualTimer

SECRET = "tok-0123456789-very-secret-access-token"


class World:
    """The server's state: hits per route and key, a rolling minute budget on the manual clock."""

    def __init__(self, clock: ManualClock, per_minute: int = 5) -> None:
        self.clock = clock
        self.hits: Counter[str] = Counter()
        self.per_minute = per_minute
        self.window: deque[float] = deque()
        self.refused = 0
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()


def make_app(world: World) -> Starlette:
    def key(request: Request) -> str:
        return f"{request.url.path}?{request.query_params.get('k', '')}"

    async def flaky(request: Request) -> Response:
        """Fails with 503 `n` times per key, then succeeds."""
        k = key(request)
        world.hits[k] += 1
        if world.hits[k] <= int(request.query_params.get("n", "2")):
            return Response("Service Unavailable", 503, media_type="text/plain")
        return JSONResponse({"ok": True, "hits": world.hits[k]})

    async def write(request: Request) -> Response:
        k = key(request)
        world.hits[k] += 1
        if world.hits[k] == 1:
            return Response("Service Unavailable", 503, media_type="text/plain")
        return JSONResponse({"created": world.hits[k]})

    async def slow(request: Request) -> Response:
        k = key(request)
        world.hits[k] += 1
        if world.hits[k] == 1:
            await asyncio.sleep(1.0)
        return JSONResponse({"ok": True})

    async def malformed(request: Request) -> Response:
        k = key(request)
        world.hits[k] += 1
        if world.hits[k] == 1:
            return Response('{"rows": [1, 2', 200, media_type="application/json")
        return JSONResponse({"rows": [1, 2, 3]})

    async def limited(request: Request) -> Response:
        """A rolling per-minute budget like Xero's, with its remaining-count headers."""
        with world.lock:
            now = world.clock.monotonic()
            while world.window and world.window[0] <= now - 60:
                world.window.popleft()
            if len(world.window) >= world.per_minute:
                world.refused += 1
                wait = int(world.window[0] + 60 - now) + 1
                return Response("Rate limit exceeded", 429, headers={"Retry-After": str(wait),
                                "X-Rate-Limit-Problem": "minute", "X-MinLimit-Remaining": "0"})  # fmt: skip
            world.window.append(now)
            left = world.per_minute - len(world.window)
        headers = {
            "X-MinLimit-Remaining": str(left),
            "X-DayLimit-Remaining": "4000",
            "X-AppMinLimit-Remaining": "9000",
        }
        return JSONResponse({"ok": True}, headers=headers)

    async def throttled(request: Request) -> Response:
        k = key(request)
        world.hits[k] += 1
        if world.hits[k] <= 2:
            return Response(
                "Rate limit exceeded", 429, headers={"Retry-After": "7", "X-Rate-Limit-Problem": "minute"}
            )
        return JSONResponse({"ok": True})

    async def day(request: Request) -> Response:
        return Response("Rate limit exceeded", 429, headers={"Retry-After": "40000", "X-Rate-Limit-Problem": "day",
                        "X-DayLimit-Remaining": "0"})  # fmt: skip

    async def day_left(request: Request) -> Response:
        return JSONResponse({"ok": True}, headers={"X-DayLimit-Remaining": request.query_params.get("left", "0"),
                            "X-MinLimit-Remaining": "50", "X-AppMinLimit-Remaining": "9000"})  # fmt: skip

    async def busy(request: Request) -> Response:
        with world.lock:
            world.active += 1
            world.max_active = max(world.max_active, world.active)
        await asyncio.sleep(0.05)
        with world.lock:
            world.active -= 1
        return JSONResponse({"ok": True})

    async def echo_secret(request: Request) -> Response:
        token = request.headers.get("authorization", "")
        return JSONResponse({"message": f"rejected credentials {token}"}, status_code=400)

    async def flaky_drop(request: Request) -> Response:
        world.hits["drop"] += 1
        return JSONResponse({"ok": True})

    routes = [
        Route("/flaky", flaky, methods=["GET", "POST"]),
        Route("/write", write, methods=["POST"]),
        Route("/slow", slow),
        Route("/malformed", malformed),
        Route("/limited", limited),
        Route("/throttled", throttled),
        Route("/day", day),
        Route("/day-left", day_left),
        Route("/busy", busy),
        Route("/secret", echo_secret, methods=["POST"]),
        Route("/drop", flaky_drop),
    ]
    return Starlette(routes=routes)


@pytest.fixture(scope="module")
def server():
    clock = ManualClock()
    world = World(clock)
    app = FaultMiddleware(make_app(world), "drop@nth=1,path=/drop", None, vendor="xero", seed=1)
    with LoopbackServer(app, name="http-test") as srv:
        yield srv, world


@pytest.fixture
def env(server):
    srv, world = server
    world.hits.clear()
    world.window.clear()
    world.refused = 0
    timer = ManualTimer(world.clock)
    meter = CallMeter()
    http = HttpClient(
        "xero",
        timeout=(2.0, 0.3),
        meter=meter,
        retry=RetryPolicy(attempts=4, backoff_factor=0.5, rng=random.Random(7)),
        limits=XERO_LIMITS,
        concurrency=3,
        budgets=Budgets(),
        timer=timer,
    )
    yield srv.url, world, http, timer, meter
    http.close()


def test_get_is_retried_on_5xx_with_jittered_backoff(env):
    url, world, http, timer, meter = env
    reply = http.request("GET", f"{url}/flaky", params={"k": "a", "n": 2})
    assert reply.data == {"ok": True, "hits": 3}
    # factor * 2**n with +-50% jitter: the first wait in [0.25, 0.75], the second in [0.5, 1.5]
    assert len(timer.slept) == 2
    assert 0.25 <= timer.slept[0] <= 0.75 and 0.5 <= timer.slept[1] <= 1.5
    snap = meter.snapshot()
    assert (snap["calls"], snap["retries"], snap["errors"]) == (3, 2, 2)


def test_gives_up_after_the_attempt_budget_with_the_vendor_status(env):
    url, world, http, timer, meter = env
    with pytest.raises(ApiError) as info:
        http.request("GET", f"{url}/flaky", params={"k": "b", "n": 99})
    assert info.value.status == 503 and info.value.transient
    assert world.hits["/flaky?b"] == 4


def test_write_without_idempotency_key_is_not_repeated(env):
    url, world, http, timer, meter = env
    with pytest.raises(ApiError) as info:
        http.request("POST", f"{url}/write", params={"k": "w1"}, json_body={"a": 1})
    assert info.value.status == 503
    assert world.hits["/write?w1"] == 1


def test_write_with_idempotency_key_is_retried(env):
    url, world, http, timer, meter = env
    reply = http.request(
        "POST", f"{url}/write", params={"k": "w2"}, json_body={"a": 1}, idempotency_key="key-1"
    )
    assert reply.data == {"created": 2}
    assert world.hits["/write?w2"] == 2


def test_read_timeout_is_retried(env):
    url, world, http, timer, meter = env
    reply = http.request("GET", f"{url}/slow", params={"k": "t"})
    assert reply.data == {"ok": True}
    assert world.hits["/slow?t"] == 2
    assert meter.snapshot()["errors"] == 1


def test_dropped_connection_is_retried(env):
    url, world, http, timer, meter = env
    reply = http.request("GET", f"{url}/drop")
    assert reply.data == {"ok": True}
    assert meter.calls() == 2 and meter.snapshot()["retries"] == 1


def test_unreadable_json_body_is_fetched_again(env):
    url, world, http, timer, meter = env
    reply = http.request("GET", f"{url}/malformed", params={"k": "m"})
    assert reply.data == {"rows": [1, 2, 3]}
    assert world.hits["/malformed?m"] == 2


def test_429_waits_for_retry_after_and_is_metered_apart(env):
    url, world, http, timer, meter = env
    reply = http.request("GET", f"{url}/throttled", params={"k": "r"})
    assert reply.data == {"ok": True}
    assert timer.slept == [7.0, 7.0]
    snap = meter.snapshot()
    assert (snap["calls"], snap["throttled"]) == (3, 2)


def test_day_limit_fails_fast_naming_the_limit(env):
    url, world, http, timer, meter = env
    with pytest.raises(RateLimitExhausted) as info:
        http.request("GET", f"{url}/day", budget_key="tenant-d")
    assert info.value.limit == "day" and "day rate limit" in str(info.value)
    assert timer.slept == []


def test_spent_day_budget_refuses_before_sending(env):
    url, world, http, timer, meter = env
    http.request("GET", f"{url}/day-left", params={"left": "0"}, budget_key="tenant-e")
    with pytest.raises(RateLimitExhausted) as info:
        http.request("GET", f"{url}/day-left", params={"left": "0"}, budget_key="tenant-e")
    assert info.value.limit == "day"
    assert meter.calls() == 1


def test_minute_budget_waits_instead_of_drawing_429s(env):
    url, world, http, timer, meter = env
    for _ in range(23):  # 5 a minute on the server: 4 full minutes of waiting
        http.request("GET", f"{url}/limited", budget_key="tenant-m")
    assert world.refused == 0
    assert meter.snapshot()["throttled"] == 0
    assert len(timer.slept) == 4 and all(55 < s <= 62 for s in timer.slept)  # the window plus AGE_MARGIN


def test_concurrency_cap_holds_across_threads(env):
    url, world, http, timer, meter = env
    world.max_active = 0
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda _: http.request("GET", f"{url}/busy", budget_key="tenant-c"), range(20)))
    assert world.max_active == 3
    assert meter.calls() == 20


def test_secrets_stay_out_of_errors_and_logs(env, caplog):
    url, world, http, timer, meter = env
    register_secret(SECRET)

    class Auth:
        def headers(self):
            return {"Authorization": f"Bearer {SECRET}"}

        def refresh_after_unauthorized(self, sent):
            return False

    caplog.set_level(logging.DEBUG, logger="xz_pipeline")
    with pytest.raises(ApiError) as info:
        http.request("POST", f"{url}/secret", auth=Auth(), data={"refresh_token": SECRET})
    logging.getLogger("xz_pipeline.core.http").warning("oops %s", SECRET)
    assert "rejected credentials" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.args)
    assert caplog.records and SECRET not in caplog.text


def test_unreachable_host_is_a_transport_error(env):
    _, world, http, timer, meter = env
    with pytest.raises(TransportError) as info:
        http.request("GET", "http://127.0.0.1:9/nothing?access_token=abcdef123456")
    assert "abcdef123456" not in str(info.value)
    assert meter.calls() == 4


def test_backoff_doubles_and_jitter_stays_within_its_band():
    exact = RetryPolicy(backoff_factor=0.5, backoff_max=3.0, jitter=0.0)
    assert [exact.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = RetryPolicy(backoff_factor=0.5, jitter=0.5, rng=random.Random(3))
    waits = [jittered.backoff(2) for _ in range(500)]
    assert 0.5 <= min(waits) < 0.6 and 1.4 < max(waits) <= 1.5
