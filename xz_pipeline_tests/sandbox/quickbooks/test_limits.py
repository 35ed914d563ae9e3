"""QBO's throttles (500 a minute and 10 in flight per realm, 40 batches a minute) and injected faults."""

from __future__ import annotations

from starlette.testclient import TestClient

from xz_pipeline.sandbox.faults import FaultMiddleware
from xz_pipeline.sandbox.quickbooks import QboLimits
from xz_pipeline.sandbox.quickbooks.limits import RateLimiter
from xz_pipeline_tests.sandbox.quickbooks.support import connect


def test_429_throttle_exceeded_at_the_minute_limit_then_recovers():
    qbo = connect(limits=QboLimits(per_minute=5, batch_per_minute=2))
    codes = [qbo.get("Preferences", "").status_code for _ in range(5)]
    resp = qbo.http.get(f"{qbo.base}/preferences", headers=qbo.headers())
    assert resp.status_code == 429 and resp.json()["Fault"]["type"] == "ThrottleExceeded"
    assert resp.json()["Fault"]["Error"][0]["code"] == "003001" and int(resp.headers["Retry-After"]) >= 1
    assert len(codes) == 5 and 429 not in [
        r.status for r in qbo.emu.received[:-1] if r.path.startswith("/v3/")
    ]
    qbo.clock.advance(61)
    assert qbo.http.get(f"{qbo.base}/preferences", headers=qbo.headers()).status_code == 200
    batch = {"BatchItemRequest": [{"bId": "1", "Query": "select count(*) from Item"}]}
    assert [
        qbo.http.post(f"{qbo.base}/batch", json=batch, headers=qbo.headers()).status_code for _ in range(3)
    ] == [200, 200, 429]


def test_ten_in_flight_per_realm_and_app():
    qbo = connect()
    limiter = RateLimiter(qbo.clock, QboLimits())
    assert all(limiter.admit("r1", "app").admitted for _ in range(10))
    refused = limiter.admit("r1", "app")
    assert not refused.admitted and refused.problem == "concurrent"
    assert limiter.admit("r2", "app").admitted  # another company has its own allowance
    limiter.release("r1", "app")
    assert limiter.admit("r1", "app").admitted


def test_injected_faults_answer_in_qbo_shapes():
    qbo = connect()
    mw = FaultMiddleware(qbo.emu.app, "5xx:500@nth=1;429@nth=2;expired@nth=3", qbo.emu, seed=1)
    assert mw.vendor == "quickbooks"
    http = TestClient(mw)
    url = f"{qbo.base}/preferences"
    first = http.get(url, headers=qbo.headers())
    assert first.status_code == 500 and first.json()["Fault"]["type"] == "SystemFault"
    second = http.get(url, headers=qbo.headers())
    assert second.status_code == 429 and second.json()["Fault"]["type"] == "ThrottleExceeded"
    third = http.get(url, headers=qbo.headers())
    assert third.status_code == 401  # the token was expired in the emulator, which then answered for real
    token = http.post("/oauth2/v1/tokens/bearer", auth=("ABqbotestclient", "qbo-test-secret"),
                      data={"grant_type": "refresh_token", "refresh_token": qbo.refresh_token})  # fmt: skip
    assert token.status_code == 200  # the OAuth endpoints are not faulted
    assert dict(mw.injected) == {"5xx": 1, "429": 1, "expired": 1}
