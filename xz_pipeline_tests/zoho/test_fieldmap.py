"""The per-connection mapping of our fields to an org's own: parsing, renaming, picklist words."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from xz_pipeline import settings
from xz_pipeline.reconcile.rules import Inputs, customer_missing_in_books
from xz_pipeline.zoho import fieldmap, tables

TOML = """
[connections.acme]
ZOHO_CLIENT_ID = "x"
[connections.acme.zoho]
customer_types = ["Customer", "Key Account"]
[connections.acme.zoho.fields]
"Accounts.Xero_Contact_ID" = "Xero_ID"
Deals.Payment_Status = "Invoice_Status"
[connections.acme.zoho.values.Payment_Status]
Paid = "Fully Paid"
"""


def test_connections_file_mapping(xz_home):
    (xz_home / "connections.toml").write_text(TOML)
    fm = fieldmap.load("acme")
    assert fm.api("Accounts", "Xero_Contact_ID") == "Xero_ID"
    assert fm.api("Deals", "Payment_Status") == "Invoice_Status"
    assert fm.api("Invoices", "Payment_Status") == "Payment_Status"  # not mapped there
    assert fm.customer_types == ("Customer", "Key Account")
    out = fm.outgoing("Deals", {"id": "1", "Payment_Status": "Paid", "Amount_Paid": 3})
    assert out == {"id": "1", "Invoice_Status": "Fully Paid", "Amount_Paid": 3}
    assert fm.value_in("Deals", "Payment_Status", "Fully Paid") == "Paid"
    assert fm.value_in("Deals", "Payment_Status", "Unpaid") == "Unpaid"
    assert fieldmap.load("other") == fieldmap.DEFAULT


def test_environment_mapping_and_typing(monkeypatch):
    monkeypatch.setenv("XZ_ZOHO_FIELDS", json.dumps({"Xero_Contact_ID": "Xero_ID"}))
    fm = fieldmap.load("default")
    assert fm.api("Accounts", "Xero_Contact_ID") == "Xero_ID"
    assert "Xero_ID" in tables.fields("Accounts", fm) and "Xero_Contact_ID" not in tables.fields(
        "Accounts", fm
    )
    spec = tables.specs(fm)["Accounts"]
    col = next(c for c in spec.cols if c.name == "xero_contact_id")
    assert col.get({"id": "1", "Xero_ID": "abc", "Xero_Contact_ID": "wrong"}) == "abc"
    values = {
        "fields": {"Deals.Payment_Status": "Invoice_Status"},
        "values": {"Deals.Payment_Status": {"Paid": "Fully Paid"}},
    }
    monkeypatch.setenv("XZ_ZOHO_FIELDS", json.dumps(values))
    deals = tables.specs(fieldmap.load("default"))["Deals"]
    status = next(c for c in deals.cols if c.name == "payment_status")
    assert status.get({"id": "1", "Invoice_Status": "Fully Paid"}) == "Paid"


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"fields": {"Deals.Nope": "X"}}, "Deals.Nope is not one of ours"),
        ({"colour": "red"}, "unknown keys colour"),
        ({"customer_types": "Customer"}, "customer_types is a list"),
    ],
)
def test_bad_mapping_names_the_key(doc, words):
    with pytest.raises(settings.SettingsError, match=words):
        fieldmap.parse(doc, "XZ_ZOHO_FIELDS")


def _frame(rows: list[dict], cols: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=cols)


def test_a_customer_by_type_or_by_won_deal_is_missing_in_books():
    accounts = _frame(
        [
            {"connection": "c", "account_id": "a1", "name": "Typed", "marked_customer": True},
            {"connection": "c", "account_id": "a2", "name": "Won", "marked_customer": False},
            {"connection": "c", "account_id": "a3", "name": "Prospect", "marked_customer": False},
            {"connection": "c", "account_id": "a4", "name": "Linked", "marked_customer": True},
        ],
        ["connection", "account_id", "name", "marked_customer"],
    )
    deals = _frame(
        [{"connection": "c", "deal_id": "d1", "account_id": "a2", "stage": "won"},
         {"connection": "c", "deal_id": "d2", "account_id": "a3", "stage": "open"}],
        ["connection", "deal_id", "account_id", "stage"],
    )  # fmt: skip
    links = _frame(
        [{"connection": "c", "books_id": "b4", "crm_id": "a4", "status": "linked", "confidence": 1.0}],
        ["connection", "books_id", "crm_id", "status", "confidence"],
    )
    empty = pd.DataFrame()
    x = Inputs(
        empty,
        empty,
        accounts,
        empty,
        deals,
        empty,
        links,
        _frame([], ["connection", "books_id", "crm_id"]),
        empty,
    )
    found = customer_missing_in_books(x)
    assert dict(zip(found["crm_id"], found["detail"], strict=True)) == {
        "a1": "a customer by its type, no linked books contact",
        "a2": "1 won deal(s), no linked books contact",
    }
