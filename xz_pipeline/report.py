"""The run report `xz demo` and `xz sync` print: what the mirror holds and what it cost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from xz_pipeline.core.store import Store, StoreBusy
from xz_pipeline.runner import RunOutcome
from xz_pipeline.writeback.plan import FIXED_BY
from xz_pipeline.writeback.policies import load_policies

MIRROR_SCHEMAS = ("xero", "quickbooks", "zoho", "salesforce")

# One connection's mirror, or several (one file per connection): every reader here takes either.
Mirror = Store | Sequence[Store]


def _stores(mirror: Mirror) -> list[Store]:
    """The mirrors that exist, in order."""
    stores = [mirror] if isinstance(mirror, Store) else list(mirror)
    return [s for s in stores if Path(s.path).exists()]


def _where(mirror: Mirror) -> str:
    """How the report names the mirror: its file, or the folder of the connections' files."""
    if isinstance(mirror, Store):
        return str(mirror.path)
    stores = list(mirror)
    if len(stores) == 1:
        return str(stores[0].path)
    folder = stores[0].path.parent if stores else "(none yet)"
    return f"{folder} ({len(stores)} connection{'s' if len(stores) != 1 else ''})"


def mirror_counts(mirror: Mirror) -> list[tuple[str, str, int]]:
    """(connection, table, rows) for every typed table of the mirror."""
    rows = []
    for store in _stores(mirror):
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
    return sorted(rows, key=lambda r: (r[1], r[0]))  # by table, then connection


def _has_table(con, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?", [schema, table]
        ).fetchall()[0][0]
    )


def _discrepancy_counts(mirror: Mirror, where: str) -> Counter:
    """(connection, kind) -> rows of recon.discrepancies matching `where` (empty before reconciliation)."""
    out: Counter = Counter()
    for store in _stores(mirror):
        with store.read() as con:
            if not _has_table(con, "recon", "discrepancies"):
                continue
            rows = con.execute(
                f"select connection, kind, count(*) from recon.discrepancies where {where} group by 1, 2"
            ).fetchall()
        out.update({(c, k): n for c, k, n in rows})
    return out


def open_by_connection(store: Mirror) -> Counter:
    """Open discrepancies per (connection, kind): what `recon.discrepancies` holds unresolved now."""
    return _discrepancy_counts(store, "resolved_at is null")


def found_by_connection(store: Mirror) -> Counter:
    """Every discrepancy reconciliation ever recorded, per (connection, kind), open or resolved since."""
    return _discrepancy_counts(store, "true")


def open_discrepancies(store: Mirror) -> Counter:
    """Open discrepancies by kind, every connection together (empty before reconciliation has run)."""
    out: Counter = Counter()
    for (_, kind), n in open_by_connection(store).items():
        out[kind] += n
    return out


@dataclass
class PolicyState:
    """What a connection's plan holds for one policy: changes not applied, by status, and one reason each."""

    counts: Counter = field(default_factory=Counter)
    errors: dict[str, str] = field(default_factory=dict)


def plan_states(mirror: Mirror) -> dict[tuple[str, str], PolicyState]:
    """(connection, policy) -> the plan's changes still to do (planned, rejected, refused, skipped)."""
    out: dict[tuple[str, str], PolicyState] = {}
    rows = []
    for store in _stores(mirror):
        with store.read() as con:
            if _has_table(con, "writeback", "plan"):
                rows += con.execute(
                    "select connection, policy, status, count(*), min(error) from writeback.plan "
                    "where status in ('planned', 'rejected', 'refused', 'skipped') group by 1, 2, 3"
                ).fetchall()
    for connection, policy, status, n, error in rows:
        state = out.setdefault((connection, policy), PolicyState())
        state.counts[status] = n
        if error:
            state.errors[status] = str(error)
    return out


def skipped_policies(store: Mirror) -> dict[str, str]:
    """Each policy with plan rows skipped for a reason the org holds (a missing or unmapped field): one reason."""
    return {
        policy: state.errors["skipped"]
        for (_, policy), state in sorted(plan_states(store).items())
        if "skipped" in state.errors
    }


@dataclass
class RunState:
    """How this command's run of a connection treated write-back: what explains a kind still open."""

    dry_run: bool = False  # the apply step ran without writing
    blocked: str = ""  # the guard (or a failed step) held write-back: why
    ran: bool = False  # write-back's apply step ran at all


def run_states(outcomes: list[RunOutcome]) -> dict[str, RunState]:
    """Per connection, its last run's write-back (a demo's second cycle speaks for the connection)."""
    states: dict[str, RunState] = {}
    for o in outcomes:
        m = o.metadata.get("writeback_apply")
        blocked = [c for c in o.failed_checks if ":writeback_guard" in c]
        blocked += [step for step, _ in o.failures if step.startswith("writeback_apply")]
        states[o.connection] = RunState(
            dry_run=bool(m and m.get("dry_run")),
            blocked=next((line for step, line in o.failures if "writeback" in step), blocked[0])
            if blocked
            else "",
            ran=m is not None,
        )
    return states


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def why_open(
    connection: str,
    kind: str,
    plans: dict[tuple[str, str], PolicyState] | None = None,
    run: RunState | None = None,
) -> str:
    """Why a kind stays open on a connection: no write-back policy fixes it (and why), its policy is off,
    its changes were skipped, rejected or refused (with the reason), held by the guard, not written by a dry
    run, or planned and waiting; else its policy planned nothing for these records."""
    policy, reason = FIXED_BY.get(kind, (None, ""))
    if policy is None:
        return reason or "no write-back policy fixes this kind"
    try:
        policies = load_policies(connection)
    except Exception:  # a connection no longer configured: its policies are unknown, the plan still speaks
        policies = None
    if policies is not None and not policies.active(policy):
        return f"{policy} is off for this connection"
    state = (plans or {}).get((connection, policy), PolicyState())
    counts, errors = state.counts, state.errors
    if counts["skipped"]:
        why = (
            errors.get("skipped", "").removeprefix("not in this org: ").removeprefix(f"{policy} is skipped: ")
        )
        return f"{policy} skipped: {_short(why)}"
    if run is not None and run.blocked and (counts["planned"] or counts["rejected"]):
        return f"{policy}: {counts['planned'] + counts['rejected']} change(s) held: {_short(run.blocked)}"
    if counts["rejected"]:
        return f"{policy}: {counts['rejected']} change(s) rejected: {_short(errors.get('rejected', ''))}"
    if counts["refused"]:
        return f"{policy}: {counts['refused']} change(s) refused: {_short(errors.get('refused', ''))}"
    if counts["planned"]:
        if run is not None and run.dry_run:
            return (
                f"{policy}: {counts['planned']} change(s) planned, not written (dry run; --apply writes them)"
            )
        return f"{policy}: {counts['planned']} change(s) planned, waiting for a write-back with --apply"
    return f"{policy} plans no change for them (the records lack what it needs: see `xz plan`)"


def _status_note(o: RunOutcome) -> str:
    """Which steps failed (their reasons follow the report, one line each), or why the run ended early."""
    if o.failures:
        return ", ".join(step for step, _ in o.failures)[:120]
    if o.stopped:
        return "stopped on request"
    return "" if o.success else o.error[:120]


def _calls(outcome: RunOutcome, prefix: str | tuple[str, ...]) -> int:
    return sum(
        int(m.get("api_calls", 0) or 0) for name, m in outcome.metadata.items() if name.startswith(prefix)
    )


BOOKS_VENDORS = {"xero_": "Xero", "quickbooks_": "QuickBooks"}  # asset name prefix -> the vendor's name
CRM_VENDORS = {"zoho_": "Zoho", "salesforce_": "Salesforce"}


def _vendor_label(outcomes: list[RunOutcome], vendors: dict[str, str], role: str) -> str:
    """The vendor whose assets ran (not skipped as another pairing's) in these runs, or the role when
    several did (or none: a run of later stages only)."""
    ran = {label for o in outcomes for name, m in o.metadata.items() for prefix, label in vendors.items()
           if name.startswith(prefix) and isinstance(m, dict) and "skipped" not in m}  # fmt: skip
    return ran.pop() if len(ran) == 1 else role


def render(
    outcomes: list[RunOutcome],
    store: Mirror,
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
        return f"{runs}\n\nMirror {_where(store)}: {_busy_line(exc)}"


def _busy_line(exc: StoreBusy) -> str:
    text = str(exc)
    holder = text.split("held open by ", 1)[-1] if "held open by " in text else text.split("held by ", 1)[-1]
    holder = holder.split(", outside", 1)[0].split(" (waited", 1)[0] if holder != text else "another process"
    return f"the mirror is busy (held by {holder}); its tables are not shown"


def all_runs(outcomes: list[RunOutcome]) -> list[RunOutcome]:
    """The runs in order, a reconciliation after write-back once, after the last run it followed."""
    out: list[RunOutcome] = []
    for i, o in enumerate(outcomes):
        out.append(o)
        after = o.after_writeback
        if after is not None and not any(x.after_writeback is after for x in outcomes[i + 1 :]):
            out.append(after)
    return out


def _render(outcomes, store: Mirror | None, *, extra, discrepancies) -> str:
    books = _vendor_label(outcomes, BOOKS_VENDORS, "Books")
    crm = _vendor_label(outcomes, CRM_VENDORS, "CRM")
    lines = ["Runs"]
    lines.append(
        tabulate(
            [
                (
                    o.connection,
                    "ok" if o.success else "FAILED",
                    len(o.metadata),
                    _calls(o, tuple(BOOKS_VENDORS)),
                    _calls(o, tuple(CRM_VENDORS)),
                    ", ".join(o.failed_checks) or "-",
                    _status_note(o),
                )
                for o in all_runs(outcomes)
            ],
            headers=[
                "connection",
                "status",
                "assets",
                f"{books} calls",
                f"{crm} calls",
                "checks failed",
                "steps failed",
            ],
        )
    )
    if store is None:
        return "\n".join(lines)
    lines.append("")
    lines.append(f"Mirror {_where(store)}")
    counts = mirror_counts(store)
    lines.append(tabulate(counts, headers=["connection", "table", "rows"]) if counts else "(empty)")
    lines += _discrepancy_lines(outcomes, store, discrepancies)
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
                        m.get("would_apply", 0) if m.get("dry_run") else m.get("applied", 0),
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
                    f"{books} write calls",
                    f"{crm} write calls",
                ],
            )  # fmt: skip
        )
    for title, counter in (extra or {}).items():
        lines.append("")
        lines.append(title)
        lines.append(tabulate(sorted(counter.items()), headers=["", "count"]))
    return "\n".join(lines)


def _discrepancy_lines(outcomes: list[RunOutcome], store: Mirror, discrepancies) -> list[str]:
    """Discrepancies per connection and kind: the caller's columns (default: open now, read from
    `recon.discrepancies` after every run of this command, the reconciliation after write-back included),
    and why each kind still open is open."""
    now = open_by_connection(store)
    columns = {**(discrepancies or {}), "open now": now}
    keys = sorted(set().union(*columns.values()))
    if not keys:
        return []
    plans, runs = plan_states(store), run_states(outcomes)
    rows = [
        (c, k, *(col.get((c, k), 0) for col in columns.values()), why_open(c, k, plans, runs.get(c)) if now.get((c, k)) else "")
        for c, k in keys
    ]  # fmt: skip
    wrote = any(o.after_writeback is not None for o in outcomes)
    applied = any(r.ran and not r.dry_run for r in runs.values())
    note = (
        " (reconciled again after write-back wrote and read back its changes)"
        if wrote
        else " (write-back wrote nothing this run)"
        if applied
        else ""
    )
    return [
        "",
        f"Discrepancies by connection and kind{note}",
        tabulate(rows, headers=["connection", "kind", *columns, "why still open"]),
    ]
