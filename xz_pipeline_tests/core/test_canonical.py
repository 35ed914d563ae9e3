"""The canonical contract: records refuse floats and naive times; install_views enforces the view columns."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import duckdb
import pytest

from xz_pipeline.core.canonical import (
    CANONICAL_VIEWS,
    Allocation,
    CanonicalViewError,
    Customer,
    Deal,
    DealStage,
    DocumentStatus,
    Invoice,
    PaymentStatus,
    Person,
    Role,
    choose_primary,
    empty_select,
    install_views,
    payment_status_of,
    project,
    sql_case,
)

VENDOR_WORDS = ("xero", "zoho", "quickbooks", "qbo", "salesforce", "sfdc")


def _columns(con, view: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"describe canonical.{view}").fetchall()]


def _crm_views(**overrides: str | list[str]) -> dict[str, str | list[str]]:
    """Every crm view as an empty SELECT, with some replaced."""
    views: dict[str, str | list[str]] = {v: empty_select(v) for v in CANONICAL_VIEWS if v.startswith("crm_")}
    views.update(overrides)
    return views


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("create schema src")
    c.execute(
        "create table src.products (connection varchar, product_id varchar, code varchar, name varchar, "
        "description varchar, unit_price decimal(18, 4), active boolean, taxable boolean, "
        "modified timestamptz, fetched_at timestamptz)"
    )
    c.execute(
        "insert into src.products values ('c1', 'p1', 'BEAN', 'Beans', null, 38.5, true, true, "
        "'2024-01-01 10:00:00+00', '2024-02-01 00:00:00+00')"
    )
    yield c
    c.close()


PRODUCTS = {
    "connection": "connection",
    "product_id": "product_id",
    "code": "code",
    "name": "name",
    "description": "description",
    "unit_price": "unit_price",
    "active": "active",
    "taxable": "taxable",
    "source_modified": "modified",
    "fetched_at": "fetched_at",
}


def test_contract_columns_are_named_by_role_and_carry_both_times():
    for view, cols in CANONICAL_VIEWS.items():
        assert view.split("_", 1)[0] in ("books", "crm"), view
        names = [n for n, _ in cols]
        assert names[0] == "connection", view
        assert names[-2:] == ["source_modified", "fetched_at"], view
        assert len(set(names)) == len(names), view
        for name in names:
            assert not any(w in name.lower() for w in VENDOR_WORDS), (view, name)
    money = {
        t for cols in CANONICAL_VIEWS.values() for n, t in cols if n in ("total", "amount", "outstanding")
    }
    assert money == {"decimal(18, 2)"}  # amounts are DECIMAL, never float


def test_install_builds_views_that_match_the_contract(con):
    made = install_views(
        con, _crm_views(crm_products=f"select {project('crm_products', PRODUCTS)} from src.products")
    )
    assert made["crm_products"] == "source"
    assert con.execute("select count(*) from canonical.crm_deals").fetchone()[0] == 0
    row = con.execute("select * from canonical.crm_products").fetchone()
    assert row[:3] == ("c1", "p1", "BEAN")
    assert row[5] == Decimal("38.5000")
    assert row[8] == datetime(2024, 1, 1, 10, tzinfo=UTC)
    for view in made:
        assert [n for n, _ in _columns(con, view)] == [n for n, _ in CANONICAL_VIEWS[view]]


def test_install_rejects_a_misnamed_column(con):
    bad = "select connection, product_id, code, name as title, description, unit_price, active, taxable, modified as source_modified, fetched_at from src.products"
    with pytest.raises(CanonicalViewError) as err:
        install_views(con, _crm_views(crm_products=bad))
    message = str(err.value)
    assert "canonical.crm_products" in message
    assert "missing column(s) name" in message and "unexpected column(s) title" in message


def test_install_rejects_a_wrong_type(con):
    bad = (
        "select connection, product_id, code, name, description, cast(unit_price as double) as unit_price, "
        "active, taxable, modified as source_modified, fetched_at from src.products"
    )
    with pytest.raises(
        CanonicalViewError,
        match=r"crm_products.*column unit_price is DOUBLE, the contract says decimal\(18, 4\)",
    ):
        install_views(con, _crm_views(crm_products=bad))


def test_install_rejects_columns_out_of_order(con):
    bad = "select product_id, connection, code, name, description, unit_price, active, taxable, modified as source_modified, fetched_at from src.products"
    with pytest.raises(CanonicalViewError, match="in the order product_id, connection"):
        install_views(con, _crm_views(crm_products=bad))


def test_a_breach_rolls_back_with_the_callers_transaction(con):
    good = f"select {project('crm_products', PRODUCTS)} from src.products"
    install_views(con, _crm_views(crm_products=good))
    con.execute("begin transaction")
    with pytest.raises(CanonicalViewError):
        install_views(con, _crm_views(crm_products="select 1 as connection"))
    con.execute("rollback")
    assert con.execute("select count(*) from canonical.crm_products").fetchone()[0] == 1


def test_missing_source_gives_an_empty_view_with_the_contract_columns(con):
    select = f"select {project('crm_products', PRODUCTS)} from nowhere.products"
    made = install_views(con, _crm_views(crm_products=select))
    assert made["crm_products"] == "empty"
    assert con.execute("select count(*) from canonical.crm_products").fetchone()[0] == 0
    got = _columns(con, "crm_products")
    assert [n for n, _ in got] == [n for n, _ in CANONICAL_VIEWS["crm_products"]]
    assert dict(got)["unit_price"] == "DECIMAL(18,4)"
    assert dict(got)["source_modified"] == "TIMESTAMP WITH TIME ZONE"


def test_missing_sources_inside_a_transaction_leave_it_usable(con):
    """Store.write() wraps everything in one transaction: a missing source must not abort it."""
    con.execute("begin transaction")
    con.execute("create table src.fresh as select * from src.products")  # visible only in this transaction
    hidden = f"select {project('crm_products', PRODUCTS)} from src.products p where exists (select 1 from src.gone)"
    made = install_views(con, _crm_views(crm_products=hidden))
    assert made["crm_products"] == "empty"
    made = install_views(
        con, _crm_views(crm_products=f"select {project('crm_products', PRODUCTS)} from src.fresh")
    )
    assert made["crm_products"] == "source"
    con.execute("commit")
    assert con.execute("select product_id from canonical.crm_products").fetchall() == [("p1",)]


def test_first_select_whose_sources_exist_wins(con):
    first = f"select {project('crm_products', PRODUCTS)} from src.products join src.absent using (product_id)"
    second = f"select {project('crm_products', PRODUCTS)} from src.products"
    made = install_views(con, _crm_views(crm_products=[first, second]))
    assert made["crm_products"] == "fallback"
    assert con.execute("select count(*) from canonical.crm_products").fetchone()[0] == 1


def test_a_broken_select_is_an_error_not_an_empty_view(con):
    broken = f"select {project('crm_products', {**PRODUCTS, 'code': 'no_such_column'})} from src.products"
    with pytest.raises(CanonicalViewError, match="crm_products: the vendor SELECT fails"):
        install_views(con, _crm_views(crm_products=broken))
    misspelt = f"select {project('crm_products', {**PRODUCTS, 'code': 'upperr(code)'})} from src.products"
    with pytest.raises(CanonicalViewError, match="vendor SELECT fails"):
        install_views(con, _crm_views(crm_products=misspelt))


def test_incomplete_or_unknown_views_are_refused(con):
    views = _crm_views()
    del views["crm_deals"]
    with pytest.raises(CanonicalViewError, match="crm views are incomplete: missing crm_deals"):
        install_views(con, views)
    with pytest.raises(CanonicalViewError, match="not canonical views: crm_leads"):
        install_views(con, {**_crm_views(), "crm_leads": "select 1"})


def test_project_names_missing_and_extra_expressions():
    with pytest.raises(CanonicalViewError, match="missing for code.*not in the contract: sku"):
        project("crm_products", {**{k: v for k, v in PRODUCTS.items() if k != "code"}, "sku": "code"})


def test_sql_case_maps_and_escapes():
    con = duckdb.connect()
    expr = sql_case("x", {"it's": "a", "B": None}, default="other")
    got = con.execute(f"select {expr} from (values ('it''s'), ('B'), ('zzz')) t(x)").fetchall()
    assert got == [("a",), (None,), ("other",)]


# ---------------------------------------------------------------------------------------------
# Records


def test_records_refuse_floats_and_naive_times_and_keep_utc():
    with pytest.raises(TypeError, match="Invoice.total: amounts are Decimal"):
        Invoice(role=Role.BOOKS, total=10.5)
    with pytest.raises(ValueError, match="Customer.source_modified: a naive datetime"):
        Customer(role=Role.CRM, source_modified=datetime(2024, 1, 1))
    nz = timezone(timedelta(hours=13))
    c = Customer(
        role="crm", crm_id="1", source_modified=datetime(2024, 1, 2, 1, 0, tzinfo=nz), emails=["a@b.c"]
    )
    assert c.source_modified == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert c.source_modified.tzinfo is UTC
    assert c.role is Role.CRM and c.id == "1" and c.emails == ("a@b.c",)
    a = Allocation(invoice_id="i", amount=Decimal("0.10"), date=date(2024, 1, 1))
    assert a.amount == Decimal("0.10")


def test_enum_fields_are_checked():
    assert Deal(id="d", stage="won", payment_status="partially_paid").stage is DealStage.WON
    with pytest.raises(ValueError, match="Deal.stage: 'Closed Won' is not one of open, won, lost"):
        Deal(id="d", stage="Closed Won")
    with pytest.raises(ValueError, match="Invoice.status"):
        Invoice(role="books", status="AUTHORISED")


def test_choose_primary_prefers_email_then_earliest_then_lowest_id():
    t = datetime(2024, 1, 1, tzinfo=UTC)
    no_email_oldest = Person(id="1", source_created=t - timedelta(days=9))
    later = Person(id="30", email="later@x", source_created=t + timedelta(days=1))
    tie_high = Person(id="100", email="high@x", source_created=t)
    tie_low = Person(id="99", email="low@x", source_created=t)
    undated = Person(id="2", email="undated@x")
    assert choose_primary([later, tie_high, no_email_oldest, undated, tie_low]) is tie_low
    assert choose_primary([no_email_oldest, Person(id="0")]) is no_email_oldest
    assert choose_primary([]) is None


@pytest.mark.parametrize(
    ("status", "due", "paid", "credited", "due_date", "expected"),
    [
        ("open", "0", "100", "0", date(2024, 1, 1), PaymentStatus.PAID),
        ("paid", "0", "100", "0", date(2024, 1, 1), PaymentStatus.PAID),
        ("open", "40", "60", "0", date(2024, 1, 1), PaymentStatus.PARTIALLY_PAID),
        ("open", "40", "0", "60", date(2024, 1, 1), PaymentStatus.PARTIALLY_PAID),
        ("open", "100", "0", "0", date(2024, 3, 9), PaymentStatus.OVERDUE),
        ("open", "100", "0", "0", date(2024, 3, 10), PaymentStatus.UNPAID),
        ("draft", "100", "0", "0", date(2024, 1, 1), None),
        ("void", "0", "0", "0", date(2024, 1, 1), None),
    ],
)
def test_payment_status_of(status, due, paid, credited, due_date, expected):
    invoice = Invoice(
        role="books", status=DocumentStatus(status), amount_due=Decimal(due), amount_paid=Decimal(paid),
        amount_credited=Decimal(credited), due_date=due_date,
    )  # fmt: skip
    assert payment_status_of(invoice, today=date(2024, 3, 10)) == expected
