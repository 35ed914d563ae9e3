"""The generated world's projects: deterministic, on their own random stream, sold as deals of their customers,
and planted so the manifest's two project kinds are exactly what the rules' definitions say."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from xz_pipeline.sandbox.world import build, generate
from xz_pipeline.sandbox.world.projects import UNBILLED_DAYS, ProjectsBook, budget, work_value


@pytest.fixture(scope="module")
def world():
    return generate(7, "tiny")


def _unbilled(project, ref) -> int:
    kinds = {t.id: t.charge_type for t in project.tasks}
    return sum(e.duration for e in project.time if kinds[e.task_id] != "NON_CHARGEABLE" and e.status == "ACTIVE"
               and e.date < ref - timedelta(days=UNBILLED_DAYS))  # fmt: skip


def test_the_manifest_is_what_the_definitions_say(world):
    projects = world.projects.projects
    assert len(projects) >= 10 and len(world.projects.users) >= 3
    ref = max(e.date for p in projects for e in p.time)
    late = {p.id for p in projects if _unbilled(p, ref)}
    over = {p.id for p in projects if work_value(p) + p.expenses > budget(p)}
    planted = Counter(
        m.kind for m in world.manifest if m.kind in ("time_not_invoiced", "project_over_budget")
    )
    assert planted["time_not_invoiced"] >= 3 and planted["project_over_budget"] >= 3
    assert {m.books_id for m in world.manifest if m.kind == "time_not_invoiced"} == late
    assert {m.books_id for m in world.manifest if m.kind == "project_over_budget"} == over
    deals = {d.id: d for d in world.crm.deals}
    customers = {t.books_ids[0]: t.crm_ids for t in world.truth if t.books_ids}
    for m in world.manifest:
        if m.kind in planted:
            project = next(p for p in projects if p.id == m.books_id)
            assert m.crm_id == project.deal_id and deals[m.crm_id].account_id in customers[project.contact_id]
    statuses = Counter(e.status for p in projects for e in p.time)
    assert set(statuses) == {"ACTIVE", "LOCKED", "INVOICED"}
    assert {t.charge_type for p in projects for t in p.tasks} == {"TIME", "FIXED", "NON_CHARGEABLE"}
    hard = [
        p
        for p in projects
        if p.id not in late
        and any(  # old time that must not count
            e.date < ref - timedelta(days=UNBILLED_DAYS) and e.status != "INVOICED" for e in p.time
        )
    ]
    assert hard, "old LOCKED or NON_CHARGEABLE time to tell apart from unbilled time"


def test_projects_are_deterministic_and_move_nothing_else(world, monkeypatch):
    again = generate(7, "tiny")
    assert [
        (p.id, p.name, p.estimate, [(e.id, e.status) for e in p.time]) for p in again.projects.projects
    ] == [(p.id, p.name, p.estimate, [(e.id, e.status) for e in p.time]) for p in world.projects.projects]
    # the rest of the world is drawn from its own streams: a project never takes an id or a draw from it
    ids = {p.id for p in world.projects.projects} | {t.id for p in world.projects.projects for t in p.tasks}
    assert not ids & ({c.id for c in world.books.contacts} | {i.id for i in world.books.invoices})
    other = generate(8, "tiny")
    assert {p.id for p in other.projects.projects}.isdisjoint({p.id for p in world.projects.projects})
    monkeypatch.setattr(build, "build_projects", lambda *a, **k: (ProjectsBook(), []))
    without = generate(7, "tiny")
    assert without.books == world.books and without.crm == world.crm and without.truth == world.truth
    assert without.manifest == [
        m for m in world.manifest if m.kind not in ("time_not_invoiced", "project_over_budget")
    ]
