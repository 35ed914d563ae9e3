"""What payment risk reads from the canonical views and writes to `insights.*`.

`insights.payment_risk` holds one row per open sales invoice per connection, replaced per connection
on every scoring. `insights.payment_risk_models` keeps every trained model (pickled into the user's own
mirror: nothing leaves the machine) with its backtest, so a targeted run can score with the latest one
without retraining and a person can see which model produced a row (`model_version`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime

import duckdb
import pandas as pd

# view -> columns read (amounts as DOUBLE: a probability model needs no cents)
READ = {
    "books_invoices": ["connection", "invoice_id", "type", "status", "customer_id", "issue_date", "due_date",
                       "paid_date", "currency", "currency_rate", "total", "amount_due"],
    "books_payments": ["connection", "invoice_id", "status", "date", "amount"],
    "books_credit_allocations": ["connection", "invoice_id", "date", "amount"],
    "books_credit_notes": ["connection", "credit_note_id", "customer_id", "type", "status", "issue_date", "total"],
    "books_invoice_lines": ["connection", "invoice_id"],
}  # fmt: skip
DOUBLE = {"currency_rate", "total", "amount_due", "amount"}

DDL = """
create schema if not exists insights;
create table if not exists insights.payment_risk (
    connection varchar not null,
    invoice_id varchar not null,
    customer_id varchar,
    p_late double not null,
    expected_days_late double,
    expected_pay_date date,
    risk_band varchar not null,
    top_reasons varchar,
    as_of date not null,
    model_version varchar not null,
    scored_at timestamptz not null,
    primary key (connection, invoice_id)
);
create table if not exists insights.payment_risk_models (
    connection varchar not null,
    model_version varchar not null,
    trained_at timestamptz not null,
    trained_as_of date not null,
    training_rows integer not null,
    fallback boolean not null,
    backtest json,
    model blob not null,
    primary key (connection, model_version)
);
"""
COMMENTS = {
    "payment_risk": "One row per open sales invoice: the probability it is paid more than 5 days after due "
    "(1 when it already is), expected days late and pay date, band and the reasons, per connection.",
    "payment_risk_models": "Every payment-risk model trained, per connection, with its backtest (JSON).",
}


def read_inputs(
    con: duckdb.DuckDBPyConnection, connections: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    con.execute("set TimeZone = 'UTC'")
    out = {}
    for view, columns in READ.items():
        exprs = [f"cast({c} as double) as {c}" if c in DOUBLE else c for c in columns]
        sql = f"select {', '.join(exprs)} from canonical.{view}"
        params: list = []
        if connections is not None:
            sql += " where connection in (select unnest(?))"
            params = [list(connections)]
        out[view] = con.execute(sql, params).df()
    return out


def split(frames: dict[str, pd.DataFrame], connection: str) -> dict[str, pd.DataFrame]:
    """One connection's rows of every frame: the only rows its model may see."""
    return {k: f[f["connection"] == connection] for k, f in frames.items()}


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)
    for table, text in COMMENTS.items():
        con.execute(f"comment on table insights.{table} is '{text}'")


def write_scores(con: duckdb.DuckDBPyConnection, connection: str, rows: pd.DataFrame) -> None:
    con.execute("delete from insights.payment_risk where connection = ?", [connection])
    if len(rows):
        con.register("_risk_rows", rows)
        try:
            con.execute(
                "insert into insights.payment_risk select connection, invoice_id, customer_id, p_late, "
                "expected_days_late, expected_pay_date, risk_band, top_reasons, as_of, model_version, scored_at "
                "from _risk_rows"
            )
        finally:
            con.unregister("_risk_rows")


def save_model(
    con: duckdb.DuckDBPyConnection, connection: str, version: str, trained_at: datetime, as_of: date,
    rows: int, fallback: bool, backtest: dict | None, blob: bytes,
) -> None:  # fmt: skip
    con.execute(
        "insert or replace into insights.payment_risk_models values (?, ?, ?, ?, ?, ?, ?, ?)",
        [connection, version, trained_at, as_of, rows, fallback, json.dumps(backtest, default=str), blob],
    )


def latest_model(
    con: duckdb.DuckDBPyConnection, connection: str
) -> tuple[str, date, dict | None, bytes] | None:
    """(model_version, trained_as_of, its backtest, pickled model) of the connection's newest model."""
    present = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'insights' "
        "and table_name = 'payment_risk_models'"
    ).fetchone()[0]
    if not present:
        return None
    row = con.execute(
        "select model_version, trained_as_of, backtest, model from insights.payment_risk_models where connection = ? "
        "order by trained_at desc limit 1",
        [connection],
    ).fetchone()
    return (row[0], row[1], json.loads(row[2]) if row[2] else None, bytes(row[3])) if row else None
