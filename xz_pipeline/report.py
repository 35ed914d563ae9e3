"""The run report `xz demo` and `xz sync` print: what the mirror holds and what it cost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tabulate import tabulate

from xz_pipeline.core.store import Store, StoreBusy
from xz_pipeline.runner import RunOutcome
from xz_pipeline.writeback.plan import FIXED_BY

MIRROR_SCHEMAS = ("xero", "zoho")


def mirror_counts(store: Store) -> list[tuple[str, str, int]]:
    """(connection, table, rows) for every typed table of the mirror."""
    if not Path(store.path).exists():
        return []
    rows = []
    with store.read() as con:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where schema_name in ? and not table_name like '%_history' order by 1, 2",
            [list(MIRROR_SCHEMAS)],
        ).fetchall()
        for schema, table in tables:
            for connection, n in con.execute(
                f"select connection, count(*) from {schema}.{table} group by 1 order by 1"
            ).fetchall():
                rows.append((connection, f"{schema}.{table}", n))
    return rows


def open_discrepancies(store: Store) -> Counter:
    """Open discrepancies by kind (empty before reconciliation has run)."""
    if not Path(store.path).exists():
        return Counter()
    with store.read() as con:
        exists = con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'recon' and table_name = 'discrepancies'"
        ).fetchall()[0][0]
        if not exists:
            return Counter()
        rows = con.execute(
            "select kind, count(*) from recon.discrepancies where resolved_at is null group by 1"
        ).fetchall()
    return Counter(dict(rows))


def _why_open(kind: str, skipped: dict[str, str] | None = None) -> str:
    """Why a kind stays open: no write-back policy fixes it (and why), the reason its policy's changes were
    skipped (the org lacks a field it writes), or the policy that would fix it."""
    policy, reason = FIXED_BY.get(kind, (None, ""))
    if policy is None:
        return reason
    if skipped and policy in skipped:
        why = skipped[policy].removeprefix("not in this org: ").removeprefix(f"{policy} is skipped: ")
        return f"{policy} skipped: {why}"
    return f"{policy} (off, dry run or waiting)"


def skipped_policies(store: Store) -> dict[str, str]:
    """Each policy with plan rows skipped for a reason the org holds (a missing or unmapped field): one reason."""
    with store.read() as con:
        exists = con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'writeback' and table_name = 'plan'"
        ).fetchall()[0][0]
        if not exists:
            return {}
        rows = con.execute(
            "select policy, min(error) from writeback.plan where status = 'skipped' and error is not null "
            "group by 1"
        ).fetchall()
    return dict(rows)


def _status_note(o: RunOutcome) -> str:
    """Which steps failed (their reasons follow the report, one line each), or why the run ended early."""
    if o.failures:
        return ", ".join(step for step, _ in o.failures)[:120]
    if o.stopped:
        return "stopped on request"
    return "" if o.success else o.error[:120]


def _calls(outcome: RunOutcome, prefix: str) -> int:
    return sum(
        int(m.get("api_calls", 0) or 0) for name, m in outcome.metadata.items() if name.startswith(prefix)
    )


def render(
    outcomes: list[RunOutcome],
    store: Store,
    *,
    extra: dict[str, Counter] | None = None,
    discrepancies: dict[str, Counter] | None = None,
) -> str:
    """The report: runs, the mirror's tables, discrepancies by kind (columns given by the caller, default:
    the open ones now), write-back, and any extra counters. A mirror another process holds open gives
    one line saying so in place of what would be read from it."""
    try:
        return _render(outcomes, store, extra=extra, discrepancies=discrepancies)
    except StoreBusy as exc:
        runs = _render(outcomes, None, extra=extra, discrepancies=discrepancies)
        return f"{runs}\n\nMirror {store.path}: {_busy_line(exc)}"


def _busy_line(exc: StoreBusy) -> str:
    text = str(exc)
    holder = text.split("held open by ", 1)[-1] if "held open by " in text else text.split("held by ", 1)[-1]
    holder = holder.split(", outside", 1)[0].split(" (waited", 1)[0] if holder != text else "another process"
    return f"the mirror is busy (held by {holder}); its tables are not shown"


def _render(outcomes, store: Store | None, *, extra, discrepancies) -> str:
    lines = ["Runs"]
    lines.append(
        tabulate(
            [
                (
                    o.connection,
                    "ok" if o.success else "FAILED",
                    len(o.metadata),
                    _calls(o, "xero_"),
                    _calls(o, "zoho_"),
                    ", ".join(o.failed_checks) or "-",
                    _status_note(o),
                )
                for o in outcomes
            ],
            headers=[
                "connection",
                "status",
                "assets",
                "Xero calls",
                "Zoho calls",
                "checks failed",
                "steps failed",
            ],
        )
    )
    if store is None:
        return "\n".join(lines)
    lines.append("")
    lines.append(f"Mirror {store.path}")
    counts = mirror_counts(store)
    lines.append(tabulate(counts, headers=["connection", "table", "rows"]) if counts else "(empty)")
    columns = discrepancies or {"open": open_discrepancies(store)}
    kinds = sorted(set().union(*columns.values()))
    if kinds:
        lines.append("")
        lines.append("Discrepancies by kind")
        last = list(columns.values())[-1]
        skipped = skipped_policies(store)
        rows = [
            (k, *(c.get(k, 0) for c in columns.values()), _why_open(k, skipped) if last.get(k) else "")
            for k in kinds
        ]
        lines.append(tabulate(rows, headers=["kind", *columns, "why still open"]))
    writes = [
        (o.connection, o.metadata["writeback_apply"]) for o in outcomes if "writeback_apply" in o.metadata
    ]
    if writes:
        lines.append("")
        lines.append("Write-back")
        lines.append(
            tabulate(
                [
                    (
                        c,
                        "dry run" if m.get("dry_run") else "applied",
                        m.get("applied", 0),
                        m.get("rejected", 0),
                        m.get("waiting", 0),
                        m.get("write_calls", {}).get("books", 0),
                        m.get("write_calls", {}).get("crm", 0),
                    )
                    for c, m in writes
                ],
                headers=[
                    "connection",
                    "mode",
                    "changes",
                    "rejected",
                    "waiting",
                    "Xero write calls",
                    "Zoho write calls",
                ],
            )  # fmt: skip
        )
    for title, counter in (extra or {}).items():
        lines.append("")
        lines.append(title)
        lines.append(tabulate(sorted(counter.items()), headers=["", "count"]))
    return "\n".join(lines)
