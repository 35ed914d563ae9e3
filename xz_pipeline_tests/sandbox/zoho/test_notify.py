"""Notifications: watch enable/list/update/disable, expiry rules, callbacks with retries, expired channels."""

from __future__ import annotations

import threading

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from xz_pipeline_tests.sandbox.zoho.support import make_org, served


class Receiver:
    """A notify URL on loopback that records callbacks and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.fail_next = 0
        self.lock = threading.Lock()

        async def hook(request):
            body = await request.json()
            with self.lock:
                if self.fail_next:
                    self.fail_next -= 1
                    return JSONResponse({}, status_code=503)
                self.calls.append(body)
            return JSONResponse({})

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture(scope="module")
def receiver():
    rec = Receiver()
    with served(rec.app) as url:
        rec.url = f"{url}/hook?secret=s3"
        yield rec


def _watch(org, url, **extra):
    item = {
        "channel_id": "1000000068001",
        "events": ["Accounts.all", "Deals.edit"],
        "notify_url": url,
        "token": "TOKEN_1",
        **extra,
    }
    return org.post("actions/watch", json={"watch": [item]})


def test_enable_list_update_disable(receiver):
    org = make_org()
    r = _watch(org, receiver.url, channel_expiry="2026-11-05T22:00:00+13:00")
    assert r.status_code == 201
    item = r.json()["watch"][0]
    assert item["message"] == "Successfully subscribed for actions-watch of the given module"
    assert [
        (e["resource_name"], e["channel_expiry"], e["channel_id"]) for e in item["details"]["events"]
    ] == [
        ("Accounts", "2026-11-05T22:00:00+13:00", "1000000068001"),
        ("Deals", "2026-11-05T22:00:00+13:00", "1000000068001"),
    ]
    assert item["details"]["events"][0]["resource_uri"] == "http://testserver/crm/v8/Accounts"
    listed = org.get("actions/watch").json()
    assert listed["watch"][0]["events"] == ["Accounts.all", "Deals.edit"] and listed["info"]["count"] == 1
    patched = org.patch(
        "actions/watch",
        json={"watch": [{"channel_id": "1000000068001", "events": ["Deals.edit"], "_delete_events": True}]},
    )
    assert patched.status_code == 200
    assert org.get("actions/watch").json()["watch"][0]["events"] == ["Accounts.all"]
    put = org.put(
        "actions/watch",
        json={
            "watch": [
                {"channel_id": "1000000068001", "events": ["Contacts.create"], "notify_url": receiver.url}
            ]
        },
    )
    assert put.status_code == 200
    assert org.get("actions/watch").json()["watch"][0]["events"] == ["Contacts.create"]
    gone = org.delete("actions/watch", params={"channel_ids": "1000000068001"})
    assert gone.status_code == 200 and gone.json()["watch"][0]["code"] == "SUCCESS"
    assert org.get("actions/watch").status_code == 204
    bad = org.post(
        "actions/watch",
        json={"watch": [{"channel_id": "1", "events": ["Nope.all"], "notify_url": receiver.url}]},
    )
    assert bad.status_code == 400 and bad.json()["watch"][0]["code"] == "INVALID_DATA"


def test_expiry_at_most_a_week_else_one_hour():
    org = make_org()
    url = "http://127.0.0.1:9/hook"

    def expiry(**extra):
        return _watch(org, url, **extra).json()["watch"][0]["details"]["events"][0]["channel_expiry"]

    assert expiry() == "2026-11-02T23:00:00+13:00"  # omitted: one hour
    assert expiry(channel_expiry="2026-11-09T21:59:00+13:00") == "2026-11-09T21:59:00+13:00"  # within a week
    assert (
        expiry(channel_expiry="2026-11-09T22:00:01+13:00") == "2026-11-02T23:00:00+13:00"
    )  # too far: one hour
    past = _watch(org, url, channel_expiry="2026-11-01T00:00:00+13:00")
    assert past.status_code == 400


def test_callbacks_carry_ids_operation_and_token_then_stop_when_the_channel_expires(receiver):
    org = make_org()
    receiver.calls.clear()
    _watch(org, receiver.url, return_affected_field_values=True)  # expires in one hour
    r = org.post("Accounts", json={"data": [{"Account_Name": "A"}, {"Account_Name": "B"}]})
    ids = [i["details"]["id"] for i in r.json()["data"]]
    org.post(
        "Deals", json={"data": [{"Deal_Name": "D", "Stage": "Qualification"}]}
    )  # Deals.edit only: no insert
    org.put("Accounts", json={"data": [{"id": ids[0], "Phone": "09 555 0100"}]})
    org.delete("Accounts", params={"ids": ids[1]})
    assert org.emu.flush_notifications() == 3
    insert, update, delete = receiver.calls
    assert insert["operation"] == "insert" and insert["ids"] == ids and insert["module"] == "Accounts"
    assert insert["token"] == "TOKEN_1" and insert["channel_id"] == "1000000068001"
    assert insert["query_params"] == {"secret": "s3"}
    assert insert["resource_uri"] == "http://testserver/crm/v8/Accounts"
    assert insert["server_time"] == 1793610000000  # 2026-11-02T09:00:00Z from the ManualClock
    assert update["operation"] == "update" and update["ids"] == [ids[0]]
    assert update["affected_fields"] == [{ids[0]: ["Phone"]}]
    assert update["affected_values"] == [{"record_id": ids[0], "values": {"Phone": "09 555 0100"}}]
    assert delete["operation"] == "delete" and delete["ids"] == [ids[1]]
    assert org.emu.flush_notifications() == 0  # nothing left to send
    org.clock.advance(3600)  # the channel has expired
    org.access_token = org.refresh()["access_token"]
    org.post("Accounts", json={"data": [{"Account_Name": "C"}]})
    assert org.emu.flush_notifications() == 0 and len(receiver.calls) == 3
    assert org.get("actions/watch").status_code == 204


def test_failed_callbacks_are_retried_with_backoff(receiver):
    org = make_org()
    receiver.calls.clear()
    _watch(org, receiver.url, channel_expiry="2026-11-03T22:00:00+13:00")
    org.post("Accounts", json={"data": [{"Account_Name": "A"}]})
    receiver.fail_next = 1
    assert org.emu.flush_notifications() == 0  # the receiver answered 503
    assert org.emu.flush_notifications() == 0  # not due yet
    org.clock.advance(30)
    assert org.emu.flush_notifications() == 1
    assert [c["operation"] for c in receiver.calls] == ["insert"]
    attempts = [d["outcome"] for d in org.emu.notifier.deliveries]
    assert attempts == ["503", "200"]


def test_a_dead_receiver_is_given_up_after_the_last_attempt():
    org = make_org()
    _watch(org, "http://127.0.0.1:9/hook", channel_expiry="2026-11-03T22:00:00+13:00")  # nothing listens
    org.post("Accounts", json={"data": [{"Account_Name": "A"}]})
    for _ in range(6):
        assert org.emu.flush_notifications() == 0
        org.clock.advance(900)
    assert len(org.emu.notifier.deliveries) == 4 and org.emu.notifier.outbox == []
