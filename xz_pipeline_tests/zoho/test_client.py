"""ZohoClient against the Zoho emulator: paging cost, field groups, If-Modified-Since, faults, token
expiry, per-record write results, triggers, deletions, search and COQL, tags, notification channels."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest

from xz_pipeline.core.errors import AuthError
from xz_pipeline.core.http import CallMeter, RetryPolicy
from xz_pipeline.sandbox.zoho_meta import FieldDef
from xz_pipeline.zoho.dates import (
    parse_zoho_datetime,
    to_decimal,
)
from xz_pipeline_tests.zoho.support import (
    CLIENT_SECRET,
    T0,
    NoWaitTimer,
    SentRecorder,
    ZohoSandbox,
    accounts,
)

FIELDS = ["Account_Name", "Tax_Number", "Modified_Time"]


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "tokens"


def _ids(pages):
    return [r["id"] for p in pages for r in p]


# -- reading ----------------------------------------------------------------------------------------


def test_2401_records_cost_13_calls_crossing_into_page_token(store_dir):
    with ZohoSandbox() as sb:
        sb.load("Accounts", accounts(2401))
        meter = CallMeter()
        client = sb.client(store_dir, meter=meter)
        pages = list(client.iter_pages("Accounts", fields=FIELDS))
        calls = sb.requests_to("/crm/v8/Accounts", "GET")
        assert client.api_domain == sb.url  # adopted from the token response
    assert [len(p) for p in pages] == [200] * 12 + [1]
    ids = _ids(pages)
    assert len(ids) == len(set(ids)) == 2401
    assert ids == [a["id"] for a in accounts(2401)]  # Modified_Time ascending
    assert len(calls) == 13 == meter.calls("GET Accounts")
    assert [c.query.get("page") for c in calls[:10]] == [str(n) for n in range(1, 11)]
    assert all("page_token" not in c.query for c in calls[:10])
    assert all("page" not in c.query and c.query["page_token"] for c in calls[10:])
    assert {(c.query["sort_by"], c.query["sort_order"], c.query["per_page"]) for c in calls} == {
        ("Modified_Time", "asc", "200")
    }
    assert {c.status for c in calls} == {200}
    assert len(sb.token_calls()) == 1


def test_exact_multiple_of_200_needs_no_trailing_call_and_empty_module_is_one_204(store_dir):
    with ZohoSandbox() as sb:
        client = sb.client(store_dir)
        assert list(client.iter_pages("Contacts", fields=["Last_Name"])) == []
        sb.load("Accounts", accounts(400))
        pages = list(client.iter_pages("Accounts", fields=FIELDS))
        assert [c.status for c in sb.requests_to("/crm/v8/Contacts")] == [204]
        assert len(sb.requests_to("/crm/v8/Accounts")) == 2
    assert [len(p) for p in pages] == [200, 200]


def _add_wide_fields(sb: ZohoSandbox, n: int) -> list[str]:
    mdef = sb.org.modules["Accounts"]
    names = [f"Extra_{i:02d}" for i in range(n)]
    for i, name in enumerate(names):
        mdef.fields.append(FieldDef(name, name.replace("_", " "), "text", custom=True, id=f"77{i:04d}"))
    return names


def test_more_than_50_fields_are_split_into_groups_and_joined_by_id(store_dir):
    with ZohoSandbox() as sb:
        extra = _add_wide_fields(sb, 40)
        recs = accounts(450)
        for i, r in enumerate(recs):
            r.update({name: f"{name}-{i}" for name in extra})
        sb.load("Accounts", recs)
        wanted = [f["api_name"] for f in sb.client(store_dir).fields("Accounts")]
        assert len(wanted) > 50
        client = sb.client(store_dir)
        before = len(sb.requests_to("/crm/v8/Accounts"))
        pages = list(client.iter_pages("Accounts", fields=["id", *wanted]))
        calls = sb.requests_to("/crm/v8/Accounts", "GET")[before:]
    groups = [c.query["fields"].split(",") for c in calls]
    assert len(calls) == 6  # two groups of at most 50, ceil(450/200) = 3 pages each
    assert all(len(g) <= 50 and "id" not in g for g in groups)
    assert sorted(set(groups[0]) | set(groups[1])) == sorted(wanted)
    rows = [r for p in pages for r in p]
    assert len(rows) == len({r["id"] for r in rows}) == 450
    by_id = {r["id"]: r for r in rows}
    for i, src in enumerate(recs):
        row = by_id[src["id"]]
        assert set(wanted) <= set(row)
        assert row["Account_Name"] == src["Account_Name"] and row["Extra_39"] == f"Extra_39-{i}"


def test_a_record_modified_between_field_groups_is_completed_by_id_not_dropped(store_dir):
    with ZohoSandbox() as sb:
        extra = _add_wide_fields(sb, 40)
        recs = accounts(450)
        sb.load("Accounts", recs)
        wanted = [
            "Account_Name",
            "Tax_Number",
            *[f.api_name for f in sb.org.modules["Accounts"].fields][:20],
            *extra,
        ]
        first = recs[0]["id"]
        # After the first group's first page: the first record moves to the end of the Modified_Time
        # order, so the second group's pages are shifted by one against the first group's.
        sb.hooks.at("/crm/v8/Accounts", 1, lambda: sb.modify("Accounts", first, {"Tax_Number": "changed"}))
        client = sb.client(store_dir)
        pages = list(client.iter_pages("Accounts", fields=wanted))
        calls = sb.requests_to("/crm/v8/Accounts", "GET")
    rows = [r for p in pages for r in p]
    assert len(rows) == len({r["id"] for r in rows}) == 450
    assert all(set(wanted) <= set(r) for r in rows)
    assert next(r for r in rows if r["id"] == first)["Tax_Number"] == "changed"
    by_ids = [c for c in calls if "ids" in c.query]
    assert len(by_ids) == 1 and by_ids[0].query["ids"] == recs[200]["id"]  # the one the shift hid
    assert len(calls) == 7


def test_if_modified_since_is_inclusive_to_the_second_and_unchanged_is_one_304(store_dir):
    with ZohoSandbox() as sb:
        sb.load("Accounts", accounts(10, modified=T0 - timedelta(hours=1), step=60))
        sent = SentRecorder()
        client = sb.client(store_dir)
        sent.attach(client.http.session)
        cursor = T0 - timedelta(hours=1) + timedelta(minutes=4, microseconds=700_000)
        rows = [r for p in client.iter_pages("Accounts", fields=FIELDS, modified_since=cursor) for r in p]
        assert [r["Account_Name"] for r in rows] == [f"Account {i:05d}" for i in range(4, 10)]
        assert parse_zoho_datetime(rows[0]["Modified_Time"]) == cursor.replace(microsecond=0)
        header = [h for m, p, h, _ in sent.sent if p.endswith("/Accounts")][-1]["If-Modified-Since"]
        assert header == "2026-11-02T08:04:00+00:00"
        before = len(sb.emulator.received)
        later = T0 + timedelta(minutes=1)
        assert list(client.iter_pages("Accounts", fields=FIELDS, modified_since=later)) == []
        calls = sb.requests_to("/crm/v8/Accounts", since=before)
    assert [c.status for c in calls] == [304]


def test_get_many_and_get_with_subforms(store_dir):
    with ZohoSandbox() as sb:
        sb.load("Accounts", accounts(250))
        client = sb.client(store_dir)
        wanted = [a["id"] for a in accounts(250)][::2] + ["5725767999999999999"]
        rows = client.get_many("Accounts", wanted, ["Account_Name"])
        calls = sb.requests_to("/crm/v8/Accounts", "GET")
        acc = rows[0]["id"]
        product = client.insert("Products", [{"Product_Name": "Widget", "Unit_Price": Decimal("12.50")}])[0]
        inv = client.insert(
            "Invoices",
            [
                {
                    "Subject": "INV-1",
                    "Account_Name": {"id": acc},
                    "Invoiced_Items": [
                        {"Product_Name": {"id": product.id}, "Quantity": 2, "List_Price": Decimal("12.50")}
                    ],
                }
            ],
        )[0]
        assert inv.ok, inv
        one = client.get("Invoices", inv.id)
        listed = list(client.iter_records("Invoices", fields=["Subject", "Invoiced_Items"]))
        missing = client.get("Invoices", "5725767999999999999")
    assert sorted(r["id"] for r in rows) == sorted(wanted[:-1])
    assert len(calls) == 2 and all(len(c.query["ids"].split(",")) <= 100 for c in calls)
    assert one["Invoiced_Items"][0]["Quantity"] == 2
    assert to_decimal(one["Invoiced_Items"][0]["List_Price"]) == Decimal("12.5")
    assert "Invoiced_Items" not in listed[0]  # subforms come only with a single-record GET
    assert missing is None


def test_modules_fields_org(store_dir):
    with ZohoSandbox() as sb:
        client = sb.client(store_dir)
        names = {m["api_name"] for m in client.modules()}
        assert client.module_supported("Invoices") and not client.module_supported("Quotes")
        fields = {f["api_name"]: f for f in client.fields("Accounts")}
        org = client.org()
    assert {"Accounts", "Contacts", "Deals", "Invoices"} <= names
    assert fields["Xero_Contact_ID"]["external"]["type"] == "org"
    assert org["id"] == sb.org_id


# -- reliability ------------------------------------------------------------------------------------

FAULTS = (
    "429@rate=0.06,path=/crm/;5xx@rate=0.06,path=/crm/;drop@rate=0.03,path=/crm/;"
    "malformed@rate=0.03,path=/crm/;slow:3@rate=0.03,path=/crm/"
)


def test_faults_on_a_fifth_of_calls_still_yield_every_record_exactly_once(store_dir):
    with ZohoSandbox(faults=FAULTS, seed=6) as sb:
        sb.load("Accounts", accounts(2401))
        meter = CallMeter()
        timer = NoWaitTimer()
        client = sb.client(store_dir, meter=meter, timer=timer, timeout=(2.0, 1.0),
                           retry=RetryPolicy(attempts=8))  # fmt: skip
        pages = list(client.iter_pages("Accounts", fields=FIELDS))
        injected = dict(sb.faults.injected)
    ids = _ids(pages)
    assert len(ids) == len(set(ids)) == 2401
    assert set(injected) == {"429", "5xx", "drop", "malformed", "slow"}, injected  # seed 6 hits each kind
    snap = meter.snapshot()["endpoints"]["GET Accounts"]
    assert snap["calls"] == 13 + snap["retries"]
    assert snap["retries"] == sum(injected.values())
    assert timer.slept  # backed off between attempts


def test_a_token_expiring_mid_run_is_refreshed_once_and_the_run_goes_on(store_dir):
    with ZohoSandbox() as sb:
        sb.load("Accounts", accounts(1000))
        client = sb.client(store_dir)

        def expire():
            sb.emulator.expire_access_token(client.auth.tokens.access_token)

        sb.hooks.at("/crm/v8/Accounts", 2, expire)
        pages = list(client.iter_pages("Accounts", fields=FIELDS))
        statuses = [c.status for c in sb.requests_to("/crm/v8/Accounts")]
        assert len(sb.token_calls()) == 2
        # An hour later the stored token has lapsed: refreshed before the call, no 401 needed.
        sb.clock.advance(3700)
        assert len(list(client.iter_records("Accounts", fields=FIELDS))) == 1000
        assert len(sb.token_calls()) == 3
        assert 401 not in [c.status for c in sb.requests_to("/crm/v8/Accounts")][len(statuses) :]
    assert len(_ids(pages)) == 1000
    assert statuses == [200, 200, 401, 200, 200, 200]


def test_a_dead_refresh_token_is_an_auth_error_naming_the_code_not_the_token(store_dir, caplog):
    caplog.set_level(logging.DEBUG)
    with ZohoSandbox() as sb:
        client = sb.client(store_dir, refresh_token="1000.deadbeefdeadbeef.deadbeefdeadbeef")
        with pytest.raises(AuthError) as err:
            client.org()
    assert err.value.code == "invalid_code"
    assert "deadbeefdeadbeef" not in str(err.value) and "deadbeefdeadbeef" not in caplog.text
    assert CLIENT_SECRET not in str(err.value) and CLIENT_SECRET not in caplog.text
