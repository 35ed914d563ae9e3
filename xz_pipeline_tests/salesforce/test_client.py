"""The Salesforce client and CRM writer against the Salesforce emulator: SOQL batches followed through
nextRecordsUrl, incremental reads on SystemModstamp with /deleted/, per-record errors of Collections as
Outcomes in order, upsert by external id (created, then updated), an account and its contacts in one Composite
call, a refused request sent once, the day's allocation failing at once. Assertions read what the emulator
received and holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from xz_pipeline.core.canonical import Customer, Person, Role
from xz_pipeline.core.errors import ApiError, RateLimitExhausted, explain
from xz_pipeline.core.http import Budgets, RetryPolicy
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.salesforce import schema as sf_schema
from xz_pipeline.salesforce import tables
from xz_pipeline.salesforce.client import SalesforceClient
from xz_pipeline.salesforce.writer import SalesforceCrmWriter
from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.salesforce.limits import SalesforceLimits
from xz_pipeline.sandbox.server import SandboxServer


@pytest.fixture(scope="module")
def sb():
    with SandboxServer(
        seed=11, size="tiny", crm="salesforce", clock=ManualClock(datetime.now(UTC))
    ) as server:
        yield server


def client_of(sb, tmp_path, refresh: str | None = "env", **kw) -> SalesforceClient:
    env = sb.env(0)
    return SalesforceClient(client_id=env["SALESFORCE_CLIENT_ID"], client_secret=env["SALESFORCE_CLIENT_SECRET"],
                            refresh_token=env["SALESFORCE_REFRESH_TOKEN"] if refresh == "env" else refresh,
                            login_url=env["SALESFORCE_LOGIN_URL"], token_store=TokenStore(tmp_path / "tokens"),
                            connection="acme", clock=sb.clock, **kw)  # fmt: skip


@pytest.fixture
def c(sb, tmp_path):
    with client_of(sb, tmp_path) as client:
        yield client


def org(sb):
    return sb.salesforce.orgs[sb.salesforce_org_ids[0]]


def received(sb, since: int, part: str) -> list:
    return [r for r in sb.salesforce.received[since:] if part in r.path]


def test_soql_batches_follow_next_records_url(sb, c):
    held = set(org(sb).records["Opportunity"])
    assert len(held) > 400
    start = len(sb.salesforce.received)
    pages = list(c.query_pages("select Id, Name from Opportunity", batch_size=200))
    assert [len(p) for p in pages[:-1]] == [200] * (len(pages) - 1) and 0 < len(pages[-1]) <= 200
    ids = [r["Id"] for p in pages for r in p]
    assert len(ids) == len(set(ids)) and set(ids) == held
    more = received(sb, start, "/query/")
    assert len(more) == len(pages) and all(r.status == 200 for r in more)
    assert sum(1 for r in more if r.path.rstrip("/").endswith("/query")) == 1  # then the locators it named


def test_incremental_reads_on_systemmodstamp_and_deletions(sb, c):
    accounts = sorted(org(sb).records["Account"])
    quiet, changed, doomed = accounts[:3]
    t0 = sb.clock.now()
    sb.clock.advance(2)  # SOQL datetimes are whole seconds: the changes land after t0's second
    made = c.create("Account", [{"Name": "Newco Ltd"}])[0]
    assert made.ok and made.id
    assert c.update("Account", [{"id": changed, "Phone": "+1 555 0100"}])[0].ok
    assert c.delete([doomed])[0].ok
    fields = tables.fields("Account")
    c.schema = sf_schema.discover(c, "acme")
    seen = {r["Id"]: r for p in c.select("Account", fields, since=t0 + timedelta(seconds=1)) for r in p}
    assert {made.id, changed} <= set(seen) and quiet not in seen and doomed not in seen
    assert seen[changed]["Phone"] == "+1 555 0100"
    assert c.deleted("Account", t0).records == []  # the replication API covers whole minutes that have ended
    sb.clock.advance(120)
    deleted = c.deleted("Account", t0)
    assert [r["id"] for r in deleted.records] == [doomed]


def test_collections_answer_each_record_in_order(sb, c, tmp_path):
    writer = SalesforceCrmWriter(c, "acme", store=None)
    opp = sorted(org(sb).records["Opportunity"])[0]
    missing = opp[:3] + "000000000000AAA"  # a well-formed id of no record
    start = len(sb.salesforce.received)
    batch = writer.update_deals(
        [(missing, {"amount_paid": Decimal("12.50")}), (opp, {"amount_paid": Decimal("99.10")})]
    )
    assert [o.ok for o in batch.outcomes] == [False, True] and batch.status == 207
    assert batch.outcomes[1].record_id == opp and batch.outcomes[0].code and batch.outcomes[0].error
    assert org(sb).records["Opportunity"][opp]["Amount_Paid__c"] == Decimal("99.1")
    writes = received(sb, start, "/composite/sobjects")
    assert len(writes) == 1 and writes[0].method == "PATCH" and writer.write_calls == 1


def test_upsert_by_external_id_creates_then_updates(sb, c):
    first = c.upsert_one("Account", "Books_Customer_Id__c", "books-77", {"Name": "Upsert Ltd"})
    again = c.upsert_one("Account", "Books_Customer_Id__c", "books-77", {"Name": "Upsert Limited"})
    assert first.created is True and again.created is False and first.id == again.id
    held = org(sb).find_by("Account", "Books_Customer_Id__c", "books-77")
    assert [r["Name"] for r in held] == ["Upsert Limited"]
    statuses = [r.status for r in sb.salesforce.received if "/Books_Customer_Id__c/books-77" in r.path]
    assert statuses[0] == 201 and statuses[1] in (200, 204)
    writer = SalesforceCrmWriter(c, "acme", store=None)
    customers = [Customer(role=Role.CRM, books_id="books-77", name="Upsert Ltd"),
                 Customer(role=Role.CRM, books_id="books-78", name="Second Ltd")]  # fmt: skip
    batch = writer.upsert_accounts(customers)
    assert [o.ok for o in batch.outcomes] == [True, True]
    assert batch.outcomes[0].record_id == first.id and batch.outcomes[0].extra["created"] is False
    assert batch.outcomes[1].extra["created"] is True
    assert len(org(sb).find_by("Account", "Books_Customer_Id__c", "books-77")) == 1


def test_an_account_and_its_contacts_in_one_composite_call(sb, c):
    writer = SalesforceCrmWriter(c, "acme", store=None)
    start = len(sb.salesforce.received)
    batch = writer.upsert_account_with_contacts(
        Customer(role=Role.CRM, books_id="books-90", name="Tree Ltd"),
        [Person(first_name="Ann", last_name="Tree", email="ann@tree.example"), Person(last_name="Oak")],
    )
    assert [o.ok for o in batch.outcomes] == [True, True, True]
    account = batch.outcomes[0].record_id
    for o in batch.outcomes[1:]:
        assert org(sb).records["Contact"][o.record_id]["AccountId"] == account
    writes = [r for r in sb.salesforce.received[start:] if r.method != "GET" and "/services/data/" in r.path]
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in writes] == [("POST", "composite")]


def test_a_refused_request_is_sent_once_and_said_in_one_line(sb, c):
    start = len(sb.salesforce.received)
    with pytest.raises(ApiError) as refused:
        list(c.query_pages("select Id, No_Such_Field__c from Account"))
    assert refused.value.code == "INVALID_FIELD" and refused.value.status == 400
    assert len(received(sb, start, "/query")) == 1
    verdict = explain(refused.value)
    assert (
        not verdict.retry and verdict.message.startswith("Salesforce refused") and "\n" not in verdict.message
    )


def test_the_days_allocation_spent_fails_at_once(tmp_path):
    """Sforce-Limit-Info tells the client what is left: it stops before the org must refuse; a process that did
    not know (another one spent it) meets REQUEST_LIMIT_EXCEEDED once and fails with one line."""
    with SandboxServer(seed=11, size="tiny", crm="salesforce", sf_limits=SalesforceLimits(daily=5)) as sb:
        with client_of(
            sb, tmp_path, budgets=Budgets()
        ) as client:  # its own budget: nothing leaks to other tests
            with pytest.raises(RateLimitExhausted) as spent:
                for _ in range(10):
                    client.query("select Id from Product2")
            asked = [r.status for r in sb.salesforce.received if r.path.endswith("/query/")]
            assert spent.value.limit == "day" and asked == [200] * len(asked) and len(asked) <= 5
            assert client.meter.day_budget().remaining == 0
        with client_of(sb, tmp_path, budgets=Budgets()) as other:
            before = len(sb.salesforce.received)
            while True:
                try:
                    other.query("select Id from Product2")
                except RateLimitExhausted as exc:
                    refused = exc
                    break
            last = [r for r in sb.salesforce.received[before:] if r.path.endswith("/query/")]
            assert last[-1].status == 403 and [r.status for r in last].count(403) == 1  # never retried
            verdict = explain(refused)
            assert not verdict.retry and "Salesforce's day budget is spent" in verdict.message


def test_transient_faults_are_retried_where_safe_and_an_expired_session_refreshed(tmp_path):
    """5xx and a dropped connection on reads and idempotent writes are retried; a create is never sent twice;
    an expired session is refreshed once and the call repeated."""
    q = "/services/data/v62.0/query"
    spec = (f"5xx:503@nth=1,path={q};expired@nth=3,path={q};drop:after@nth=1,method=PATCH;"
            "5xx:503@nth=1,method=POST,path=/services/data/v62.0/composite/sobjects")  # fmt: skip
    retry = RetryPolicy(backoff_factor=0.01, backoff_max=0.05)
    with (
        SandboxServer(seed=11, size="tiny", crm="salesforce", faults=spec) as sb,
        client_of(sb, tmp_path, retry=retry, budgets=Budgets()) as c,
    ):
        assert len(c.query("select Id from Product2")) == len(org(sb).records["Product2"])  # after one 503
        assert c.auth.refreshes == 1
        assert (
            c.query("select Id from Product2") and c.auth.refreshes == 2
        )  # its session expired: refreshed once
        assert [r.status for r in sb.salesforce.received if r.path.endswith("/query/")] == [200, 401, 200]
        opp = sorted(org(sb).records["Opportunity"])[0]
        assert c.update("Opportunity", [{"id": opp, "Description": "after a drop"}])[
            0
        ].ok  # the PATCH repeated
        assert org(sb).records["Opportunity"][opp]["Description"] == "after a drop"
        before = len(org(sb).records["Account"])
        with pytest.raises(ApiError) as failed:
            c.create("Account", [{"Name": "Once Ltd"}])
        assert failed.value.status == 503 and failed.value.transient
        assert len(org(sb).records["Account"]) == before  # not sent again: a create could land twice
        assert sum(sb.sf_faults.injected.values()) == 4
