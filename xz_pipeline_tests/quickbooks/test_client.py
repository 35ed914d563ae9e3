"""The QuickBooks client and books writer against the QBO emulator: query paging, CDC and its 30-day fallback,
token rotation persisted, SyncToken conflicts retried once, per-item batch errors, requestid idempotency,
and a refused request sent once. Assertions read what the emulator received and holds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from xz_pipeline.core.canonical import Customer, CustomerStatus, Invoice, InvoiceLine, Role
from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.quickbooks import client as qbo_client
from xz_pipeline.quickbooks.client import QuickBooksClient
from xz_pipeline.quickbooks.writer import QuickBooksBooksWriter
from xz_pipeline.sandbox.server import SandboxServer


@pytest.fixture(scope="module")
def sb():
    with SandboxServer(seed=11, size="tiny", books="quickbooks") as server:
        yield server


@pytest.fixture
def make(sb, tmp_path):
    """Clients of the sandbox's first connection sharing one token store (as the processes of a host do)."""
    env, made = sb.env(0), []

    def build(refresh_token: str | None = "env", store: TokenStore | None = None) -> QuickBooksClient:
        c = QuickBooksClient(
            client_id=env["QBO_CLIENT_ID"], client_secret=env["QBO_CLIENT_SECRET"],
            refresh_token=env["QBO_REFRESH_TOKEN"] if refresh_token == "env" else refresh_token,
            api_url=env["QBO_API_URL"], token_url=env["QBO_TOKEN_URL"],
            token_store=store or TokenStore(tmp_path / "tokens"), connection="us", realm_id=env["QBO_REALM_ID"],
        )  # fmt: skip
        made.append(c)
        return c

    yield build
    for c in made:
        c.close()


def company(sb):
    return sb.quickbooks.companies[sb.realm_ids[0]]


def received(sb, since: int, path_end: str = "") -> list:
    return [r for r in sb.quickbooks.received[since:] if r.path.endswith(path_end)]


def customer(name: str, crm_id: str | None = None) -> Customer:
    return Customer(
        role=Role.BOOKS,
        name=name,
        crm_id=crm_id,
        status=CustomerStatus.ACTIVE,
        emails=(f"{name[:3]}@x.test",),
    )


def test_query_pages_in_modified_order_and_reads_inactive_records(sb, make):
    c = make()
    quiet = c.get("Customer", "1")
    c.batch(
        [
            {
                "operation": "update",
                "Customer": {"Id": "1", "SyncToken": quiet["SyncToken"], "sparse": True, "Active": False},
            }
        ]
    )
    start = len(sb.quickbooks.received)
    pages = list(c.iter_query("Customer", page_size=10))
    held = company(sb).records["Customer"]
    ids = [r["Id"] for p in pages for r in p]
    assert sorted(ids) == sorted(held) and len(ids) == len(set(ids)) and "1" in ids  # inactive ones too
    times = [qbo_client._modified(r) for p in pages for r in p]
    assert times == sorted(times)
    queries = received(sb, start, "/query")
    assert len(queries) == len(pages) + (len(ids) % 10 == 0)
    assert all(q.query.get("minorversion") == "75" and "maxresults 10" in q.query["query"] for q in queries)


def test_keyset_paging_survives_many_records_at_one_instant(sb, make):
    c = make()
    before = datetime.now(UTC) - timedelta(seconds=2)
    writer = QuickBooksBooksWriter(c, "us")
    made = writer.create_customers([customer(f"Same Second {n}") for n in range(25)])
    assert made.failed == 0
    new = {o.record_id for o in made.outcomes}
    got = [r["Id"] for p in c.iter_query("Customer", since=before, page_size=10) for r in p]
    assert new <= set(got) and len(got) == len(set(got))


def test_cdc_reads_changes_and_deletions_and_an_old_cursor_reads_by_query(sb, make):
    c = make()
    since = datetime.now(UTC) - timedelta(seconds=2)
    invoice = next(iter(company(sb).records["Invoice"].values()))
    gone = c.get("Invoice", invoice["Id"])
    (deleted,) = c.batch(
        [{"operation": "delete", "Invoice": {"Id": gone["Id"], "SyncToken": gone["SyncToken"]}}]
    )
    assert deleted.faults == []
    writer = QuickBooksBooksWriter(c, "us")
    created = writer.create_customers([customer("Fresh Change Ltd")]).outcomes[0].record_id
    start = len(sb.quickbooks.received)
    changes = c.changes("Customer", since)
    assert changes.how == "cdc" and created in {r["Id"] for p in changes.pages for r in p}
    invoices = c.changes("Invoice", since)
    assert list(invoices.pages) == [] and [rid for rid, _ in invoices.deleted] == [gone["Id"]]
    assert [r.path.rsplit("/", 1)[-1] for r in received(sb, start)] == ["cdc", "cdc"]
    # 40 days back is beyond CDC's 30: the same question goes to the query, and no /cdc call is made.
    start = len(sb.quickbooks.received)
    old = c.changes("Customer", datetime.now(UTC) - timedelta(days=40))
    rows = [r for p in old.pages for r in p]
    assert old.how == "query" and created in {r["Id"] for r in rows}
    assert not received(sb, start, "/cdc") and received(sb, start, "/query")


def test_a_full_cdc_answer_is_followed_from_its_newest_change(sb, make, monkeypatch):
    c = make()
    since = datetime.now(UTC) - timedelta(seconds=2)
    made = QuickBooksBooksWriter(c, "us").create_customers([customer(f"Narrow {n}") for n in range(7)])
    monkeypatch.setattr(qbo_client, "CDC_MAX", 3)  # as if each answer were capped at 3
    start = len(sb.quickbooks.received)
    got = {r["Id"] for p in c.changes("Customer", since).pages for r in p}
    assert {o.record_id for o in made.outcomes} <= got
    asked = [r.query["changedSince"] for r in received(sb, start, "/cdc")]
    assert len(asked) >= 2 and asked == sorted(asked) and asked[-1] > asked[0]


def test_the_rotated_refresh_token_is_stored_and_used(sb, make, tmp_path):
    store = TokenStore(tmp_path / "rotation")
    first = make(store=store)
    first.company_info()
    stored = store.load("us", "quickbooks")
    assert stored is not None and stored.refresh_token != sb.env(0)["QBO_REFRESH_TOKEN"]  # rotated
    sb.quickbooks.expire_access_token(stored.access_token)
    first.company_info()  # 401, refreshed under the lock, retried
    again = store.load("us", "quickbooks")
    assert again.refresh_token != stored.refresh_token and again.access_token != stored.access_token
    # Another process with no refresh token of its own runs on the stored one.
    later = make(refresh_token=None, store=store)
    assert later.preferences()["CurrencyPrefs"]["HomeCurrency"]["value"]


def test_a_stale_sync_token_is_read_again_and_retried_once(sb, make):
    c, other = make(), make()
    writer = QuickBooksBooksWriter(c, "us")
    target = writer.create_customers([customer("Stale Token Pty")]).outcomes[0].record_id
    real_batch = c.batch
    bumps = {"n": 0}

    def someone_edits_first(items, **kw):
        # Between the writer's read and its write, a person edits the customer (its SyncToken moves on).
        if bumps["n"] < bumps.get("limit", 1):
            bumps["n"] += 1
            now = other.get("Customer", target)
            other.batch([{"operation": "update", "Customer": {"Id": target, "SyncToken": now["SyncToken"], "sparse": True,
                                                              "Notes": f"edited {bumps['n']}"}}])  # fmt: skip
        return real_batch(items, **kw)

    c.batch = someone_edits_first
    start = len(sb.quickbooks.received)
    result = writer.update_customers([replace(customer("Stale Token Pty", crm_id="crm-1"), books_id=target)])
    assert result.failed == 0
    assert "xz-crm-id: crm-1" in company(sb).records["Customer"][target]["Notes"]
    assert len(received(sb, start, "/batch")) == 3  # the person's edit, the stale write, the retry
    # Stale again on the retry: one retry only, the failure reported with QBO's code.
    bumps.update(n=0, limit=2)
    start = len(sb.quickbooks.received)
    result = writer.update_customers([replace(customer("Stale Token Pty", crm_id="crm-2"), books_id=target)])
    assert result.failed == 1 and result.outcomes[0].code == "5010"
    assert len(received(sb, start, "/batch")) == 4


def test_one_bad_item_fails_alone_and_a_repeated_write_is_answered_not_applied(sb, make):
    c = make()
    writer = QuickBooksBooksWriter(c, "us")
    taken = next(r["DisplayName"] for r in company(sb).records["Customer"].values() if r.get("Active", True))
    batch = [customer("Good One Ltd"), customer(taken), customer("Good Two Ltd")]
    before = len(company(sb).records["Customer"])
    result = writer.create_customers(batch)
    assert [o.ok for o in result.outcomes] == [True, False, True] and result.status == 207
    assert result.outcomes[1].code == "6240" and "Duplicate" in result.outcomes[1].error
    assert len(company(sb).records["Customer"]) == before + 2
    again = writer.create_customers(batch)  # the same content: the same requestid, QBO's replay
    assert [o.record_id for o in again.outcomes] == [o.record_id for o in result.outcomes]
    assert len(company(sb).records["Customer"]) == before + 2
    assert writer.write_calls == 2


def test_a_refused_request_is_sent_once(sb, make):
    c = make()
    start = len(sb.quickbooks.received)
    with pytest.raises(ApiError) as err:
        c.query("select * from Customer where DisplayName = 'a' or DisplayName = 'b'")
    assert err.value.status == 400 and err.value.code == "4000" and not err.value.transient
    assert len(received(sb, start, "/query")) == 1


def test_invoices_written_back_land_with_their_items_and_are_found_by_reference(sb, make):
    c = make()
    writer = QuickBooksBooksWriter(c, "us")
    defaults = writer.invoice_defaults()
    assert defaults.base_currency == "AUD" or defaults.base_currency
    held = company(sb).records
    item = next(i for i in held["Item"].values() if i.get("Sku") and i.get("IncomeAccountRef"))
    cust = writer.create_customers([customer("Invoice Me Ltd", crm_id="crm-inv")]).outcomes[0].record_id
    invoice = Invoice(role=Role.BOOKS, customer_id=cust, reference="DEAL-4242", issue_date=datetime.now(UTC).date(),
                      lines=(InvoiceLine(description="two", quantity=Decimal(2), unit_price=Decimal("10.5"),
                                         item_code=item["Sku"]),))  # fmt: skip
    made = writer.create_invoices([invoice])
    assert made.failed == 0 and made.outcomes[0].extra.get("number")
    rec = held["Invoice"][made.outcomes[0].record_id]
    assert (
        rec["PrivateNote"] == "DEAL-4242"
        and rec["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == item["Id"]
    )
    found = writer.find_invoices_by_reference(["DEAL-4242", "DEAL-none"])
    assert set(found) == {"DEAL-4242"} and found["DEAL-4242"].record_id == made.outcomes[0].record_id
    assert writer.find_customers_by_reference(["crm-inv"]) == {"crm-inv": cust}
    assert writer.invoice_status([made.outcomes[0].record_id]) == {made.outcomes[0].record_id: "open"}


def test_a_draft_is_written_as_an_estimate_that_owes_nothing_and_follows_its_deal(sb, make, tmp_path):
    from xz_pipeline.core.canonical import DocumentStatus
    from xz_pipeline.core.store import Store

    c = make()
    writer = QuickBooksBooksWriter(c, "us")
    writer.invoice_defaults()
    held = company(sb).records
    cust = writer.create_customers([customer("Draft Me Ltd", crm_id="crm-draft")]).outcomes[0].record_id
    owed = sb.quickbooks.record(sb.realm_ids[0], "Customer", cust)["Balance"]
    line = InvoiceLine(description="one", quantity=Decimal(1), unit_price=Decimal("40"))
    day = datetime.now(UTC).date()
    draft = Invoice(role=Role.BOOKS, customer_id=cust, reference="DEAL-77", issue_date=day,
                    due_date=day + timedelta(days=30), status=DocumentStatus.DRAFT, lines=(line,))  # fmt: skip
    posted = replace(draft, reference="DEAL-78", status=DocumentStatus.OPEN)
    start = len(sb.quickbooks.received)
    made = writer.create_invoices([draft, posted])
    assert made.failed == 0 and len(received(sb, start, "/batch")) == 1  # one call for both
    estimate_id, invoice_id = (o.record_id for o in made.outcomes)
    assert estimate_id.startswith("estimate-") and invoice_id.isdigit()
    estimate = held["Estimate"][estimate_id.removeprefix("estimate-")]
    assert (estimate["TxnStatus"], estimate["PrivateNote"], estimate["TotalAmt"]) == (
        "Pending",
        "DEAL-77",
        40,
    )
    assert str(estimate["ExpirationDate"]) == str(day + timedelta(days=30)) and "DueDate" not in estimate
    # only the posted invoice is owed
    assert sb.quickbooks.record(sb.realm_ids[0], "Customer", cust)["Balance"] == owed + 40
    found = writer.find_invoices_by_reference(["DEAL-77", "DEAL-78"])
    assert {k: o.record_id for k, o in found.items()} == {"DEAL-77": estimate_id, "DEAL-78": invoice_id}
    assert writer.invoice_status([estimate_id, invoice_id]) == {estimate_id: "draft", invoice_id: "open"}
    # a draft follows its deal (an update of the estimate's lines); a person's acceptance is kept
    estimate["TxnStatus"] = "Accepted"
    more = replace(draft, books_id=estimate_id, lines=(replace(line, unit_price=Decimal("55")),))
    assert writer.update_invoices([more]).failed == 0
    assert (estimate := held["Estimate"][estimate_id.removeprefix("estimate-")])["TotalAmt"] == 55
    assert estimate["TxnStatus"] == "Accepted"
    # read back into the mirror: the estimate's own table
    store = Store(tmp_path / "mirror.duckdb")
    assert writer.refresh(store, "invoice", [estimate_id, invoice_id], None) == 2
    with store.read() as con:
        assert con.execute("select count(*) from quickbooks.estimates").fetchone()[0] == 1
        assert con.execute("select count(*) from quickbooks.invoices").fetchone()[0] == 1


def test_a_tax_inclusive_draft_totals_its_price_and_reads_back_unchanged(tmp_path):
    """A won deal without products is raised as one line at the deal's amount, tax included. Sent as
    priced, QBO adds the tax on top (a 2,139.00 deal became 2,566.80 at 20% VAT) and every later plan
    rewrote the line: the writer sends the line without tax and its TaxInclusiveAmt, read from the
    company's TaxCodes and TaxRates once."""
    from xz_pipeline.core.canonical import DocumentStatus, TaxMode
    from xz_pipeline.core.store import Store

    with SandboxServer(seed=11, size="tiny", books="quickbooks", profile="uk") as uk:
        env, realm = uk.env(0), uk.realm_ids[0]
        held = uk.quickbooks.companies[realm].records
        assert held["CompanyInfo"]["1"]["Country"] != "US"
        code = next(c for c in held["TaxCode"].values() if c["Name"].startswith("20.0% S"))
        c = QuickBooksClient(
            client_id=env["QBO_CLIENT_ID"], client_secret=env["QBO_CLIENT_SECRET"],
            refresh_token=env["QBO_REFRESH_TOKEN"], api_url=env["QBO_API_URL"], token_url=env["QBO_TOKEN_URL"],
            token_store=TokenStore(tmp_path / "tokens"), connection="uk", realm_id=realm,
        )  # fmt: skip
        with c:
            writer = QuickBooksBooksWriter(c, "uk")
            writer.invoice_defaults()
            cust = writer.create_customers([customer("Gross Ltd", crm_id="crm-gross")]).outcomes[0].record_id
            line = InvoiceLine(description="one line at the deal's amount", quantity=Decimal(1),
                               unit_price=Decimal("2139.00"), tax_code=code["Id"])  # fmt: skip
            day = datetime.now(UTC).date()
            draft = Invoice(role=Role.BOOKS, customer_id=cust, reference="DEAL-9", issue_date=day,
                            due_date=day + timedelta(days=30), status=DocumentStatus.DRAFT,
                            amounts_tax=TaxMode.INCLUSIVE, lines=(line,))  # fmt: skip
            start = len(uk.quickbooks.received)
            made = writer.create_invoices([draft, replace(draft, reference="DEAL-10")])
            assert made.failed == 0
            queries = [r for r in uk.quickbooks.received[start:] if "/query" in r.path]
            assert len(queries) == 2  # TaxRate and TaxCode, once for both documents
            estimate = held["Estimate"][made.outcomes[0].record_id.removeprefix("estimate-")]
            assert estimate["GlobalTaxCalculation"] == "TaxInclusive"
            assert estimate["TotalAmt"] == Decimal("2139.00")
            sold = estimate["Line"][0]
            assert sold["Amount"] == Decimal("1782.50")  # 2139.00 / 1.2, the line without its tax
            assert sold["SalesItemLineDetail"]["TaxInclusiveAmt"] == Decimal("2139.00")
            assert estimate["TxnTaxDetail"]["TotalTax"] == Decimal("356.50")
            # read back, the draft's total and its line are the deal's amount: nothing left to plan
            store = Store(tmp_path / "mirror.duckdb")
            writer.refresh(store, "invoice", [made.outcomes[0].record_id], None)
            with store.read() as con:
                total, amounts_tax = con.execute(
                    "select total_amt, global_tax_calculation from quickbooks.estimates"
                ).fetchone()
                line_amount = con.execute(
                    "select coalesce(tax_inclusive_amount, amount) from quickbooks.estimate_lines "
                    "where detail_type = 'SalesItemLineDetail'"
                ).fetchone()[0]
            assert (total, amounts_tax, line_amount) == (
                Decimal("2139.00"),
                "TaxInclusive",
                Decimal("2139.00"),
            )
