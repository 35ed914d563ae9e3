"""The pandera models over a mirror typed from the demo world: clean data passes every rule, and each
kind of corruption fails the right rule, naming the record, the field and the value."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from xz_pipeline.core import schemas
from xz_pipeline.core.checks import ERROR, WARN, check_rules, evaluate, read_frame
from xz_pipeline.zoho.setup import PAYMENT_STATUSES
from xz_pipeline_tests.core.checks_support import (
    CONNECTION,
    VENDOR_RULES,
    check_asset,
    copy_mirror,
    demo_payloads,
    execute,
    scalar,
    write_mirror,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo-mirror") / "mirror.duckdb"
    write_mirror(path, demo_payloads())
    return path


@pytest.fixture
def store(built, tmp_path):
    return copy_mirror(built, tmp_path)


def _one(store, sql: str) -> str:
    return scalar(store, sql)


def _failing(outcome) -> dict[str, str]:
    return {rid: reason for (rid, _), reason in outcome.reasons.items()}


# ---------------------------------------------------------------------------------------------
# Clean data


def test_demo_mirror_passes_every_rule(store):
    counted = 0
    for vendor, assets in VENDOR_RULES.items():
        for asset, (_spec, rules) in assets.items():
            for outcome in check_rules(store, rules, CONNECTION):
                assert outcome.passed, (vendor, asset, outcome.rule.name, outcome.error,
                                        list(outcome.reasons.items())[:3])  # fmt: skip
                assert outcome.rows_checked > 0, (asset, outcome.rule.name)
                if outcome.rule.sql is None:  # a table rule reads the whole partition
                    total = scalar(store, f"select count(*) from {outcome.rule.table} where connection = ?",
                                   [CONNECTION])  # fmt: skip
                    assert outcome.rows_checked == total, outcome.rule.name
                counted += 1
    assert counted == sum(len(rules) for assets in VENDOR_RULES.values() for _, rules in assets.values())
    # Another connection's rows are not this partition's business.
    (other,) = check_rules(store, VENDOR_RULES["xero"]["xero_contacts"][1][:1], "someone-else")
    assert other.passed and other.rows_checked == 0


def test_amounts_are_read_as_exact_decimals(store):
    with store.read() as con:
        frame = read_frame(con, "select * from xero.invoices where connection = ?", [CONNECTION])
        exact = con.execute("select sum(total)::varchar from xero.invoices").fetchone()[0]
    assert all(isinstance(v, Decimal) for v in frame["total"])
    assert {v.as_tuple().exponent for v in frame["total"]} == {-2}
    assert sum(frame["total"], Decimal(0)) == Decimal(exact)
    assert str(frame["date"].dtype) == "datetime64[us]"
    assert str(frame["updated_utc"].dtype) == "datetime64[us, UTC]"


# ---------------------------------------------------------------------------------------------
# ERROR rules


def test_bad_currency_and_negative_total_fail_the_invoice_schema(store):
    bad = _one(store, "select min(invoice_id) from xero.invoices")
    execute(store, "update xero.invoices set currency_code = 'XYZ', total = -5 where invoice_id = ?", [bad])
    out = check_asset(store, "xero", "xero_invoices")
    schema = out["invoices_schema"]
    assert not schema.passed and schema.rule.severity == ERROR and schema.rule.blocking
    assert schema.failing_keys == [bad]
    reason = _failing(schema)[bad]
    assert "currency_code='XYZ' is not an ISO 4217 currency code" in reason
    assert "total=-5.00 fails greater_than_or_equal_to(0)" in reason
    meta = schema.metadata()
    assert meta["failing_keys"].value == [bad]
    assert meta["failing_rows"] == 1 and meta["failure_cases"] == 2
    assert "XYZ" in meta["failure_cases_preview"].value and "-5.00" in meta["failing_rows_preview"].value
    # The other rules do not fail for it.
    assert all(o.passed for name, o in out.items() if name != "invoices_schema")


def test_statuses_and_stages_must_be_in_the_vendor_enums(store):
    invoice = _one(store, "select min(invoice_id) from xero.invoices")
    contact = _one(store, "select min(contact_id) from xero.contacts")
    deal = _one(store, "select min(deal_id) from zoho.deals")
    execute(store, "update xero.invoices set status = 'OPEN' where invoice_id = ?", [invoice])
    execute(store, "update xero.contacts set contact_status = 'Active' where contact_id = ?", [contact])
    execute(store, "update zoho.deals set stage = 'Won', probability = 140 where deal_id = ?", [deal])
    inv = _failing(check_asset(store, "xero", "xero_invoices")["invoices_schema"])
    assert inv == {invoice: "status='OPEN' is not one of DRAFT, SUBMITTED, AUTHORISED, PAID, VOIDED, DELETED"}
    con = _failing(check_asset(store, "xero", "xero_contacts")["contacts_schema"])
    assert con == {contact: "contact_status='Active' is not one of ACTIVE, ARCHIVED, GDPRREQUEST"}
    results = check_asset(store, "zoho", "zoho_deals")
    deals = _failing(results["deals_schema"])
    assert list(deals) == [deal]
    assert "probability=140 fails less_than_or_equal_to(100)" in deals[deal]
    # A stage outside the standard pipeline only warns: orgs define their own pipelines.
    stages = _failing(results["deal_stages_standard"])
    assert stages == {deal: "stage='Won' is not a stage of the standard pipeline"}


def test_lines_must_sum_to_the_sub_total_within_a_cent_per_line(store):
    two_lines = """select invoice_id from xero.invoice_lines group by invoice_id having count(*) = 2
                   order by invoice_id limit 2"""
    with store.read() as con:
        (within,), (beyond,) = con.execute(two_lines).fetchall()
    bump = """update xero.invoice_lines set line_amount = line_amount + ? where line_item_id =
              (select min(line_item_id) from xero.invoice_lines where invoice_id = ?)"""
    execute(store, bump, [Decimal("0.02"), within])  # 2 lines: 0.02 is within tolerance
    execute(store, bump, [Decimal("0.03"), beyond])
    outcome = check_asset(store, "xero", "xero_invoices")[schemas.LINES_SUM_TO_SUB_TOTAL]
    assert outcome.rule.blocking
    reasons = _failing(outcome)
    assert list(reasons) == [beyond]
    sub = _one(store, f"select sub_total::varchar from xero.invoices where invoice_id = '{beyond}'")
    expected = Decimal(sub) + Decimal("0.03")
    assert reasons[beyond] == (
        "lines do not sum to sub_total (tolerance 0.01 per line): "
        f"sub_total={sub}, lines_sub_total={expected}, line_count=2"
    )


def test_tax_inclusive_lines_are_summed_net_of_tax(store):
    taxed = _one(
        store,
        """select invoice_id from xero.invoice_lines group by invoice_id
                           having sum(tax_amount) > 1 order by invoice_id limit 1""",
    )
    # The same invoice expressed tax-inclusive: line amounts carry their tax, the sub-total does not.
    execute(store, "update xero.invoice_lines set line_amount = line_amount + tax_amount where invoice_id = ?",
            [taxed])  # fmt: skip
    assert not check_asset(store, "xero", "xero_invoices")[schemas.LINES_SUM_TO_SUB_TOTAL].passed
    execute(store, "update xero.invoices set line_amount_types = 'Inclusive' where invoice_id = ?", [taxed])
    assert check_asset(store, "xero", "xero_invoices")[schemas.LINES_SUM_TO_SUB_TOTAL].passed


def test_zoho_items_must_sum_to_the_sub_total_and_unfetched_items_are_not_checked(store):
    wrong, unfetched = (
        r[0] for r in _rows(store, "select distinct invoice_id from zoho.invoice_items order by 1 limit 2")
    )
    execute(store, "update zoho.invoice_items set total = total + 5 where invoice_id = ? and line_no = 1",
            [wrong])  # fmt: skip
    execute(store, "delete from zoho.invoice_items where invoice_id = ?", [unfetched])
    outcome = check_asset(store, "zoho", "zoho_invoices")[schemas.LINES_SUM_TO_SUB_TOTAL]
    assert outcome.failing_keys == [wrong]
    invoices = scalar(store, "select count(*) from zoho.invoices")
    assert outcome.rows_checked == invoices - 1


def _rows(store, sql: str) -> list[tuple]:
    with store.read() as con:
        return con.execute(sql).fetchall()


def test_duplicate_and_missing_ids_and_float_amounts_fail_the_model(store):
    spec, rules = VENDOR_RULES["xero"]["xero_invoices"]
    rule = rules[0]
    with store.read() as con:
        frame = read_frame(con, rule.query, [CONNECTION]).head(5).reset_index(drop=True)
    dup = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    dup.loc[1, "invoice_id"] = None
    out = evaluate(rule, dup)
    reasons = {rid: r for (rid, _), r in out.reasons.items()}
    first = frame.at[0, "invoice_id"]
    assert reasons[first] == f"invoice_id='{first}' is not unique in this connection"
    assert reasons[None] == "invoice_id is null"
    # Amounts must stay DECIMAL: floats break the table's contract (no record is to blame).
    out = evaluate(rule, frame.assign(total=frame["total"].astype(float)))
    assert not out.passed
    assert out.error == "xero.invoices does not fit XeroInvoice: total is float64, not DECIMAL"
    assert out.reasons == {}


def test_a_missing_column_fails_the_whole_table_without_blaming_records(store):
    rule = VENDOR_RULES["xero"]["xero_contacts"][1][0]
    with store.read() as con:
        frame = read_frame(con, rule.query, [CONNECTION]).drop(columns=["contact_status"])
    out = evaluate(rule, frame)
    assert not out.passed
    assert (
        out.error == "xero.contacts does not fit XeroContact: XeroContact column_in_dataframe: contact_status"
    )
    assert out.reasons == {}


# ---------------------------------------------------------------------------------------------
# WARN rules


def test_implausible_emails_warn(store):
    xero_contact = _one(store, "select min(contact_id) from xero.contacts")
    zoho_contact = _one(store, "select min(contact_id) from zoho.contacts")
    execute(store, "update xero.contacts set email = 'accounts at example dot com' where contact_id = ?",
            [xero_contact])  # fmt: skip
    execute(store, "update zoho.contacts set email = 'Ana.Lee@Example.COM', secondary_email = 'ana@localhost' "
                   "where contact_id = ?", [zoho_contact])  # fmt: skip
    xero = check_asset(store, "xero", "xero_contacts")
    assert xero["contacts_schema"].passed
    emails = xero["emails_plausible"]
    assert emails.rule.severity == WARN and not emails.rule.blocking
    assert _failing(emails) == {
        xero_contact: "email='accounts at example dot com' does not look like an email address"
    }
    zoho = _failing(check_asset(store, "zoho", "zoho_contacts")["emails_plausible"])
    # Upper case is a plausible address; a domain without a dot is not.
    assert zoho == {zoho_contact: "secondary_email='ana@localhost' does not look like an email address"}


def test_due_before_issue_warns(store):
    invoice = _one(store, "select min(invoice_id) from xero.invoices where date > date '2020-01-01'")
    zoho_invoice = _one(store, "select min(invoice_id) from zoho.invoices")
    execute(store, "update xero.invoices set due_date = date '2019-12-31' where invoice_id = ?", [invoice])
    execute(
        store, "update zoho.invoices set due_date = invoice_date - 1 where invoice_id = ?", [zoho_invoice]
    )
    issued = _one(store, f"select date::varchar from xero.invoices where invoice_id = '{invoice}'")
    outcome = check_asset(store, "xero", "xero_invoices")["due_not_before_issue"]
    assert outcome.rule.severity == WARN
    assert _failing(outcome) == {
        invoice: f"due date is before the issue date: issued={issued}, due=2019-12-31"
    }
    assert check_asset(store, "zoho", "zoho_invoices")["due_not_before_issue"].failing_keys == [zoho_invoice]


def test_lines_balance_is_exact_decimal_arithmetic():
    sub = pd.Series([Decimal("10.00"), Decimal("10.00"), Decimal("0.00"), None], dtype=object)
    lines = pd.Series([Decimal("10.03"), Decimal("10.04"), Decimal("0.01"), Decimal("1.00")], dtype=object)
    count = pd.Series([3, 3, 0, 1], dtype="Int64")
    assert schemas.lines_balance(sub, lines, count).tolist() == [True, False, True, False]


def test_payment_statuses_match_the_picklist_xz_setup_creates():
    assert schemas.ZOHO_PAYMENT_STATUSES == PAYMENT_STATUSES


def test_every_iso_code_is_three_capitals_and_the_demo_currencies_are_known():
    assert all(len(c) == 3 and c.isalpha() and c.isupper() for c in schemas.CURRENCY_CODES)
    assert {"NZD", "AUD", "USD", "GBP", "EUR", "HRK"} <= schemas.CURRENCY_CODES
    assert not {"XXX", "XTS", "XAU", "ABC"} & schemas.CURRENCY_CODES


def test_a_table_missing_a_modelled_column_cannot_be_checked(store):
    execute(store, "create table xero.contacts_old as select * exclude (contact_status) from xero.contacts")
    rule = replace(VENDOR_RULES["xero"]["xero_contacts"][1][0], table="xero.contacts_old")
    (outcome,) = check_rules(store, [rule], CONNECTION)
    assert not outcome.passed and outcome.reasons == {}
    assert outcome.error.startswith("cannot read xero.contacts_old: Binder Error")
    assert "contact_status" in outcome.error


def test_decimal_columns_hold_exact_values_that_fit_their_type():
    class Amounts(schemas.MirrorRow):
        amount: Series[schemas.Money] = schemas._optional()

    frame = pd.DataFrame({
        "connection": "c", "payload_hash": "h",
        "amount": [Decimal("1.50"), Decimal("-0.01"), None, Decimal("1.234"), Decimal("1" + "0" * 16), 1.5],
    })  # fmt: skip
    with pytest.raises(pa.errors.SchemaErrors) as raised:
        Amounts.validate(frame, lazy=True)
    cases = raised.value.failure_cases
    assert sorted(cases["index"]) == [3, 4, 5]
    assert set(cases["check"]) == {"dtype('DECIMAL(18, 2)')"}
