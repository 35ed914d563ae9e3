"""Salesforce <-> canonical: the CRM views over a mirror of SOQL-shaped records (every object, every column of
the contract, IsWon deciding won whatever the stage is called, no CRM invoices), the union with Zoho's rows,
and the record mappings both ways."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from xz_pipeline.core.canonical import CANONICAL_VIEWS, Customer, DealStage, Person, Role, install_views
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.salesforce import schema as sf_schema
from xz_pipeline.salesforce import tables
from xz_pipeline.salesforce.mapping import (
    CRM_VIEWS,
    account_from_salesforce,
    account_to_salesforce,
    contact_to_salesforce,
    deal_from_salesforce,
    deal_update_to_salesforce,
    product_from_salesforce,
)
from xz_pipeline.views import combine_views
from xz_pipeline.zoho import tables as zoho_tables
from xz_pipeline.zoho.mapping import CRM_VIEWS as ZOHO_CRM_VIEWS
from xz_pipeline_tests.canonical_support import CONNECTION, mirror_from_dumps, sql_type, view_rows
from xz_pipeline_tests.salesforce import payloads as sp


@pytest.fixture(scope="module")
def crm(tmp_path_factory):
    store = mirror_from_dumps(tmp_path_factory.mktemp("sf") / "mirror.duckdb", tables.ENTITIES, sp.DUMPS)
    with store.write() as con:
        store.ensure_base(con)
        made = install_views(con, combine_views(con, [ZOHO_CRM_VIEWS, CRM_VIEWS]))
    return store, made


def by(rows: list[dict], key: str) -> dict:
    return {r[key]: r for r in rows}


def test_every_crm_view_has_the_contract_columns_and_salesforce_rows(crm):
    store, made = crm
    assert set(made) == {v for v in CANONICAL_VIEWS if v.startswith("crm_")}
    sources = {"crm_accounts": "accounts", "crm_contacts": "contacts", "crm_deals": "opportunities",
               "crm_deal_lines": "opportunity_line_items", "crm_products": "products"}  # fmt: skip
    with store.read() as con:
        for view in made:
            described = con.execute(f"describe canonical.{view}").fetchall()
            assert [(d[0], sql_type(d[1])) for d in described] == [
                (n, sql_type(t)) for n, t in CANONICAL_VIEWS[view]
            ]
        for view, table in sources.items():
            mirrored = con.execute(f"select count(*) from salesforce.{table}").fetchone()[0]
            assert con.execute(f"select count(*) from canonical.{view}").fetchone()[0] == mirrored > 0, view
        # Salesforce has no CRM invoices: the views exist and hold nothing from it
        assert con.execute("select count(*) from canonical.crm_invoices").fetchone()[0] == 0
        assert con.execute("select count(*) from canonical.crm_invoice_lines").fetchone()[0] == 0


def test_accounts_take_the_primary_contacts_email_and_the_books_link(crm):
    store, _ = crm
    accounts = by(view_rows(store, "select * from canonical.crm_accounts"), "account_id")
    acme = accounts[sp.ACME]
    assert (
        acme["email"] == "ben@acme.example" and acme["primary_contact_id"] == sp.BEN
    )  # earliest with an email
    assert acme["books_link"] == "xero-c-1" and acme["outstanding"] == Decimal("1150.50")
    assert (acme["street"], acme["city"], acme["postal_code"]) == ("1 Queen St, Level 2", "Auckland", "1010")
    assert acme["marked_customer"] is True and accounts[sp.GLOBEX]["marked_customer"] is False
    assert acme["payment_risk"] == "high" and acme["expected_pay_date"] == date(2026, 12, 20)
    assert acme["currency"] == "NZD" and acme["tags"] == []
    assert acme["source_created"] == datetime(2026, 1, 5, 9, tzinfo=UTC)
    contacts = by(view_rows(store, "select * from canonical.crm_contacts"), "contact_id")
    assert [c for c, r in contacts.items() if r["is_primary"]] == [sp.BEN]
    assert contacts[sp.ANNA]["mobile"] == "+64 21 555 0101" and contacts[sp.ANNA]["name"] == "Anna Apple"


def test_won_is_is_won_whatever_the_stage_is_called(crm):
    store, _ = crm
    deals = by(view_rows(store, "select * from canonical.crm_deals"), "deal_id")
    assert {d: r["stage"] for d, r in deals.items()} == {sp.WON: "won", sp.RENAMED: "won", sp.OPEN: "open",
                                                         sp.LOST: "lost"}  # fmt: skip
    assert deals[sp.RENAMED]["stage_raw"] == "Signed & Sealed"
    won = deals[sp.WON]
    assert (
        won["probability"] == 100
        and won["amount"] == Decimal("2300.00")
        and won["account_name"] == "Acme Ltd"
    )
    assert (won["books_invoice_id"], won["books_invoice_number"]) == ("xero-i-9", "INV-0009")
    assert (won["payment_status"], won["payment_status_raw"]) == ("partially_paid", "Partially Paid")
    assert won["amount_paid"] == Decimal("1000.00") and won["last_payment_date"] == date(2026, 11, 15)
    assert won["payment_status_tracked"] is None  # the org's schema was never read
    lines = view_rows(store, "select * from canonical.crm_deal_lines")
    assert [(r["deal_id"], r["line_no"], r["product_code"], r["product_name"], r["quantity"], r["unit_price"])
            for r in lines] == [(sp.WON, 1, "WDG-1", "Widget", Decimal("10.0000"), Decimal("230.0000"))]  # fmt: skip
    products = view_rows(store, "select * from canonical.crm_products")
    assert [(p["code"], p["name"], p["active"], p["unit_price"]) for p in products] == [
        ("WDG-1", "Widget", True, None)
    ]


def test_payment_status_is_tracked_where_the_org_has_the_field(tmp_path):
    store = mirror_from_dumps(tmp_path / "m.duckdb", tables.ENTITIES, {"Opportunity": sp.OPPORTUNITIES[:1]})
    schema = sf_schema.OrgSchema(CONNECTION, datetime.now(UTC), objects={"Opportunity": {"Name": {
        "type": "string", "picklist": [], "external_id": False}}}, org={"home_currency": "NZD"})  # fmt: skip
    sf_schema.save(store, schema)
    with store.write() as con:
        install_views(con, combine_views(con, [ZOHO_CRM_VIEWS, CRM_VIEWS]))
    assert view_rows(store, "select payment_status_tracked from canonical.crm_deals") == [
        {"payment_status_tracked": False}
    ]
    schema.objects["Opportunity"]["Payment_Status__c"] = {
        "type": "picklist",
        "picklist": [],
        "external_id": False,
    }
    sf_schema.save(store, schema)
    assert view_rows(store, "select payment_status_tracked from canonical.crm_deals") == [
        {"payment_status_tracked": True}
    ]


def test_both_crms_rows_meet_in_one_view(tmp_path):
    """A Zoho connection and a Salesforce connection in one mirror: the canonical views union both."""
    store = mirror_from_dumps(tmp_path / "m.duckdb", tables.ENTITIES, {"Account": sp.ACCOUNTS[:1]})
    zoho_account = {"id": "5725767000000411001", "Account_Name": "Zed Ltd", "Created_Time": "2026-01-01T00:00:00+13:00",
                    "Modified_Time": "2026-01-02T00:00:00+13:00"}  # fmt: skip
    write_entity(store, zoho_tables.ACCOUNTS, connection="zoho-conn", payloads=[zoho_account],
                 fetched_at=datetime.now(UTC), run_id="t", full=True)  # fmt: skip
    with store.write() as con:
        install_views(con, combine_views(con, [ZOHO_CRM_VIEWS, CRM_VIEWS]))
    rows = view_rows(store, "select connection, name from canonical.crm_accounts order by name")
    assert rows == [
        {"connection": CONNECTION, "name": "Acme Ltd"},
        {"connection": "zoho-conn", "name": "Zed Ltd"},
    ]


def test_records_map_to_the_canonical_model_and_back():
    deals = {d["Id"]: deal_from_salesforce(d) for d in sp.OPPORTUNITIES}
    assert deals[sp.RENAMED].stage is DealStage.WON and deals[sp.LOST].stage is DealStage.LOST
    assert deals[sp.WON].payment_status == "partially_paid" and deals[sp.WON].probability == 100
    acme = account_from_salesforce(sp.ACCOUNTS[0], sp.CONTACTS)
    assert acme.emails == ("ben@acme.example",) and acme.books_id == "xero-c-1"
    assert [p.id for p in acme.persons if p.is_primary] == [sp.BEN]
    assert acme.billing_address is not None and acme.billing_address.lines == ("1 Queen St", "Level 2")
    assert product_from_salesforce(sp.PRODUCTS[0]).code == "WDG-1"

    out = account_to_salesforce(Customer(role=Role.CRM, crm_id=sp.ACME, books_id="xero-c-1", name="Acme Ltd",
                                         outstanding=Decimal("12.30")))  # fmt: skip
    assert out == {"id": sp.ACME, "Name": "Acme Ltd", "Books_Customer_Id__c": "xero-c-1",
                   "Outstanding_Balance__c": Decimal("12.30")}  # fmt: skip
    contact = contact_to_salesforce(Person(email="dee@acme.example"), account_id=sp.ACME)
    assert contact == {
        "LastName": "dee",
        "Email": "dee@acme.example",
        "AccountId": sp.ACME,
    }  # LastName is required
    update = deal_update_to_salesforce(sp.WON, {"payment_status": "paid", "amount_paid": Decimal("2300.00"),
                                                "last_payment_date": date(2026, 12, 1)})  # fmt: skip
    assert update == {"id": sp.WON, "Payment_Status__c": "Paid", "Amount_Paid__c": Decimal("2300.00"),
                      "Last_Payment_Date__c": "2026-12-01"}  # fmt: skip
    with pytest.raises(KeyError):
        deal_update_to_salesforce(sp.WON, {"subject": "x"})
    with pytest.raises(TypeError):
        deal_update_to_salesforce(sp.WON, {"amount_paid": 1.5})
