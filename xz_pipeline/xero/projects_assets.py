"""Xero Projects mirrored into DuckDB: one asset per connection, `xero_projects`, writing `xero.projects`,
`xero.project_tasks`, `xero.time_entries` and `xero.project_users` (each with its `_history`).

The Projects API has no modified-time filter, and its calls come out of the organisation's 5,000 a day shared
with the accounting API. So each run reads `GET /Projects?states=INPROGRESS` (one call per 500 projects) and
re-reads a project's tasks and time (two calls) only when its totals, minutes or status differ from the mirror's;
a project the mirror holds in progress that the list no longer shows (closed since) is read by id. Once a day
(`XZ_FULL_SWEEP_HOURS`, as the accounting entities) every project is read with its tasks and time, so what no
total shows (a description edited) is caught within a day. A project whose re-read the day budget cannot pay
for keeps its old row, so the next run sees it changed and reads it then.

A connection whose grant lacks the `projects.read` scope: the asset does nothing for it and says why.

(No `from __future__ import annotations` here: Dagster inspects the `context` annotation.)
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from xz_pipeline import settings
from xz_pipeline.core.errors import ApiError, RateLimitExhausted
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import ensure_tables, finish_full_sweep, read_state, write_entity
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.store import MergeCounts
from xz_pipeline.core.sync import DAY_LIMITS, DayBudgetGate, MirrorConfig, extract_asset
from xz_pipeline.xero.projects_client import ProjectsClient, lacks_scope
from xz_pipeline.xero.projects_tables import PROJECT_TASKS, PROJECT_USERS, PROJECTS, TIME_ENTRIES
from xz_pipeline.xero.resources import XeroResource

# The columns whose change means a project's tasks or time changed (Xero derives them from both).
SIGNATURE = ("status", "minutes_logged", "minutes_to_be_invoiced", "total_task_amount", "task_amount_invoiced",
             "total_expense_amount", "total_invoiced", "total_to_be_invoiced", "estimate")  # fmt: skip
CALLS_PER_PROJECT = 2  # its tasks and its time (each up to 500 a page)
NO_SCOPE = (
    "the Xero grant lacks the projects.read scope: Projects not mirrored (reconnect with `xz auth xero` "
    "to grant it)"
)


def projects_calls(snapshot: dict) -> int:
    """Calls to the Projects API in a meter's snapshot (the token and tenant calls are not Projects calls)."""
    return sum(
        e.get("calls", 0)
        for name, e in snapshot.get("endpoints", {}).items()
        if name.startswith("GET projects/")
    )


def _signature(values: dict) -> tuple:
    return tuple(values.get(c) for c in SIGNATURE)


def _typed_signature(payload: dict) -> tuple:
    cols = {c.name: c for c in PROJECTS.cols}
    return tuple(cols[name].get(payload) for name in SIGNATURE)


def _known(store, connection: str) -> dict[str, tuple]:
    """The mirror's signature of each project of this connection (empty before the first read)."""
    with store.write() as con:
        ensure_tables(store, con, PROJECTS)
        rows = con.execute(
            f"select project_id, {', '.join(SIGNATURE)} from xero.projects where connection = ?", [connection]
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def _affordable(meter: CallMeter, wanted: int) -> int:
    """How many projects' re-reads the day budget pays for, above the reserve write-back needs."""
    day = meter.day_budget()
    if day is None:
        return wanted
    spare = day.remaining - DayBudgetGate.reserve_for(day)
    return max(0, min(wanted, spare // CALLS_PER_PROJECT))


def mirror_projects(
    client: ProjectsClient, store, connection: str, *, full: bool, run_id: str | None, meter: CallMeter
) -> dict:
    """Read and write one connection's Projects (see the module docstring); returns the run's figures."""
    listed = list(client.projects(states=None if full else "INPROGRESS"))
    known = _known(store, connection)
    if not full:
        seen = {p["projectId"] for p in listed}
        gone = [pid for pid, sig in known.items() if sig[0] == "INPROGRESS" and pid not in seen]
        for start in range(0, len(gone), 50):
            listed += list(client.projects(ids=gone[start : start + 50]))
    changed = [p for p in listed if full or _typed_signature(p) != known.get(p["projectId"])]
    paid = _affordable(meter, len(changed))
    reread, deferred = changed[:paid], changed[paid:]
    deferred_ids = {p["projectId"] for p in deferred}
    tasks: list[dict] = []
    entries: list[dict] = []
    spent = False
    for n, p in enumerate(reread):
        try:
            project_tasks = list(client.tasks(p["projectId"]))
            project_time = list(client.time_entries(p["projectId"]))
        except RateLimitExhausted as exc:  # the day's calls are spent: the rest waits for the next run
            if exc.limit not in DAY_LIMITS:
                raise
            deferred, reread = reread[n:] + deferred, reread[:n]
            deferred_ids, spent = {d["projectId"] for d in deferred}, True
            break
        tasks += project_tasks
        entries += project_time
    users = list(client.users()) if reread and not spent else []
    now = datetime.now(UTC)
    written = [p for p in listed if p["projectId"] not in deferred_ids]
    complete = full and not deferred
    result = write_entity(store, PROJECTS, connection=connection, payloads=written, fetched_at=now, run_id=run_id,
                          full=complete)  # fmt: skip
    counts = {"projects": result.counts}
    parents = pd.DataFrame(
        {"connection": [connection] * len(reread), "project_id": [p["projectId"] for p in reread]}
    )
    for spec, payloads, key in ((PROJECT_TASKS, tasks, "task_id"), (TIME_ENTRIES, entries, "time_entry_id")):
        if not (reread or full):
            # Tasks and time come only with re-read projects: none re-read, nothing to land or remove (two
            # transactions an idle run otherwise); a full read writes them even empty (it makes their tables).
            counts[spec.table], counts[f"{spec.table}_deleted"] = MergeCounts(), 0
            continue
        res = write_entity(
            store, spec, connection=connection, payloads=payloads, fetched_at=now, run_id=run_id
        )
        present = pd.DataFrame({"connection": [connection] * len(payloads),
                                key: [spec.record_id(x) for x in payloads]})  # fmt: skip
        with store.write() as con:  # a task or entry deleted in a re-read project leaves the mirror
            gone_rows = store.delete_missing(con, spec.schema, spec.table, ["connection", key], present=present,
                                             parents=parents, valid_from=now)  # fmt: skip
        counts[spec.table] = res.counts
        counts[f"{spec.table}_deleted"] = gone_rows
    if users:
        write_entity(store, PROJECT_USERS, connection=connection, payloads=users, fetched_at=now, run_id=run_id,
                     full=True)  # fmt: skip
    if complete:
        finish_full_sweep(
            store, PROJECTS, connection=connection, started=now, fetched_at=now, detect_deletions=False
        )
    return {
        "listed": len(listed),
        "reread": len(reread),
        "deferred": len(deferred),
        "tasks": len(tasks),
        "time_entries": len(entries),
        "counts": counts,
    }


@extract_asset(
    "xero_projects",
    "xero",
    "Xero Projects as `xero.projects`, `xero.project_tasks`, `xero.time_entries` and `xero.project_users` "
    "(+ `_history`): totals, estimates, tasks with rates and charge types, time by user and status. In-progress "
    "projects each run, a project's tasks and time only when its totals changed, everything daily.",
)
def xero_projects(
    context: dg.AssetExecutionContext, config: MirrorConfig, xero: XeroResource, mirror: MirrorResource
) -> dg.MaterializeResult:
    connection = context.partition_key
    if config.targeted:
        why = "Projects have no webhooks: a targeted run reads none (the next scheduled run does)"
        context.log.info(why)
        return dg.MaterializeResult(metadata={"skipped": why, "api_calls": 0})
    meter = CallMeter()
    store = mirror.store(connection)
    with mirror.step_session(context, connection), xero.client(connection, meter=meter) as client:
        state = read_state(store, connection, "xero", PROJECTS.entity)
        now = datetime.now(UTC)
        every = timedelta(hours=settings.full_sweep_hours())
        full = config.full_sweep or state.last_full is None or now - state.last_full >= every
        try:
            figures = mirror_projects(ProjectsClient(client), store, connection, full=full, run_id=context.run_id,
                                      meter=meter)  # fmt: skip
        except ApiError as exc:
            if not lacks_scope(exc):
                raise
            context.log.info(f"xero_projects for {connection}: {NO_SCOPE}")
            return dg.MaterializeResult(
                metadata={"skipped": NO_SCOPE, "api_calls": meter.snapshot()["calls"], "projects_calls": 0}
            )
    with store.read() as con:
        rows = con.execute(
            "select count(*) from xero.projects where connection = ?", [connection]
        ).fetchone()[0]
    calls = meter.snapshot()
    counts = figures.pop("counts")
    mode = "full read" if full else "in-progress projects, changed ones re-read"
    context.log.info(
        f"xero Projects for {connection}: {mode}; listed {figures['listed']}, re-read {figures['reread']}, "
        f"deferred {figures['deferred']}, api calls {calls['calls']}"
    )
    meta = {
        "dagster/row_count": rows,
        "mode": mode,
        **figures,
        "api_calls": calls["calls"],
        "projects_calls": projects_calls(calls),
        **{
            f"{table} inserted/updated/deleted": f"{c.inserted}/{c.updated}/{c.deleted + counts.get(f'{table}_deleted', 0)}"
            for table, c in counts.items()
            if not isinstance(c, int)
        },
    }
    day = meter.day_budget()
    if day is not None:
        meta["day_budget_left"] = day.remaining
    return dg.MaterializeResult(metadata=meta)


PROJECTS_ASSETS = [xero_projects]
