"""Policy `projects_to_crm` (off by default): what the books' projects say, on the linked deal and account.

Each deal linked to a project (`recon.project_links`) gets the project's hours delivered (minutes logged, in
hours to two places), its unbilled amount (`total_to_be_invoiced`: time and expenses not yet invoiced) and
its status (`In Progress`, `Over Budget` while `project_over_budget` is open for it, `Closed`); each CRM
account linked to a customer with projects gets the sums over that customer's projects and the most pressing
status among them. Op `set`, through the same plan, guards and ledger as every policy.

Exactly once: the CRM fields are the integration's own and nobody else writes them, so a value is planned only
when it differs from the last one written there (`writeback.plan`, applied); a second cycle over unchanged
projects plans nothing. A field the org lacks (not created by `xz setup zoho` with the policy on, nor mapped)
is skipped with the reason by the plan (`plan.unsupported`), as for every policy.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from xz_pipeline.writeback.plan import CRM, Change, World, _exists, _rows

POLICY = "projects_to_crm"
FIELDS = ("hours_delivered", "unbilled_amount", "project_status")
IN_PROGRESS, OVER_BUDGET, CLOSED = "In Progress", "Over Budget", "Closed"
STATUSES = (IN_PROGRESS, OVER_BUDGET, CLOSED)  # the picklist `xz setup zoho` creates
_PRESSING = {OVER_BUDGET: 0, IN_PROGRESS: 1, CLOSED: 2}
CENT = Decimal("0.01")


class ProjectFacts:
    """What the policy reads besides `World`: projects, their deal links, and the values last written."""

    def __init__(self, con, connection: str) -> None:
        q = lambda sql: _rows(con, sql, [connection])  # noqa: E731
        self.projects = (
            {r["project_id"]: r for r in q("select * from canonical.books_projects where connection = ?")}
            if _exists(con, "canonical", "books_projects")
            else {}
        )
        self.links = (
            q("select * from recon.project_links where connection = ? order by project_id")
            if _exists(con, "recon", "project_links")
            else []
        )
        self.written: dict[tuple[str, str, str], str | None] = {}
        if _exists(con, "writeback", "plan"):
            for r in q(
                "select entity, record, field, new from writeback.plan where connection = ? and policy = "
                f"'{POLICY}' and status = 'applied' order by applied_at, change_id"
            ):
                self.written[(r["entity"], r["record"], r["field"])] = r["new"]


def _hours(minutes: int) -> Decimal:
    return (Decimal(int(minutes or 0)) / 60).quantize(CENT, ROUND_HALF_UP)


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT, ROUND_HALF_UP)


def _status(project: dict, over: set[str]) -> str:
    if project["project_id"] in over:
        return OVER_BUDGET
    return CLOSED if project["status"] == "closed" else IN_PROGRESS


def _changes(
    facts: ProjectFacts, entity: str, record: str, wanted: tuple, reason: str, source: str
) -> list[Change]:
    out = []
    for name, value in zip(FIELDS, wanted, strict=True):
        text = None if value is None else str(value)
        key = (entity, record, name)
        if key in facts.written and facts.written[key] == text:
            continue
        out.append(
            Change(
                CRM, entity, "set", record, "", name, facts.written.get(key), value, POLICY, reason, source
            )
        )
    return out


def projects_to_crm(w: World, p, facts: ProjectFacts | None = None) -> list[Change]:
    facts = facts if facts is not None else getattr(w, "project_facts", None)
    if facts is None or not facts.projects:
        return []
    over = {d["books_id"] for d in w.kind("project_over_budget")}
    out: list[Change] = []
    for link in facts.links:
        project = facts.projects.get(link["project_id"])
        if project is None or link["deal_id"] not in w.deals:
            continue
        wanted = (
            _hours(project["minutes_logged"]),
            _money(project["total_to_be_invoiced"]),
            _status(project, over),
        )
        reason = (f"project {project['name']}: {wanted[0]} h delivered, {wanted[1]} {project['currency'] or ''} "
                  f"not yet invoiced, {wanted[2].lower()}").replace("  ", " ")  # fmt: skip
        out += _changes(
            facts,
            "deal",
            link["deal_id"],
            wanted,
            reason,
            f"canonical.books_projects({project['project_id']})",
        )
    by_account: dict[str, list[dict]] = defaultdict(list)
    for project in facts.projects.values():
        crm = w.crm_of_books.get(project["customer_id"] or "")
        if crm and crm in w.accounts:
            by_account[crm].append(project)
    for crm in sorted(by_account):
        projects = by_account[crm]
        minutes = sum(int(x["minutes_logged"] or 0) for x in projects)
        unbilled = sum((_money(x["total_to_be_invoiced"]) for x in projects), Decimal("0"))
        status = min((_status(x, over) for x in projects), key=_PRESSING.__getitem__)
        wanted = (_hours(minutes), unbilled, status)
        reason = f"{len(projects)} project(s): {wanted[0]} h delivered, {unbilled} not yet invoiced, {status.lower()}"
        ids = ", ".join(sorted(x["project_id"] for x in projects))
        out += _changes(facts, "account", crm, wanted, reason, f"canonical.books_projects({ids})")
    return out
