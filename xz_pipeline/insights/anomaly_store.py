"""What billing anomalies read from the mirror and how `insights.billing_anomalies` is kept across runs.

One row per (connection, kind, books_id, related_id); related_id is NULL where nothing else is involved. An anomaly found again keeps its `first_seen` and
takes the new score and reason; one no longer found gets `resolved_at` (the row stays, for the record);
one found again after it was resolved is open again (resolved_at cleared, first_seen kept).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

READ = {
    "books_invoices": ["connection", "invoice_id", "number", "type", "status", "customer_id", "customer_name",
                       "reference", "issue_date", "currency", "total", "amount_credited"],
    "books_invoice_lines": ["connection", "invoice_id", "description", "item_code", "quantity"],
    "books_credit_notes": ["connection", "credit_note_id", "number", "type", "status", "customer_id", "reference",
                           "total"],
    "books_credit_allocations": ["connection", "credit_note_id", "invoice_id", "amount", "date"],
    "crm_deals": ["connection", "deal_id", "name", "stage", "amount", "currency"],
}  # fmt: skip
DOUBLE = {"total", "amount_credited", "quantity", "amount"}
KEY = ["connection", "kind", "books_id", "related_id"]

DDL = """
create schema if not exists insights;
create table if not exists insights.billing_anomalies (
    connection varchar not null,
    kind varchar not null,
    books_id varchar not null,
    related_id varchar,
    score double not null,
    reason varchar not null,
    first_seen timestamptz not null,
    resolved_at timestamptz
);
comment on table insights.billing_anomalies is 'Billing anomalies per connection: duplicate_invoice (books_id the \
later invoice, related_id the earlier), amount_outlier, credit_exceeds_invoice (related_id the credit note), \
won_deal_invoice_differs (related_id the deal); first_seen kept across runs, resolved_at once it no longer holds.';
"""


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def read_inputs(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """The canonical frames, and reconciliation's invoice links and open discrepancies (empty frames, and
    `recon_missing` True, when reconciliation has not run on this mirror yet)."""
    con.execute("set TimeZone = 'UTC'")
    out: dict[str, pd.DataFrame] = {}
    for view, columns in READ.items():
        exprs = [f"cast({c} as double) as {c}" if c in DOUBLE else c for c in columns]
        out[view] = con.execute(f"select {', '.join(exprs)} from canonical.{view}").df()
    present = _exists(con, "recon", "invoice_links") and _exists(con, "recon", "discrepancies")
    out["invoice_links"] = (
        con.execute("select connection, invoice_id, deal_id from recon.invoice_links").df()
        if present else pd.DataFrame(columns=["connection", "invoice_id", "deal_id"])
    )  # fmt: skip
    out["open_discrepancies"] = (
        con.execute("select connection, kind, books_id, crm_id from recon.discrepancies where resolved_at is null").df()
        if present else pd.DataFrame(columns=["connection", "kind", "books_id", "crm_id"])
    )  # fmt: skip
    out["recon_missing"] = pd.DataFrame({"missing": [not present]})
    return out


def previous(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    con.execute(DDL)
    return con.execute("select * from insights.billing_anomalies").df()


def merge(old: pd.DataFrame, found: pd.DataFrame, connections: list[str], now: datetime) -> pd.DataFrame:
    """The table's new state for `connections` (other connections' rows are not touched by the caller)."""
    old = old[old["connection"].isin(connections)]
    old = old.assign(related_id=old["related_id"].fillna(""))
    found = found.drop_duplicates(KEY).assign(related_id=found["related_id"].fillna(""))
    m = found.merge(old[[*KEY, "first_seen", "resolved_at"]], on=KEY, how="outer", indicator=True)
    gone = m["_merge"] == "right_only"
    gone_rows = old.merge(m.loc[gone, KEY], on=KEY)
    gone_rows["resolved_at"] = gone_rows["resolved_at"].where(gone_rows["resolved_at"].notna(), now)
    live = m[~gone].copy()
    live["first_seen"] = live["first_seen"].where(live["first_seen"].notna(), now)
    live["resolved_at"] = pd.NaT
    cols = [*KEY, "score", "reason", "first_seen", "resolved_at"]
    out = pd.concat([live[cols], gone_rows[cols]], ignore_index=True)
    for col in ("first_seen", "resolved_at"):
        out[col] = pd.to_datetime(out[col], utc=True)
    out["related_id"] = out["related_id"].replace("", None)
    return out.sort_values(KEY, ignore_index=True)


def write(con: duckdb.DuckDBPyConnection, connections: list[str], rows: pd.DataFrame) -> None:
    con.execute(DDL)
    con.execute(
        "delete from insights.billing_anomalies where connection in (select unnest(?))", [connections]
    )
    if len(rows):
        con.register("_anomaly_rows", rows)
        try:
            con.execute(
                "insert into insights.billing_anomalies select connection, kind, books_id, related_id, score, "
                "reason, first_seen, resolved_at from _anomaly_rows"
            )
        finally:
            con.unregister("_anomaly_rows")
