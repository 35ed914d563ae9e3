"""API credits per rolling 24 hours and concurrency per edition → 429 TOO_MANY_REQUESTS."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from xz_pipeline.sandbox.zoho import ZohoLimits
from xz_pipeline_tests.sandbox.zoho.support import accounts, make_org, served


def test_defaults_by_edition():
    assert ZohoLimits().daily_credits() == 60_000  # Enterprise: 50,000 + 1,000 x 10 users
    assert ZohoLimits(edition="Free").daily_credits() == 5_000
    assert ZohoLimits(edition="Standard", users=400).daily_credits() == 100_000  # capped
    assert ZohoLimits(edition="Ultimate", users=3).daily_credits() == 56_000
    assert [
        ZohoLimits(edition=e).max_concurrency()
        for e in ("Free", "Standard", "Professional", "Enterprise", "Ultimate")
    ] == [5, 10, 15, 20, 25]


def test_credits_run_out_then_come_back_as_the_window_rolls():
    org = make_org(limits=ZohoLimits(credits_per_day=25))
    assert org.post("Accounts", json={"data": accounts(100)}).status_code == 201  # 10 credits
    assert org.get("Accounts", params={"fields": "Account_Name"}).status_code == 200  # 1
    org.clock.advance(3000)
    assert org.post("Accounts", json={"data": accounts(95, 100)}).status_code == 201  # 10 (ceil 9.5)
    spent = [r.credits for r in org.emu.received if r.path.startswith("/crm/")]
    assert spent == [10, 1, 10] and org.emu.credits_used(org.org_id) == 21
    for _ in range(4):
        assert org.get("org").status_code == 200
    r = org.get("org")
    assert r.status_code == 429
    assert r.json()["code"] == "TOO_MANY_REQUESTS" and r.json()["status"] == "error"
    assert org.emu.received[-1].status == 429 and org.emu.received[-1].credits == 0
    org.clock.advance(24 * 3600 - 3000)  # the first 11 credits leave the window
    org.access_token = org.refresh()["access_token"]
    assert org.get("org").status_code == 200
    assert org.emu.credits_used(org.org_id) == 15


def test_credit_header_once_half_is_spent():
    org = make_org(limits=ZohoLimits(credits_per_day=4))
    assert "X-API-CREDITS-REMAINING" not in org.get("org").headers
    assert org.get("org").headers["X-API-CREDITS-REMAINING"] == "2"


def test_rate_limit_response_hook_is_the_same_429():
    org = make_org()
    resp = org.emu.rate_limit_response()
    assert resp.status_code == 429 and b'"TOO_MANY_REQUESTS"' in resp.body


def _hold(emu):
    """Make every API call wait inside the emulator until released: calls stay in flight."""
    gate, entered = threading.Event(), threading.Semaphore(0)
    original = emu._handle

    def held(route, call):
        entered.release()
        gate.wait(10)
        return original(route, call)

    emu._handle = held
    return gate, entered


def test_concurrency_limit_then_sub_concurrency_for_complex_calls():
    org = make_org(limits=ZohoLimits(concurrency=3, sub_concurrency=2))
    with served(org.emu.app) as url:
        gate, entered = _hold(org.emu)
        h = org.headers
        with ThreadPoolExecutor(4) as pool:
            held = [pool.submit(requests.get, f"{url}/crm/v8/org", headers=h, timeout=10) for _ in range(3)]
            for _ in range(3):
                assert entered.acquire(timeout=10)
            over = requests.get(f"{url}/crm/v8/org", headers=h, timeout=10)
            assert over.status_code == 429 and over.json()["code"] == "TOO_MANY_REQUESTS"
            gate.set()
            assert [f.result().status_code for f in held] == [200, 200, 200]
        gate.clear()
        with ThreadPoolExecutor(4) as pool:
            search = f"{url}/crm/v8/Accounts/search"
            held = [
                pool.submit(requests.get, search, params={"word": "acme"}, headers=h, timeout=10)
                for _ in range(2)
            ]
            for _ in range(2):
                assert entered.acquire(timeout=10)
            complex_over = requests.get(search, params={"word": "acme"}, headers=h, timeout=10)
            simple = pool.submit(requests.get, f"{url}/crm/v8/org", headers=h, timeout=10)
            assert entered.acquire(timeout=10)  # a simple call still gets the third slot
            gate.set()
            assert complex_over.status_code == 429
            assert simple.result().status_code == 200
            assert [f.result().status_code for f in held] == [204, 204]
