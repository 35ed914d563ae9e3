"""Xero Projects in the generated world: projects of some customers, their tasks, time entries by several
users, expenses and estimates, and the two project discrepancies planted in the manifest.

A project belongs to a deal of a cleanly linked customer: its name is the deal's name without the account's
prefix (spelled a little differently now and then), so reconciliation can link it by customer and name. The
deals chosen have names no other deal of that account comes near, so the link is unambiguous.

Randomness comes from its own stream (seed, index, size, "projects"), so adding projects moves no draw of
the rest of the world: every other record stays byte for byte what it was.

The rules the manifest follows (reconcile/projects.py implements them on the mirror; docs/architecture.md):
- `time_not_invoiced`: a project with chargeable time (TIME or FIXED task) still ACTIVE whose date is more
  than `UNBILLED_DAYS` before the organisation's latest logged time. Hard negatives: old time on a
  NON_CHARGEABLE task, old time LOCKED (being invoiced), recent ACTIVE time.
- `project_over_budget`: work delivered (TIME tasks at their rate; a FIXED task at its fixed amount, in
  proportion to its estimated minutes once they are exceeded) plus expenses above the budget (the project's
  estimate; without one, the tasks' own: fixed amounts and TIME estimates at their rate).
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

from xz_pipeline.sandbox.world.model import Deal, Injection

UNBILLED_DAYS = 30  # the pipeline's default threshold (XZ_UNBILLED_TIME_DAYS)
MAX_PROJECTS = (
    400  # a busy service firm's projects; keeps the mirror's per-project reads inside the day budget
)
NAME_CLEARANCE = 85  # another deal of the account this close in name would make the link ambiguous
CENT = Decimal("0.01")

TASK_NAMES = ("Design", "Build", "Site visit", "Project management", "Consulting", "Installation", "Testing",
              "Training", "Documentation", "Support")  # fmt: skip
UNPAID_TASKS = ("Admin", "Travel", "Internal review")
USER_NAMES = ("Aroha Ngata", "Ben Carter", "Chloe Martin", "Dev Patel", "Emma Walsh", "Finn O'Brien",
              "Grace Liu", "Hemi Parata")  # fmt: skip
WORDS = (
    "Drafting",
    "Meeting",
    "On site",
    "Remote work",
    "Revisions",
    "Call with client",
    "Fit-out",
    "Review",
)


@dataclass(slots=True)
class ProjectUser:
    id: str
    name: str
    email: str


@dataclass(slots=True)
class ProjectTask:
    id: str
    name: str
    charge_type: str  # TIME | FIXED | NON_CHARGEABLE
    rate: Decimal  # per hour (TIME), the fixed amount (FIXED), 0 (NON_CHARGEABLE)
    estimate_minutes: int
    status: str = "ACTIVE"  # ACTIVE | INVOICED (a FIXED task whose amount was invoiced) | LOCKED


@dataclass(slots=True)
class TimeEntry:
    id: str
    user_id: str
    task_id: str
    date: datetime  # dateUtc: the day the time was worked
    entered: datetime  # dateEnteredUtc
    duration: int  # minutes
    description: str
    status: str  # ACTIVE | LOCKED | INVOICED


@dataclass(slots=True)
class Project:
    id: str
    contact_id: str
    name: str
    currency: str
    status: str  # INPROGRESS | CLOSED
    estimate: Decimal  # 0 when none was given
    deadline: datetime | None
    deal_id: str  # the CRM deal it was sold as (ground truth for linking)
    expenses: Decimal = Decimal("0")  # expense claims and bills charged to the project
    expenses_invoiced: Decimal = Decimal("0")
    tasks: list[ProjectTask] = field(default_factory=list)
    time: list[TimeEntry] = field(default_factory=list)


@dataclass(slots=True)
class ProjectsBook:
    """The books organisation's Projects: its users and projects (empty for an org that keeps none)."""

    users: list[ProjectUser] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)


def work_value(project: Project) -> Decimal:
    """Work delivered at its price: TIME at the rate per hour; FIXED at its amount, scaled up by the minutes
    logged over its estimate; NON_CHARGEABLE at nothing."""
    minutes: dict[str, int] = {}
    for e in project.time:
        minutes[e.task_id] = minutes.get(e.task_id, 0) + e.duration
    value = Decimal("0")
    for t in project.tasks:
        m = minutes.get(t.id, 0)
        if t.charge_type == "TIME":
            value += t.rate * m / 60
        elif t.charge_type == "FIXED":
            share = max(Decimal(1), Decimal(m) / t.estimate_minutes) if t.estimate_minutes else Decimal(1)
            value += t.rate * share if m else Decimal("0")
    return value.quantize(CENT, ROUND_HALF_UP)


def budget(project: Project) -> Decimal:
    """The estimate; without one, the tasks' own (FIXED amounts, TIME estimates at their rate)."""
    if project.estimate > 0:
        return project.estimate
    own = sum(
        (t.rate if t.charge_type == "FIXED" else t.rate * t.estimate_minutes / 60)
        for t in project.tasks
        if t.charge_type != "NON_CHARGEABLE"
    )
    return Decimal(own).quantize(CENT, ROUND_HALF_UP)


class _Ids:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def one(self) -> str:
        return str(uuid.UUID(bytes=self.rng.bytes(16), version=4))


def _stream(seed: int, size: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, zlib.crc32(size.encode()), 0x50524A]))


def _stem(deal: Deal, account_name: str) -> str:
    """A deal's name without its account's prefix ("Acme Ltd - Labour (Nov 2024)" -> "Labour (Nov 2024)")."""
    name = deal.name
    for sep in (" - ", " – "):
        head, found, tail = name.partition(sep)
        if found and fuzz.ratio(default_process(head), default_process(account_name)) >= 80:
            return tail
    return name


def build_projects(
    seed: int,
    size: str,
    index: int,
    customers,
    deals: list[Deal],
    account_names: dict[str, str],
    as_of: datetime,
) -> tuple[ProjectsBook, list[Injection]]:
    """Projects for some cleanly linked customers, each sold as one of their deals, and the injections."""
    rng = _stream(seed, size, index)
    ids = _Ids(rng)
    users = [
        ProjectUser(ids.one(), n, n.lower().replace(" ", ".").replace("'", "") + "@staff.example")
        for n in USER_NAMES[: int(rng.integers(3, len(USER_NAMES) + 1))]
    ]
    by_account: dict[str, list[Deal]] = {}
    for d in deals:
        by_account.setdefault(d.account_id, []).append(d)
    candidates: list[tuple[object, Deal, str]] = []
    for c in customers:
        if not c.linked or c.duplicate or c.hard_case or not c.books_id or not c.crm_id:
            continue
        own = by_account.get(c.crm_id, [])
        account = account_names.get(c.crm_id, "")
        stems = [(d, default_process(_stem(d, account))) for d in own]
        taken = 0
        for d, stem in stems:
            if taken == 2 or d.stage != "Closed Won" or not stem or "#" in d.name:
                continue
            if all(fuzz.ratio(stem, other) < NAME_CLEARANCE for o, other in stems if o is not d):
                candidates.append((c, d, _stem(d, account)))
                taken += 1  # at most two projects per customer
    want = min(MAX_PROJECTS, len(candidates), max(10, len(customers) // 15))
    chosen = sorted(rng.choice(len(candidates), size=want, replace=False).tolist()) if want else []
    ref = datetime.combine(as_of.date() - timedelta(days=1), time(), UTC)  # the latest logged day
    n = len(chosen)
    kinds = np.array([""] * n, dtype=object)
    order = rng.permutation(n)
    k = max(3, n // 4) if n >= 8 else 0
    kinds[order[:k]] = "time_not_invoiced"
    kinds[order[k : 2 * k]] = "project_over_budget"
    book = ProjectsBook(users=users)
    injections: list[Injection] = []
    for i, pos in enumerate(chosen):
        c, deal, stem = candidates[pos]
        project = _project(rng, ids, users, c.books_id, deal, stem, ref, kinds[i], first=i == 0)
        book.projects.append(project)
        if kinds[i] == "time_not_invoiced":
            unbilled = [e for e in project.time if _chargeable(project, e) and e.status == "ACTIVE"
                        and e.date < ref - timedelta(days=UNBILLED_DAYS)]  # fmt: skip
            note = f"{sum(e.duration for e in unbilled)} min of chargeable time not invoiced"
            injections.append(Injection("time_not_invoiced", project.id, deal.id, "", "", "", note))
        elif kinds[i] == "project_over_budget":
            spent = work_value(project) + project.expenses
            injections.append(Injection("project_over_budget", project.id, deal.id, "", str(spent),
                                        str(budget(project)), "work and expenses above the estimate"))  # fmt: skip
    return book, injections


def _chargeable(project: Project, entry: TimeEntry) -> bool:
    kind = {t.id: t.charge_type for t in project.tasks}[entry.task_id]
    return kind in ("TIME", "FIXED")


def _spelling(rng: np.random.Generator, stem: str) -> str:
    """How the project was named in the books: the deal's words, now and then cased or punctuated otherwise."""
    pick = int(rng.integers(0, 4))
    if pick == 1:
        return stem.replace("(", "").replace(")", "")
    if pick == 2:
        return stem.lower()
    return stem


def _project(rng, ids: _Ids, users, contact_id: str, deal: Deal, stem: str, ref: datetime, kind: str,
             first: bool) -> Project:  # fmt: skip
    closed = kind == "" and rng.random() < 0.15
    project = Project(ids.one(), contact_id, _spelling(rng, stem), deal.currency, "CLOSED" if closed else "INPROGRESS",
                      Decimal("0"), None, deal.id)  # fmt: skip
    names = list(rng.permutation(TASK_NAMES))
    n_time = int(rng.integers(1, 3))
    for j in range(n_time):
        rate = Decimal(int(rng.integers(8, 19)) * 10)
        project.tasks.append(
            ProjectTask(ids.one(), str(names[j]), "TIME", rate, int(rng.integers(10, 40)) * 60)
        )
    if rng.random() < 0.5 or kind == "project_over_budget":
        amount = Decimal(int(rng.integers(5, 30)) * 100)
        project.tasks.append(
            ProjectTask(ids.one(), str(names[n_time]), "FIXED", amount, int(rng.integers(5, 20)) * 60)
        )
    if rng.random() < 0.6:
        project.tasks.append(ProjectTask(ids.one(), str(rng.choice(UNPAID_TASKS)), "NON_CHARGEABLE", Decimal("0"),
                                         int(rng.integers(2, 10)) * 60))  # fmt: skip
    span = int(rng.integers(60, 200))
    for t in project.tasks:
        for _ in range(int(rng.integers(3, 9))):
            day = ref - timedelta(days=int(rng.integers(0, span)))
            project.time.append(_entry(rng, ids, users, t.id, day))
    if first:  # the organisation's latest logged day, so the reference the rule measures from is `ref`
        project.time.append(_entry(rng, ids, users, project.tasks[0].id, ref))
    _statuses(rng, project, ref, kind, closed)
    project.expenses = Decimal(int(rng.integers(0, 9)) * 50)
    project.expenses_invoiced = project.expenses if closed or rng.random() < 0.5 else Decimal("0")
    spent = work_value(project) + project.expenses
    if kind == "project_over_budget":  # 12-30 % over
        project.estimate = (spent / Decimal(str(round(rng.uniform(1.12, 1.3), 3)))).quantize(Decimal("1"))
    elif rng.random() < 0.85 or closed:  # comfortably within: delivered is at most 90 % of the estimate
        share = Decimal(str(round(rng.uniform(0.6, 0.9), 3)))
        project.estimate = max(
            Decimal(100), (spent / share / 100).quantize(Decimal("1"), ROUND_CEILING) * 100
        )
    if project.estimate == 0 and work_value(project) + project.expenses > budget(project) * Decimal("0.9"):
        project.estimate = (spent / Decimal("0.8") / 100).quantize(
            Decimal("1"), ROUND_CEILING
        ) * 100  # clear of the line
    project.deadline = datetime.combine(ref.date() + timedelta(days=int(rng.integers(10, 120))), time(), UTC)
    return project


def _entry(rng, ids: _Ids, users, task_id: str, day: datetime) -> TimeEntry:
    minutes = int(rng.integers(2, 33)) * 15
    entered = day + timedelta(hours=int(rng.integers(17, 40)), seconds=int(rng.integers(0, 3600)))
    user = users[int(rng.integers(0, len(users)))]
    return TimeEntry(ids.one(), user.id, task_id, day, entered, minutes, str(rng.choice(WORDS)), "ACTIVE")


def _statuses(rng, project: Project, ref: datetime, kind: str, closed: bool) -> None:
    """Invoiced once past the billing cycle; the recent part still ACTIVE; a few LOCKED mid-invoice. Old
    chargeable time stays ACTIVE only where `time_not_invoiced` is planted."""
    kinds = {t.id: t.charge_type for t in project.tasks}
    settled = ref - timedelta(days=UNBILLED_DAYS - 5)
    old_chargeable: list[TimeEntry] = []
    for e in project.time:
        chargeable = kinds[e.task_id] != "NON_CHARGEABLE"
        if not chargeable:
            e.status = "ACTIVE"  # never invoiced, however old: not unbilled work
        elif closed or e.date < settled:
            e.status = "LOCKED" if not closed and rng.random() < 0.08 else "INVOICED"
            if e.date < ref - timedelta(days=UNBILLED_DAYS + 3) and e.status == "INVOICED":
                old_chargeable.append(e)
        else:
            e.status = "ACTIVE"
    if kind == "time_not_invoiced":
        if not old_chargeable:  # make some: log old chargeable time
            task = next(t for t in project.tasks if t.charge_type != "NON_CHARGEABLE")
            e = TimeEntry(_Ids(rng).one(), project.time[0].user_id, task.id, ref - timedelta(days=UNBILLED_DAYS + 20),
                          ref - timedelta(days=UNBILLED_DAYS + 19), 120, "Catch-up", "INVOICED")  # fmt: skip
            project.time.append(e)
            old_chargeable.append(e)
        for e in old_chargeable[: max(1, len(old_chargeable) // 3)]:
            e.status = "ACTIVE"
    for t in project.tasks:
        if t.charge_type == "FIXED":
            states = {e.status for e in project.time if e.task_id == t.id}
            t.status = "INVOICED" if states == {"INVOICED"} else "ACTIVE"
