"""The review queue: customer links too uncertain to act on, and people's answers to them.

`match_customers` marks a link `review` when its confidence is below `MATCH_THRESHOLD`: nothing is
written on its strength. A person looks at `pending()` (what `xz review` lists), then `decide()`s:
the answer is appended to `recon.link_decisions` (never updated in place, so who said what and when
stays on record) and every later run honours the latest answer per pair - an accepted pair is linked
with method `decision`, a rejected one is never linked again, whatever the evidence says.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

from xz_pipeline.core.store import Store

DECISIONS = ("accept", "reject")
DECISION_COLUMNS = ["connection", "books_id", "crm_id", "decision", "decided_at", "by"]
PENDING_COLUMNS = [
    "connection", "books_id", "crm_id", "books_name", "crm_name", "method", "confidence", "status", "evidence",
]  # fmt: skip

LINK_DECISIONS_DDL = """
create schema if not exists recon;
create table if not exists recon.link_decisions (
    connection varchar not null,
    books_id varchar not null,
    crm_id varchar not null,
    decision varchar not null,
    decided_at timestamptz not null,
    "by" varchar not null
);
"""


def _quoted(columns: list[str]) -> list[str]:
    return [f'"{c}"' for c in columns]  # `by` is an SQL keyword


def _exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()[0]
    return bool(found)


def pending(store: Store, connection: str | None = None) -> pd.DataFrame:
    """Links waiting for a decision, most confident first: `review` rows of `recon.customer_links`
    that nobody has answered yet, with both records' names so a person can judge them."""
    empty = pd.DataFrame(columns=PENDING_COLUMNS)
    if not store.path.exists():
        return empty
    with store.read() as con:
        if not _exists(con, "recon", "customer_links"):
            return empty
        names = {
            "books_name": ("books_customers", "customer_id"),
            "crm_name": ("crm_accounts", "account_id"),
        }
        selects, joins = [], []
        for alias, (view, id_col) in names.items():
            if _exists(con, "canonical", view):
                selects.append(f"{alias}_t.name as {alias}")
                key = "books_id" if alias == "books_name" else "crm_id"
                joins.append(
                    f"left join (select distinct on (connection, {id_col}) connection, {id_col}, name "
                    f"from canonical.{view}) {alias}_t "
                    f"on {alias}_t.connection = l.connection and {alias}_t.{id_col} = l.{key}"
                )
            else:
                selects.append(f"cast(null as varchar) as {alias}")
        answered = ""
        if _exists(con, "recon", "link_decisions"):
            answered = (
                "and not exists (select 1 from recon.link_decisions d where d.connection = l.connection "
                "and d.books_id = l.books_id and d.crm_id = l.crm_id)"
            )
        where, params = "", []
        if connection is not None:
            where, params = "and l.connection = ?", [connection]
        sql = (
            f"select l.connection, l.books_id, l.crm_id, {', '.join(selects)}, l.method, l.confidence, "
            f"l.status, l.evidence from recon.customer_links l {' '.join(joins)} "
            f"where l.status = 'review' {answered} {where} "
            "order by l.connection, l.confidence desc, l.books_id, l.crm_id"
        )
        return con.execute(sql, params).df()[PENDING_COLUMNS]


def _check_records(con: duckdb.DuckDBPyConnection, connection: str, books_id: str, crm_id: str) -> None:
    """Both records must exist in the mirror (when it has the views): a typo must not become a link."""
    for view, id_col, value in (
        ("books_customers", "customer_id", books_id),
        ("crm_accounts", "account_id", crm_id),
    ):
        if not _exists(con, "canonical", view):
            continue
        found = con.execute(
            f"select count(*) from canonical.{view} where connection = ? and {id_col} = ?",
            [connection, value],
        ).fetchone()[0]
        if not found:
            raise ValueError(f"no record {value!r} in canonical.{view} of connection {connection!r}")


def decide(
    store: Store,
    connection: str,
    books_id: str,
    crm_id: str,
    decision: str,
    by: str,
    *,
    at: datetime | None = None,
) -> None:
    """Record a person's answer for one (books customer, CRM account) pair in `recon.link_decisions`.

    `decision` is 'accept' (link them: write-back may act on it) or 'reject' (never link them);
    `by` says who decided. A later answer for the same pair supersedes an earlier one.
    """
    answer = str(decision).strip().lower()
    if answer not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    values = {"connection": connection, "books_id": books_id, "crm_id": crm_id, "by": by}
    for name, value in values.items():
        if value is None or not str(value).strip():
            raise ValueError(f"{name} is required")
    when = at or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("at: a naive datetime has no known zone; give an aware one")
    with store.write() as con:
        con.execute(LINK_DECISIONS_DDL)
        _check_records(con, connection, books_id, crm_id)
        con.execute(
            'insert into recon.link_decisions (connection, books_id, crm_id, decision, decided_at, "by") '
            "values (?, ?, ?, ?, ?, ?)",
            [connection, books_id, crm_id, answer, when.astimezone(UTC), str(by).strip()],
        )


def decisions(store: Store, connection: str | None = None) -> pd.DataFrame:
    """Every recorded answer, oldest first (the latest per pair is the one honoured)."""
    if not store.path.exists():
        return pd.DataFrame(columns=DECISION_COLUMNS)
    with store.read() as con:
        if not _exists(con, "recon", "link_decisions"):
            return pd.DataFrame(columns=DECISION_COLUMNS)
        where, params = ("where connection = ?", [connection]) if connection is not None else ("", [])
        return con.execute(
            f"select {', '.join(_quoted(DECISION_COLUMNS))} from recon.link_decisions {where} order by decided_at",
            params,
        ).df()
