"""Plots where people look: Markdown tables with bars in the `analytics_snapshot` asset's metadata, which the
Dagster UI renders on the asset's page after every published run.

Four of them, each read from the mirror: what customers owe by how long past due (`analytics.ar_aging`), open
discrepancies per kind over time (a sparkline per kind), API calls per day against each vendor's day budget,
and how long a disagreement took to be corrected. A plot over time needs history the mirror would otherwise
overwrite, so each publish records the open counts per connection and kind in `meta.discrepancy_history`; the
calls per run and vendor come from `meta.api_calls` (runs.py, written as each run ends, so a run's own calls
appear from the next run on).
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import duckdb

from xz_pipeline import settings
from xz_pipeline.core.store import Store

HISTORY_DDL = """
create table if not exists meta.discrepancy_history (  -- open discrepancies per kind at each publish (plots.py)
    connection varchar not null,
    kind varchar not null,
    open_count integer not null,
    recorded_at timestamptz not null,
    run_id varchar
)"""
POINTS = 24  # the sparkline's points: the last publishes
DAYS = 7  # days of API calls shown
BLOCKS = " ▏▎▍▌▋▊▉█"
SPARKS = "▁▂▃▄▅▆▇█"
BUCKETS = (("current", "not yet due"), ("days_1_30", "1-30 days late"), ("days_31_60", "31-60 days late"),
           ("days_61_90", "61-90 days late"), ("days_over_90", "over 90 days late"))  # fmt: skip


def bar(value: float, peak: float, width: int = 20) -> str:
    """A horizontal bar of `value` against `peak`, in eighths of a character (Markdown shows it as text)."""
    if peak <= 0 or value <= 0:
        return ""
    eighths = round(min(value / peak, 1.0) * width * 8)
    return "█" * (eighths // 8) + (BLOCKS[eighths % 8] if eighths % 8 else "") or "▏"


def spark(values: list[int]) -> str:
    """A sparkline of counts, oldest first; all equal draws a flat low line."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    return "".join(SPARKS[0 if span == 0 else round((v - low) / span * (len(SPARKS) - 1))] for v in values)


def _md(headers: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(headers) + " |\n|" + "|".join(" --- " for _ in headers) + "|\n"
    return head + "\n".join("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)


def exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from (select schema_name, table_name as name from duckdb_tables() union all "
            "select schema_name, view_name from duckdb_views()) where schema_name = ? and name = ?",
            [schema, name],
        ).fetchall()[0][0]
    )


def _money(v) -> str:
    return f"{float(v):,.2f}"


# -- history ------------------------------------------------------------------------------------------


def record_history(con: duckdb.DuckDBPyConnection, run_id: str | None, now: datetime | None = None) -> int:
    """One row per connection and kind with the open count now; a kind that was open before and is not
    now gets a 0 (its line comes down instead of stopping). Returns the rows written."""
    con.execute("create schema if not exists meta")
    con.execute(HISTORY_DDL)
    if not exists(con, "recon", "discrepancies"):
        return 0
    now = now or datetime.now(UTC)
    rows = con.execute(
        """
        with now_open as (
            select connection, kind, count(*) as n from recon.discrepancies where resolved_at is null group by 1, 2),
        known as (select distinct connection, kind from meta.discrepancy_history)
        select coalesce(o.connection, k.connection), coalesce(o.kind, k.kind), coalesce(o.n, 0)
        from now_open o full join known k on k.connection = o.connection and k.kind = o.kind"""
    ).fetchall()
    con.executemany(
        "insert into meta.discrepancy_history values (?, ?, ?, ?, ?)", [(*r, now, run_id) for r in rows]
    )
    return len(rows)


# -- the plots ----------------------------------------------------------------------------------------


def ar_aging(con: duckdb.DuckDBPyConnection) -> str:
    """What the books' customers owe, per connection and currency, by how long past due."""
    if not exists(con, "analytics", "ar_aging"):
        return "(no reconciliation yet: `analytics.ar_aging` appears after the first one)"
    sums = ", ".join(f"sum({col})" for col, _ in BUCKETS)
    totals = con.execute(
        f"select connection, coalesce(currency, '?'), {sums} from analytics.ar_aging group by 1, 2 order by 1, 2"
    ).fetchall()
    if not totals:
        return "(nothing owed: no open sales invoice with an amount due)"
    peak = max(float(v) for row in totals for v in row[2:])
    rows = [
        [connection, currency, label, _money(value), bar(float(value), peak)]
        for connection, currency, *values in totals
        for (_, label), value in zip(BUCKETS, values, strict=True)
    ]
    return _md(["connection", "currency", "past due", "amount due", ""], rows)


def discrepancy_trend(con: duckdb.DuckDBPyConnection, points: int = POINTS) -> str:
    """Open discrepancies per kind over the last `points` publishes: a sparkline (oldest to newest)."""
    if not exists(con, "meta", "discrepancy_history"):
        return "(no history yet)"
    rows = con.execute(
        """
        with stamps as (
            select connection, recorded_at,
                   dense_rank() over (partition by connection order by recorded_at desc) as age
            from (select distinct connection, recorded_at from meta.discrepancy_history))
        select h.connection, h.kind, list(h.open_count order by h.recorded_at) as counts,
               min(h.recorded_at), max(h.recorded_at)
        from meta.discrepancy_history h join stamps s using (connection, recorded_at)
        where s.age <= ? group by 1, 2 order by 1, 2""",
        [points],
    ).fetchall()
    if not rows:
        return "(no history yet: every publish adds a point)"
    out = [
        [c, kind, counts[-1], spark(counts), min(counts), max(counts), len(counts), f"{first:%Y-%m-%d %H:%M}"]
        for c, kind, counts, first, _last in rows
    ]
    return _md(["connection", "kind", "open now", "over time", "min", "max", "points", "since (UTC)"], out)


def _budget(vendor: str, calls: int, left: int | None) -> tuple[int | None, str]:
    """A vendor's day budget: Xero's configured limit (XZ_XERO_DAY_LIMIT); otherwise what the vendor said
    was left plus what was spent, a lower bound (Zoho counts credits, per edition and licences)."""
    if vendor == "xero":
        limit = settings.xero_day_limit()
        return limit, f"{limit:,}"
    if left is None:
        return None, "not reported"
    return calls + left, f"≥ {calls + left:,}"


def api_calls(con: duckdb.DuckDBPyConnection, days: int = DAYS) -> str:
    """API calls per day and vendor over the last `days` days (UTC), against the vendor's day budget."""
    if not exists(con, "meta", "api_calls"):
        return "(no run recorded yet: each run's calls are counted when it ends)"
    rows = con.execute(
        """
        select connection, cast(finished_at at time zone 'UTC' as date) as day, vendor, sum(calls),
               min(day_budget_left)
        from meta.api_calls
        where finished_at >= current_date - cast(? as integer)
        group by all order by 1, 2 desc, 3""",
        [days - 1],
    ).fetchall()
    if not rows:
        return f"(no API call in the last {days} days)"
    out = []
    for connection, day, vendor, calls, left in rows:
        limit, shown = _budget(vendor, int(calls), left)
        share = f"{calls / limit:.1%}" if limit else "?"
        out.append(
            [connection, f"{day:%Y-%m-%d}", vendor, f"{int(calls):,}", shown, share, bar(calls, limit or 0)]
        )
    return _md(["connection", "day (UTC)", "vendor", "calls", "day budget", "share", ""], out)


def correction_latency(con: duckdb.DuckDBPyConnection) -> str:
    """How long disagreements stayed open: from the reconciliation that first saw one (the run after the
    change) to the one that saw it corrected, per kind, over those corrected in the last 30 days."""
    if not exists(con, "recon", "discrepancies"):
        return "(no reconciliation yet)"
    rows = con.execute(
        """
        select connection, kind, count(*),
               quantile_cont(epoch(resolved_at - first_seen), 0.5) / 60,
               quantile_cont(epoch(resolved_at - first_seen), 0.95) / 60,
               max(epoch(resolved_at - first_seen)) / 60
        from recon.discrepancies
        where resolved_at is not null and resolved_at >= now() - interval 30 day
        group by 1, 2 order by 1, 2"""
    ).fetchall()
    if not rows:
        return "(nothing corrected in the last 30 days)"
    peak = max(r[5] for r in rows)
    out = [
        [c, kind, n, _minutes(p50), _minutes(p95), _minutes(worst), bar(p50, peak)]
        for c, kind, n, p50, p95, worst in rows
    ]
    return _md(["connection", "kind", "corrected", "p50", "p95", "max", "p50 against the max"], out)


def _minutes(m: float) -> str:
    if m < 1:
        return f"{m * 60:.0f} s"
    if m < 120:
        return f"{m:.1f} min"
    return f"{m / 60:.1f} h"


def metadata(store: Store) -> dict[str, dg.MetadataValue]:
    """The four plots as Markdown metadata (and the total open now as a number the UI plots by itself)."""
    with store.read() as con:
        open_now = (
            con.execute("select count(*) from recon.discrepancies where resolved_at is null").fetchall()[0][0]
            if exists(con, "recon", "discrepancies")
            else 0
        )
        return {
            "ar_aging": dg.MetadataValue.md(ar_aging(con)),
            "open_discrepancies_over_time": dg.MetadataValue.md(discrepancy_trend(con)),
            "api_calls_per_day": dg.MetadataValue.md(api_calls(con)),
            "change_to_correction": dg.MetadataValue.md(correction_latency(con)),
            "open_discrepancies": dg.MetadataValue.int(int(open_now)),
        }


def record(store: Store, run_id: str | None) -> int:
    """Add this publish's point to `meta.discrepancy_history` (before the snapshot is copied, so it has it)."""
    with store.write() as con:
        return record_history(con, run_id)
