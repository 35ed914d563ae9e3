"""ZohoClient against the Zoho emulator: paging cost, field groups, If-Modified-Since, faults, token
expiry, per-record write results, triggers, deletions, search and COQL, tags, notification channels."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from xz_pipeline.core.errors import ApiError, AuthError, RateLimitExhausted
from xz_pipeline.core.http import CallMeter, RetryPolicy
from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline.sandbox.zoho import ZohoLimits
from xz_pipeline.sandbox.zoho.meta import FieldDef
from xz_pipeline.zoho.client import SearchLimitExceeded
from xz_pipeline.zoho.dates import (
    format_zoho_date,
    if_modified_since,
    parse_zoho_date,
    parse_zoho_datetime,
    to_decimal,
)
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline_tests.zoho.support import (
    CLIENT_SECRET,
    T0,
    NoWaitTimer,
    SentRecorder,
    SpecChecker,
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


def test_a_record_modified_mid_read_cannot_push_another_past_a_page_boundary(store_dir):
    with ZohoSandbox() as sb:
        recs = accounts(450)
        sb.load("Accounts", recs)
        first = recs[0]["id"]
        # After page 1: the first record moves to the end, everything after it shifts left by one, and
        # record 200 would fall between pages 1 and 2 of an offset listing.
        sb.hooks.at("/crm/v8/Accounts", 1, lambda: sb.modify("Accounts", first, {"Tax_Number": "changed"}))
        client = sb.client(store_dir)
        rows = [r for p in client.iter_pages("Accounts", fields=FIELDS) for r in p]
        calls = sb.requests_to("/crm/v8/Accounts", "GET")
        before = len(calls)
        list(client.iter_pages("Accounts", fields=FIELDS))  # no write during this read: no check pass
        quiet = len(sb.requests_to("/crm/v8/Accounts", "GET")) - before
    ids = [r["id"] for r in rows]
    assert set(ids) == {r["id"] for r in recs}
    assert ids.count(first) == 2 and [r["Tax_Number"] for r in rows if r["id"] == first][-1] == "changed"
    assert len(ids) == 451
    check = [c for c in calls if c.query.get("fields") == "Modified_Time"]
    by_id = [c for c in calls if "ids" in c.query]
    assert len(calls) == 3 + len(check) + 1 and len(check) == 3
    assert by_id[0].query["ids"] == recs[200]["id"]
    assert quiet == 3


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
    assert snap["retries"] >= sum(
        injected.values()
    )  # every fault cost one retry (a slow machine may add some)
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


def test_spent_daily_credits_stop_the_client_before_zoho_has_to_refuse(store_dir):
    with ZohoSandbox(limits=ZohoLimits(credits_per_day=10)) as sb:
        sb.load("Accounts", accounts(2401))
        client = sb.client(store_dir)
        got = []
        with pytest.raises(RateLimitExhausted) as err:
            for page in client.iter_pages("Accounts", fields=FIELDS):
                got += page
        calls = sb.requests_to("/crm/v8/Accounts")
    assert err.value.limit == "credits"
    assert len(got) == 2000 and len(calls) == 10
    assert 429 not in [c.status for c in calls]  # the remaining-credits header told us first


def test_a_dead_refresh_token_is_an_auth_error_naming_the_code_not_the_token(store_dir, caplog):
    caplog.set_level(logging.DEBUG)
    with ZohoSandbox() as sb:
        client = sb.client(store_dir, refresh_token="1000.deadbeefdeadbeef.deadbeefdeadbeef")
        with pytest.raises(AuthError) as err:
            client.org()
    assert err.value.code == "invalid_code"
    assert "deadbeefdeadbeef" not in str(err.value) and "deadbeefdeadbeef" not in caplog.text
    assert CLIENT_SECRET not in str(err.value) and CLIENT_SECRET not in caplog.text


# -- writes -----------------------------------------------------------------------------------------


def test_mixed_upsert_gives_per_record_results_in_input_order(store_dir):
    with ZohoSandbox() as sb:
        sb.load("Accounts", accounts(3))
        client = sb.client(store_dir)
        results = client.upsert(
            "Accounts",
            [
                {"Account_Name": "Account 00001", "Outstanding_Balance": Decimal("1250.75")},  # exists
                {"Account_Name": "Brand New Ltd", "Tax_Number": "123-456-789"},
                {"Account_Name": "Bad Revenue Ltd", "Annual_Revenue": "lots"},
                {"Tax_Number": "no name"},
            ],
        )
        call = sb.requests_to("/crm/v8/Accounts/upsert")[-1]
        stored = client.get("Accounts", accounts(3)[1]["id"])
        new = client.get("Accounts", results[1].id)
    assert call.status == 207
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert [r.ok for r in results] == [True, True, False, False]
    assert results[0].id == accounts(3)[1]["id"]
    assert (results[0].action, results[0].duplicate_field) == ("update", "Account_Name")
    assert (results[1].action, results[1].duplicate_field) == ("insert", None)
    assert new["Account_Name"] == "Brand New Ltd"
    assert to_decimal(stored["Outstanding_Balance"]) == Decimal("1250.75")
    bad = results[2]
    assert (bad.id, bad.code, bad.field, bad.json_path) == (
        None,
        "INVALID_DATA",
        "Annual_Revenue",
        "$.data[2].Annual_Revenue",
    )
    assert (results[3].code, results[3].field, results[3].json_path) == (
        "MANDATORY_NOT_FOUND",
        "Account_Name",
        "$.data[3].Account_Name",
    )
    with pytest.raises(ApiError) as err:
        bad.raise_for_error("Accounts")
    assert err.value.field == "Annual_Revenue"


def test_writes_go_100_a_call_and_paths_point_into_the_callers_list(store_dir):
    with ZohoSandbox() as sb:
        client = sb.client(store_dir)
        records = [{"Account_Name": f"Bulk {i:03d}"} for i in range(250)]
        records[170] = {"Account_Name": "x" * 300}
        results = client.insert("Accounts", records)
        calls = sb.requests_to("/crm/v8/Accounts", "POST")
        all_bad = client.update("Accounts", [{"id": "5725767999999999999", "Tax_Number": "1"}])
        with pytest.raises(ApiError) as err:
            client.insert("Quotes", [{"Subject": "nope"}])
    assert [c.status for c in calls] == [201, 207, 201]
    assert len(results) == 250 and [r.index for r in results] == list(range(250))
    assert [i for i, r in enumerate(results) if not r.ok] == [170]
    assert results[170].json_path == "$.data[170].Account_Name" and results[170].field == "Account_Name"
    assert len({r.id for r in results if r.ok}) == 249
    assert not all_bad[0].ok and all_bad[0].code == "INVALID_DATA"  # HTTP 400 with per-record data
    assert err.value.status == 400 and err.value.code == "INVALID_MODULE"


def test_writes_fire_no_workflow_unless_the_trigger_names_it(store_dir):
    with ZohoSandbox() as sb:
        client = sb.client(store_dir)
        sent = SentRecorder()
        sent.attach(client.http.session)
        quiet = client.insert("Accounts", [{"Account_Name": "Quiet Ltd"}])[0]
        client.update("Accounts", [{"id": quiet.id, "Tax_Number": "1"}])
        client.delete("Accounts", [quiet.id])
        assert sb.emulator.workflow_runs == []
        assert [b["trigger"] for b in sent.bodies("POST", "/Accounts") + sent.bodies("PUT", "/Accounts")] == [
            [],
            [],
        ]
        loud = client.insert("Accounts", [{"Account_Name": "Loud Ltd"}], trigger=["workflow"])[0]
        configured = sb.client(store_dir, trigger=["workflow"])
        configured.update("Accounts", [{"id": loud.id, "Tax_Number": "2"}])
        configured.delete("Accounts", [loud.id])
        runs = list(sb.emulator.workflow_runs)
        wf = [c.query["wf_trigger"] for c in sb.requests_to("/crm/v8/Accounts", "DELETE")]
    assert runs == [
        ("Accounts", loud.id, "insert"),
        ("Accounts", loud.id, "update"),
        ("Accounts", loud.id, "delete"),
    ]
    assert wf == ["false", "true"]


def test_deleted_records_with_and_without_since(store_dir):
    with ZohoSandbox() as sb:
        sb.load("Accounts", accounts(5))
        ids = [a["id"] for a in accounts(5)]
        client = sb.client(store_dir)
        first = client.delete("Accounts", ids[:3] + ["5725767999999999999"])
        sb.clock.advance(600)
        cursor = sb.clock.now()
        sb.clock.advance(5)
        client.delete("Accounts", [ids[3]])
        everything = list(client.deleted("Accounts"))
        recent = list(client.deleted("Accounts", since=cursor))
        none_since = list(client.deleted("Accounts", since=sb.clock.now() + timedelta(minutes=1)))
        remaining = list(client.iter_records("Accounts", fields=["Account_Name"]))
    assert [r.ok for r in first] == [True, True, True, False]
    assert [r.id for r in first[:3]] == ids[:3] and first[3].code == "INVALID_DATA"
    assert sorted(d["id"] for d in everything) == sorted(ids[:4])
    assert {d["type"] for d in everything} == {"recycle"}
    assert [d["id"] for d in recent] == [ids[3]]
    assert parse_zoho_datetime(recent[0]["deleted_time"]) == cursor + timedelta(seconds=5)
    assert none_since == []
    assert [r["id"] for r in remaining] == [ids[4]]


# -- search and COQL --------------------------------------------------------------------------------


def test_search_by_criteria_email_and_word(store_dir):
    with ZohoSandbox() as sb:
        sb.load("Accounts", accounts(30))
        client = sb.client(store_dir)
        client.insert("Contacts", [{"Last_Name": "Ngata", "Email": "aroha@ngata.example"},
                                   {"Last_Name": "Smith", "Email": "jo@smith.example"}])  # fmt: skip
        hits = client.search(
            "Accounts", criteria="(Account_Name:starts_with:Account 0001)", fields=["Account_Name"]
        )
        by_email = client.search("Contacts", email="aroha@ngata.example")
        by_word = client.search("Contacts", word="Smith")
        nothing = client.search("Accounts", criteria="(Account_Name:equals:Nobody)")
        with pytest.raises(ValueError):
            client.search("Accounts", email="a@b.example", word="ab")
    assert sorted(h["Account_Name"] for h in hits) == [f"Account {i:05d}" for i in range(10, 20)]
    assert [c["Last_Name"] for c in by_email] == ["Ngata"]
    assert [c["Last_Name"] for c in by_word] == ["Smith"]
    assert nothing == []


def test_search_beyond_2000_matches_raises_instead_of_truncating_and_coql_reads_them_all(store_dir):
    with ZohoSandbox() as sb:
        sb.load("Accounts", accounts(2401))
        client = sb.client(store_dir)
        with pytest.raises(SearchLimitExceeded) as err:
            client.search("Accounts", word="Account")
        searches = sb.requests_to("/crm/v8/Accounts/search")
        rows = list(
            client.coql("select Account_Name, Tax_Number from Accounts where Account_Name like 'Account%'")
        )
        coql_calls = sb.requests_to("/crm/v8/coql")
        few = list(client.coql("select Account_Name from Accounts where Tax_Number = 'GST-000007' limit 5"))
    assert err.value.code == "LIMIT_REACHED" and "coql" in str(err.value)
    assert len(searches) == 10 and max(int(c.query["page"]) for c in searches) == 10
    assert len(rows) == len({r["id"] for r in rows}) == 2401
    assert len(coql_calls) == 2 and {c.credits for c in coql_calls} == {3}
    assert [r["Account_Name"] for r in few] == ["Account 00007"]


# -- tags -------------------------------------------------------------------------------------------


def test_add_and_remove_tags(store_dir):
    with ZohoSandbox() as sb:
        sb.load("Deals", [{"id": "5725767000000900001", "Deal_Name": "D1", "Stage": "Qualification"},
                          {"id": "5725767000000900002", "Deal_Name": "D2", "Stage": "Qualification"}])  # fmt: skip
        client = sb.client(store_dir)
        added = client.add_tags("Deals", ["5725767000000900001", "5725767000000900002", "5725767999999999999"],
                                ["Xero-Synced", "Overdue"])  # fmt: skip
        removed = client.remove_tags("Deals", ["5725767000000900001"], ["Overdue"])
        d1 = client.get("Deals", "5725767000000900001")
        d2 = client.get("Deals", "5725767000000900002")
    assert [r.ok for r in added] == [True, True, False] and [r.ok for r in removed] == [True]
    assert [t["name"] for t in d1["Tag"]] == ["Xero-Synced"]
    assert sorted(t["name"] for t in d2["Tag"]) == ["Overdue", "Xero-Synced"]


# -- notification channels --------------------------------------------------------------------------


class Receiver:
    """A notify URL on loopback that records the callbacks it gets."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.lock = threading.Lock()

        async def hook(request):
            body = await request.json()
            with self.lock:
                self.calls.append(body)
            return JSONResponse({})

        self.app = Starlette(routes=[Route("/zoho", hook, methods=["POST"])])


def test_notification_channel_enable_renew_disable_with_deliveries(store_dir):
    receiver = Receiver()
    with LoopbackServer(receiver.app, name="zoho-receiver") as rx, ZohoSandbox() as sb:
        client = sb.client(store_dir)
        url = f"{rx.url}/zoho?c=1"
        expiry = sb.clock.now() + timedelta(days=2)
        with pytest.raises(ValueError):
            client.enable_notifications("1000000068001", ["Accounts.all"], url, "notify-secret-token-42",
                                        sb.clock.now() + timedelta(days=8))  # fmt: skip
        channel = client.enable_notifications("1000000068001", ["Accounts.all", "Deals.edit"], url,
                                              "notify-secret-token-42", expiry)  # fmt: skip
        made = client.insert("Accounts", [{"Account_Name": "Watched Ltd"}])[0]
        assert sb.emulator.flush_notifications() == 1
        renewed = client.renew_notifications("1000000068001", sb.clock.now() + timedelta(days=6))
        listed = client.list_notifications()
        sb.clock.advance(3 * 86400)  # past the first expiry, within the renewed one
        client.update("Accounts", [{"id": made.id, "Tax_Number": "9"}])
        assert sb.emulator.flush_notifications() == 1
        disabled = client.disable_notifications(["1000000068001", "999"])
        client.update("Accounts", [{"id": made.id, "Tax_Number": "10"}])
        assert sb.emulator.flush_notifications() == 0
        after = client.list_notifications()
    assert channel.channel_id == "1000000068001" and channel.expiry == expiry
    assert set(channel.modules) == {"Accounts", "Deals"}
    assert renewed.expiry == T0 + timedelta(days=6)
    assert [c["channel_id"] for c in listed] == ["1000000068001"]
    assert [(c["operation"], c["ids"], c["token"]) for c in receiver.calls] == [
        ("insert", [made.id], "notify-secret-token-42"),
        ("update", [made.id], "notify-secret-token-42"),
    ]
    assert [(r.id, r.ok) for r in disabled] == [("1000000068001", True), ("999", False)]
    assert after == []


# -- secrets, resource, dates -----------------------------------------------------------------------


def test_no_secret_reaches_the_log(store_dir, caplog):
    caplog.set_level(logging.DEBUG)
    with ZohoSandbox(faults="5xx@nth=2,path=/crm/;429@nth=3,path=/crm/") as sb:
        sb.load("Accounts", accounts(500))
        client = sb.client(store_dir)
        list(client.iter_pages("Accounts", fields=FIELDS))
        client.emulator_token = client.auth.tokens.access_token  # for the assertion below
        sb.emulator.expire_access_token(client.emulator_token)
        client.insert("Accounts", [{"Account_Name": "Log Ltd"}])
        secrets = [CLIENT_SECRET, sb.refresh_token, client.emulator_token, client.auth.tokens.access_token]
    assert "retrying" in caplog.text and "refreshed" in caplog.text  # the log did speak
    for secret in secrets:
        assert secret not in caplog.text
    assert CLIENT_SECRET not in repr(client) and sb.refresh_token not in repr(client.auth)


def test_resource_builds_a_client_from_the_environment(monkeypatch, xz_home):
    with ZohoSandbox() as sb:
        monkeypatch.setenv("ZOHO_CLIENT_ID", "1000.ZOHOCLIENTTEST0123456789")
        monkeypatch.setenv("ZOHO_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("ZOHO_REFRESH_TOKEN", sb.refresh_token)
        monkeypatch.setenv("ZOHO_ACCOUNTS_URL", sb.url)
        resource = ZohoResource(timeout=5.0)
        client = resource.client("default")
        assert client.org()["id"] == sb.org_id
        assert client.trigger == []
        assert (xz_home / "tokens" / "default-zoho.json").exists()
    assert CLIENT_SECRET not in repr(resource) and sb.refresh_token not in repr(resource)


def test_dates_and_amounts():
    assert parse_zoho_datetime("2026-11-01T10:15:00+13:00") == datetime(2026, 10, 31, 21, 15, tzinfo=UTC)
    assert parse_zoho_datetime("2026-11-01T10:15:00Z") == datetime(2026, 11, 1, 10, 15, tzinfo=UTC)
    assert parse_zoho_datetime(None) is None and parse_zoho_datetime("") is None
    for bad in ("2026-11-01T10:15:00", "yesterday", 5):
        with pytest.raises(ValueError):
            parse_zoho_datetime(bad)
    assert parse_zoho_date("2026-02-28") == date(2026, 2, 28)
    for bad in ("2026-02-30", "28/02/2026", "2026-02-28T00:00:00+00:00"):
        with pytest.raises(ValueError):
            parse_zoho_date(bad)
    assert format_zoho_date(datetime(2026, 3, 1, 23, 0, tzinfo=UTC)) == "2026-03-01"
    nz = datetime(2026, 11, 1, 10, 15, 59, 999_000, tzinfo=UTC).astimezone()
    assert if_modified_since(nz) == "2026-11-01T10:15:59+00:00"  # truncated, never rounded up
    with pytest.raises(ValueError):
        if_modified_since(datetime(2026, 11, 1))
    assert to_decimal(0.1) == Decimal("0.1") and to_decimal(1250) == Decimal("1250")
    assert to_decimal("12.50") == Decimal("12.50") and to_decimal(None) is None
    with pytest.raises(ValueError):
        to_decimal(True)


# -- the official specification ---------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore")
def test_every_request_conforms_to_the_official_v8_spec(store_dir, specs):
    checker = SpecChecker(specs)
    receiver = Receiver()
    with LoopbackServer(receiver.app, name="zoho-receiver") as rx, ZohoSandbox() as sb:
        sb.load("Accounts", accounts(450))
        client = sb.client(store_dir)
        checker.attach(client.http.session)
        first = accounts(1)[0]["id"]
        list(client.iter_pages("Accounts", fields=FIELDS, modified_since=T0 - timedelta(days=1)))
        client.get("Accounts", first)
        client.get_many("Accounts", [first], ["Account_Name"])
        made = client.insert(
            "Accounts", [{"Account_Name": "Spec Ltd", "Outstanding_Balance": Decimal("1.10")}]
        )
        client.update("Accounts", [{"id": made[0].id, "Tax_Number": "1"}])
        client.upsert("Accounts", [{"Account_Name": "Spec Ltd"}], duplicate_check_fields=["Account_Name"])
        client.delete("Accounts", [made[0].id])
        list(client.deleted("Accounts"))
        client.search("Accounts", criteria="(Account_Name:equals:Account 00001)", fields=["Account_Name"])
        list(client.coql("select Account_Name from Accounts where Account_Name is not null"))
        client.add_tags("Accounts", [first], ["Spec"])
        client.remove_tags("Accounts", [first], ["Spec"])
        client.modules(), client.fields("Accounts"), client.org()
        expiry = sb.clock.now() + timedelta(days=1)
        client.enable_notifications("1000000068001", ["Accounts.all"], f"{rx.url}/zoho", "t-123456", expiry)
        client.renew_notifications("1000000068001", expiry + timedelta(days=1))
        client.list_notifications()
        client.disable_notifications(["1000000068001"])
    assert checker.errors == [], checker.errors[:3]
    assert len(checker.checked) >= 17
    assert {w.split()[0] for w in checker.exempt} == {
        "POST",
        "PATCH",
    }  # tags and watch only (see SPEC_DEFECTS)


def test_related_list_pages_and_composite_writes_in_one_call(store_dir):
    with ZohoSandbox() as sb:
        client = sb.client(store_dir)
        products = client.insert(
            "Products", [{"Product_Name": f"P{i}", "Product_Code": f"C{i}"} for i in range(3)]
        )
        deal = client.insert("Deals", [{"Deal_Name": "D", "Stage": "Closed Won"}])[0].id
        sb.emulator.relate(sb.org_id, "Deals", deal, "Products",
                           [{"id": p.id, "Quantity": 2, "List_Price": 5.5} for p in products])  # fmt: skip
        rows = client.related("Deals", deal, "Products", ["Product_Code", "Quantity", "List_Price"])
        assert [(r["Product_Code"], r["Quantity"], r["List_Price"]) for r in rows] == [
            ("C0", 2, 5.5), ("C1", 2, 5.5), ("C2", 2, 5.5)
        ]  # fmt: skip
        assert client.related("Deals", client.insert("Deals", [{"Deal_Name": "E", "Stage": "Qualification"}])[0].id,
                              "Products", ["Product_Code"]) == []  # fmt: skip

        before = len(sb.emulator.received)
        answers = client.composite([
            client.write_request("upsert", "Accounts", [{"Account_Name": "A", "Xero_Contact_ID": "x1"}],
                                 duplicate_check_fields=["Xero_Contact_ID"]),
            client.write_request("update", "Deals", [{"id": deal, "Amount_Paid": 3}, {"id": "1", "Amount_Paid": 1}]),
            client.write_request("update", "Nope", [{"id": "1"}]),
        ])  # fmt: skip
        assert len(sb.emulator.received) == before + 1  # one HTTP call
        upserted, updated, refused = answers
        assert upserted[0].ok and upserted[0].action == "insert"
        assert [r.ok for r in updated] == [True, False] and updated[1].code == "INVALID_DATA"
        assert isinstance(refused, ApiError) and refused.code == "INVALID_MODULE"


def test_the_crm_writer_tags_up_to_500_accounts_in_one_call(store_dir):
    from xz_pipeline.zoho.writer import ZohoCrmWriter

    with ZohoSandbox() as sb:
        client = sb.client(store_dir)
        ids = [
            r.id for r in client.insert("Accounts", [{"Account_Name": f"Supplier {i}"} for i in range(150)])
        ]
        writer = ZohoCrmWriter(client, "c")
        before = len(sb.emulator.received)
        batch = writer.add_tags(ids, ["Xero Supplier"])
        assert batch.failed == 0 and len(batch.outcomes) == 150
        assert len(sb.emulator.received) == before + 1 and writer.write_calls == 1
        assert all(
            t["name"] == "Xero Supplier" for a in sb.emulator.dump(sb.org_id, "Accounts") for t in a["Tag"]
        )
        with pytest.raises(ValueError, match="at most 500"):
            writer.add_tags([str(i) for i in range(501)], ["T"])
