"""payment_risk end to end on the demo sandbox mirrored once for the module: one row per open sales
invoice, p_late = 1 past 5 days overdue, no leakage from records dated on or after the cut-off, targeted
runs score without retraining, a connection's model sees only its own rows, the backtest in metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from xz_pipeline.core.resources import TRIGGER_TAG, MirrorResource
from xz_pipeline.core.store import Store
from xz_pipeline.insights.assets import INSIGHTS_ASSETS
from xz_pipeline.insights.features import NEVER, Ledger, to_day
from xz_pipeline.insights.persist import read_inputs
from xz_pipeline_tests.sandbox_env import mirrored_world

SEED = 7
AS_OF = "2026-11-01"  # the sandbox world's as_of


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """The demo world mirrored once: (mirror path, world, connection name)."""
    yield from mirrored_world(tmp_path_factory, "insights-home", seed=SEED)


def _copy(mirrored, tmp_path) -> str:
    target = tmp_path / "mirror" / mirrored[0].name  # the connection's own file, in a folder of mirrors
    target.parent.mkdir()
    shutil.copy(mirrored[0], target)
    return str(target)


def _run(path: str, tags: dict | None = None, as_of: str = AS_OF) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as inst:
        return dg.materialize(
            [a for a in INSIGHTS_ASSETS if a.key == dg.AssetKey("payment_risk")],  # others: own tests
            instance=inst,
            resources={"mirror": MirrorResource(path=str(Path(path).parent))},
            run_config={"ops": {"payment_risk": {"config": {"as_of": as_of}}}},
            tags=tags,
        )


def _metadata(result) -> dict:
    (event,) = result.get_asset_materialization_events()
    return event.step_materialization_data.materialization.metadata


def _rows(path: str) -> pd.DataFrame:
    with Store(path).read() as con:
        return con.execute("select * from insights.payment_risk").df()


def _models(path: str) -> pd.DataFrame:
    with Store(path).read() as con:
        return con.execute(
            "select connection, model_version, trained_at from insights.payment_risk_models"
        ).df()


@pytest.fixture(scope="module")
def scored(mirrored, tmp_path_factory):
    """One manual run on a copy of the mirror: (path, result)."""
    path = _copy(mirrored, tmp_path_factory.mktemp("scored"))
    return path, _run(path)


def test_one_row_per_open_sales_invoice(mirrored, scored):
    path, result = scored
    assert result.success
    rows = _rows(path)
    with Store(path).read() as con:
        open_ = con.execute(
            "select invoice_id, customer_id, due_date from canonical.books_invoices "
            "where type = 'sale' and status = 'open' and amount_due > 0"
        ).df()
    assert len(open_) > 50
    assert sorted(rows["invoice_id"]) == sorted(open_["invoice_id"])
    assert rows["invoice_id"].is_unique
    assert rows["p_late"].between(0, 1).all()
    merged = rows.merge(open_, on="invoice_id", suffixes=("", "_books"))
    assert (merged["customer_id"] == merged["customer_id_books"]).all()
    past_due = (pd.Timestamp(AS_OF) - pd.to_datetime(merged["due_date"])).dt.days
    late = merged[past_due > 5]
    fresh = merged[past_due <= 5]
    assert len(late) > 10 and len(fresh) > 10
    assert (late["p_late"] == 1.0).all()
    assert (late["expected_days_late"] > 5).all()
    assert (fresh["p_late"] < 1.0).all() and fresh["p_late"].nunique() > 5  # a model, not a constant
    assert set(rows["risk_band"]) <= {"low", "medium", "high"}
    assert (rows.loc[rows["p_late"] >= 0.75, "risk_band"] == "high").all()
    assert (rows.loc[rows["p_late"] < 0.5, "risk_band"] == "low").all()
    assert (pd.to_datetime(rows["expected_pay_date"]) >= pd.Timestamp(AS_OF)).all()
    assert (rows["as_of"].astype(str) == AS_OF).all()
    assert rows["top_reasons"].str.contains("risk|past due|usual").all()
    assert fresh["top_reasons"].str.contains("risk").mean() > 0.8
    assert rows["model_version"].nunique() == 1


def test_backtest_in_metadata(scored):
    _, result = scored
    meta = _metadata(result)
    assert meta["retrained"].value is True
    (bt,) = meta["backtest"].value.values()
    for part in ("all", "not_yet_late"):
        for who in ("model", "baseline"):
            for metric in ("auc", "accuracy", "brier", "mae_days"):
                assert 0 <= bt[f"{part}.{who}_{metric}"] < 100, (part, who, metric)
    assert bt["not_yet_late.invoices"] > 100
    assert "| scorer" in meta["backtest_table"].value and "baseline" in meta["backtest_table"].value
    assert "share late" in meta["calibration"].value
    assert "risk_band" in meta["risk_distribution"].value
    (models,) = meta["models"].value.values()
    assert models["fallback"] is False and models["training_rows"] > 1000


def test_targeted_run_scores_without_retraining(mirrored, tmp_path):
    path = _copy(mirrored, tmp_path)
    assert _run(path).success
    before = _models(path)
    version = before["model_version"].iloc[0]
    # a month later, a manual run would train a new model (another cut-off); a targeted one must not
    result = _run(path, tags={TRIGGER_TAG: "xero:invoices"}, as_of="2026-12-01")
    assert result.success
    assert _metadata(result)["retrained"].value is False
    after = _models(path)
    pd.testing.assert_frame_equal(before, after)
    rows = _rows(path)
    assert (rows["model_version"] == version).all()
    assert (rows["as_of"].astype(str) == "2026-12-01").all()
    # a scheduled run the same day scores with the day's model; a day later it trains a new one
    again = _run(path)
    assert _metadata(again)["retrained"].value is False and "backtest" in _metadata(again)
    pd.testing.assert_frame_equal(before, _models(path))
    assert _run(path, as_of="2026-12-01").success
    assert len(_models(path)) == 2 and (_rows(path)["model_version"] != version).all()


def test_targeted_run_without_a_model_writes_nothing(mirrored, tmp_path):
    path = _copy(mirrored, tmp_path)
    result = _run(path, tags={TRIGGER_TAG: "xero:invoices"})
    assert result.success
    (models,) = _metadata(result)["models"].value.values()
    assert models["scored"] is False and "no usable model yet" in models["reason"]
    assert len(_rows(path)) == 0


def test_a_connection_never_sees_another_connections_rows(mirrored, scored, tmp_path):
    path = _copy(mirrored, tmp_path)
    name = mirrored[2]
    # a second connection: the same customers and invoices, but nobody ever paid anything
    with Store(path).write() as con:
        for table in ("contacts", "invoices", "invoice_lines", "credit_notes", "credit_note_allocations"):
            con.execute(
                f"insert into xero.{table} select * replace ('other' as connection) from xero.{table} "
                "where connection = ?",
                [name],
            )
        con.execute("update xero.invoices set status = 'AUTHORISED', amount_paid = 0, amount_due = total, "
                    "fully_paid_on = null where connection = 'other' and status = 'PAID'")  # fmt: skip
    assert _run(path).success
    rows = _rows(path)
    alone = _rows(scored[0]).set_index("invoice_id").sort_index()
    mine = rows[rows["connection"] == name].set_index("invoice_id").sort_index()
    other = rows[rows["connection"] == "other"]
    assert len(other) > len(mine)  # every sales invoice is open there
    # the first connection's model and scores are exactly what they were without the second
    assert (mine["model_version"] == alone["model_version"]).all()
    np.testing.assert_allclose(mine["p_late"].to_numpy(), alone["p_late"].to_numpy())
    assert set(other["model_version"]).isdisjoint(set(mine["model_version"]))


def _perturbed(frames: dict[str, pd.DataFrame], t: pd.Timestamp, rng: np.random.Generator) -> dict:
    """Every record dated on or after t changed: invoices issued then (amounts, dates, deleted ones),
    payments and allocations (later, other amounts), credit notes (doubled), and what is settled then
    becomes open again (its status is today's state of a later event)."""
    out = {k: f.copy() for k, f in frames.items()}
    inv = out["books_invoices"]
    future = inv["issue_date"] >= t
    inv.loc[future, "total"] = inv.loc[future, "total"] * rng.uniform(0.2, 5, future.sum())
    inv.loc[future, "due_date"] = inv.loc[future, "due_date"] + pd.to_timedelta(
        rng.integers(0, 90, future.sum()), "D"
    )
    drop = future & (rng.random(len(inv)) < 0.3)
    inv = inv[~drop]
    pay = out["books_payments"]
    late_pay = pay["date"] >= t
    settled_after = set(pay.loc[late_pay, "invoice_id"]) | set(
        out["books_credit_allocations"].loc[out["books_credit_allocations"]["date"] >= t, "invoice_id"]
    )
    reopen = inv["invoice_id"].isin(settled_after) & (rng.random(len(inv)) < 0.5)
    inv.loc[reopen, "status"] = "open"
    paid_later = inv["paid_date"] >= t
    inv.loc[paid_later, "paid_date"] = inv.loc[paid_later, "paid_date"] + pd.to_timedelta(
        rng.integers(0, 30, paid_later.sum()), "D"
    )
    pay.loc[late_pay, "date"] = pay.loc[late_pay, "date"] + pd.to_timedelta(
        rng.integers(0, 60, late_pay.sum()), "D"
    )
    pay.loc[late_pay, "amount"] = pay.loc[late_pay, "amount"] * 0.5
    out["books_payments"] = pay[~(late_pay & (rng.random(len(pay)) < 0.3))]
    alloc = out["books_credit_allocations"]
    future_alloc = alloc["date"] >= t
    alloc.loc[future_alloc, "date"] = alloc.loc[future_alloc, "date"] + pd.to_timedelta(7, "D")
    notes = out["books_credit_notes"]
    out["books_credit_notes"] = pd.concat([notes, notes[notes["issue_date"] >= t]], ignore_index=True)
    out["books_invoices"] = inv
    return out


def _ledger(frames) -> Ledger:
    return Ledger(
        frames["books_invoices"], frames["books_payments"], frames["books_credit_allocations"],
        frames["books_credit_notes"], frames["books_invoice_lines"],
    )  # fmt: skip


def test_features_ignore_every_record_dated_after_the_cutoff(mirrored):
    with Store(mirrored[0]).read() as con:
        frames = read_inputs(con)
    for f in frames.values():
        for c in ("issue_date", "due_date", "paid_date", "date"):
            if c in f:
                f[c] = pd.to_datetime(f[c])
    rng = np.random.default_rng(0)
    for cutoff in ("2025-06-15", "2026-02-01", "2026-09-20"):
        t = pd.Timestamp(cutoff)
        base, changed = _ledger(frames), _ledger(_perturbed(frames, t, rng))
        day = to_day(t)
        # the invoices issued before t that were still open at t (the ones scored then), and some settled
        ids = base.invoices["invoice_id"].to_numpy()
        before = (base.issue < day) & ((base.settled >= day) | (rng.random(base.n) < 0.2))
        query = ids[before]
        assert len(query) > 50
        pos_b = pd.Series(np.arange(base.n), index=ids).loc[query].to_numpy()
        pos_c = (
            pd.Series(np.arange(changed.n), index=changed.invoices["invoice_id"].to_numpy())
            .loc[query]
            .to_numpy()
        )
        fb = base.features(pos_b, np.full(len(query), day))
        fc = changed.features(pos_c, np.full(len(query), day))
        pd.testing.assert_frame_equal(fb, fc, check_exact=False, rtol=1e-9)
        assert fb["n_paid"].sum() > 0 and (fb["n_open"] > 0).any()


def test_perturbing_before_the_cutoff_does_change_features(mirrored):
    """The leakage test can fail: a change dated before t moves the features."""
    with Store(mirrored[0]).read() as con:
        frames = read_inputs(con)
    t = pd.Timestamp("2026-02-01")
    pay = frames["books_payments"]
    early = pd.to_datetime(pay["date"]) < t
    frames["books_payments"] = pay.assign(
        date=pd.to_datetime(pay["date"]).where(~early, pd.to_datetime(pay["date"]) + pd.Timedelta(days=400))
    )
    base_frames = read_inputs_cached(mirrored)
    day = to_day(t)
    a, b = _ledger(base_frames), _ledger(frames)
    ids = a.invoices["invoice_id"].to_numpy()
    idx = np.flatnonzero(a.issue < day)
    pos_b = pd.Series(np.arange(b.n), index=b.invoices["invoice_id"].to_numpy()).loc[ids[idx]].to_numpy()
    fa = a.features(idx, np.full(len(idx), day))
    fb = b.features(pos_b, np.full(len(idx), day))
    assert not fa["n_paid"].equals(fb["n_paid"])


def read_inputs_cached(mirrored) -> dict[str, pd.DataFrame]:
    with Store(mirrored[0]).read() as con:
        return read_inputs(con)


def test_settlement_is_the_last_payment_of_a_paid_invoice(mirrored):
    frames = read_inputs_cached(mirrored)
    ledger = _ledger(frames)
    paid = ledger.invoices["status"].to_numpy() == "paid"
    assert (ledger.settled[paid] < NEVER).mean() > 0.99
    assert (ledger.settled[~paid] == NEVER).all()
