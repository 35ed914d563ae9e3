"""Rate limits of the Xero emulator: headers on every response, 429 with Retry-After, windows on the clock."""

from __future__ import annotations

import pytest

from xz_pipeline.sandbox.xero import XeroLimits
from xz_pipeline_tests.sandbox.xero.support import API, accounting_spec, make_setup


@pytest.fixture
def small(specs):
    accounting_spec()
    return make_setup(XeroLimits(concurrent=2, per_minute=3, per_day=5, app_per_minute=100))


def test_minute_window_headers_and_retry_after(small):
    api = small.api
    seen = []
    for _ in range(3):
        resp = api.get(f"{API}/Contacts")
        assert resp.status_code == 200
        seen.append(int(resp.headers["X-MinLimit-Remaining"]))
        small.clock.advance(10)
    assert seen == [2, 1, 0]
    assert resp.headers["X-DayLimit-Remaining"] == "2" and resp.headers["X-AppMinLimit-Remaining"] == "97"
    refused = api.get(f"{API}/Contacts")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert refused.headers["Retry-After"] == "30"  # the first call leaves the window 60 s after it was made
    assert refused.headers["X-MinLimit-Remaining"] == "0"
    assert small.emu.received[-1].status == 429
    small.clock.advance(30)
    assert api.get(f"{API}/Contacts").status_code == 200  # a slot freed: the refused call spent nothing


def test_day_limit(small):
    for _ in range(5):
        assert small.api.get(f"{API}/Organisation").status_code == 200
        small.clock.advance(61)
    refused = small.api.get(f"{API}/Organisation")
    assert refused.status_code == 429 and refused.headers["X-Rate-Limit-Problem"] == "day"
    assert refused.headers["X-DayLimit-Remaining"] == "0"
    assert int(refused.headers["Retry-After"]) == 86400 - 5 * 61
    small.clock.advance(86400)
    fresh = small.token_for(small.emu.grant_refresh_token("CLIENT1", [small.tenant]))["access_token"]
    assert (
        small.api.get(f"{API}/Organisation", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    )


def test_concurrent_and_app_limits(small):
    # two calls in flight for this tenant (held directly on the limiter) leave no room for a third
    app = small.client_id
    assert (
        small.emu.rate.admit(small.tenant, app).admitted and small.emu.rate.admit(small.tenant, app).admitted
    )
    refused = small.api.get(f"{API}/Contacts")
    assert refused.status_code == 429 and refused.headers["X-Rate-Limit-Problem"] == "concurrent"
    assert refused.headers["Retry-After"] == "1"
    small.emu.rate.release(small.tenant, app)
    small.emu.rate.release(small.tenant, app)
    assert small.emu.rate.in_flight(small.tenant, app) == 0
    # the app-wide minute spans tenants (the two held calls count too, so start a fresh minute)
    small.clock.advance(61)
    small.emu.limits.app_per_minute = 3
    other = small.emu.add_tenant("Second")
    small.emu.grant_refresh_token("CLIENT1", [small.tenant, other])
    for tenant in (small.tenant, other, other):
        assert small.api.get(f"{API}/Contacts", headers={"xero-tenant-id": tenant}).status_code == 200
    refused = small.api.get(f"{API}/Contacts", headers={"xero-tenant-id": small.tenant})
    assert refused.status_code == 429 and refused.headers["X-Rate-Limit-Problem"] == "appminute"
    assert refused.headers["X-AppMinLimit-Remaining"] == "0"


def test_errors_carry_limit_headers_and_fault_hook(small):
    resp = small.api.get(f"{API}/Invoices/00000000-0000-0000-0000-0000000000aa")
    assert resp.status_code == 404 and resp.headers["X-MinLimit-Remaining"] == "2"
    unauth = small.api.get(f"{API}/Contacts", headers={"Authorization": "Bearer nope"})
    assert unauth.status_code == 401  # no app is known: its window is untouched
    assert unauth.headers["X-MinLimit-Remaining"] == "3"
    hook = small.emu.rate_limit_response("day")
    assert hook.status_code == 429
    assert hook.headers["X-Rate-Limit-Problem"] == "day" and hook.headers["Retry-After"] == "86400"
    assert hook.headers["X-DayLimit-Remaining"] == "0"


def test_another_apps_calls_do_not_spend_this_apps_limits(small):
    """Xero limits "the API calls your application can make against a particular tenant": a bank feed or
    a bookkeeper's tool calling the same organisation has its own windows."""
    small.emu.register_client("CLIENT2", "secret-2", ["http://localhost:8765/callback"])
    refresh = small.emu.grant_refresh_token("CLIENT2", [small.tenant])
    resp = small.api.http.post("/connect/token", data={"grant_type": "refresh_token", "refresh_token": refresh},
                               auth=("CLIENT2", "secret-2"))  # fmt: skip
    other = {"Authorization": f"Bearer {resp.json()['access_token']}"}
    for _ in range(3):
        assert small.api.get(f"{API}/Contacts", headers=other).status_code == 200
    assert (
        small.api.get(f"{API}/Contacts", headers=other).status_code == 429
    )  # the other app's minute is spent
    ours = small.api.get(f"{API}/Contacts")
    assert ours.status_code == 200 and ours.headers["X-MinLimit-Remaining"] == "2"
