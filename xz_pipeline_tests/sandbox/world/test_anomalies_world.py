"""The billing anomalies the generator plants are what the manifest says they are, on the records themselves:
duplicates repeat an earlier invoice of the same customer, and each hard negative only looks like one."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest

from xz_pipeline.sandbox.world import generate, manifest_document, write_manifest
from xz_pipeline.sandbox.world.model import World


@pytest.fixture(scope="module")
def world() -> World:
    return generate(7, "tiny")


def _lines(inv) -> Counter:
    return Counter((ln.item_code, ln.quantity) for ln in inv.lines)


def _pairs(world: World, kind: str):
    by_id = {inv.id: inv for inv in world.books.invoices}
    out = [(by_id[a.books_id], by_id[a.related_id], a) for a in world.anomalies if a.kind == kind]
    assert len(out) >= 3, kind
    return out


def test_duplicates_repeat_an_earlier_invoice_of_the_same_customer(world):
    for later, earlier, a in _pairs(world, "duplicate_invoice"):
        assert not a.negative and later.contact_id == earlier.contact_id and later.type == "ACCREC"
        assert later.status == earlier.status == "AUTHORISED"
        assert 0 <= (later.date - earlier.date).days <= 30
        assert _lines(later) == _lines(earlier)
        assert abs(later.total - earlier.total) <= earlier.total * Decimal("0.01")
        repeated = later.number != earlier.number or later.reference != earlier.reference
        assert repeated and (later.number in a.note or later.reference in a.note)


def test_recurring_invoices_bill_the_same_lines_about_a_month_apart(world):
    for later, earlier, a in _pairs(world, "recurring"):
        assert a.negative and later.contact_id == earlier.contact_id
        assert 26 <= (later.date - earlier.date).days <= 35
        assert _lines(later) == _lines(earlier) and later.total == earlier.total


def test_a_reissue_follows_a_voided_invoice(world):
    for later, earlier, a in _pairs(world, "void_reissue"):
        assert a.negative and earlier.status == "VOIDED" and later.status == "AUTHORISED"
        assert later.contact_id == earlier.contact_id and _lines(later) == _lines(earlier)


def test_consecutive_numbers_of_equal_totals_bill_other_jobs(world):
    for later, earlier, a in _pairs(world, "other_job"):
        assert a.negative and later.contact_id == earlier.contact_id and later.total == earlier.total
        assert int(later.number.split("-")[1]) == int(earlier.number.split("-")[1]) + 1
        assert not set(_lines(later)) & set(_lines(earlier))


def test_equal_totals_to_other_customers(world):
    for later, earlier, a in _pairs(world, "other_customer"):
        assert a.negative and later.contact_id != earlier.contact_id and later.total == earlier.total


def test_anomalies_are_in_their_own_manifest_section_and_deterministic(world, tmp_path):
    doc = manifest_document(world)
    planted = {a["books_id"] for a in doc["anomalies"]} | {a["related_id"] for a in doc["anomalies"]}
    assert not planted & {m["books_id"] for m in doc["manifest"]}  # no discrepancy rides on them
    assert {m["kind"] for m in doc["manifest"]}.isdisjoint({a["kind"] for a in doc["anomalies"]})
    assert doc["counts"]["anomalies.duplicate_invoice"] == sum(
        a["kind"] == "duplicate_invoice" for a in doc["anomalies"]
    )
    again = json.loads(write_manifest(generate(7, "tiny"), tmp_path / "m.json").read_text())["anomalies"]
    assert again == doc["anomalies"]
