"""Each policy end to end against the sandboxes, through the Dagster assets; then a full sync finds only
kinds no policy fixes, and a second cycle makes zero write calls."""

from __future__ import annotations

from decimal import Decimal

import dagster as dg

from xz_pipeline import runner
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.writeback.assets import WRITEBACK_ASSETS, WRITEBACK_CHECKS
from xz_pipeline.writeback.plan import FIXED_BY, plan_table
from xz_pipeline.xero.writer import XeroWriterResource
from xz_pipeline.zoho.writer import ZohoWriterResource
from xz_pipeline_tests.writeback.support import (
    CONNECTION,
    ledger_rows,
    open_discrepancies,
    plan_status,
    start,
    writes_received,
)

RESOURCES = {
    "mirror": MirrorResource(),
    "books_writer": XeroWriterResource(),
    "crm_writer": ZohoWriterResource(),
}


def materialize(inst, apply: bool):
    inst.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
    return dg.materialize(
        [*WRITEBACK_ASSETS, *WRITEBACK_CHECKS],
        partition_key=CONNECTION,
        instance=inst,
        resources=RESOURCES,
        run_config={"ops": {"writeback_apply": {"config": {"apply": apply}}}},
        raise_on_error=False,
    )


def _by(records, key):
    out: dict = {}
    for r in records:
        if r.get(key):
            out.setdefault(r[key], []).append(r)
    return out


def test_policies_end_to_end_then_quiet(baseline):
    sb, store = start(baseline)
    with sb:
        tenant, org = sb.tenant_ids[0], sb.org_ids[0]
        missing_crm = open_discrepancies(store, "customer_missing_in_crm")
        missing_books = open_discrepancies(store, "customer_missing_in_books")
        not_invoiced = open_discrepancies(store, "deal_not_invoiced")
        stale = open_discrepancies(store, "payment_status_stale")
        fields = open_discrepancies(store, "customer_field_mismatch")
        assert missing_crm and missing_books and not_invoiced and stale and fields

        with dg.instance_for_test() as inst:
            # without `apply` the stage plans and reports, and writes nothing
            result = materialize(inst, apply=False)
            assert result.success
            assert writes_received(sb) == ([], [])
            assert "pending change(s)" in plan_table(store, CONNECTION)

            result = materialize(inst, apply=True)
            assert result.success
            meta = {
                e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
                for e in result.get_asset_materialization_events()
            }
            assert meta["writeback_apply"]["rejected"].value == 0
            assert meta["writeback_apply"]["applied"].value > 0

        xero_writes, zoho_writes = writes_received(sb)
        ledger = ledger_rows(store)
        # the ledger names every call the emulators answered, each within the vendor's batch limit
        assert len(ledger) == len(xero_writes) + len(zoho_writes)
        assert {r["status"] for r in ledger} == {"ok"}
        # (a composite call carries up to five writes of 100; a tag write up to 500 ids)
        limit = {"books": 50, "crm": 100, "composite": 500, "tag": 500}
        assert all(
            r["records"] <= limit.get(r["entity"], limit.get(r["op"], limit[r["system"]])) for r in ledger
        )
        assert plan_status(store) == {"applied": sum(plan_status(store).values())}
        assert sb.zoho.workflow_runs == []  # trigger [] on every write: no workflow ran

        contacts = _by(sb.xero.dump(tenant, "Contacts"), "ContactNumber")
        accounts = _by(sb.zoho.dump(org, "Accounts"), "Xero_Contact_ID")
        deals = {d["id"]: d for d in sb.zoho.dump(org, "Deals")}
        invoices = _by(sb.xero.dump(tenant, "Invoices"), "Reference")
        zcontacts = sb.zoho.dump(org, "Contacts")

        # xero_customer_to_crm: one account carrying the Xero contact id, with its primary contact
        for d in missing_crm:
            (account,) = accounts[d["books_id"]]
            assert any((c.get("Account_Name") or {}).get("id") == account["id"] for c in zcontacts)
        # crm_account_to_xero: one Xero contact whose ContactNumber points back to the account
        for d in missing_books:
            assert len(contacts[d["crm_id"]]) == 1
        # won_deal_to_invoice: one DRAFT invoice per deal, Reference -> deal, deal records id and number
        for d in not_invoiced:
            (inv,) = invoices[f"DEAL-{d['crm_id']}"]
            assert inv["Status"] == "DRAFT"
            # one line at the deal's amount, or its products with the tax the books add (rounded per line):
            # within reconciliation's tolerance either way
            off = abs(Decimal(str(inv["Total"])) - Decimal(str(deals[d["crm_id"]]["Amount"])))
            assert off == 0 if inv["LineAmountTypes"] == "Inclusive" else off <= Decimal("0.50")
            assert deals[d["crm_id"]]["Xero_Invoice_ID"] == inv["InvoiceID"]
            assert deals[d["crm_id"]]["Xero_Invoice_Number"] == inv["InvoiceNumber"]
        # payment_to_crm: the deal now says what the books say
        for d in stale:
            assert deals[d["crm_id"]]["Payment_Status"].lower().replace(" ", "_") == d["books_value"]
        # bill_tags_to_crm: supplier accounts carry the tag
        with store.read() as con:
            tagged = con.execute(
                "select count(*) from canonical.crm_accounts where list_contains(tags, 'Xero Supplier')"
            ).fetchone()[0]
        assert tagged > 0
        # field_corrections: phones to the books (CRM owns them), addresses to the CRM (books own them)
        zacc = {a["id"]: a for a in sb.zoho.dump(org, "Accounts")}
        for d in fields:
            if d["field"] == "billing_address":
                assert d["books_value"].split(", ")[-1] in (zacc[d["crm_id"]].get("Billing_Country") or "")
        with store.read() as con:
            phones = con.execute(
                "select b.phone, a.phone from recon.discrepancies d join canonical.books_customers b "
                "on b.customer_id = d.books_id join canonical.crm_accounts a on a.account_id = d.crm_id "
                "where d.kind = 'customer_field_mismatch' and d.field = 'phone'"
            ).fetchall()
        assert phones and all(b == a for b, a in phones)

        # a full sync of the mirror, then reconciliation: only kinds no policy fixes remain
        outcomes = runner.sync(inst=runner.instance())
        assert all(o.success for o in outcomes)
        with store.read() as con:
            kinds = {
                k
                for (k,) in con.execute(
                    "select distinct kind from recon.discrepancies where resolved_at is null"
                ).fetchall()
            }
        assert kinds and all(FIXED_BY[k][0] is None for k in kinds), kinds

        # a second cycle: nothing to plan, zero write calls
        before = writes_received(sb)
        with dg.instance_for_test() as inst:
            assert materialize(inst, apply=True).success
        assert writes_received(sb) == before
        assert len(ledger_rows(store)) == len(ledger)
