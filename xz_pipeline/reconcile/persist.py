"""Reading the canonical views for reconciliation, and writing `recon.*` so rows persist across runs.

Reading: amounts come out as integer cents (`cast(round(x * 100) as bigint)`): exact like the
DECIMAL columns, and fast to compare over a million invoices (a `Decimal` per cell would not be).

Writing, always through `Store.write()`:
- `recon.customer_links` and `recon.invoice_links` hold the current links: the reconciled
  connections' rows are replaced whole each run;
- `recon.discrepancies` is keyed by (connection, kind, books_id, crm_id, field) — "" where a side
  has no record, never NULL, so the key compares. A row found for the first time gets
  `first_seen`; found again, its values and `last_seen` are refreshed (and `resolved_at` cleared:
  it re-opened); no longer found in a reconciled connection, it gets `resolved_at`. So
  `resolved_at is null` is what is wrong now, and `first_seen` says since when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from xz_pipeline.core.canonical import CANONICAL_VIEWS
from xz_pipeline.core.mirror import MONEY
from xz_pipeline.reconcile.rules import DISCREPANCY_COLUMNS, KEY_COLUMNS

RECON_DDL = """
create schema if not exists recon;
create table if not exists recon.customer_links (
    connection varchar not null, books_id varchar not null, crm_id varchar not null, method varchar,
    confidence double, status varchar, evidence varchar, linked_at timestamptz
);
create table if not exists recon.invoice_links (
    connection varchar not null, invoice_id varchar not null, deal_id varchar not null, method varchar,
    confidence double, linked_at timestamptz
);
create table if not exists recon.discrepancies (
    connection varchar not null, kind varchar not null, books_id varchar not null, crm_id varchar not null,
    field varchar not null, books_value varchar, crm_value varchar, severity varchar, detail varchar,
    first_seen timestamptz not null, last_seen timestamptz not null, resolved_at timestamptz,
    primary key (connection, kind, books_id, crm_id, field)
);
"""

# The views reconciliation reads, and the columns it needs of each.
READ_COLUMNS: dict[str, list[str]] = {
    "books_customers": ["connection", "customer_id", "name", "first_name", "last_name", "email", "phone",
                        "mobile", "tax_number", "currency", "account_number", "street", "city", "region",
                        "postal_code", "country", "is_customer", "is_supplier", "status", "outstanding",
                        "overdue", "crm_link", "source_modified"],
    "books_invoices": ["connection", "invoice_id", "number", "type", "status", "customer_id", "reference",
                       "issue_date", "due_date", "paid_date", "currency", "subtotal", "tax", "total",
                       "amount_paid", "amount_due", "amount_credited"],
    "crm_accounts": ["connection", "account_id", "name", "email", "primary_contact_id", "phone", "website",
                     "tax_number", "currency", "account_number", "street", "city", "region", "postal_code",
                     "country", "books_link", "outstanding", "overdue", "marked_customer", "source_created",
                     "source_modified"],
    "crm_contacts": ["connection", "contact_id", "account_id", "first_name", "last_name", "name", "email",
                     "secondary_email", "phone", "mobile", "street", "city", "region", "postal_code", "country",
                     "is_primary", "source_created"],
    "crm_deals": ["connection", "deal_id", "name", "stage", "amount", "currency", "close_date", "account_id",
                  "contact_id", "books_invoice_id", "books_invoice_number", "payment_status",
                  "payment_status_raw", "payment_status_tracked", "amount_paid", "last_payment_date"],
    "crm_invoices": ["connection", "invoice_id", "number", "status", "account_id", "deal_id", "issue_date",
                     "currency", "total", "books_invoice_id"],
    "books_projects": ["connection", "project_id", "customer_id", "name", "currency", "status", "estimate",
                       "minutes_logged", "expense_amount", "total_invoiced", "total_to_be_invoiced"],
    "books_project_tasks": ["connection", "task_id", "project_id", "charge_type", "rate", "estimate_minutes",
                            "total_minutes"],
    "books_time_entries": ["connection", "time_entry_id", "project_id", "task_id", "worked_on", "minutes",
                           "status", "chargeable"],
}  # fmt: skip

LINK_TABLE_COLUMNS = ["connection", "books_id", "crm_id", "method", "confidence", "status", "evidence"]


def read_canonical(
    con: duckdb.DuckDBPyConnection, connections: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    """The canonical frames reconciliation reads (amounts as integer cents), optionally for some connections."""
    con.execute("set TimeZone = 'UTC'")
    out = {}
    for view, columns in READ_COLUMNS.items():
        types = dict(CANONICAL_VIEWS[view])
        exprs = [f"cast(round({c} * 100) as bigint) as {c}" if types[c] == MONEY else c for c in columns]
        sql = f"select {', '.join(exprs)} from canonical.{view}"
        params: list = []
        if connections is not None:
            sql += " where connection in (select unnest(?))"
            params = [list(connections)]
        frame = con.execute(sql, params).df()
        for c in columns:
            if types[c] == MONEY:
                frame[c] = frame[c].astype("Int64")
            elif types[c] == "VARCHAR":
                frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
        out[view] = frame
    return out


def read_decisions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """`recon.link_decisions` (the review queue's answers) if the table exists."""
    present = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'recon' "
        "and table_name = 'link_decisions'"
    ).fetchone()[0]
    return con.execute("select * from recon.link_decisions").df() if present else None


def ensure_recon(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(RECON_DDL)


def _replace(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, connections: Sequence[str], now: datetime
) -> None:
    con.execute(f"delete from recon.{table} where connection in (select unnest(?))", [list(connections)])
    if frame.empty:
        return
    con.register("recon_incoming", frame.assign(linked_at=now))
    try:
        con.execute(f"insert into recon.{table} by name select * from recon_incoming")
    finally:
        con.unregister("recon_incoming")


def write_links(
    con: duckdb.DuckDBPyConnection,
    customer_links: pd.DataFrame,
    invoice_links: pd.DataFrame,
    connections: Sequence[str],
    now: datetime,
) -> None:
    """Replace the reconciled connections' current links."""
    ensure_recon(con)
    cl = customer_links[[c for c in LINK_TABLE_COLUMNS if c in customer_links]]
    _replace(con, "customer_links", cl, connections, now)
    _replace(con, "invoice_links", invoice_links, connections, now)


@dataclass(frozen=True)
class PersistCounts:
    new: int
    seen_again: int
    reopened: int
    resolved: int
    open: int


def persist_discrepancies(
    con: duckdb.DuckDBPyConnection, found: pd.DataFrame, connections: Sequence[str], now: datetime
) -> PersistCounts:
    """Bring `recon.discrepancies` in line with this run's rows for `connections` (see the module doc)."""
    ensure_recon(con)
    frame = (
        found[DISCREPANCY_COLUMNS].copy() if not found.empty else pd.DataFrame(columns=DISCREPANCY_COLUMNS)
    )
    for c in DISCREPANCY_COLUMNS:
        frame[c] = frame[c].fillna("").astype(str) if len(frame) else frame[c].astype(object)
    on = " and ".join(f"d.{k} = f.{k}" for k in KEY_COLUMNS)
    con.register("recon_found", frame)
    con.register("recon_scope", pd.DataFrame({"connection": list(connections)}, dtype=object))
    try:
        con.execute(
            "create or replace temp table recon_status as select f.*, "
            "case when d.kind is null then 'new' when d.resolved_at is null then 'again' else 'reopened' end "
            f"as _status from recon_found f left join recon.discrepancies d on {on}"
        )
        counts = dict(con.execute("select _status, count(*) from recon_status group by 1").fetchall())
        con.execute(
            "update recon.discrepancies d set books_value = f.books_value, crm_value = f.crm_value, "
            "severity = f.severity, detail = f.detail, last_seen = ?, resolved_at = null "
            f"from recon_status f where f._status <> 'new' and {on}",
            [now],
        )
        con.execute(
            "insert into recon.discrepancies by name select * exclude (_status), "
            "?::timestamptz as first_seen, ?::timestamptz as last_seen, null::timestamptz as resolved_at "
            "from recon_status where _status = 'new'",
            [now, now],
        )
        resolved = con.execute(
            "update recon.discrepancies d set resolved_at = ? where d.resolved_at is null "
            "and d.connection in (select connection from recon_scope) "
            f"and not exists (select 1 from recon_found f where {on})",
            [now],
        ).fetchone()[0]
    finally:
        con.unregister("recon_found")
        con.unregister("recon_scope")
        con.execute("drop table if exists recon_status")
    open_rows = con.execute(
        "select count(*) from recon.discrepancies where resolved_at is null "
        "and connection in (select unnest(?))",
        [list(connections)],
    ).fetchone()[0]
    return PersistCounts(
        new=counts.get("new", 0),
        seen_again=counts.get("again", 0),
        reopened=counts.get("reopened", 0),
        resolved=int(resolved),
        open=int(open_rows),
    )
