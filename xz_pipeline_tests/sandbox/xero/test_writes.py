"""Writing to the Xero emulator: PUT/POST semantics, summarizeErrors, validation, idempotency."""

from __future__ import annotations

from xz_pipeline_tests.sandbox.xero.support import API, dec, make_contact, make_invoice, xero_fixture  # noqa: F401


def _contacts(xero, **params):
    return xero.api.get(f"{API}/Contacts", params={"includeArchived": "true", **params}).json()["Contacts"]


def test_summarized_errors_save_valid_elements_and_report_only_failures(xero):
    make_contact(xero.api, "Existing Ltd")
    body = {
        "Contacts": [
            {"Name": "Fresh Ltd"},
            {"Name": "Existing Ltd"},
            {"Name": "Bad Mail", "EmailAddress": "nope"},
        ]
    }
    resp = xero.api.put(f"{API}/Contacts", body)  # no summarizeErrors: Xero behaves as summarized
    assert resp.status_code == 400
    err = resp.json()
    assert err["ErrorNumber"] == 10 and err["Type"] == "ValidationException"
    assert [e["Name"] for e in err["Elements"]] == ["Existing Ltd", "Bad Mail"]
    assert "must be unique across all active contacts" in err["Elements"][0]["ValidationErrors"][0]["Message"]
    assert err["Elements"][1]["ValidationErrors"] == [{"Message": "Email address must be valid."}]
    # the valid element was saved even though the call failed
    assert sorted(c["Name"] for c in _contacts(xero)) == ["Existing Ltd", "Fresh Ltd"]


def test_unsummarized_errors_answer_200_per_element(xero):
    body = {"Contacts": [{"Name": "One"}, {"Name": ""}, {"Name": "Two"}]}
    resp = xero.api.post(f"{API}/Contacts", body, params={"summarizeErrors": "false"})
    assert resp.status_code == 200
    rows = resp.json()["Contacts"]
    assert [r["StatusAttributeString"] for r in rows] == ["OK", "ERROR", "OK"]
    assert rows[0]["ContactID"] and rows[2]["ContactID"]
    assert rows[1]["HasValidationErrors"] is True
    assert rows[1]["ValidationErrors"] == [{"Message": "The contact name must be specified."}]
    assert sorted(c["Name"] for c in _contacts(xero)) == ["One", "Two"]


def test_put_creates_only_and_post_upserts(xero):
    c = make_contact(xero.api, "Upsert Co", ContactNumber="CRM-42")
    again = xero.api.put(f"{API}/Contacts", {"Contacts": [{"Name": "Other", "ContactNumber": "CRM-42"}]})
    assert again.status_code == 400 and "already assigned" in again.text
    # POST matches by ContactNumber, then by Name
    resp = xero.api.post(
        f"{API}/Contacts", {"Contacts": [{"ContactNumber": "CRM-42", "Name": "Upsert Co Ltd"}]}
    )
    assert resp.json()["Contacts"][0]["ContactID"] == c["ContactID"]
    resp = xero.api.post(
        f"{API}/Contacts", {"Contacts": [{"Name": "upsert co ltd", "EmailAddress": "a@b.example"}]}
    )
    row = resp.json()["Contacts"][0]
    assert row["ContactID"] == c["ContactID"] and row["EmailAddress"] == "a@b.example"
    resp = xero.api.post(f"{API}/Contacts/{c['ContactID']}", {"Contacts": [{"ContactStatus": "ARCHIVED"}]})
    assert resp.json()["Contacts"][0]["ContactStatus"] == "ARCHIVED"
    assert [x["Name"] for x in xero.api.get(f"{API}/Contacts").json()["Contacts"]] == []
    # an archived contact frees its name for a new active contact
    assert make_contact(xero.api, "upsert co ltd")["ContactID"] != c["ContactID"]
    assert len(_contacts(xero)) == 2


def test_invoice_validation_rules(xero):
    c = make_contact(xero.api, "Rules Ltd")

    def put(**fields):
        inv = {"Type": "ACCREC", "Contact": {"ContactID": c["ContactID"]}, "Status": "AUTHORISED",
               "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}], **fields}  # fmt: skip
        inv = {k: v for k, v in inv.items() if v is not None}
        return xero.api.put(
            f"{API}/Invoices", {"Invoices": [inv]}, params={"summarizeErrors": "false"}
        ).json()["Invoices"][0]

    first = put(InvoiceNumber="INV-0100")
    assert first["StatusAttributeString"] == "OK" and first["InvoiceNumber"] == "INV-0100"
    dup = put(InvoiceNumber="INV-0100")
    assert dup["StatusAttributeString"] == "ERROR" and dup["HasErrors"] is True
    assert dup["ValidationErrors"] == [{"Message": "Invoice # must be unique."}]
    assert put()["InvoiceNumber"] == "INV-0101"  # auto-numbering continues past numbers seen
    # bills may reuse a supplier's number
    bill = {
        "Type": "ACCPAY",
        "InvoiceNumber": "INV-0100",
        "LineItems": [{"Description": "x", "UnitAmount": 5, "AccountCode": "429"}],
    }
    assert put(**bill)["StatusAttributeString"] == "OK"
    missing = put(Contact={"ContactID": "6f1c5f6e-1111-4222-8333-944455556666"})
    assert "could not be found" in missing["ValidationErrors"][0]["Message"]
    bad_code = put(LineItems=[{"Description": "x", "UnitAmount": 1, "AccountCode": "999"}])
    assert (
        bad_code["ValidationErrors"][0]["Message"]
        == "Account code '999' is not a valid code for this document."
    )
    bad_tax = put(LineItems=[{"Description": "x", "UnitAmount": 1, "AccountCode": "200", "TaxType": "NOPE"}])
    assert "TaxType code 'NOPE' does not exist" in bad_tax["ValidationErrors"][0]["Message"]
    no_type = put(Type=None)
    assert no_type["StatusAttributeString"] == "ERROR"
    # a new contact is created for an unknown name
    named = put(Contact={"Name": "Walk-in Customer"})
    assert named["StatusAttributeString"] == "OK"
    assert any(x["Name"] == "Walk-in Customer" for x in _contacts(xero))
    numbers = [
        i["InvoiceNumber"]
        for i in xero.api.get(f"{API}/Invoices", params={"where": 'Type=="ACCREC"'}).json()["Invoices"]
    ]
    assert numbers == ["INV-0100", "INV-0101", "INV-0102"]


def test_status_transitions(xero):
    c = make_contact(xero.api, "Status Ltd", EmailAddress="s@status.example")
    draft = make_invoice(xero.api, c["ContactID"], status="DRAFT")
    url = f"{API}/Invoices/{draft['InvoiceID']}"
    assert (
        xero.api.post(url, {"Invoices": [{"Status": "DELETED"}]}).json()["Invoices"][0]["Status"] == "DELETED"
    )
    assert "cannot be edited as it is DELETED" in xero.api.post(url, {"Invoices": [{"Status": "DRAFT"}]}).text
    auth = make_invoice(xero.api, c["ContactID"])
    url = f"{API}/Invoices/{auth['InvoiceID']}"
    resp = xero.api.post(url, {"Invoices": [{"Status": "DELETED"}]})
    assert resp.status_code == 400 and "cannot be changed from AUTHORISED to DELETED" in resp.text
    xero.api.put(f"{API}/Payments", {"Payments": [{"Invoice": {"InvoiceID": auth["InvoiceID"]}, "Account": {"Code": "090"},
                                                    "Amount": 10, "Date": "2026-10-05"}]})  # fmt: skip
    resp = xero.api.post(url, {"Invoices": [{"Status": "VOIDED"}]})
    assert resp.status_code == 400 and "payment or credit note allocated" in resp.text
    other = make_invoice(xero.api, c["ContactID"])
    voided = xero.api.post(
        f"{API}/Invoices/{other['InvoiceID']}", {"Invoices": [{"Status": "VOIDED"}]}
    ).json()["Invoices"][0]
    assert voided["Status"] == "VOIDED" and voided["AmountDue"] == 0


def test_payments_drive_derived_fields(xero):
    c = make_contact(xero.api, "Payer Ltd")
    inv = make_invoice(
        xero.api, c["ContactID"], amount=200, DueDate="2026-10-20"
    )  # total 230, overdue on 2 Nov
    before = xero.api.get(f"{API}/Contacts/{c['ContactID']}").json()["Contacts"][0]
    assert before["IsCustomer"] is True and before["IsSupplier"] is False
    assert before["Balances"]["AccountsReceivable"] == {"Outstanding": 230, "Overdue": 230}
    xero.clock.advance(60)

    def pay(amount, **extra):
        body = {"Payments": [{"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Account": {"Code": "090"}, "Amount": amount,
                              "Date": "2026-11-01", **extra}]}  # fmt: skip
        return xero.api.put(f"{API}/Payments", body, params={"summarizeErrors": "false"}).json()["Payments"][
            0
        ]

    first = pay(100)
    assert first["StatusAttributeString"] == "OK" and first["PaymentType"] == "ACCRECPAYMENT"
    over = pay(200)
    assert over["ValidationErrors"] == [
        {"Message": "Payment amount exceeds the amount outstanding on this document."}
    ]
    bad_account = pay(1, Account={"Code": "200"})
    assert "cannot accept payments" in bad_account["ValidationErrors"][0]["Message"]
    mid = xero.api.get(f"{API}/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert (mid["AmountPaid"], mid["AmountDue"], mid["Status"]) == (100, 130, "AUTHORISED")
    assert mid["UpdatedDateUTC"] != inv["UpdatedDateUTC"]  # a payment bumps its invoice
    assert [p["Amount"] for p in mid["Payments"]] == [100]
    pay(130)
    paid = xero.api.get(f"{API}/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert (paid["AmountDue"], paid["Status"], paid["FullyPaidOnDate"]) == (
        0,
        "PAID",
        "/Date(1793491200000+0000)/",
    )
    after = xero.api.get(f"{API}/Contacts/{c['ContactID']}").json()["Contacts"][0]
    assert after["Balances"]["AccountsReceivable"] == {"Outstanding": 0, "Overdue": 0}
    # deleting a payment reopens the invoice
    resp = xero.api.post(
        f"{API}/Payments/{first['PaymentID']}", {"Status": "DELETED"}
    )  # the spec's PaymentDelete
    assert resp.json()["Payments"][0]["Status"] == "DELETED"
    reopened = xero.api.get(f"{API}/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert (reopened["AmountDue"], reopened["Status"]) == (
        100,
        "AUTHORISED",
    ) and "FullyPaidOnDate" not in reopened
    draft = make_invoice(xero.api, c["ContactID"], status="DRAFT")
    single = xero.api.post(f"{API}/Payments", {"Invoice": {"InvoiceID": draft["InvoiceID"]}, "Account": {"Code": "090"},
                                                "Amount": 1})  # fmt: skip
    assert single.status_code == 400 and "Authorised documents" in single.text


def test_credit_note_allocations(xero):
    c = make_contact(xero.api, "Credit Ltd")
    inv = make_invoice(xero.api, c["ContactID"], amount=100)  # 115
    note = {"Type": "ACCRECCREDIT", "Contact": {"ContactID": c["ContactID"]}, "Status": "AUTHORISED", "Date": "2026-10-10",
            "LineItems": [{"Description": "refund", "Quantity": 1, "UnitAmount": 40, "AccountCode": "200"}]}  # fmt: skip
    created = xero.api.put(f"{API}/CreditNotes", {"CreditNotes": [note]}).json()["CreditNotes"][0]
    assert (
        created["CreditNoteNumber"] == "CN-0001"
        and created["Total"] == 46
        and created["RemainingCredit"] == 46
    )
    url = f"{API}/CreditNotes/{created['CreditNoteID']}/Allocations"
    too_much = xero.api.put(
        url,
        {"Allocations": [{"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": 50, "Date": "2026-10-11"}]},
    )
    assert too_much.status_code == 400 and "exceeds the remaining credit" in too_much.text
    ok = xero.api.put(
        url,
        {"Allocations": [{"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": 46, "Date": "2026-10-11"}]},
    )
    assert ok.status_code == 200 and ok.json()["Allocations"][0]["Amount"] == 46
    after = xero.api.get(f"{API}/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert (after["AmountCredited"], after["AmountDue"]) == (46, 69)
    assert after["CreditNotes"][0]["CreditNoteID"] == created["CreditNoteID"]
    cn = xero.api.get(f"{API}/CreditNotes/{created['CreditNoteID']}").json()["CreditNotes"][0]
    assert (cn["Status"], cn["RemainingCredit"]) == ("PAID", 0)
    bal = xero.api.get(f"{API}/Contacts/{c['ContactID']}").json()["Contacts"][0]["Balances"][
        "AccountsReceivable"
    ]
    assert dec(bal["Outstanding"]) == dec("69")


def test_email_and_online_invoice(xero):
    with_mail = make_contact(xero.api, "Mail Ltd", EmailAddress="ar@mail.example")
    no_mail = make_contact(xero.api, "Silent Ltd")
    inv = make_invoice(xero.api, with_mail["ContactID"])
    resp = xero.api.post(f"{API}/Invoices/{inv['InvoiceID']}/Email", {})
    assert resp.status_code == 204 and resp.content == b""
    assert xero.api.get(f"{API}/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]["SentToContact"] is True
    assert xero.emu.emails[-1]["to"] == "ar@mail.example"
    draft = make_invoice(xero.api, with_mail["ContactID"], status="DRAFT")
    assert xero.api.post(f"{API}/Invoices/{draft['InvoiceID']}/Email", {}).status_code == 400
    bill = make_invoice(xero.api, with_mail["ContactID"], kind="ACCPAY")
    assert xero.api.post(f"{API}/Invoices/{bill['InvoiceID']}/Email", {}).status_code == 400
    silent = make_invoice(xero.api, no_mail["ContactID"])
    resp = xero.api.post(f"{API}/Invoices/{silent['InvoiceID']}/Email", {})
    assert resp.status_code == 400 and "email address" in resp.text
    online = xero.api.get(f"{API}/Invoices/{inv['InvoiceID']}/OnlineInvoice").json()["OnlineInvoices"][0]
    url = online["OnlineInvoiceUrl"]
    assert url.startswith("http://testserver/online-invoice/")
    page = xero.api.http.get(url.replace("http://testserver", ""))
    assert page.status_code == 200 and inv["InvoiceNumber"] in page.text
    assert xero.api.get(f"{API}/Invoices/{draft['InvoiceID']}/OnlineInvoice").status_code == 400


def test_items_and_accounts(xero):
    item = {
        "Code": "WID-1",
        "Name": "Widget",
        "SalesDetails": {"UnitPrice": 12.5, "AccountCode": "200", "TaxType": "OUTPUT2"},
    }
    created = xero.api.put(f"{API}/Items", {"Items": [item]}).json()["Items"][0]
    assert created["Code"] == "WID-1"
    assert xero.api.put(f"{API}/Items", {"Items": [item]}).status_code == 400  # duplicate code
    renamed = xero.api.post(f"{API}/Items", {"Items": [{"Code": "WID-1", "Name": "Widget v2"}]}).json()[
        "Items"
    ][0]
    assert renamed["ItemID"] == created["ItemID"] and renamed["Name"] == "Widget v2"
    c = make_contact(xero.api, "Item Buyer")
    line = {"ItemCode": "WID-1", "Quantity": 2}
    inv = {
        "Type": "ACCREC",
        "Contact": {"ContactID": c["ContactID"]},
        "Status": "AUTHORISED",
        "LineItems": [line],
    }
    got = xero.api.put(f"{API}/Invoices", {"Invoices": [inv]}).json()["Invoices"][0]
    assert got["LineItems"][0]["AccountCode"] == "200" and got["Total"] == 28.75
    assert xero.api.delete(f"{API}/Items/{created['ItemID']}").status_code == 400  # in use
    account = xero.api.put(
        f"{API}/Accounts", {"Code": "201", "Name": "Consulting", "Type": "REVENUE", "TaxType": "OUTPUT2"}
    )
    assert account.status_code == 200 and account.json()["Accounts"][0]["Class"] == "REVENUE"
    dup = xero.api.put(f"{API}/Accounts", {"Code": "201", "Name": "Other", "Type": "REVENUE"})
    assert dup.status_code == 400 and "unique Code" in dup.text


def test_idempotency_key_replay_mismatch_and_expiry(xero):
    body = {"Contacts": [{"Name": "Once Only Ltd"}]}
    key = {"Idempotency-Key": "k-123"}
    first = xero.api.put(f"{API}/Contacts", body, headers=key)
    second = xero.api.put(f"{API}/Contacts", body, headers=key)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()  # the first response, replayed byte for byte
    assert len(_contacts(xero)) == 1
    other = xero.api.put(f"{API}/Contacts", {"Contacts": [{"Name": "Different"}]}, headers=key)
    assert other.status_code == 400 and "used with a different request" in other.json()["Message"]
    # a replayed failure is a failure again, not a second attempt
    bad = {"Contacts": [{"Name": "Once Only Ltd"}]}
    f1 = xero.api.put(f"{API}/Contacts", bad, headers={"Idempotency-Key": "k-bad"})
    f2 = xero.api.put(f"{API}/Contacts", bad, headers={"Idempotency-Key": "k-bad"})
    assert f1.status_code == f2.status_code == 400 and f1.json() == f2.json()
    xero.clock.advance(6 * 60 + 1)  # past the 6-minute window the key is forgotten
    third = xero.api.put(f"{API}/Contacts", {"Contacts": [{"Name": "Different"}]}, headers=key)
    assert third.status_code == 200 and third.json()["Contacts"][0]["Name"] == "Different"
    too_long = xero.api.put(f"{API}/Contacts", body, headers={"Idempotency-Key": "x" * 129})
    assert too_long.status_code == 400
    keys = [r.idempotency_key for r in xero.emu.received if r.method == "PUT"]
    assert keys[:2] == ["k-123", "k-123"]


def test_bad_json_is_a_400(xero):
    resp = xero.api.request("PUT", f"{API}/Contacts", raw=b"{not json", check_request=False)
    assert resp.status_code == 400 and resp.json()["Type"] == "PostDataInvalidException"
