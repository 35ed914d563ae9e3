"""`xz plan` for people: the rows of `writeback.plan`, sorted and grouped per record, as a table, CSV or JSON.

Sorted by system, record (its id, or for a record still to be created the reference it will carry) and field,
so one record's changes sit together; every row keeps its policy and reason, and a skipped or rejected row
says why (`error`). The table shows the first `limit` rows and says how to see the rest; CSV and JSON always
hold every row, with every column of `writeback.plan`, so a script reads back exactly what the table holds.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from tabulate import tabulate

from xz_pipeline.core.store import Store

FORMATS = ("table", "csv", "json")
DEFAULT_LIMIT = 50
WIDTH = 40  # a value longer than this is cut in the table (CSV and JSON keep it whole)
ORDER = "system, coalesce(nullif(record, ''), ref), entity, op, field, change_id"


def plan_rows(store: Store, connections: Sequence[str]) -> list[dict]:
    """Every row of `writeback.plan` for these connections, in reading order (connection, system, record,
    field); [] when no plan was ever made."""
    if not connections or not store.path.exists():
        return []
    with store.read() as con:
        exists = con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'writeback' and table_name = 'plan'"
        ).fetchone()[0]
        if not exists:
            return []
        marks = ", ".join("?" * len(connections))
        cur = con.execute(
            f"select * from writeback.plan where connection in ({marks}) order by connection, {ORDER}",
            list(connections),
        )
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _plain(value: object) -> object:
    """JSON-ready: times ISO 8601, decimals as text (exact), the rest as DuckDB gave it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def as_json(rows: list[dict]) -> str:
    return json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], indent=1, ensure_ascii=False)


def as_csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if v is None else _plain(v) for k, v in r.items()})
    return out.getvalue()


def _cut(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= WIDTH else text[: WIDTH - 3] + "..."


def _record_label(r: dict) -> str:
    target = r["record"] or f"new, ref {r['ref']}"
    return f"{r['system']} {r['entity']} {target} ({r['op']})"


def as_table(rows: list[dict], connection: str, limit: int | None = DEFAULT_LIMIT) -> str:
    """One connection's plan: a summary line, then the rows grouped per record (the record named once)."""
    if not rows:
        return f"Write-back plan for {connection}: nothing to change"
    by_status = Counter(r["status"] for r in rows)
    head = (
        f"Write-back plan for {connection}: {len(rows)} change(s) ("
        + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        + f") on {len({_record_label(r) for r in rows})} record(s)"
    )
    shown = rows if limit is None else rows[:limit]
    table, last = [], None
    for r in shown:
        label = _record_label(r)
        why = r.get("error") if r["status"] not in ("planned", "applied") and r.get("error") else ""
        table.append((
            label if label != last else "", r["field"], _cut(r["old"]), _cut(r["new"]), r["policy"],
            r["status"] + (f": {_cut(why)}" if why else ""), _cut(r["reason"]),
        ))  # fmt: skip
        last = label
    text = (
        head + "\n" + tabulate(table, headers=["record", "field", "old", "new", "policy", "status", "reason"])
    )
    if len(rows) > len(shown):
        text += (
            f"\n... {len(rows) - len(shown)} more change(s) not shown: `xz plan --connection {connection} --all` "
            "lists every one (or --format csv|json)"
        )
    if by_status.get("rejected"):
        text += (
            f"\n{by_status['rejected']} change(s) the API refused are held back (their status says why): fix "
            f"the record there, then `xz apply --connection {connection} --retry-rejected` sends them once more"
        )
    return text
