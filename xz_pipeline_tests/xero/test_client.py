"""XeroClient against the Xero emulator: paging cost, faults, token expiry, batch writes, idempotency.

Every request the client sends here is validated against the official Accounting OpenAPI file
(`checker`); each test ends by asserting there was no violation.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.http import CallMeter, RetryPolicy
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.xero import XeroLimits
from xz_pipeline.xero.client import idempotency_key
from xz_pipeline.xero.dates import (
    if_modified_since,
    parse_xero_date,
    parse_xero_datetime,
    to_decimal,
)
from xz_pipeline_tests.xero.support import CLIENT_SECRET, NoWaitTimer, SpecChecker, XeroSandbox, contacts

# openapi-core cannot model Xero's OAuth2 security scheme; the request checks are unaffected.
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type")


@pytest.fixture
def checker(specs):
    check = SpecChecker(specs)
    yield check
    assert check.errors == [], check.errors[:3]


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "tokens"


def _ids(rows):
    return [r["ContactID"] for r in rows]


# -- reading ----------------------------------------------------------------------------------------


def test_50001_rows_cost_51_calls(store_dir, checker):
    with XeroSandbox() as sb:
        sb.emulator.load(sb.tenant_id, "Contacts", contacts(50_001))
        meter = CallMeter()
        client = sb.client(store_dir, checker=checker, meter=meter, tenant_id=sb.tenant_id)
        before = len(sb.emulator.received)
        # summaryOnly keeps the emulator's work per page small (it renders every contact's full view on
        # every page otherwise, ~1 s a page at this size); paging and call counts are the same.
        pages = list(client.iter_pages("Contacts", params={"summaryOnly": "true"}))
        calls = sb.requests_to("/api.xro/2.0/Contacts", "GET", before)
    assert [len(p) for p in pages] == [1000] * 50 + [1]
    ids = [i for p in pages for i in _ids(p)]
    assert len(ids) == len(set(ids)) == 50_001
    assert len(calls) == 51 == meter.calls("GET Contacts")
    assert [c.query["page"] for c in calls] == [str(n) for n in range(1, 52)]
    assert {c.query["pageSize"] for c in calls} == {"1000"}
    assert {c.query["order"] for c in calls} == {"UpdatedDateUTC ASC"}
    assert checker.checked >= 51


def test_exact_multiple_of_the_page_size_needs_no_trailing_empty_page(store_dir, checker):
    with XeroSandbox() as sb:
        sb.emulator.load(sb.tenant_id, "Contacts", contacts(300))
        client = sb.client(store_dir, checker=checker)
        pages = list(client.iter_pages("Contacts", page_size=100))
        assert [len(p) for p in pages] == [100, 100, 100]
        assert len(sb.requests_to("/api.xro/2.0/Contacts", "GET")) == 3


def test_faults_on_a_fifth_of_calls_still_yield_every_record_once(store_dir, checker):
    spec = ("429@rate=0.07,path=/api.xro/2.0/;5xx@rate=0.07,path=/api.xro/2.0/;"
            "slow:1@rate=0.06,path=/api.xro/2.0/")  # fmt: skip
    with XeroSandbox(faults=spec, seed=5) as sb:
        expected = contacts(2000)
        sb.emulator.load(sb.tenant_id, "Contacts", expected)
        timer = NoWaitTimer()
        meter = CallMeter()
        client = sb.client(store_dir, checker=checker, meter=meter, timer=timer, timeout=(2.0, 0.5),
                           retry=RetryPolicy(attempts=8))  # fmt: skip
        # summaryOnly keeps each page cheap for the emulator, so only injected slowness times out.
        rows = list(client.iter_records("Contacts", page_size=50, params={"summaryOnly": "true"}))
        injected = dict(sb.faults.injected)
    names = Counter(r["Name"] for r in rows)
    assert set(names) == {c["Name"] for c in expected} and set(names.values()) == {1}
    assert all(injected.get(k, 0) > 0 for k in ("429", "5xx", "slow")), injected
    snap = meter.snapshot()
    assert snap["throttled"] == injected["429"]
    assert snap["retries"] == sum(injected.values())
    assert meter.calls("GET Contacts") == 40 + sum(injected.values())
    assert 0.1 < sum(injected.values()) / meter.calls("GET Contacts") < 0.35


def test_steady_state_never_draws_a_429(store_dir, checker):
    clock = ManualClock()
    with XeroSandbox(clock=clock, limits=XeroLimits(concurrent=5, per_minute=10, per_day=5000)) as sb:
        sb.emulator.load(sb.tenant_id, "Contacts", contacts(25))
        client = sb.client(store_dir, checker=checker, tenant_id=sb.tenant_id)
        rows = list(client.iter_records("Contacts", page_size=1))
        assert len(rows) == 25
        statuses = Counter(r.status for r in sb.requests_to("/api.xro/2.0/"))
        assert statuses == {200: 25}  # pageCount spares the trailing empty page
        waits = [s for s in client.http.timer.slept if s > 1]
        assert len(waits) == 2 and all(50 < s <= 62 for s in waits)  # the window plus AGE_MARGIN


def test_if_modified_since_where_and_ids(store_dir, checker):
    clock = ManualClock()
    with XeroSandbox(clock=clock) as sb:
        sb.emulator.load(sb.tenant_id, "Contacts", contacts(120))
        client = sb.client(store_dir, checker=checker)
        everyone = list(client.contacts())
        clock.advance(3600)
        cursor = clock.now()
        clock.advance(5)
        target = everyone[7]
        client.update_contacts([{"ContactID": target["ContactID"], "EmailAddress": "new@changed.example"}])
        changed = list(client.contacts(modified_since=cursor))
        assert [c["ContactID"] for c in changed] == [target["ContactID"]]
        assert changed[0]["EmailAddress"] == "new@changed.example"
        assert parse_xero_datetime(changed[0]["UpdatedDateUTC"]) >= cursor
        named = list(client.iter_records("Contacts", where='Name.StartsWith("Contact 00001")'))
        assert sorted(c["Name"] for c in named) == [f"Contact {i:06d} Ltd" for i in range(10, 20)]
        before = len(sb.emulator.received)
        wanted = [c["ContactID"] for c in everyone[:110]]
        by_ids = list(client.iter_records("Contacts", ids=wanted))
        assert sorted(_ids(by_ids)) == sorted(wanted)
        assert len(sb.requests_to("/api.xro/2.0/Contacts", "GET", before)) == 3  # 50 + 50 + 10 ids
        assert client.get("Contacts", target["ContactID"])["EmailAddress"] == "new@changed.example"
        with pytest.raises(ApiError) as info:
            client.get("Contacts", "3f0d1e8c-0000-4000-8000-000000000000")
        assert info.value.status == 404 and info.value.code == "NotFound"


def test_unpaged_collections_are_read_in_one_call(store_dir, checker):
    with XeroSandbox() as sb:
        client = sb.client(store_dir, checker=checker)
        before = len(sb.emulator.received)
        accounts = list(client.accounts())
        org = client.organisation()
        items = list(client.items())
        got = [
            (r.path, r.query.get("page")) for r in sb.emulator.received[before:] if r.path.startswith("/api")
        ]
    assert {a["Code"] for a in accounts} >= {"200", "610"} or len(accounts) >= 5
    assert org["Name"] == "Harbour Test Traders" and items == []
    assert got == [
        ("/api.xro/2.0/Accounts", None),
        ("/api.xro/2.0/Organisation", None),
        ("/api.xro/2.0/Items", None),
    ]


# -- tokens during a run ------------------------------------------------------------------------------


def test_token_expiring_mid_run_is_refreshed_once_and_persisted(store_dir, checker):
    clock = ManualClock()
    with XeroSandbox(clock=clock) as sb:
        sb.emulator.load(sb.tenant_id, "Contacts", contacts(2500))
        client = sb.client(store_dir, checker=checker, tenant_id=sb.tenant_id)
        seen = []
        for n, page in enumerate(client.iter_pages("Contacts", page_size=500)):
            seen.extend(_ids(page))
            if n == 1:
                first = TokenStore(store_dir).load("default", "xero")
                clock.advance(29.5 * 60)  # within a minute of the access token's end
        stored = TokenStore(store_dir).load("default", "xero")
        assert len(sb.token_calls()) == 2
        assert stored.refresh_token != first.refresh_token and stored.access_token != first.access_token
        assert len(seen) == len(set(seen)) == 2500
        assert all(r.status == 200 for r in sb.requests_to("/api.xro/2.0/"))


def test_401_mid_run_refreshes_once_and_retries(store_dir, checker):
    with XeroSandbox(faults="expired@nth=3,path=/api.xro/2.0/") as sb:
        sb.emulator.load(sb.tenant_id, "Contacts", contacts(1000))
        client = sb.client(store_dir, checker=checker, tenant_id=sb.tenant_id)
        rows = list(client.iter_records("Contacts", page_size=200))
        statuses = [r.status for r in sb.requests_to("/api.xro/2.0/Contacts")]
        assert len(rows) == 1000
        assert statuses == [200, 200, 401, 200, 200, 200]
        assert len(sb.token_calls()) == 2
        assert TokenStore(store_dir).load("default", "xero").access_token == client.auth.tokens.access_token


def test_custom_connection_sends_no_tenant_header(store_dir):
    with XeroSandbox(custom_connection=True) as sb:
        sb.emulator.load(sb.tenant_id, "Contacts", contacts(5))
        client = sb.client(store_dir, refresh_token=None, custom_connection=True)
        sent = []
        client.http.session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
        assert len(list(client.contacts())) == 5
        api = [p for p in sent if "/api.xro/2.0/" in p.url]
        assert api and all("xero-tenant-id" not in {k.lower() for k in p.headers} for p in api)
        assert sb.token_forms.forms[0]["grant_type"] == "client_credentials"


# -- writing ----------------------------------------------------------------------------------------


def test_batch_write_with_one_invalid_element_returns_the_other_ids(store_dir, checker):
    with XeroSandbox() as sb:
        client = sb.client(store_dir, checker=checker)
        batch = contacts(120, prefix="Batch")
        batch[63] = {"Name": "", "EmailAddress": "nameless@batch.example"}
        before = len(sb.emulator.received)
        results = client.create_contacts(batch)
        puts = sb.requests_to("/api.xro/2.0/Contacts", "PUT", before)
        stored = sb.emulator.dump(sb.tenant_id, "Contacts")
    assert [r.index for r in results] == list(range(120))
    bad = [r for r in results if not r.ok]
    assert [(r.index, r.record_id) for r in bad] == [(63, None)] and bad[0].errors
    good = [r.record_id for r in results if r.ok]
    assert len(good) == len(set(good)) == 119
    assert {c["ContactID"] for c in stored} == set(good)
    assert [len(p.query) and p.query["summarizeErrors"] for p in puts] == ["false"] * 3
    assert all(p.idempotency_key for p in puts)


def test_repeating_a_write_with_the_same_key_creates_nothing_new(store_dir, checker):
    with XeroSandbox() as sb:
        client = sb.client(store_dir, checker=checker)
        batch = contacts(30, prefix="Repeat")
        first = client.create_contacts(batch)
        again = client.create_contacts(batch)
        keys = [r.idempotency_key for r in sb.requests_to("/api.xro/2.0/Contacts", "PUT")]
        assert [r.record_id for r in again] == [r.record_id for r in first]
        assert len(sb.emulator.dump(sb.tenant_id, "Contacts")) == 30
        assert len(keys) == 2 and keys[0] == keys[1]
        assert keys[0] == idempotency_key("PUT", "/api.xro/2.0/Contacts", {"Contacts": batch}, sb.tenant_id)
        assert (
            idempotency_key("PUT", "/api.xro/2.0/Contacts", {"Contacts": batch[:29]}, sb.tenant_id) != keys[0]
        )


def test_a_write_whose_answer_is_lost_is_retried_without_duplicating(store_dir, checker):
    with XeroSandbox(faults="drop:after@nth=1,method=PUT") as sb:
        client = sb.client(store_dir, checker=checker, timer=NoWaitTimer())
        results = client.create_contacts(contacts(10, prefix="Lost"))
        puts = sb.requests_to("/api.xro/2.0/Contacts", "PUT")
        assert len(puts) == 2 and puts[0].idempotency_key == puts[1].idempotency_key
        assert all(r.ok for r in results)
        assert len(sb.emulator.dump(sb.tenant_id, "Contacts")) == 10


def test_invoices_payments_credit_notes_items_and_email(store_dir, checker, caplog):
    caplog.set_level(logging.DEBUG)
    with XeroSandbox() as sb:
        client = sb.client(store_dir, checker=checker)
        (contact,) = client.create_contacts(
            [{"Name": "Kiwi Kayaks", "EmailAddress": "ap@kiwikayaks.example"}]
        )
        assert client.create_items(
            [{"Code": "PADDLE", "Name": "Paddle", "SalesDetails": {"UnitPrice": 45.5}}]
        )[0].ok
        line = {"Description": "Paddle", "Quantity": 2, "UnitAmount": Decimal("45.50"), "AccountCode": "200"}
        invoices = client.create_invoices(
            [
                {"Type": "ACCREC", "Contact": {"ContactID": contact.record_id}, "Date": date(2026, 11, 2),
                 "DueDate": date(2026, 11, 30), "LineItems": [line], "Status": "AUTHORISED"},
                {"Type": "ACCREC", "Contact": {"ContactID": contact.record_id}, "LineItems": [line]},
            ]
        )  # fmt: skip
        assert all(r.ok for r in invoices)
        approved, draft = (r.record_id for r in invoices)
        client.email_invoice(approved)
        assert [e["InvoiceID"] for e in sb.emulator.emails] == [approved]
        with pytest.raises(ApiError) as info:
            client.email_invoice(draft)
        assert info.value.code == "ValidationException" and info.value.record_id == draft
        bank = next(a for a in client.accounts() if a["Type"] == "BANK")
        (payment,) = client.create_payments(
            [{"Invoice": {"InvoiceID": approved}, "Account": {"AccountID": bank["AccountID"]},
              "Date": date(2026, 11, 5), "Amount": Decimal("40.00")}]
        )  # fmt: skip
        assert payment.ok
        invoice = client.get("Invoices", approved)
        assert to_decimal(invoice["AmountPaid"]) == Decimal("40.00")
        assert to_decimal(invoice["AmountDue"]) == to_decimal(invoice["Total"]) - Decimal("40.00")
        assert parse_xero_date(invoice["DueDate"]) == date(2026, 11, 30)
        (note,) = client.create_credit_notes(
            [{"Type": "ACCRECCREDIT", "Contact": {"ContactID": contact.record_id}, "LineItems": [line]}]
        )
        assert note.ok and [n["CreditNoteID"] for n in client.credit_notes()] == [note.record_id]
        assert [p["PaymentID"] for p in client.payments()] == [payment.record_id]
        assert {i["InvoiceID"] for i in client.invoices()} == {approved, draft}
        assert client.delete_payment(payment.record_id).ok
        account = client.create_account({"Code": "4010", "Name": "Kayak hire", "Type": "REVENUE"})
        assert account.ok and account.record_id in {a["AccountID"] for a in client.accounts()}
        assert to_decimal(client.get("Invoices", approved)["AmountPaid"]) == Decimal("0")
        secrets = [
            CLIENT_SECRET,
            sb.refresh_token,
            client.auth.tokens.access_token,
            client.auth.tokens.refresh_token,
        ]
    assert caplog.text and not any(s in caplog.text for s in secrets)


def test_spec_checker_catches_a_bad_request(store_dir, specs):
    check = SpecChecker(specs)
    with XeroSandbox() as sb:
        client = sb.client(store_dir, checker=check)
        with pytest.raises(ApiError):
            client._call("GET", "Contacts", params={"page": "first"})
    assert check.checked == 1 and len(check.errors) == 1 and "page" in check.errors[0]


# -- wire values ----------------------------------------------------------------------------------


def test_dates_amounts_and_headers():
    assert parse_xero_datetime("/Date(1419937200000+0000)/") == datetime(2014, 12, 30, 11, 0, tzinfo=UTC)
    assert parse_xero_datetime("\\/Date(1419937200000+1300)\\/") == datetime(2014, 12, 30, 11, 0, tzinfo=UTC)
    assert parse_xero_datetime("/Date(1551399323399)/") == datetime(2019, 3, 1, 0, 15, 23, 399000, tzinfo=UTC)
    assert parse_xero_datetime("/Date(-86400000)/") == datetime(1969, 12, 31, tzinfo=UTC)
    assert parse_xero_datetime("2019-03-07T17:59:28Z") == datetime(2019, 3, 7, 17, 59, 28, tzinfo=UTC)
    assert parse_xero_datetime("2019-12-07T18:46:19.5165400") == datetime(
        2019, 12, 7, 18, 46, 19, 516540, tzinfo=UTC
    )
    assert parse_xero_datetime("2020-02-06T12:17:43.202-08:00") == datetime(
        2020, 2, 6, 20, 17, 43, 202000, tzinfo=UTC
    )
    assert parse_xero_datetime(None) is None and parse_xero_datetime("") is None
    # A date field sent at local midnight in +13:00 is that local calendar day.
    assert parse_xero_date("/Date(1419937200000+1300)/") == date(2014, 12, 31)
    assert parse_xero_date("/Date(1419897600000+0000)/") == date(2014, 12, 30)
    assert parse_xero_date("2019-03-07T00:00:00") == date(2019, 3, 7)
    with pytest.raises(ValueError):
        parse_xero_datetime("/Date(abc)/")
    assert to_decimal(0.1) == Decimal("0.1") and to_decimal(1250.5) == Decimal("1250.5")
    assert (
        to_decimal("12.345") == Decimal("12.345") and to_decimal(7) == Decimal(7) and to_decimal(None) is None
    )
    zone = timezone(timedelta(hours=-8))
    assert (
        if_modified_since(datetime(2020, 2, 6, 12, 17, 43, 999000, tzinfo=zone))
        == "2020-02-06T20:17:43+00:00"
    )
