"""`payment_risk`: which open sales invoices will be paid late, per connection, as a Dagster asset.

A scheduled or manual run reads the canonical books views, and for each connection trains a model on
that connection's own paid history (`model.py`), backtests it against the customers' historical late
share (`backtest.py`), stores the model and scores the open invoices into `insights.payment_risk`. A
targeted near-real-time run (tagged `xz/trigger`) never retrains: it scores with the connection's
latest stored model, so the figures people see move with payments, not with a model that changes every
few seconds. (No `from __future__ import annotations`: Dagster inspects the `context` annotation.)
"""

from datetime import UTC, date, datetime

import dagster as dg
import numpy as np
import pandas as pd

from xz_pipeline.core.resources import TRIGGER_TAG, MirrorResource
from xz_pipeline.insights.anomalies import billing_anomalies
from xz_pipeline.insights.backtest import run_backtest, summary
from xz_pipeline.insights.features import NEVER, Ledger, day_date, from_day, to_day
from xz_pipeline.insights.model import PaymentModel, score, train
from xz_pipeline.insights.persist import ensure, latest_model, read_inputs, save_model, split, write_scores
from xz_pipeline.insights.reminders import reminders

CANONICAL = dg.AssetKey("canonical_views")


class PaymentRiskConfig(dg.Config):
    """Risk bands (Chaser's late-payment predictor: low < 50 %, medium 50-75 %, high >= 75 %) and the day
    to score as of (ISO date; default: the day after the newest books record, at most today)."""

    medium: float = 0.5
    high: float = 0.75
    as_of: str = ""
    # A scheduled or manual run retrains when the newest model was trained this many days before the
    # scoring day or more (0: every time); in between it scores with that model. Business Central
    # re-evaluates weekly; a day keeps the figures steady through the 15-minute mirror runs.
    retrain_after_days: int = 1


def _as_of(config: PaymentRiskConfig, ledger: Ledger) -> int:
    if config.as_of:
        return to_day(config.as_of)
    today = to_day(datetime.now(UTC).date())
    days = np.concatenate([ledger.issue, ledger.settled[ledger.settled < NEVER]])
    return min(today, int(days.max()) + 1) if len(days) else today


def band(p: np.ndarray, medium: float, high: float) -> np.ndarray:
    return np.where(p >= high, "high", np.where(p >= medium, "medium", "low"))


def score_open(
    model: PaymentModel, ledger: Ledger, as_of: int, connection: str, config: PaymentRiskConfig
) -> pd.DataFrame:
    """One row per open sales invoice (status open, amount due > 0) of the ledger, as of `as_of`."""
    inv = ledger.invoices
    due = pd.to_numeric(inv["amount_due"], errors="coerce").fillna(0).to_numpy()
    idx = np.flatnonzero((inv["status"].to_numpy() == "open") & (due > 0))
    t = np.full(len(idx), as_of, dtype=np.int64)
    s = score(model, ledger, idx, t)
    p = s["p_late"].to_numpy()
    reasons: list[list[str]] = [[f"already {int(d)} days past due"] for d in s["past_due"]]
    fresh = np.flatnonzero(~s["already_late"].to_numpy())
    if len(fresh):
        for i, words in zip(
            fresh, model.reasons(s.iloc[fresh].reset_index(drop=True), p[fresh]), strict=True
        ):
            reasons[i] = words
    delay = np.rint(s["delay"].to_numpy()).astype(np.int64)
    pay_day = np.maximum(ledger.due[idx] + delay, as_of)
    return pd.DataFrame({
        "connection": connection, "invoice_id": inv["invoice_id"].to_numpy()[idx],
        "customer_id": inv["customer_id"].to_numpy()[idx], "p_late": p,
        "expected_days_late": np.round(np.maximum(s["delay"].to_numpy(), 0.0), 1),
        "expected_pay_date": pd.to_datetime(from_day(pay_day)).date,
        "risk_band": band(p, config.medium, config.high), "top_reasons": ["; ".join(r) for r in reasons],
        "as_of": day_date(as_of), "model_version": model.version,
        "scored_at": datetime.now(UTC),
    })  # fmt: skip


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False) if len(frame) else "(none)"


def _backtest_table(results: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for conn, s in results.items():
        for part in ("all", "not_yet_late"):
            for who in ("model", "baseline"):
                rows.append({"connection": conn, "invoices": part, "scorer": who,
                             **{m: s.get(f"{part}.{who}_{m}") for m in ("auc", "accuracy", "brier", "mae_days")}})  # fmt: skip
    return pd.DataFrame(rows)


@dg.asset(
    name="payment_risk",
    deps=[CANONICAL, "discrepancies"],
    group_name="insights",
    kinds={"duckdb", "scikitlearn"},
    pool="duckdb",
    description="insights.payment_risk: per open sales invoice, the probability it is paid more than 5 days "
    "after due, expected days late and pay date, risk band and reasons; trained per connection on its own "
    "history by scheduled and manual runs only.",
)
def payment_risk(context: dg.AssetExecutionContext, config: PaymentRiskConfig, mirror: MirrorResource):
    targeted = context.run.tags.get(TRIGGER_TAG) is not None
    outputs: dict[str, pd.DataFrame] = {}
    trained: dict[str, tuple[PaymentModel, date, dict | None]] = {}
    models: dict[str, dict] = {}
    backtests: dict[str, dict] = {}
    calibration: dict[str, pd.DataFrame] = {}
    for (
        name
    ) in mirror.connections():  # one connection's mirror at a time, its lock held only to read and write
        store = mirror.store(name)
        with mirror.step_session(context, name):
            with store.read() as con:
                frames = read_inputs(con)
                connections = sorted(set(frames["books_invoices"]["connection"]))
                stored = {c: latest_model(con, c) for c in connections}
            for conn in connections:
                part = split(frames, conn)
                ledger = Ledger(
                    part["books_invoices"], part["books_payments"], part["books_credit_allocations"],
                    part["books_credit_notes"], part["books_invoice_lines"],
                )  # fmt: skip
                as_of = _as_of(config, ledger)
                newest = stored.get(conn)
                model = PaymentModel.loads(newest[3]) if newest is not None else None
                fresh = model is not None and as_of - to_day(newest[1]) < config.retrain_after_days
                if targeted and model is None:
                    models[conn] = {
                        "scored": False,
                        "reason": "no usable model yet (none stored, or stored by an older version): "
                        "a scheduled or manual run trains one",
                    }
                    continue
                if targeted or fresh:
                    if newest[2]:
                        backtests[conn] = newest[2]  # the stored model's own backtest
                else:
                    model = train(ledger, as_of, trained_on=conn)
                    bt = run_backtest(ledger, as_of)
                    if bt is not None:
                        backtests[conn] = summary(bt)
                        calibration[conn] = bt.calibration
                    trained[conn] = (model, day_date(as_of), backtests.get(conn))
                outputs[conn] = score_open(model, ledger, as_of, conn, config)
                models[conn] = {
                    "model_version": model.version, "retrained": conn in trained, "fallback": model.fallback,
                    "training_rows": model.n_rows, "base_rate": round(model.base_rate, 4),
                    "as_of": str(day_date(as_of)), "open_invoices": len(outputs[conn]),
                    "already_late": int((outputs[conn]["p_late"] >= 1.0).sum()),
                }  # fmt: skip
                if model.fallback:
                    models[conn]["fallback_reason"] = (
                        "too little paid history: every invoice gets the base rate"
                    )
            now = datetime.now(UTC)
            with store.write() as con:
                ensure(con)
                for conn, (model, as_of_date, bt) in trained.items():
                    if conn not in connections:
                        continue
                    save_model(
                        con,
                        conn,
                        model.version,
                        now,
                        as_of_date,
                        model.n_rows,
                        model.fallback,
                        bt,
                        model.dumps(),
                    )
                for conn in connections:
                    if conn not in outputs:
                        continue
                    rows = outputs[conn]
                    write_scores(con, conn, rows)
    rows = pd.concat(outputs.values(), ignore_index=True) if outputs else pd.DataFrame()
    context.log.info(
        f"payment_risk: {len(rows)} open invoice(s) scored for {len(outputs)} connection(s)"
        + (" with stored models (targeted run)" if targeted else "")
    )
    distribution = (
        rows.groupby(["connection", "risk_band"]).agg(invoices=("p_late", "size"), mean_p=("p_late", "mean"))
        .round(3).reset_index()
        if len(rows) else pd.DataFrame()
    )  # fmt: skip
    metadata = {
        "dagster/row_count": len(rows),
        "retrained": bool(trained),
        "models": dg.MetadataValue.json(models),
        "risk_distribution": dg.MetadataValue.md(_md(distribution)),
    }
    if backtests:
        metadata["backtest"] = dg.MetadataValue.json(backtests)
        metadata["backtest_table"] = dg.MetadataValue.md(_md(_backtest_table(backtests)))
        metadata["calibration"] = dg.MetadataValue.md(
            "\n\n".join(f"**{c}**\n\n{_md(t)}" for c, t in calibration.items())
        )
        if len(backtests) == 1:  # plottable figures for the usual single connection
            (s,) = backtests.values()
            for key in ("not_yet_late.model_auc", "not_yet_late.baseline_auc", "all.model_auc",
                        "all.baseline_auc", "not_yet_late.model_brier", "not_yet_late.baseline_brier"):  # fmt: skip
                value = s.get(key)
                if isinstance(value, float) and value == value:
                    metadata[f"backtest_{key.replace('.', '_')}"] = value
    return dg.MaterializeResult(metadata=metadata)


INSIGHTS_ASSETS = [payment_risk, reminders, billing_anomalies]
