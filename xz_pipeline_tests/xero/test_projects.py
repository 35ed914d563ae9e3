"""`xero_projects` materialised in process against the emulator: the first read, an idle run of one call, a
project whose time was invoiced re-read alone, a closed project read by id, a daily full read, a grant without
the projects scope skipped with the reason; then the rules find the planted project kinds in what it mirrored."""

from __future__ import annotations

import dagster as dg
import pytest

from xz_pipeline import settings
from xz_pipeline.core.canonical import CANONICAL_VIEWS, empty_select
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.reconcile.assets import reconcile
from xz_pipeline.reconcile.persist import read_canonical
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.sandbox.xero import XeroLimits
from xz_pipeline.xero.projects_assets import NO_SCOPE, xero_projects
from xz_pipeline.xero.projects_mapping import PROJECT_VIEWS
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.reconcile.world_frames import frames, score
from xz_pipeline_tests.sandbox_env import export_sandbox

CONNECTION = "sandbox"
P = "/projects.xro/2.0"


@pytest.fixture(scope="module")
def sandbox():
    # The real 60 calls a minute would pace these back-to-back runs by a minute each; the day budget is real.
    with SandboxServer(seed=7, size="tiny", xero_limits=XeroLimits(per_minute=100_000)) as sb:
        yield sb


def _run(instance, **config) -> dict:
    result = dg.materialize(
        [xero_projects],
        partition_key=CONNECTION,
        instance=instance,
        resources={"xero": XeroResource(), "mirror": MirrorResource()},
        run_config={"ops": {"xero_projects": {"config": config}}} if config else None,
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("xero_projects")
    return {k: v.value for k, v in mat.metadata.items()}


def _calls(sandbox, since: int) -> list:
    return [r for r in sandbox.xero.received[since:] if r.path.startswith(P)]


def _rows(sql: str, *args) -> list[tuple]:
    with Store(settings.mirror_path(CONNECTION)).read() as con:
        return con.execute(sql, list(args)).fetchall()


def test_reads_in_progress_projects_and_rereads_only_what_changed(sandbox, monkeypatch):
    export_sandbox(monkeypatch, sandbox, CONNECTION)
    tenant = sandbox.env(0)["XERO_TENANT_ID"]
    state = sandbox.xero.projects.state(tenant)
    projects = list(state.projects.values())
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        seen = len(sandbox.xero.received)
        first = _run(instance)
        assert first["mode"] == "full read" and first["reread"] == len(projects)
        assert first["projects_calls"] == len(_calls(sandbox, seen)) == 1 + 2 * len(projects) + 1
        assert _rows("select count(*) from xero.projects")[0][0] == len(projects)
        entries = sum(len(p.time) for p in projects)
        assert _rows("select count(*) from xero.time_entries")[0][0] == entries
        assert _rows("select count(*) from xero.project_tasks")[0][0] == sum(len(p.tasks) for p in projects)
        assert _rows("select count(*) from xero.project_users")[0][0] == len(state.users)

        # Locking time (being invoiced) moves no total: an idle run of one call; the daily full read sees it.
        target = next(
            p
            for p in projects
            if p.status == "INPROGRESS" and any(e.status == "ACTIVE" for e in p.time.values())
        )
        active = [e.time_entry_id for e in target.time.values() if e.status == "ACTIVE"]
        sandbox.xero.projects.set_time_status(tenant, target.project_id, active, "LOCKED")
        seen = len(sandbox.xero.received)
        idle = _run(instance)
        assert idle["projects_calls"] == 1 and idle["reread"] == 0
        (call,) = _calls(sandbox, seen)
        assert call.query == {"states": "INPROGRESS", "page": "1", "pageSize": "500"}
        full = _run(instance, full_sweep=True)
        assert full["mode"] == "full read" and full["reread"] == len(projects)

        # Invoicing changes the totals: that project alone is read again. A project closed since is no longer
        # in the INPROGRESS list: read by id (its totals unchanged, nothing more).
        sandbox.xero.projects.set_time_status(tenant, target.project_id, active, "INVOICED")
        closing = next(p for p in projects if p.status == "INPROGRESS" and p.project_id != target.project_id)
        closing.status = "CLOSED"
        seen = len(sandbox.xero.received)
        changed = _run(instance)
        calls = _calls(sandbox, seen)
        assert changed["reread"] == 2 and changed["projects_calls"] == len(calls) == 1 + 1 + 2 * 2 + 1
        assert any(c.query.get("projectIds") == closing.project_id for c in calls)
        assert {c.path for c in calls} >= {f"{P}/Projects/{target.project_id}/Time"}
        statuses = dict(
            _rows(
                "select time_entry_id, status from xero.time_entries where project_id = ?", target.project_id
            )
        )
        assert {statuses[i] for i in active} == {"INVOICED"}
        history = _rows(
            "select status from xero.time_entries_history where time_entry_id = ? order by valid_from",
            active[0],
        )
        assert [h[0] for h in history] == ["ACTIVE", "LOCKED", "INVOICED"]
        assert _rows("select status from xero.projects where project_id = ?", closing.project_id) == [
            ("CLOSED",)
        ]

        full = _run(instance, full_sweep=True)
        assert full["mode"] == "full read" and full["reread"] == len(projects)


def test_mirrored_projects_give_the_planted_discrepancies(sandbox, monkeypatch):
    export_sandbox(monkeypatch, sandbox, CONNECTION)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        _run(instance)
    store = Store(settings.mirror_path(CONNECTION))
    with store.write() as con:  # the project views over the mirror; the others empty (taken from the world)
        con.execute("create schema if not exists canonical")
        for view in CANONICAL_VIEWS:
            select = PROJECT_VIEWS.get(view, empty_select(view))
            con.execute(f"create or replace view canonical.{view} as {select}")
        mirrored = read_canonical(con)
    world = sandbox.worlds[0]
    f = frames(world, CONNECTION)  # the rest of the world as the canonical views would show it
    f.update({k: mirrored[k] for k in ("books_projects", "books_project_tasks", "books_time_entries")})
    result = reconcile(f)
    scores = score(result.discrepancies, world.manifest)
    for kind in ("time_not_invoiced", "project_over_budget"):
        assert scores[kind]["expected"] >= 3 and scores[kind]["precision"] == scores[kind]["recall"] == 1.0, (
            scores[kind]
        )
    truth = {p.id: p.deal_id for p in world.projects.projects}
    assert (
        dict(zip(result.project_links["project_id"], result.project_links["deal_id"], strict=True)) == truth
    )
    found = result.discrepancies[result.discrepancies["kind"] == "time_not_invoiced"]
    assert found["detail"].str.contains("of chargeable time").all()


def test_a_grant_without_the_projects_scope_is_skipped_with_the_reason(sandbox, monkeypatch):
    export_sandbox(monkeypatch, sandbox, CONNECTION)
    tenant = sandbox.env(0)["XERO_TENANT_ID"]
    narrow = sandbox.xero.grant_refresh_token(
        sandbox.xero_client_id,
        [tenant],
        "offline_access accounting.transactions accounting.contacts accounting.settings",
    )
    monkeypatch.setenv("XERO_REFRESH_TOKEN", narrow)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        meta = _run(instance)
    assert meta["skipped"] == NO_SCOPE and "projects.read" in meta["skipped"] and meta["projects_calls"] == 0
    assert not settings.mirror_path(CONNECTION).exists()  # nothing was written for it
