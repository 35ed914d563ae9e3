"""Authentic callbacks with values the receiver cannot interpret are answered 400, never 500, and store
nothing; the good ones beside them still land. (hypothesis is not in the venv: a table of hostile cases.)"""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from xz_pipeline import settings
from xz_pipeline.realtime.inbox import Inbox
from xz_pipeline.realtime.receiver import build_app
from xz_pipeline.xero import webhooks as xero_hooks
from xz_pipeline.zoho import webhooks as zoho_hooks

KEY = "fuzz-webhook-key"
NOTIFY = "fuzz-notify-token"
TENANT = "11111111-2222-3333-4444-555555555555"
CONN = settings.Connection(
    name="fuzz",
    xero=settings.XeroSettings("cid", "secret", tenant_id=TENANT, webhook_key=KEY),
    zoho=settings.ZohoSettings("cid", "secret", notify_token=NOTIFY),
)


def _deep(levels: int) -> bytes:
    return b'{"events": ' + b"[" * levels + b"]" * levels + b"}"


def _event(**overrides) -> dict:
    event = {"resourceId": "c-1", "eventDateUtc": "2026-11-02T09:00:00.123", "eventType": "UPDATE",
             "eventCategory": "CONTACT", "tenantId": TENANT}  # fmt: skip
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}


def _batch(*events) -> bytes:
    return json.dumps({"events": list(events), "firstEventSequence": 1}).encode()


XERO_CASES = {
    "not json": b"{not json",
    "non-utf-8": b'{"events": [{"tenantId": "\xff\xfe"}]}',
    "deep nesting": _deep(100_000),
    "events not a list": json.dumps({"events": {"a": 1}}).encode(),
    "top level a list": b"[]",
    "event a string": _batch("CONTACT"),
    "missing resourceId": _batch(_event(resourceId=...)),
    "missing tenantId": _batch(_event(tenantId=...)),
    "resourceId an object": _batch(_event(resourceId={"id": "c-1"})),
    "resourceId a list": _batch(_event(resourceId=["c-1"])),
    "category a number list": _batch(_event(eventCategory=[1, 2])),
    "eventDateUtc null": _batch(_event(eventDateUtc=None)),
    "tenantId a boolean": _batch(_event(tenantId=True)),
    "lone surrogate": b'{"events": [{"resourceId": "\\ud800", "eventDateUtc": "2026-11-02T09:00:00", '
    b'"eventType": "UPDATE", "eventCategory": "CONTACT", "tenantId": "' + TENANT.encode() + b'"}]}',
    "huge number": b'{"events": [], "firstEventSequence": 1' + b"0" * 5000 + b"}",
}

# Values that are odd but interpretable: accepted (200), never a 500.
XERO_ODD_BUT_FINE = {
    "year 1 with an offset": _batch(_event(eventDateUtc="0001-01-01T00:00:00+14:00")),
    "garbage date": _batch(_event(eventDateUtc="yesterday")),
    "huge sequence": json.dumps({"events": [_event()], "firstEventSequence": 10**30}).encode(),
    "numeric resourceId": _batch(_event(resourceId=12345)),
    "intent to receive": _batch(),
}


def _note(**overrides) -> bytes:
    note = {"server_time": 1_790_000_000_000, "query_params": {}, "module": "Accounts",
            "resource_uri": "https://www.zohoapis.com/crm/v8/Accounts", "ids": ["4876876000000123001"],
            "affected_fields": [], "operation": "update", "channel_id": "1000",
            "token": zoho_hooks.channel_token(NOTIFY)}  # fmt: skip
    note.update(overrides)
    return json.dumps({k: v for k, v in note.items() if v is not ...}).encode()


ZOHO_CASES = {
    "server_time 10^20": _note(server_time=10**20),
    "server_time -10^20": _note(server_time=-(10**20)),
    "server_time 10^400 as text": _note(server_time="1" + "0" * 400),
    "server_time a float string": _note(server_time="1e20"),
    "server_time a list": _note(server_time=[1]),
    "server_time a boolean": _note(server_time=True),
    "server_time missing": _note(server_time=...),
    "ids missing": _note(ids=...),
    "ids a string": _note(ids="4876876000000123001"),
    "ids of objects": _note(ids=[{"id": "1"}]),
    "ids of nulls": _note(ids=[None]),
    "ids of booleans": _note(ids=[True]),
    "module an object": _note(module={"api_name": "Accounts"}),
    "module missing": _note(module=...),
    "operation a number list": _note(operation=[1]),
    "not json": b"\x00\x01",
    "non-utf-8": b'{"module": "\xc3\x28"}',
    "deep nesting": b'{"ids": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "top level a string": b'"hello"',
    "lone surrogate id": _note(ids=["x"]).replace(b'"x"', b'"\\udc80"'),
}


@pytest.fixture
def client(tmp_path):
    inbox = Inbox(tmp_path / "inbox.sqlite")
    with TestClient(build_app(inbox, [CONN]), raise_server_exceptions=False) as c:
        yield c, inbox


def _post_xero(c: TestClient, body: bytes):
    return c.post(
        "/webhooks/xero", content=body, headers={"x-xero-signature": xero_hooks.signature(KEY, body)}
    )


def _post_zoho(c: TestClient, body: bytes):
    return c.post(
        f"/webhooks/zoho?{zoho_hooks.URL_SECRET_PARAM}={zoho_hooks.url_secret(NOTIFY)}", content=body
    )


@pytest.mark.parametrize("case", sorted(XERO_CASES))
def test_xero_uninterpretable_bodies_get_400_and_store_nothing(client, case):
    c, inbox = client
    response = _post_xero(c, XERO_CASES[case])
    assert (response.status_code, inbox.count()) == (400, 0), case


@pytest.mark.parametrize("case", sorted(XERO_ODD_BUT_FINE))
def test_xero_odd_but_interpretable_bodies_are_accepted(client, case):
    c, inbox = client
    response = _post_xero(c, XERO_ODD_BUT_FINE[case])
    assert response.status_code == 200, case
    assert inbox.count() == (0 if case == "intent to receive" else 1)


@pytest.mark.parametrize("case", sorted(ZOHO_CASES))
def test_zoho_uninterpretable_notifications_get_400_and_store_nothing(client, case):
    c, inbox = client
    response = _post_zoho(c, ZOHO_CASES[case])
    assert (response.status_code, inbox.count()) == (400, 0), case


def test_a_good_notification_after_the_hostile_ones_still_lands(client):
    c, inbox = client
    for body in ZOHO_CASES.values():
        _post_zoho(c, body)
    response = _post_zoho(c, _note(ids=["4876876000000123001", 4876876000000123002]))
    assert response.status_code == 200
    assert sorted(e.record_id for e in inbox.after(0)) == ["4876876000000123001", "4876876000000123002"]
    assert {e.asset for e in inbox.after(0)} == {"zoho_accounts"}


def test_a_wrong_token_is_still_401_not_400(client):
    c, inbox = client
    response = _post_zoho(c, _note(token=["not", "a", "token"]))
    assert (response.status_code, inbox.count()) == (401, 0)


def test_the_parsers_raise_only_their_own_errors():
    """Every hostile case is a WebhookPayloadError / NotificationError from the parser itself, so the
    receiver's 400 does not rest on its catch-all."""
    for case, body in XERO_CASES.items():
        with pytest.raises(xero_hooks.WebhookPayloadError):
            xero_hooks.parse_events(body)
            pytest.fail(case)
    for case, body in ZOHO_CASES.items():
        with pytest.raises(zoho_hooks.NotificationError):
            zoho_hooks.parse_notification(body)
            pytest.fail(case)
