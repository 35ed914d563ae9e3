"""The query endpoint: paging, count(*), where/orderby, and the grammar QBO refuses."""

from __future__ import annotations

from decimal import Decimal

import pytest

from xz_pipeline_tests.sandbox.quickbooks.support import connect, world


@pytest.fixture(scope="module")
def qbo():
    return connect()


def test_paging_walks_every_customer_once_in_id_order(qbo):
    expected = sum(1 for c in qbo.emu.companies[qbo.realm].records["Customer"].values() if c["Active"])
    seen, start = [], 1
    while True:
        resp = qbo.query(f"select * from Customer startposition {start} maxresults 25")
        body = resp.json()["QueryResponse"]
        page = body.get("Customer", [])
        if not page:
            assert body == {}  # QBO's empty answer carries no startPosition
            break
        assert body["startPosition"] == start and body["maxResults"] == len(page) <= 25
        seen += [c["Id"] for c in page]
        start += len(page)
    assert len(seen) == len(set(seen)) == expected > 25
    assert [int(i) for i in seen] == sorted(int(i) for i in seen)


def test_count_where_and_orderby_agree_with_the_world(qbo):
    sales = [i for i in world().books.invoices if i.type == "ACCREC" and i.status != "DELETED"]
    live = [i for i in sales if i.status not in ("DRAFT", "SUBMITTED")]
    resp = qbo.query("SELECT COUNT(*) FROM Invoice", post=True)
    assert resp.status_code == 200 and resp.json()["QueryResponse"] == {"totalCount": len(live)}
    # the drafts are Estimates (QBO posts every invoice): pending, with the draft's number, memo and total
    drafts = {i.number: i for i in sales if i.status in ("DRAFT", "SUBMITTED")}
    estimates = qbo.rows("select * from Estimate maxresults 1000")
    assert drafts and {e["DocNumber"] for e in estimates} == set(drafts)
    for e in estimates:
        draft = drafts[e["DocNumber"]]
        assert (
            e["TxnStatus"] == "Pending" and "Balance" not in e and Decimal(str(e["TotalAmt"])) == draft.total
        )
        assert e["ExpirationDate"] == str(draft.due_date) and e.get("PrivateNote") == (
            draft.reference or None
        )
    number = live[3].number
    [inv] = qbo.rows(f"select * from Invoice where DocNumber = '{number}'")
    assert inv["DocNumber"] == number and inv["domain"] == "QBO" and inv["sparse"] is False
    assert inv["MetaData"]["LastUpdatedTime"][-6] in "+-"  # ISO with the company's offset
    rows = qbo.rows(
        "select * from Invoice where TotalAmt > '1000' and TxnDate >= '2025-01-01' orderby TotalAmt desc maxresults 1000"
    )
    totals = [Decimal(str(r["TotalAmt"])) for r in rows]
    assert totals == sorted(totals, reverse=True) and all(t > 1000 for t in totals)
    assert all(r["TxnDate"] >= "2025-01-01" for r in rows)
    assert len(rows) == sum(
        1 for i in live if i.status != "VOIDED" and i.total > 1000 and str(i.date) >= "2025-01-01"
    )
    cust = rows[0]["CustomerRef"]["value"]
    mine = qbo.rows(f"select * from Invoice where CustomerRef = '{cust}' maxresults 1000")
    assert mine and {r["CustomerRef"]["value"] for r in mine} == {cust}
    some = qbo.rows("select * from Customer where Id in ('1', '2', '3')")
    assert [c["Id"] for c in some] == ["1", "2", "3"]
    named = qbo.rows(f"select * from Customer where DisplayName like '%{some[0]['DisplayName'][2:6]}%'")
    assert some[0]["Id"] in [c["Id"] for c in named]


def test_maxresults_is_capped_at_1000_and_incremental_filters_work(qbo):
    body = qbo.query("select * from Invoice maxresults 5000").json()["QueryResponse"]
    assert body["maxResults"] == len(body["Invoice"]) <= 1000
    since = "2026-10-01T00:00:00-07:00"
    recent = qbo.rows(f"select * from Invoice where Metadata.LastUpdatedTime > '{since}' maxresults 1000")
    assert all(r["MetaData"]["LastUpdatedTime"] > "2026-10-01" for r in recent)


@pytest.mark.parametrize(
    "text, code",
    [
        ("select * from Customer where Id = '1' or Id = '2'", "4000"),
        ("select DisplayName, Id from Customer", "4000"),
        ("select * from Customer, Invoice", "4000"),
        ("select * from Customer join Invoice", "4000"),
        ("select * from Nothing", "4001"),
        ("select * from Invoice where TotalAmt ~ 3", "4000"),
    ],
)
def test_refused_queries_answer_a_query_fault(qbo, text, code):
    resp = qbo.query(text)
    assert resp.status_code == 400
    [error] = resp.json()["Fault"]["Error"]
    assert error["code"] == code and error["Detail"].startswith(("QueryParserError", "QueryValidationError"))
