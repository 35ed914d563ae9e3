"""Seeding the Xero emulator from the generated world's dataclasses, and the fixture round trip."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from xz_pipeline.sandbox.world import (
    Address,
    Allocation,
    BooksContact,
    BooksCreditNote,
    BooksInvoice,
    BooksOrg,
    BooksPayment,
    CrmOrg,
    Item,
    LedgerAccount,
    Line,
    Person,
    TaxRate,
    World,
)
from xz_pipeline.sandbox.xero import XeroEmulator
from xz_pipeline_tests.sandbox.xero.support import API, SpecClient, accounting_spec, day, dec, ms

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
TENANT = "3f9a0c3e-5b7d-4c1a-9e2f-1a2b3c4d5e6f"
C1, C2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
I1, I2, I3 = (f"{n}{n}{n}{n}{n}{n}{n}{n}-0000-4000-8000-00000000000{n}" for n in (3, 4, 5))


def _world() -> World:
    line = Line("Consulting", Decimal("10"), Decimal("100"), "200", "OUTPUT2", Decimal("15"))
    discounted = Line(
        "Widgets", Decimal("4"), Decimal("25"), "200", "OUTPUT2", Decimal("15"), "WID", Decimal("10")
    )
    books = BooksOrg(
        tenant_id=TENANT, name="Harbour Supplies Ltd", legal_name="Harbour Supplies Limited", short_code="!hS1x",
        base_currency="NZD", country_code="NZ", timezone="Pacific/Auckland", created=T0,
        accounts=[LedgerAccount("aaaaaaaa-0000-4000-8000-000000000001", "090", "Bank", "BANK", "NONE", "NZD"),
                  LedgerAccount("aaaaaaaa-0000-4000-8000-000000000002", "200", "Sales", "REVENUE", "OUTPUT2"),
                  LedgerAccount("aaaaaaaa-0000-4000-8000-000000000003", "610", "Debtors", "CURRENT", "NONE", "", "DEBTORS")],
        tax_rates=[TaxRate("OUTPUT2", "GST on Income", Decimal("15")), TaxRate("NONE", "No GST", Decimal("0"))],
        items=[Item("bbbbbbbb-0000-4000-8000-000000000001", "WID", "Widget", "A widget", Decimal("25"), "200", "OUTPUT2", T0)],
        contacts=[
            BooksContact(C1, "Kauri Cafe", "ap@kauri.example", "+64 9 555 0100",
                         Address("1 Queen St", "", "Auckland", "Auckland", "1010", "New Zealand"), "123-456-789", "NZD",
                         [Person("Mere", "Tane", "mere@kauri.example", "")], T0, T0, contact_number="ZC-1"),
            BooksContact(C2, "Totara Trust", "", "", None, "", "NZD", [], T0, T0, status="ARCHIVED"),
        ],
        invoices=[
            BooksInvoice(I1, "INV-0041", "ACCREC", C1, date(2026, 9, 1), date(2026, 9, 30), "NZD", "AUTHORISED", [line], T0, T0),
            BooksInvoice(I2, "INV-0042", "ACCREC", C1, date(2026, 9, 2), date(2026, 12, 31), "NZD", "AUTHORISED",
                         [discounted], T0, T0, reference="PO-1"),
            BooksInvoice(I3, "", "ACCPAY", C2, date(2026, 9, 3), date(2026, 10, 3), "NZD", "DRAFT", [line], T0, T0),
        ],
        payments=[BooksPayment("cccccccc-0000-4000-8000-000000000001", I1, date(2026, 9, 10), Decimal("1150"), "090", T0, T0)],
        credit_notes=[BooksCreditNote("dddddddd-0000-4000-8000-000000000001", "CN-0007", "ACCRECCREDIT", C1, date(2026, 9, 5),
                                      "NZD", "AUTHORISED", [Line("Refund", Decimal("1"), Decimal("20"), "200", "OUTPUT2",
                                                                 Decimal("15"))],
                                      [Allocation(I2, Decimal("23"), date(2026, 9, 6))], T0, T0)],
    )  # fmt: skip
    crm = CrmOrg("900", "Harbour CRM", "NZD", "Pacific/Auckland", "Enterprise", T0)
    return World(seed=1, size="demo", index=0, as_of=T0, books=books, crm=crm)


def test_seed_world_maps_the_books_side(specs):
    accounting_spec()
    emu = XeroEmulator()
    world = _world()
    assert emu.seed_world(world) == TENANT
    emu.register_client("C", "S")
    tok = emu.identity.token({}, {"grant_type": "refresh_token", "client_id": "C", "client_secret": "S",
                                  "refresh_token": emu.grant_refresh_token("C", [TENANT])})["access_token"]  # fmt: skip
    api = SpecClient(
        emu.app, {"Authorization": f"Bearer {tok}", "xero-tenant-id": TENANT, "Accept": "application/json"}
    )

    org = api.get(f"{API}/Organisation").json()["Organisations"][0]
    assert (org["Name"], org["ShortCode"], org["CountryCode"]) == ("Harbour Supplies Ltd", "!hS1x", "NZ")
    contacts = api.get(f"{API}/Contacts", params={"includeArchived": "true"}).json()["Contacts"]
    kauri = next(c for c in contacts if c["ContactID"] == C1)
    assert kauri["ContactNumber"] == "ZC-1" and kauri["TaxNumber"] == "123-456-789"
    assert kauri["Phones"][0] == {"PhoneType": "DEFAULT", "PhoneNumber": "+64 9 555 0100"}
    assert (
        kauri["Addresses"][0]["City"] == "Auckland"
        and kauri["ContactPersons"][0]["EmailAddress"] == "mere@kauri.example"
    )
    assert ms(kauri["UpdatedDateUTC"]) == T0
    assert [c["ContactStatus"] for c in contacts if c["ContactID"] == C2] == ["ARCHIVED"]

    invoices = {i["InvoiceID"]: i for i in api.get(f"{API}/Invoices", params={"page": 1}).json()["Invoices"]}
    inv = world.books.invoices
    assert dec(invoices[I1]["Total"]) == inv[0].total and invoices[I1]["Status"] == "PAID"
    assert day(invoices[I1]["FullyPaidOnDate"]) == date(2026, 9, 10)
    assert dec(invoices[I2]["SubTotal"]) == inv[1].sub_total == Decimal("90.00")
    assert dec(invoices[I2]["AmountCredited"]) == 23 and dec(invoices[I2]["AmountDue"]) == inv[1].total - 23
    assert (
        invoices[I3]["Status"] == "DRAFT"
        and "InvoiceNumber" not in invoices[I3]
        or invoices[I3]["InvoiceNumber"] == ""
    )
    note = api.get(f"{API}/CreditNotes").json()["CreditNotes"][0]
    assert dec(note["RemainingCredit"]) == Decimal("0") and note["Status"] == "PAID"
    payment = api.get(f"{API}/Payments").json()["Payments"][0]
    assert payment["Account"]["Code"] == "090" and payment["Invoice"]["InvoiceNumber"] == "INV-0041"
    items = api.get(f"{API}/Items").json()["Items"]
    assert items[0]["SalesDetails"]["UnitPrice"] == 25
    # the auto-number continues after the seeded numbers, and seeding sent no webhook events
    c = api.put(f"{API}/Invoices", {"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": C1}, "LineItems": [
        {"Description": "x", "UnitAmount": 1, "AccountCode": "200"}]}]}).json()["Invoices"][0]  # fmt: skip
    assert c["InvoiceNumber"] == "INV-0043"
    assert emu.webhooks.pending == [] and emu.webhooks.attempts == []


def test_load_and_dump_round_trip():
    a = XeroEmulator()
    a.seed_world(_world())
    b = XeroEmulator()
    tid = b.add_tenant("Copy", tenant_id=TENANT)
    for coll in ("Accounts", "Items", "Contacts", "Invoices", "CreditNotes", "Payments"):
        b.load(tid, coll, a.dump(TENANT, coll))
    for coll in ("Contacts", "Invoices", "CreditNotes", "Payments", "Items"):
        assert b.dump(tid, coll) == a.dump(TENANT, coll), coll
    # derived amounts are recomputed on load, never trusted
    inv = a.dump(TENANT, "Invoices")[0]
    inv["AmountDue"] = 999
    c = XeroEmulator()
    tid = c.add_tenant("Again", tenant_id=TENANT)
    c.load(tid, "Contacts", a.dump(TENANT, "Contacts"))
    c.load(tid, "Invoices", [inv])
    assert c.dump(tid, "Invoices")[0]["AmountDue"] == 1150


def test_loaded_accounts_replace_defaults_with_the_same_code():
    emu = XeroEmulator()
    tid = emu.add_tenant("Chart Ltd")
    mine = "eeeeeeee-0000-4000-8000-000000000001"
    emu.load(
        tid,
        "Accounts",
        [{"AccountID": mine, "Code": "090", "Name": "Main Bank", "Type": "BANK", "Status": "ACTIVE"}],
    )
    banks = [a for a in emu.dump(tid, "Accounts") if a["Code"] == "090"]
    assert [(a["AccountID"], a["Name"]) for a in banks] == [(mine, "Main Bank")]
    emu.load(tid, "Contacts", [{"ContactID": C1, "Name": "Payer"}])
    emu.load(tid, "Invoices", [{"InvoiceID": I1, "Type": "ACCREC", "Status": "AUTHORISED", "Contact": {"ContactID": C1},
                                "LineItems": [{"Description": "x", "UnitAmount": 100, "AccountCode": "200", "TaxType": "OUTPUT2"}]}])  # fmt: skip
    emu.load(
        tid,
        "Payments",
        [{"Invoice": {"InvoiceID": I1}, "Account": {"Code": "090"}, "Amount": 15, "Date": "2026-10-01"}],
    )
    pay = emu.dump(tid, "Payments")[0]
    assert pay["Account"] == {"AccountID": mine, "Code": "090"}
    inv = emu.dump(tid, "Invoices")[0]
    assert (inv["Total"], inv["AmountPaid"], inv["AmountDue"]) == (115, 15, 100)
