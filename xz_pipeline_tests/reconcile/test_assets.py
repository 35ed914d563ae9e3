"""The reconcile assets end to end: the demo sandbox mirrored by `runner.sync`, then reconciled in
Dagster, scored per kind against the generator's manifest; rows persist across runs; the analytics
views answer; a failing invariant blocks what is downstream of `discrepancies`."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.store import Store
from xz_pipeline.reconcile.assets import RECONCILE_ASSETS, RECONCILE_CHECKS
from xz_pipeline_tests.reconcile.world_frames import score
from xz_pipeline_tests.sandbox_env import mirrored_world

SEED = 7


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """A demo world mirrored once for the module: (mirror path, world, connection name)."""
    yield from mirrored_world(tmp_path_factory, "recon-home", seed=SEED)


def _reconcile(mirror_path, extra=(), raise_on_error=True):
    with dg.instance_for_test() as inst:
        return dg.materialize(
            [*RECONCILE_ASSETS, *RECONCILE_CHECKS, *extra],
            instance=inst,
            resources={"mirror": MirrorResource(path=str(mirror_path.parent))},
            raise_on_error=raise_on_error,
        )


def _open(store: Store):
    with store.read() as con:
        return con.execute(
            "select kind, books_id, crm_id, field, first_seen, last_seen, resolved_at from recon.discrepancies"
        ).df()


def test_demo_precision_and_recall_per_kind(mirrored):
    path, world, name = mirrored
    result = _reconcile(path)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks  # a clean mirror passes every invariant
    rows = _open(Store(path))
    scores = score(rows, world.manifest)
    for kind, s in scores.items():
        assert s["precision"] >= 0.98 and s["recall"] >= 0.98, (kind, s)
    assert {m.kind for m in world.manifest} <= set(scores)
    meta = {
        m.asset_key.to_user_string(): m.metadata
        for m in (
            e.step_materialization_data.materialization for e in result.get_asset_materialization_events()
        )
    }
    assert meta["discrepancies"]["by_kind"].value["amount_mismatch"] == sum(
        m.kind == "amount_mismatch" for m in world.manifest
    )
    assert "| kind" in meta["discrepancies"]["preview"].value
    with Store(path).read() as con:
        opened = con.execute("select count(*) from analytics.open_discrepancies").fetchone()[0]
        c360 = con.execute(
            "select count(*), count(books_balance) from analytics.customer_360 where connection = ?", [name]
        ).fetchone()
        d2c = con.execute("select count(invoice_id) from analytics.deal_to_cash").fetchone()[0]
        aging = con.execute("select sum(total_due) from analytics.ar_aging").fetchone()[0]
        owed = con.execute(
            "select sum(amount_due) from canonical.books_invoices where type = 'sale' and status = 'open' "
            "and amount_due > 0"
        ).fetchone()[0]
        linked = con.execute("select count(*) from recon.invoice_links").fetchone()[0]
    assert opened == len(rows)
    assert c360[0] == len(world.crm.accounts) and c360[1] > 0
    assert d2c == linked > 0
    assert aging == owed


def test_rows_persist_resolve_and_reopen_across_runs(mirrored):
    path, world, _ = mirrored
    store = Store(path)
    _reconcile(path)
    first = _open(store).set_index(["kind", "books_id", "crm_id", "field"])
    victim = next(m for m in world.manifest if m.kind == "amount_mismatch")
    # the deal's amount is corrected: the mismatch resolves, everything else is seen again
    with store.write() as con:
        old = con.execute("select amount from zoho.deals where deal_id = ?", [victim.crm_id]).fetchone()[0]
        con.execute("update zoho.deals set amount = ? where deal_id = ?", [victim.books_value, victim.crm_id])
    _reconcile(path)
    second = _open(store).set_index(["kind", "books_id", "crm_id", "field"])
    key = ("amount_mismatch", victim.books_id, victim.crm_id, "amount")
    assert pd.notna(second.loc[key, "resolved_at"])
    others = second.drop(index=key)
    assert others["resolved_at"].isna().all()
    assert (others["first_seen"] == first.drop(index=key)["first_seen"]).all()
    assert (others["last_seen"] > first.drop(index=key)["last_seen"]).all()
    # the disagreement comes back: the same row re-opens, first_seen kept
    with store.write() as con:
        con.execute("update zoho.deals set amount = ? where deal_id = ?", [old, victim.crm_id])
    _reconcile(path)
    third = _open(store).set_index(["kind", "books_id", "crm_id", "field"])
    assert len(third) == len(second)
    assert pd.isna(third.loc[key, "resolved_at"])
    assert third.loc[key, "first_seen"] == first.loc[key, "first_seen"]


def test_failing_invariant_blocks_downstream(mirrored):
    path, _, _ = mirrored
    store = Store(path)
    with store.write() as con:
        inv = con.execute(
            "select invoice_id, total from xero.invoices where status = 'AUTHORISED' and type = 'ACCREC' limit 1"
        ).fetchone()
        con.execute("update xero.invoices set total = total + 5 where invoice_id = ?", [inv[0]])
    ran = []

    @dg.asset(deps=["discrepancies"])
    def writeback_plan():
        ran.append(True)

    try:
        result = _reconcile(path, extra=[writeback_plan], raise_on_error=False)
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        failed = evaluations["invoice_totals_add_up"]
        assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
        assert inv[0] in failed.metadata["failing_keys"].value
        assert "failing_rows_preview" in failed.metadata
        assert evaluations["invoice_lines_sum_to_subtotal"].passed
        assert not ran  # write-back never ran on the failing mirror
    finally:
        with store.write() as con:
            con.execute("update xero.invoices set total = ? where invoice_id = ?", [inv[1], inv[0]])
