"""Guards: the mass-change guard holds a plan until that exact plan is approved; a failing ERROR
invariant blocks apply; a posted (AUTHORISED/PAID) invoice is never edited, its status read fresh."""

from __future__ import annotations

import json
from decimal import Decimal

import dagster as dg

from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.writeback.apply import apply
from xz_pipeline.writeback.assets import WRITEBACK_ASSETS, WRITEBACK_CHECKS
from xz_pipeline.writeback.plan import build_plan
from xz_pipeline.writeback.policies import load_policies
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline.xero.writer import XeroWriterResource
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline.zoho.writer import ZohoWriterResource
from xz_pipeline_tests.writeback.support import (
    CONNECTION,
    DEFAULT,
    ledger_rows,
    reconcile_again,
    start,
    writers,
    writes_received,
)

RESOURCES = {
    "mirror": MirrorResource(),
    "books_writer": XeroWriterResource(),
    "crm_writer": ZohoWriterResource(),
}


def _run(inst):
    inst.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
    return dg.materialize(
        [*WRITEBACK_ASSETS, *WRITEBACK_CHECKS], partition_key=CONNECTION, instance=inst, resources=RESOURCES,
        run_config={"ops": {"writeback_apply": {"config": {"apply": True}}}}, raise_on_error=False,
    )  # fmt: skip


def test_mass_change_guard_blocks_until_this_plan_is_approved(baseline, monkeypatch):
    monkeypatch.setenv(
        "XZ_WRITEBACK_POLICIES", json.dumps({"max_change_share": 0.05, "min_guarded_records": 5})
    )
    sb, store = start(baseline)
    with sb, dg.instance_for_test() as inst:
        result = _run(inst)
        (check,) = result.get_asset_check_evaluations()
        assert check.check_name == "writeback_guard" and not check.passed
        reasons = check.metadata["reasons"].value
        assert any("crm_accounts" in r and "limit 5%" in r for r in reasons)
        assert "writeback_apply" not in {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        }
        assert writes_received(sb) == ([], [])

        # outside Dagster (`xz apply`) the same guard holds, naming the approval it needs
        books, crm = writers()
        report = apply(store, CONNECTION, books, crm, load_policies(CONNECTION))
        assert report.blocked.startswith("mass-change guard") and report.fingerprint in report.blocked
        assert report.write_calls == {"books": 0, "crm": 0} and writes_received(sb) == ([], [])
        monkeypatch.setenv("XZ_WRITEBACK_APPROVE", "0" * 32)  # an approval of some other plan
        assert apply(store, CONNECTION, books, crm, load_policies(CONNECTION)).blocked

        monkeypatch.setenv("XZ_WRITEBACK_APPROVE", report.fingerprint)
        result = _run(inst)
        assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
        xero, zoho = writes_received(sb)
        assert xero and zoho and len(ledger_rows(store)) == len(xero) + len(zoho)


def test_failing_error_invariant_blocks_apply(baseline):
    sb, store = start(baseline)
    with sb:
        build_plan(store, CONNECTION, DEFAULT)
        with store.write() as con:
            con.execute(
                "update xero.invoices set total = total + 1 where invoice_id = (select min(invoice_id) from xero.invoices)"
            )
        books, crm = writers()
        report = apply(store, CONNECTION, books, crm, DEFAULT)
        assert (
            report.blocked.startswith("ERROR invariants fail")
            and "invoice_totals_add_up (1 records)" in report.blocked
        )
        assert writes_received(sb) == ([], [])


def test_posted_invoice_is_never_edited(baseline):
    sb, store = start(baseline)
    with sb:
        build_plan(store, CONNECTION, DEFAULT)
        books, crm = writers()
        apply(store, CONNECTION, books, crm, DEFAULT)
        with store.read() as con:
            made = con.execute(
                "select ref, split_part(result_id, '|', 1) from writeback.plan where entity = 'invoice' "
                "and op = 'create' and field = 'reference' order by ref limit 2"
            ).fetchall()
        (ref_a, draft), (ref_b, posted) = made
        deal_a, deal_b = ref_a.removeprefix("DEAL-"), ref_b.removeprefix("DEAL-")
        # the sales rep changes both deals; meanwhile the accountant approves invoice B
        with ZohoResource().client(CONNECTION) as zoho:
            amounts = {
                d["id"]: Decimal(str(d["Amount"])) + 100
                for d in zoho.get_many("Deals", [deal_a, deal_b], ["Amount"])
            }
            assert all(
                r.ok for r in zoho.update("Deals", [{"id": k, "Amount": v} for k, v in amounts.items()])
            )
        books, crm = writers()
        crm.refresh(store, "deal", [deal_a, deal_b], None)  # the mirror still believes B is a draft
        assert reconcile_again(store).get("amount_mismatch")
        with XeroResource().client(CONNECTION) as xero:
            assert xero.update_invoices([{"InvoiceID": posted, "Status": "AUTHORISED"}])[0].ok
        build_plan(store, CONNECTION, DEFAULT)
        with store.read() as con:
            updates = dict(con.execute(
                "select record, change_id from writeback.plan where entity = 'invoice' and op = 'update'"
            ).fetchall())  # fmt: skip
        assert {draft, posted} <= set(updates)
        tenant = sb.tenant_ids[0]
        before = next(i for i in sb.xero.dump(tenant, "Invoices") if i["InvoiceID"] == posted)

        report = apply(store, CONNECTION, books, crm, DEFAULT)
        assert report.refused >= 1
        after = {i["InvoiceID"]: i for i in sb.xero.dump(tenant, "Invoices")}
        assert after[posted] == before  # untouched
        assert Decimal(str(after[draft]["Total"])) == amounts[deal_a]  # the draft follows its deal
        sent = {c for r in ledger_rows(store) for c in r["change_ids"]}
        assert updates[posted] not in sent and updates[draft] in sent
        with store.read() as con:
            status, error = con.execute(
                "select status, error from writeback.plan where change_id = ?", [updates[posted]]
            ).fetchone()
        assert status == "refused" and "open" in error and "never edited" in error


def test_guard_reuses_invariants_that_passed_in_the_same_run_only(baseline, monkeypatch):
    from xz_pipeline.reconcile.assets import RECONCILE_ASSETS, RECONCILE_CHECKS
    from xz_pipeline.writeback import guards

    recomputed = []
    real = guards.invariant_failures
    monkeypatch.setattr(guards, "invariant_failures", lambda store: recomputed.append(1) or real(store))
    sb, _ = start(baseline)
    with sb, dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        whole = dg.materialize(
            [*RECONCILE_ASSETS, *RECONCILE_CHECKS, *WRITEBACK_ASSETS, *WRITEBACK_CHECKS],
            partition_key=CONNECTION, instance=inst, resources=RESOURCES, raise_on_error=False,
        )  # fmt: skip
        evaluations = {c.check_name: c.passed for c in whole.get_asset_check_evaluations()}
        assert evaluations["writeback_guard"] and evaluations["invoice_totals_add_up"]
        assert recomputed == []  # the invariants passed a moment ago in this run
        # a run without the invariant checks (the plan alone) reads the mirror for them again
        assert _run(inst).get_asset_check_evaluations()[0].check_name == "writeback_guard"
        assert recomputed == [1]
