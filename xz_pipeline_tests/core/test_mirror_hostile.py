"""One bad record never stops an entity: each hostile value class is typed or quarantined record by
record (naming the field and the rule), the rest of the page lands, and a record that types again is
released. Driven through `write_entity` with the real Xero and Zoho table definitions."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.store import Store
from xz_pipeline.xero.tables import CONTACTS, INVOICES, ITEMS
from xz_pipeline.zoho.tables import DEALS, PRODUCTS

T1 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
XERO_NOW = "/Date(1789439400000+0000)/"


def _contact(n: int, **fields) -> dict:
    return {"ContactID": f"c-{n}", "Name": f"Customer {n}", "ContactStatus": "ACTIVE", "IsCustomer": True,
            "EmailAddress": f"c{n}@example.com", "UpdatedDateUTC": XERO_NOW, **fields}  # fmt: skip


def _invoice(n: int, **fields) -> dict:
    return {"InvoiceID": f"i-{n}", "Type": "ACCREC", "Status": "AUTHORISED", "Contact": {"ContactID": "c-1"},
            "CurrencyCode": "NZD", "SubTotal": 10, "TotalTax": 1.5, "Total": 11.5, "Date": XERO_NOW,
            "LineItems": [{"LineItemID": f"l-{n}", "Description": "x", "LineAmount": 10, "TaxAmount": 1.5}],
            "UpdatedDateUTC": XERO_NOW, **fields}  # fmt: skip


def _deal(n: int, **fields) -> dict:
    return {"id": str(1000 + n), "Deal_Name": f"Deal {n}", "Stage": "Qualification", "Amount": 100,
            "Probability": 10, "Modified_Time": "2026-11-01T10:00:00+13:00", **fields}  # fmt: skip


def _write(store, spec, payloads, at=T1, full=False):
    return write_entity(
        store, spec, connection="c1", payloads=payloads, fetched_at=at, run_id="r1", full=full
    )


def _q(store, record_id) -> list[tuple]:
    with store.read() as con:
        return con.execute(
            "select rule, field, severity, resolved_at is null from meta.quarantine where record_id = ? "
            "order by quarantined_at, rule",
            [record_id],
        ).fetchall()


def _one(store, sql, params=()):
    with store.read() as con:
        return con.execute(sql, list(params)).fetchall()


HOSTILE_CONTACTS = {
    # record id: (its hostile fields, the column that must be named)
    "c-bool": ({"IsCustomer": "yes"}, "is_customer"),
    "c-list": ({"EmailAddress": ["a@b.c"]}, "email"),
    "c-object": ({"Name": {"first": "A"}}, "name"),
    "c-big": ({"Balances": {"AccountsReceivable": {"Outstanding": 1e16}}}, "ar_outstanding"),
    "c-nan": ({"Balances": {"AccountsReceivable": {"Outstanding": "NaN"}}}, "ar_outstanding"),
    "c-date": ({"UpdatedDateUTC": "/Date(99999999999999999)/"}, "updated_utc"),
    "c-year": ({"UpdatedDateUTC": "2999-01-01T00:00:00"}, "updated_utc"),
    "c-phone": ({"Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": ["1", "2"]}]}, "phone"),
}


def test_each_hostile_value_quarantines_its_record_and_the_page_lands(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    clean = [_contact(n) for n in range(5)]
    hostile = [{**_contact(0), "ContactID": rid, **fields} for rid, (fields, _) in HOSTILE_CONTACTS.items()]
    missing_id = {k: v for k, v in _contact(9).items() if k != "ContactID"}
    null_id = {**_contact(9), "ContactID": None}
    object_id = {**_contact(9), "ContactID": {"id": "c-9"}}
    result = _write(store, CONTACTS, [*clean[:2], *hostile, missing_id, null_id, object_id, *clean[2:]])

    assert result.counts.inserted == 5 and result.quarantined == len(HOSTILE_CONTACTS) + 3
    assert sorted(r[0] for r in _one(store, "select contact_id from xero.contacts")) == [
        f"c-{n}" for n in range(5)
    ]
    for rid, (_, column) in HOSTILE_CONTACTS.items():
        assert _q(store, rid) == [(f"typed:contacts.{column}", column, "ERROR", True)], rid
    assert sorted(r[0] for r in _one(store, "select field from meta.quarantine where record_id = ''")) == [
        "contact_id", "contact_id", "contact_id"]  # fmt: skip
    # every payload landed, hostile ones included, verbatim
    assert _one(store, "select count(*) from landing.records") == [(5 + len(HOSTILE_CONTACTS) + 3,)]
    (payload,) = _one(store, "select payload::varchar from landing.records where record_id = 'c-list'")[0]
    assert '"EmailAddress":["a@b.c"]' in payload
    assert _one(store, "select count(*) from xero.contacts where email like '%[%'") == [(0,)]


def test_xero_no_date_is_null_with_a_note_and_moves_no_cursor(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    result = _write(store, CONTACTS, [_contact(1, UpdatedDateUTC="/Date(-62135596800000)/"),
                                      _contact(2, UpdatedDateUTC="/Date(-62135596800000+0000)/")])  # fmt: skip
    assert result.counts.inserted == 2 and result.quarantined == 0 and result.notes == 2
    assert result.cursor is None  # "no date" is no time: the cursor stays where it was (nowhere)
    assert _one(store, "select updated_utc from xero.contacts") == [(None,), (None,)]
    assert _q(store, "c-1") == [("note:contacts.updated_utc", "updated_utc", "NOTE", False)]
    assert _one(store, "select source_modified from landing.records") == [(None,), (None,)]
    _write(store, CONTACTS, [_contact(1, UpdatedDateUTC="/Date(-62135596800000)/")], at=T2)
    assert len(_q(store, "c-1")) == 1  # the same payload again adds no second note


def test_booleans_and_integers_are_strict(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    deals = [_deal(1, Probability="high"), _deal(2, Probability="50"), _deal(3, Probability=50.0),
             _deal(4, Probability=True), _deal(5, Probability=2**40), _deal(6)]  # fmt: skip
    result = _write(store, DEALS, deals)
    assert result.quarantined == 4
    assert _one(store, "select deal_id, probability from zoho.deals order by 1") == [
        ("1003", 50),
        ("1006", 10),
    ]
    assert {r[0] for r in _one(store, "select field from meta.quarantine")} == {"probability"}
    products = [{"id": "1", "Product_Name": "A", "Product_Active": "maybe"},
                {"id": "2", "Product_Name": "B", "Product_Active": "true"},
                {"id": "3", "Product_Name": "C", "Product_Active": 1},
                {"id": "4", "Product_Name": "D", "Product_Active": False}]  # fmt: skip
    result = _write(store, PRODUCTS, products)
    assert result.quarantined == 3
    assert _one(store, "select product_id, active from zoho.products") == [("4", False)]


@pytest.mark.parametrize(
    "amount, fits",
    [(9_999_999_999_999_999.99, False), ("9999999999999999.99", True), ("9999999999999999.995", False),
     (1e16, False), ("-1e16", False), ("1e400", False), ("Infinity", False), (12.345, True), ("0.001", True)],
)  # fmt: skip
def test_amounts_are_checked_against_their_decimal_precision_before_duckdb(tmp_path, amount, fits):
    store = Store(tmp_path / "m.duckdb")
    result = _write(store, DEALS, [_deal(1, Amount=amount), _deal(2)])
    assert result.counts.inserted == (2 if fits else 1)
    assert result.quarantined == (0 if fits else 1)
    if not fits:
        assert _q(store, "1001") == [("typed:deals.amount", "amount", "ERROR", True)]


def test_child_rows_quarantine_their_parent_and_lineless_documents_type(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    twice = _invoice(1)
    twice["LineItems"] = twice["LineItems"] * 2  # the same LineItemID twice in one invoice
    big_line = _invoice(2)
    big_line["LineItems"][0]["LineAmount"] = "1e17"
    not_a_line = _invoice(3, LineItems=["a line?"])
    lineless = _invoice(4, LineItems=[], SubTotal=0, TotalTax=0, Total=0)
    result = _write(store, INVOICES, [twice, big_line, not_a_line, lineless, _invoice(5)])
    assert result.counts.inserted == 2 and result.quarantined == 3
    assert _q(store, "i-1")[0][:2] == ("typed:invoices.invoice_lines[2]", "invoice_lines[2]")
    assert _q(store, "i-2")[0][:2] == (
        "typed:invoices.invoice_lines[1].line_amount",
        "invoice_lines[1].line_amount",
    )
    assert _q(store, "i-3")[0][:2] == ("typed:invoices.invoice_lines", "invoice_lines")
    assert _one(store, "select invoice_id from xero.invoice_lines") == [("i-5",)]


def test_the_same_record_twice_in_one_read_keeps_the_newest(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    older = _contact(1, Name="Old", UpdatedDateUTC="/Date(1789439400000+0000)/")
    newer = _contact(1, Name="New", UpdatedDateUTC="/Date(1789525800000+0000)/")
    result = _write(store, CONTACTS, [newer, older, _contact(2)])
    assert result.counts.inserted == 2 and result.landed == 3
    assert _one(store, "select name from xero.contacts where contact_id = 'c-1'") == [("New",)]
    result = _write(store, CONTACTS, [older, newer], at=T2)
    assert result.counts.unchanged == 1 and result.counts.updated == 0


def test_a_record_that_types_again_is_released_and_a_full_read_keeps_a_quarantined_row(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    _write(store, ITEMS, [{"ItemID": "it-1", "Code": "A", "IsSold": True}, {"ItemID": "it-2", "Code": "B"}])
    # it-1 turns hostile in a full read: quarantined, and its last good row is not deleted as gone
    result = _write(store, ITEMS, [{"ItemID": "it-1", "Code": "A", "IsSold": "yes"}, {"ItemID": "it-2", "Code": "B"}],
                    at=T2, full=True)  # fmt: skip
    assert result.quarantined == 1 and result.counts.deleted == 0
    assert _one(store, "select item_id, is_sold from xero.items order by 1") == [
        ("it-1", True),
        ("it-2", None),
    ]
    assert _q(store, "it-1") == [("typed:items.is_sold", "is_sold", "ERROR", True)]
    # the same hostile payload again: still one open row
    _write(store, ITEMS, [{"ItemID": "it-1", "Code": "A", "IsSold": "yes"}], at=T2)
    assert len(_q(store, "it-1")) == 1
    # fixed at the source: the row is released, the table has the new value
    fixed = _write(store, ITEMS, [{"ItemID": "it-1", "Code": "A", "IsSold": False}], at=T2)
    assert fixed.quarantined == 0
    assert _q(store, "it-1") == [("typed:items.is_sold", "is_sold", "ERROR", False)]
    assert _one(store, "select is_sold from xero.items where item_id = 'it-1'") == [(False,)]


def test_a_record_that_fails_differently_gets_a_new_row_and_the_old_one_released(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    _write(store, DEALS, [_deal(1, Probability="high")])
    _write(store, DEALS, [_deal(1, Amount=1e17)], at=T2)
    assert _q(store, "1001") == [("typed:deals.probability", "probability", "ERROR", False),
                                 ("typed:deals.amount", "amount", "ERROR", True)]  # fmt: skip


def test_payloads_are_not_changed_by_typing():
    deal = _deal(1, Probability="high", Tag=[{"name": "x"}])
    before = copy.deepcopy(deal)
    store_less = [deal]
    from xz_pipeline.core.mirror import _type_payloads

    typed = _type_payloads(DEALS, store_less)
    assert deal == before and typed.failures and not typed.rows
