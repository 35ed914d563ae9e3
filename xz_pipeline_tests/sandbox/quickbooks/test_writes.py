"""Writes: create, SyncToken conflicts, sparse and full updates, requestid, derived balances, delete, batch."""

from __future__ import annotations

import pytest

from xz_pipeline_tests.sandbox.quickbooks.support import connect


@pytest.fixture(scope="module")
def qbo():
    return connect()


def _fault(resp) -> str:
    assert resp.status_code == 400, resp.text
    return resp.json()["Fault"]["Error"][0]["code"]


def test_create_then_read_back_and_duplicate_names_are_refused(qbo):
    resp = qbo.post(
        "Customer",
        {"DisplayName": "Harbour Lights Ltd", "PrimaryEmailAddr": {"Address": "ap@harbour.example"}},
    )
    assert resp.status_code == 200, resp.text
    made = resp.json()["Customer"]
    assert made["SyncToken"] == "0" and made["Id"].isdigit() and made["Active"] is True
    got = qbo.get("Customer", made["Id"]).json()["Customer"]
    assert got["PrimaryEmailAddr"]["Address"] == "ap@harbour.example"
    assert got["MetaData"]["CreateTime"] == got["MetaData"]["LastUpdatedTime"]
    assert _fault(qbo.post("Customer", {"DisplayName": "harbour lights ltd"})) == "6240"
    assert _fault(qbo.post("Customer", {"Notes": "no name at all"})) == "2020"
    assert _fault(qbo.get("Customer", "99999")) == "610"


def test_stale_synctoken_is_5010_and_sparse_update_changes_only_what_it_sends(qbo):
    made = qbo.post("Customer", {"DisplayName": "Sparse Test Co", "PrimaryEmailAddr": {"Address": "a@sparse.example"},
                                 "PrimaryPhone": {"FreeFormNumber": "555-0100"}}).json()["Customer"]  # fmt: skip
    first = qbo.post("Customer", {"Id": made["Id"], "SyncToken": made["SyncToken"], "sparse": True,
                                  "PrimaryPhone": {"FreeFormNumber": "555-0199"}})  # fmt: skip
    assert first.status_code == 200
    after = first.json()["Customer"]
    assert after["SyncToken"] == "1" and after["PrimaryPhone"]["FreeFormNumber"] == "555-0199"
    assert after["PrimaryEmailAddr"]["Address"] == "a@sparse.example"  # untouched by a sparse update
    stale = qbo.post("Customer", {"Id": made["Id"], "SyncToken": "0", "sparse": True, "Notes": "late"})
    assert _fault(stale) == "5010" and stale.json()["Fault"]["Error"][0]["Message"] == "Stale Object Error"
    full = qbo.post("Customer", {"Id": made["Id"], "SyncToken": "1", "DisplayName": "Sparse Test Co"}).json()[
        "Customer"
    ]
    assert full["SyncToken"] == "2" and "PrimaryEmailAddr" not in full and "PrimaryPhone" not in full


def test_requestid_replays_the_first_answer_without_a_second_record(qbo):
    before = len(qbo.emu.companies[qbo.realm].records["Customer"])
    body = {"DisplayName": "Idempotent Imports"}
    one = qbo.post("Customer", body, requestid="req-42")
    two = qbo.post("Customer", body, requestid="req-42")
    assert one.status_code == two.status_code == 200 and one.json() == two.json()
    assert len(qbo.emu.companies[qbo.realm].records["Customer"]) == before + 1
    assert [r.request_id for r in qbo.emu.received if r.request_id] == ["req-42", "req-42"]
    other = qbo.post("Customer", {"DisplayName": "Idempotent Imports"}, requestid="req-43")
    assert _fault(other) == "6240"  # a new requestid is a new request


def test_invoice_totals_payment_balance_and_delete(qbo):
    cust = qbo.post("Customer", {"DisplayName": "Ledger Lane Cafe"}).json()["Customer"]
    line = {"Amount": 200.0, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "UnitPrice": 100, "Qty": 2, "TaxCodeRef": {"value": "TAX"}}}  # fmt: skip
    tax_code = qbo.rows("select * from TaxCode where Taxable = true")[0]["Id"]
    body = {"CustomerRef": {"value": cust["Id"]}, "Line": [line], "TxnTaxDetail": {"TxnTaxCodeRef": {"value": tax_code}},
            "CustomField": [{"DefinitionId": "1", "Name": "Reference", "Type": "StringType", "StringValue": "DEAL-1"}]}  # fmt: skip
    resp = qbo.post("Invoice", body)
    assert resp.status_code == 200, resp.text
    inv = resp.json()["Invoice"]
    assert inv["TotalAmt"] == inv["Balance"] == round(200 * (1 + 0.08875), 2)  # the world's US sales tax
    assert inv["DocNumber"] and inv["DueDate"] >= inv["TxnDate"]
    wrong = {**body, "Line": [{**line, "Amount": 150}]}
    assert _fault(qbo.post("Invoice", wrong)) == "6070"
    assert _fault(qbo.post("Invoice", {**body, "CustomerRef": {"value": "99999"}})) == "2500"
    pay = qbo.post("Payment", {"CustomerRef": {"value": cust["Id"]}, "TotalAmt": 100,
                               "Line": [{"Amount": 100, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]})  # fmt: skip
    assert pay.status_code == 200, pay.text
    paid = qbo.get("Invoice", inv["Id"]).json()["Invoice"]
    assert paid["Balance"] == round(inv["TotalAmt"] - 100, 2) and paid["SyncToken"] == "1"
    assert {"TxnId": pay.json()["Payment"]["Id"], "TxnType": "Payment"} in paid["LinkedTxn"]
    over = qbo.post("Payment", {"CustomerRef": {"value": cust["Id"]}, "TotalAmt": 1000,
                                "Line": [{"Amount": 1000, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]})  # fmt: skip
    assert _fault(over) == "6000"
    balance = qbo.get("Customer", cust["Id"]).json()["Customer"]["Balance"]
    assert balance == paid["Balance"]
    gone = qbo.post("Payment", {"Id": pay.json()["Payment"]["Id"], "SyncToken": "0"}, operation="delete")
    assert gone.status_code == 200 and gone.json()["Payment"]["status"] == "Deleted"
    assert qbo.get("Invoice", inv["Id"]).json()["Invoice"]["Balance"] == inv["TotalAmt"]
    assert _fault(qbo.post("Customer", {"Id": cust["Id"], "SyncToken": "0"}, operation="delete")) == "500"


def test_batch_answers_each_item_and_one_failure_spares_the_others(qbo):
    items = [
        {"bId": "b1", "operation": "create", "Customer": {"DisplayName": "Batch One"}},
        {"bId": "b2", "operation": "create", "Invoice": {"CustomerRef": {"value": "99999"}, "Line": []}},
        {"bId": "b3", "operation": "create", "Customer": {"DisplayName": "Batch Three"}},
        {"bId": "b4", "Query": "select count(*) from Customer where DisplayName like 'Batch%'"},
    ]
    resp = qbo.http.post(f"{qbo.base}/batch", json={"BatchItemRequest": items}, headers=qbo.headers())
    assert resp.status_code == 200, resp.text
    by_id = {r["bId"]: r for r in resp.json()["BatchItemResponse"]}
    assert by_id["b1"]["Customer"]["DisplayName"] == "Batch One" and by_id["b3"]["Customer"]["Id"]
    assert by_id["b2"]["Fault"]["Error"][0]["code"] in ("2020", "2500") and "Invoice" not in by_id["b2"]
    assert by_id["b4"]["QueryResponse"] == {"totalCount": 2}
    update = [{"bId": "u1", "operation": "update", "Customer": {"Id": by_id["b1"]["Customer"]["Id"], "SyncToken": "7",
                                                                 "sparse": True, "Notes": "x"}}]  # fmt: skip
    stale = qbo.http.post(f"{qbo.base}/batch", json={"BatchItemRequest": update}, headers=qbo.headers())
    assert stale.json()["BatchItemResponse"][0]["Fault"]["Error"][0]["code"] == "5010"
    too_many = [{"bId": f"q{i}", "Query": "select * from Item"} for i in range(31)]
    big = qbo.http.post(f"{qbo.base}/batch", json={"BatchItemRequest": too_many}, headers=qbo.headers())
    assert big.status_code == 400 and "30" in big.json()["Fault"]["Error"][0]["Detail"]


def test_a_tax_inclusive_document_totals_its_prices():
    """Outside the US, a TaxInclusive document's lines are priced with tax: TaxInclusiveAmt as sent (or
    Amount plus its tax when not sent), the tax is what the prices include, TotalAmt is their sum. US
    companies have no tax mode: their sales tax is added on top whatever the document says."""
    uk = connect("uk")
    cust = uk.post("Customer", {"DisplayName": "Inclusive Ltd"}).json()["Customer"]
    code = next(r for r in uk.rows("select * from TaxCode") if r["Name"].startswith("20.0% S"))["Id"]
    sent = {"Amount": 1782.50, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxInclusiveAmt": 2139.00, "TaxCodeRef": {"value": code}}}  # fmt: skip
    derived = {"Amount": 100, "DetailType": "SalesItemLineDetail",
               "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": code}}}  # fmt: skip
    body = {
        "CustomerRef": {"value": cust["Id"]},
        "GlobalTaxCalculation": "TaxInclusive",
        "Line": [sent, derived],
    }
    resp = uk.post("Invoice", body)
    assert resp.status_code == 200, resp.text
    inv = resp.json()["Invoice"]
    assert inv["TotalAmt"] == inv["Balance"] == 2139.00 + 120.00
    assert inv["TxnTaxDetail"]["TotalTax"] == round(2139.00 - 1782.50 + 20.00, 2)
    assert inv["Line"][1]["SalesItemLineDetail"]["TaxInclusiveAmt"] == 120.00  # derived from Amount
    excluded = uk.post("Invoice", {**body, "GlobalTaxCalculation": "TaxExcluded"}).json()["Invoice"]
    assert excluded["TotalAmt"] == round((1782.50 + 100) * 1.2, 2)
    us = connect()
    assert us.emu.companies[us.realm].records["CompanyInfo"]["1"]["Country"] == "US"
    cust = us.post("Customer", {"DisplayName": "Sales Tax Co"}).json()["Customer"]
    tax_code = us.rows("select * from TaxCode where Taxable = true")[0]["Id"]
    line = {"Amount": 100, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "TAX"}}}  # fmt: skip
    on_top = us.post("Invoice", {"CustomerRef": {"value": cust["Id"]}, "GlobalTaxCalculation": "TaxInclusive",
                                 "Line": [line], "TxnTaxDetail": {"TxnTaxCodeRef": {"value": tax_code}}})  # fmt: skip
    assert on_top.json()["Invoice"]["TotalAmt"] == round(100 * 1.08875, 2)
