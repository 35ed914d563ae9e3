"""QBO <-> canonical: the books views over a mirror of a hand-written XSD-shaped company, and the payload
mappings both ways. The views must give exactly the columns (and types) the Xero mapping gives."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from xz_pipeline.core.canonical import (
    CANONICAL_VIEWS,
    Address,
    AddressKind,
    Customer,
    CustomerStatus,
    Invoice,
    InvoiceLine,
    Person,
    Phone,
    PhoneKind,
    Role,
    TaxMode,
    install_views,
)
from xz_pipeline.quickbooks import tables
from xz_pipeline.quickbooks.mapping import (
    BOOKS_VIEWS,
    credit_note_from_qbo,
    customer_from_qbo,
    customer_to_qbo,
    invoice_from_qbo,
    invoice_to_qbo,
    payment_from_qbo,
    product_from_qbo,
)
from xz_pipeline.xero.mapping import BOOKS_VIEWS as XERO_BOOKS_VIEWS
from xz_pipeline_tests.canonical_support import mirror_from_dumps, sql_type, view_rows
from xz_pipeline_tests.quickbooks import payloads as qp


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    store = mirror_from_dumps(tmp_path_factory.mktemp("qbo") / "mirror.duckdb", tables.ENTITIES, qp.DUMPS)
    with store.write() as con:
        made = install_views(con, BOOKS_VIEWS)
    return store, made


def by(rows: list[dict], key: str) -> dict:
    return {r[key]: r for r in rows}


def test_every_books_view_comes_from_its_tables_with_the_contract_columns(books):
    store, made = books
    assert set(made) == set(XERO_BOOKS_VIEWS) and set(made.values()) == {"source"}
    with store.read() as con:
        for view in made:
            described = con.execute(f"describe canonical.{view}").fetchall()
            assert [(d[0], sql_type(d[1])) for d in described] == [
                (n, sql_type(t)) for n, t in CANONICAL_VIEWS[view]
            ]
            assert con.execute(f"select count(*) from canonical.{view}").fetchone()[0] > 0, view


def test_customers(books):
    rows = by(view_rows(books[0], "select * from canonical.books_customers"), "customer_id")
    acme, gone = rows["1"], rows["2"]
    assert (acme["name"], acme["email"], acme["crm_link"], acme["status"]) == (
        "Acme Pty",
        "ann@acme.test",
        "crm-77",
        "active",
    )
    assert (acme["street"], acme["city"], acme["region"], acme["postal_code"]) == (
        "1 High St, Level 2",
        "Sydney",
        "NSW",
        "2000",
    )
    assert (
        acme["currency"] == "AUD"
        and acme["outstanding"] == Decimal("150.00")
        and acme["account_number"] == "ACME-1"
    )
    assert acme["overdue"] == Decimal("150.00")  # 1001 (110) and 1003 (40) are past due; 1005 is not
    assert (gone["status"], gone["city"], gone["currency"]) == (
        "archived",
        "Perth",
        "AUD",
    )  # ship address, home currency
    assert acme["is_customer"] is True and acme["is_supplier"] is False


def test_invoice_statuses_amounts_and_bills(books):
    rows = by(view_rows(books[0], "select * from canonical.books_invoices"), "invoice_id")
    assert {k: (r["status"], r["status_raw"]) for k, r in rows.items()} == {
        "101": ("open", "Open"), "102": ("paid", "Paid"), "103": ("open", "Partial"), "104": ("void", "Voided"),
        "105": ("open", "Open"), "bill-101": ("open", "Open"), "estimate-101": ("draft", "Pending"),
        "estimate-106": ("void", "Closed")}  # fmt: skip
    draft = rows["estimate-101"]  # a draft owes its total once posted, nothing yet; it is due when it expires
    assert (draft["type"], draft["number"], draft["reference"], draft["customer_id"]) == (
        "sale",
        "1006",
        "DEAL-11",
        "1",
    )
    assert (draft["total"], draft["amount_due"], draft["amount_paid"], draft["due_date"]) == (
        55,
        55,
        0,
        date(2026, 12, 10),
    )
    assert rows["estimate-106"]["amount_due"] == 0
    partial = rows["103"]
    assert (partial["amount_paid"], partial["amount_credited"], partial["amount_due"]) == (10, 10, 40)
    assert rows["102"]["paid_date"] == date(2026, 11, 1) and rows["101"]["paid_date"] is None
    assert (rows["101"]["subtotal"], rows["101"]["tax"], rows["101"]["total"]) == (100, 10, 110)
    assert (
        rows["101"]["sent"] is True
        and rows["101"]["reference"] == "DEAL-9"
        and rows["101"]["number"] == "1001"
    )
    assert rows["105"]["amounts_tax"] == "inclusive" and rows["103"]["amounts_tax"] == "no_tax"
    assert rows["104"]["amount_paid"] == 0
    bill = rows["bill-101"]
    assert (bill["type"], bill["customer_id"], bill["customer_name"]) == ("bill", "vendor-1", "Supplier Co")
    assert {r["currency"] for r in rows.values()} == {"AUD"}


def test_lines_skip_subtotals_and_name_items_by_sku(books):
    rows = view_rows(books[0], "select * from canonical.books_invoice_lines order by invoice_id, line_no")
    assert [(r["invoice_id"], r["line_no"]) for r in rows] == [
        ("101", 1), ("102", 1), ("103", 1), ("103", 2), ("105", 1), ("bill-101", 1), ("estimate-101", 1),
        ("estimate-106", 1)]  # fmt: skip
    first = rows[0]
    assert (first["item_code"], first["account_code"], first["tax_code"], first["quantity"]) == (
        "CONS",
        "79",
        "TAX",
        1,
    )
    assert rows[1]["item_code"] == "Widget"
    # tax inclusive: the gross amount and the tax it includes, so the lines less their tax make the
    # sub-total (the invariant `invoice_lines_sum_to_subtotal` failed on every inclusive document written back)
    assert (rows[4]["line_amount"], rows[4]["tax_amount"]) == (Decimal("110.00"), Decimal("10.00"))
    invoice = view_rows(books[0], "select * from canonical.books_invoices where invoice_id = '105'")[0]
    assert rows[4]["line_amount"] - rows[4]["tax_amount"] == invoice["subtotal"] == Decimal("100.00")
    assert [r["tax_amount"] for r in rows if r["invoice_id"] != "105"] == [
        None
    ] * 7  # exclusive: none per line
    parsed = invoice_from_qbo(next(p for p in qp.INVOICES if p["Id"] == "105")).lines[0]
    assert (parsed.line_amount, parsed.tax_amount) == (Decimal("110"), Decimal("10"))


def test_payments_one_row_per_invoice_settled_and_credit_as_allocation(books):
    store = books[0]
    payments = by(view_rows(store, "select * from canonical.books_payments"), "payment_id")
    assert {k: (r["invoice_id"], r["amount"]) for k, r in payments.items()} == {
        "301/1.1": ("102", Decimal("25.00")), "301/2.1": ("103", Decimal("10.00"))}  # fmt: skip
    assert payments["301/1.1"]["reference"] == "EFT-1" and payments["301/1.1"]["currency"] == "AUD"
    allocations = view_rows(store, "select * from canonical.books_credit_allocations")
    assert [(a["credit_note_id"], a["invoice_id"], a["amount"], a["date"]) for a in allocations] == [
        ("401", "103", Decimal("10.00"), date(2026, 11, 2))]  # fmt: skip
    note = view_rows(store, "select * from canonical.books_credit_notes")[0]
    assert (note["status"], note["remaining_credit"], note["amount_applied"]) == ("open", 20, 10)


def test_items(books):
    items = by(view_rows(books[0], "select * from canonical.books_items"), "item_id")
    assert (items["5"]["code"], items["5"]["is_sold"], items["5"]["is_purchased"]) == ("CONS", True, False)
    assert (items["6"]["code"], items["6"]["is_purchased"], items["6"]["unit_price"]) == (
        "Widget",
        True,
        Decimal("12.5"),
    )


def test_records_agree_with_the_views(books):
    view = by(view_rows(books[0], "select * from canonical.books_invoices"), "invoice_id")
    for payload in qp.INVOICES:
        credited = Decimal(10) if payload["Id"] == "103" else Decimal(0)
        record = invoice_from_qbo(payload, home_currency="AUD", credited=credited)
        row = view[payload["Id"]]
        assert (
            record.status,
            record.status_raw,
            record.total,
            record.amount_due,
            record.amount_paid,
            record.currency,
        ) == (
            row["status"],
            row["status_raw"],
            row["total"],
            row["amount_due"],
            row["amount_paid"],
            row["currency"],
        )
    customer = customer_from_qbo(qp.CUSTOMERS[0])
    assert (customer.books_id, customer.crm_id, customer.email, customer.status) == (
        "1",
        "crm-77",
        "ann@acme.test",
        "active",
    )
    assert customer.billing_address.city == "Sydney" and customer.phone.number == "+61 2 5550 1000"
    payment = payment_from_qbo(qp.PAYMENTS[1], home_currency="AUD")
    assert [(a.invoice_id, a.credit_note_id, a.amount) for a in payment.allocations] == [
        ("103", None, Decimal(10)), (None, "401", Decimal(10))]  # fmt: skip
    note = credit_note_from_qbo(qp.CREDIT_MEMOS[0])
    assert (note.status, note.remaining_credit) == ("open", Decimal(20))
    assert product_from_qbo(qp.ITEMS[0]).code == "CONS"


def test_payloads_written_back():
    customer = Customer(
        role=Role.BOOKS, books_id=None, crm_id="crm-5", name="New Co", status=CustomerStatus.ACTIVE, currency="AUD",
        persons=(Person(first_name="Bo", last_name="Ng", email="bo@new.test", is_primary=True),),
        emails=("bo@new.test",), phones=(Phone(PhoneKind.MAIN, "555 1000"),),
        addresses=(Address(AddressKind.BILLING, ("1 A St",), "Hobart", "TAS", "7000", "AU"),),
    )  # fmt: skip
    body = customer_to_qbo(customer)
    assert body == {"DisplayName": "New Co", "CompanyName": "New Co", "GivenName": "Bo", "FamilyName": "Ng",
                    "PrimaryEmailAddr": {"Address": "bo@new.test"}, "PrimaryPhone": {"FreeFormNumber": "555 1000"},
                    "BillAddr": {"Line1": "1 A St", "City": "Hobart", "CountrySubDivisionCode": "TAS",
                                 "PostalCode": "7000", "Country": "AU"},
                    "Notes": "xz-crm-id: crm-5", "CurrencyRef": {"value": "AUD"}, "Active": True}  # fmt: skip
    updated = customer_to_qbo(customer, with_currency=False, notes="pays late\nxz-crm-id: old")
    assert "CurrencyRef" not in updated and updated["Notes"] == "pays late\nxz-crm-id: crm-5"
    invoice = Invoice(role=Role.BOOKS, reference="DEAL-3", issue_date=date(2026, 12, 1), due_date=date(2026, 12, 31),
                      amounts_tax=TaxMode.EXCLUSIVE, currency="AUD",
                      lines=(InvoiceLine(description="Widget x2", quantity=Decimal(2), unit_price=Decimal("12.5"),
                                         item_code="Widget", tax_code="TAX"),
                             InvoiceLine(description="misc", quantity=Decimal(1), unit_price=Decimal(5))))  # fmt: skip
    sent = invoice_to_qbo(invoice, customer_id="1", item_ids={"Widget": "6"}, default_item="5")
    assert (
        sent["CustomerRef"] == {"value": "1"}
        and sent["PrivateNote"] == "DEAL-3"
        and sent["TxnDate"] == "2026-12-01"
    )
    assert sent["GlobalTaxCalculation"] == "TaxExcluded"
    assert sent["Line"][0] == {"DetailType": "SalesItemLineDetail", "Description": "Widget x2", "Amount": Decimal("25.00"),
                               "SalesItemLineDetail": {"ItemRef": {"value": "6"}, "Qty": Decimal(2),
                                                       "UnitPrice": Decimal("12.5"), "TaxCodeRef": {"value": "TAX"}}}  # fmt: skip
    assert sent["Line"][1]["SalesItemLineDetail"]["ItemRef"] == {"value": "5"}
    assert "GlobalTaxCalculation" not in invoice_to_qbo(invoice, customer_id="1", global_tax=False)
