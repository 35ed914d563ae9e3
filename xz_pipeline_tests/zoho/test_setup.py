"""`ensure_custom_fields` against an org that lacks the integration's fields: creates them once."""

from __future__ import annotations

import logging

from xz_pipeline.zoho.setup import CUSTOM_FIELDS, ensure_custom_fields
from xz_pipeline_tests.zoho.support import ZohoSandbox

ALL = [f"{m}.{s.api_name}" for m, specs in CUSTOM_FIELDS.items() for s in specs]


def _strip_integration_fields(sb: ZohoSandbox) -> None:
    """The emulator seeds these fields; a fresh real org has none of them."""
    for module, specs in CUSTOM_FIELDS.items():
        names = {s.api_name for s in specs}
        mdef = sb.org.modules[module]
        mdef.fields = [f for f in mdef.fields if f.api_name not in names]


def test_creates_what_is_missing_and_a_second_run_creates_nothing(tmp_path):
    with ZohoSandbox() as sb:
        _strip_integration_fields(sb)
        client = sb.client(tmp_path / "tokens")
        created = ensure_custom_fields(client)
        posts = sb.requests_to("/crm/v8/settings/fields", "POST")
        accounts = {f["api_name"]: f for f in client.fields("Accounts")}
        deals = {f["api_name"]: f for f in client.fields("Deals")}
        invoices = {f["api_name"]: f for f in client.fields("Invoices")}
        before = len(sb.emulator.received)
        again = ensure_custom_fields(client)
        second_posts = sb.requests_to("/crm/v8/settings/fields", "POST", before)
        # The new fields work: a Deal takes a Payment_Status, an Account is found by its Xero id.
        acc = client.insert("Accounts", [{"Account_Name": "Set Up Ltd", "Xero_Contact_ID": "c0ffee00-0000"}])[
            0
        ]
        paid = {"Payment_Status": "Partially Paid", "Amount_Paid": 10.5, "Last_Payment_Date": "2026-11-01"}
        deal = client.insert("Deals", [{"Deal_Name": "D", "Stage": "Closed Won", **paid}])[0]
        line = {
            "Product_Name": {"id": client.insert("Products", [{"Product_Name": "P"}])[0].id},
            "Quantity": 1,
        }
        inv = client.insert("Invoices", [{"Subject": "I", "Account_Name": {"id": acc.id}, "Invoiced_Items": [line],
                                          **paid}])[0]  # fmt: skip
    assert sorted(created) == sorted(ALL) and len(created) == 17
    # at most five fields a call: six on Accounts and seven on Deals take two each
    assert [p.query["module"] for p in posts] == ["Accounts", "Accounts", "Deals", "Deals", "Invoices"]
    assert accounts["Xero_Contact_ID"]["external"] == {"type": "org", "show": True}
    assert accounts["Outstanding_Balance"]["data_type"] == "currency"
    assert [v["actual_value"] for v in deals["Payment_Status"]["pick_list_values"]] == [
        "Unpaid",
        "Partially Paid",
        "Paid",
        "Overdue",
    ]
    assert deals["Last_Payment_Date"]["data_type"] == "date"
    assert invoices["Xero_Invoice_ID"]["unique"]
    assert (
        invoices["Payment_Status"]["data_type"] == "picklist"
        and invoices["Amount_Paid"]["data_type"] == "currency"
    )
    assert invoices["Last_Payment_Date"]["data_type"] == "date"
    assert again == [] and second_posts == []
    assert acc.ok and deal.ok and inv.ok, inv


def test_an_org_that_already_has_them_gets_nothing_and_a_missing_module_is_skipped(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    with ZohoSandbox() as sb:
        del sb.org.modules["Invoices"]  # an edition without inventory modules
        for module in ("Accounts", "Deals"):
            mdef = sb.org.modules[module]
            mdef.fields = [f for f in mdef.fields if f.api_name not in ("Tax_Number", "Amount_Paid")]
        client = sb.client(tmp_path / "tokens")
        created = ensure_custom_fields(client)
        posts = sb.requests_to("/crm/v8/settings/fields", "POST")
    assert sorted(created) == ["Accounts.Tax_Number", "Deals.Amount_Paid"]
    assert len(posts) == 2
    assert "no Invoices module" in caplog.text
