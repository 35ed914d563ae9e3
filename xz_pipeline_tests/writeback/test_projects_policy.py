"""Policy `projects_to_crm` on the write-back baseline (the demo world mirrored and reconciled once): without its
Zoho fields every row is skipped with the reason; after `xz setup zoho` with the policy on, the linked deals and
accounts get hours delivered, unbilled amount and project status, written once through the plan and ledger;
a second cycle writes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from xz_pipeline.writeback.apply import apply
from xz_pipeline.writeback.plan import build_plan
from xz_pipeline.writeback.policies import POLICIES, Policies
from xz_pipeline.zoho import fieldmap
from xz_pipeline.zoho import schema as zoho_schema
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline.zoho.setup import setup_connection
from xz_pipeline_tests.writeback.support import CONNECTION, start, writers, writes_received

POLICY = "projects_to_crm"
ONLY = Policies(on={p: p == POLICY for p in POLICIES})


def _q(store, sql: str, *args) -> list[tuple]:
    with store.read() as con:
        return con.execute(sql, list(args)).fetchall()


def test_project_figures_reach_the_crm_once_and_are_skipped_without_their_fields(baseline, monkeypatch):
    monkeypatch.setenv("XZ_WRITEBACK_POLICIES", json.dumps({"policies": {POLICY: True}}))
    sb, store = start(baseline)
    with sb:
        books, crm = writers()
        build_plan(store, CONNECTION, ONLY, capabilities=crm.capabilities(store))
        rows = _q(store, "select entity, status, error from writeback.plan where policy = ?", POLICY)
        assert rows and {r[1] for r in rows} == {"skipped"} and {r[0] for r in rows} == {"deal", "account"}
        assert all("does not exist in this org: run `xz setup zoho` or map it" in r[2] for r in rows)
        assert apply(store, CONNECTION, books, crm, ONLY).applied == 0

        with ZohoResource().client(CONNECTION) as client:
            created = setup_connection(client, CONNECTION)
            zoho_schema.ensure(client, store, CONNECTION, fieldmap.load(CONNECTION), max_age=timedelta(0))
        assert {f.split(".")[1] for f in created} == {"Hours_Delivered", "Unbilled_Amount", "Project_Status"}
        books, crm = writers()
        build_plan(store, CONNECTION, ONLY, capabilities=crm.capabilities(store))
        _, before = writes_received(sb)
        report = apply(store, CONNECTION, books, crm, ONLY)
        _, after = writes_received(sb)
        assert report.applied == len(rows) and len(after) > len(before)
        applied = _q(store, "select entity, record, field, new from writeback.plan where policy = ? "
                     "and status = 'applied'", POLICY)  # fmt: skip
        calls = _q(store, "select distinct l.call_id, l.op, l.response_code from writeback.ledger l join "
                   "writeback.plan p on list_contains(l.change_ids, p.change_id) where p.policy = ?", POLICY)  # fmt: skip
        assert (
            calls and {c[2] for c in calls} == {200} and all("set" in c[1] for c in calls)
        )  # e.g. deal.set + account.set

        world = sb.worlds[0]
        deals = {d["id"]: d for d in sb.zoho.dump(world.crm.org_id, "Deals")}
        over = {m.books_id for m in world.manifest if m.kind == "project_over_budget"}
        linked = {r[1] for r in applied if r[0] == "deal"}
        projects = [p for p in world.projects.projects if p.deal_id in linked]
        assert len(projects) == len(world.projects.projects)  # every project found its deal
        for project in projects:
            deal = deals[project.deal_id]
            minutes = sum(e.duration for e in project.time)
            assert Decimal(str(deal["Hours_Delivered"])) == (Decimal(minutes) / 60).quantize(Decimal("0.01"))
            status = "Closed" if project.status == "CLOSED" else "In Progress"
            assert deal["Project_Status"] == ("Over Budget" if project.id in over else status)
        unbilled = {r[1]: Decimal(r[3]) for r in applied if r[0] == "deal" and r[2] == "unbilled_amount"}
        assert {d: Decimal(str(deals[d]["Unbilled_Amount"])) for d in unbilled} == unbilled

        # Nothing changed in the books: the next cycle plans nothing new and writes nothing.
        planned = _q(store, "select count(*) from writeback.plan where policy = ?", POLICY)
        books, crm = writers()
        build_plan(store, CONNECTION, ONLY, capabilities=crm.capabilities(store))
        assert apply(store, CONNECTION, books, crm, ONLY).applied == 0
        assert writes_received(sb)[1] == after
        assert _q(store, "select count(*) from writeback.plan where policy = ?", POLICY) == planned
