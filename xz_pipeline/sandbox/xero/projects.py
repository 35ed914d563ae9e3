"""Xero's Projects API (`/projects.xro/2.0/`) on the emulator's origin: projects, tasks, time entries, users.

Follows ../shared/specs/xero/xero-projects.yaml, which differs from the Accounting API in most things a client
meets: lower camelCase JSON with ISO 8601 times (`dateEnteredUtc` with seven fractional digits, as Xero sends
it), money as `{currency, value}`, its own paging (`page`, `pageSize` 1-500, default 50; every list answers
`{pagination, items}`), `states`/`contactID` filters, the `Xero-Tenant-Id` header, the scopes `projects` and
`projects.read`, errors as `{message, modelState}`, and 201/204 answers to writes.

Project and task totals are derived from the time entries and expenses on every read, as Xero does: time is
ACTIVE when logged, LOCKED while it is being invoiced (no change allowed) and INVOICED after. The tenant's
rate limits are the accounting API's: one day budget per organisation and app.

Choices where the sources are silent: `pagination.itemCount` is the number of matching items (all pages);
a page past the last answers an empty `items`; a `states` value other than INPROGRESS/CLOSED is a 400.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from xz_pipeline.sandbox.xero.identity import problem as problem_response

if TYPE_CHECKING:
    from xz_pipeline.sandbox.xero.emulator import XeroEmulator

PREFIX = "/projects.xro/2.0"
READ = {"projects", "projects.read"}
WRITE = {"projects"}
PROJECT_STATES = ("INPROGRESS", "CLOSED")
TIME_STATES = ("ACTIVE", "LOCKED", "INVOICED")
CHARGE_TYPES = ("TIME", "FIXED", "NON_CHARGEABLE")
CENT = Decimal("0.01")


def iso(dt: datetime | None, fraction: bool = False) -> str | None:
    """Xero Projects' UTC times: "2020-02-27T15:00:00Z"; entry times with seven fractional digits."""
    if dt is None:
        return None
    dt = dt.astimezone(UTC)
    if fraction:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}1Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # more than six fractional digits: keep six
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _money(value: Decimal) -> float:
    return float(value.quantize(CENT, ROUND_HALF_UP))


@dataclass
class _Task:
    task_id: str
    project_id: str
    name: str
    charge_type: str
    rate: Decimal
    estimate_minutes: int
    status: str = "ACTIVE"


@dataclass
class _Entry:
    time_entry_id: str
    project_id: str
    user_id: str
    task_id: str
    date: datetime
    entered: datetime
    duration: int
    description: str
    status: str = "ACTIVE"


@dataclass
class _Project:
    project_id: str
    contact_id: str
    name: str
    currency: str
    status: str
    estimate: Decimal
    deadline: datetime | None
    expenses: Decimal = Decimal("0")
    expenses_invoiced: Decimal = Decimal("0")
    tasks: dict[str, _Task] = field(default_factory=dict)
    time: dict[str, _Entry] = field(default_factory=dict)


@dataclass
class TenantProjects:
    users: dict[str, dict] = field(default_factory=dict)  # userId -> {userId, name, email}
    projects: dict[str, _Project] = field(default_factory=dict)


class _Bad(Exception):
    def __init__(self, message: str, state: dict | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"message": message, "modelState": state or {}}


class ProjectsApi:
    """The Projects API of an emulator: state per tenant, the HTTP handler and a Python API for tests."""

    def __init__(self, emulator: XeroEmulator) -> None:
        self.emu = emulator
        self.tenants: dict[str, TenantProjects] = {}
        self._lock = threading.RLock()

    # ---- setup (Python API) ------------------------------------------------------------------------

    def state(self, tenant_id: str) -> TenantProjects:
        with self._lock:
            return self.tenants.setdefault(tenant_id, TenantProjects())

    def seed(self, tenant_id: str, book) -> None:
        """Load a world's `ProjectsBook` (sandbox/world/projects.py)."""
        st = self.state(tenant_id)
        with self._lock:
            for u in book.users:
                st.users[u.id] = {"userId": u.id, "name": u.name, "email": u.email}
            for p in book.projects:
                proj = _Project(p.id, p.contact_id, p.name, p.currency, p.status, p.estimate, p.deadline,
                                p.expenses, p.expenses_invoiced)  # fmt: skip
                for t in p.tasks:
                    proj.tasks[t.id] = _Task(
                        t.id, p.id, t.name, t.charge_type, t.rate, t.estimate_minutes, t.status
                    )
                for e in p.time:
                    proj.time[e.id] = _Entry(e.id, p.id, e.user_id, e.task_id, e.date, e.entered, e.duration,
                                             e.description, e.status)  # fmt: skip
                st.projects[p.id] = proj

    def set_time_status(self, tenant_id: str, project_id: str, entry_ids: list[str], status: str) -> None:
        """Move time entries along ACTIVE -> LOCKED -> INVOICED (what invoicing them in Xero does); a FIXED task
        whose every entry is invoiced is INVOICED too."""
        if status not in TIME_STATES:
            raise ValueError(f"unknown time entry status {status!r}")
        with self._lock:
            proj = self.tenants[tenant_id].projects[project_id]
            for eid in entry_ids:
                proj.time[eid].status = status
            for t in proj.tasks.values():
                if t.charge_type == "FIXED":
                    states = {e.status for e in proj.time.values() if e.task_id == t.task_id}
                    t.status = (
                        "INVOICED"
                        if states == {"INVOICED"}
                        else ("LOCKED" if "LOCKED" in states else "ACTIVE")
                    )

    def set_expenses(self, tenant_id: str, project_id: str, amount: Decimal, invoiced: Decimal) -> None:
        with self._lock:
            proj = self.tenants[tenant_id].projects[project_id]
            proj.expenses, proj.expenses_invoiced = Decimal(amount), Decimal(invoiced)

    # ---- views (the wire shapes) ------------------------------------------------------------------------

    def _amount(self, proj: _Project, value: Decimal) -> dict:
        return {"currency": proj.currency, "value": _money(value)}

    def _task_figures(self, proj: _Project, task: _Task) -> dict:
        entries = [e for e in proj.time.values() if e.task_id == task.task_id]
        total = sum(e.duration for e in entries)
        invoiced = sum(e.duration for e in entries if e.status == "INVOICED")
        rest = total - invoiced
        if task.charge_type == "TIME":
            amount, amount_invoiced = task.rate * total / 60, task.rate * invoiced / 60
            to_invoice = task.rate * rest / 60
        elif task.charge_type == "FIXED":
            amount = task.rate
            amount_invoiced = task.rate if task.status == "INVOICED" else Decimal("0")
            to_invoice = amount - amount_invoiced
        else:
            amount = amount_invoiced = to_invoice = Decimal("0")
        chargeable = task.charge_type != "NON_CHARGEABLE"
        return {
            "total": total, "invoiced": invoiced if chargeable else 0, "rest": rest if chargeable else 0,
            "amount": amount, "amount_invoiced": amount_invoiced, "to_invoice": to_invoice,
        }  # fmt: skip

    def task_view(self, proj: _Project, task: _Task) -> dict:
        f = self._task_figures(proj, task)
        return {
            "taskId": task.task_id, "name": task.name, "rate": self._amount(proj, task.rate),
            "chargeType": task.charge_type, "estimateMinutes": task.estimate_minutes, "projectId": proj.project_id,
            "totalMinutes": f["total"], "totalAmount": self._amount(proj, f["amount"]),
            "minutesInvoiced": f["invoiced"], "minutesToBeInvoiced": f["rest"],
            "fixedMinutes": f["total"] if task.charge_type == "FIXED" else 0,
            "nonChargeableMinutes": f["total"] if task.charge_type == "NON_CHARGEABLE" else 0,
            "amountToBeInvoiced": self._amount(proj, f["to_invoice"]),
            "amountInvoiced": self._amount(proj, f["amount_invoiced"]), "status": task.status,
        }  # fmt: skip

    def project_view(self, proj: _Project) -> dict:
        figures = [self._task_figures(proj, t) for t in proj.tasks.values()]
        task_amount = sum((f["amount"] for f in figures), Decimal("0"))
        task_invoiced = sum((f["amount_invoiced"] for f in figures), Decimal("0"))
        task_to_invoice = sum((f["to_invoice"] for f in figures), Decimal("0"))
        expense_to_invoice = proj.expenses - proj.expenses_invoiced
        zero = self._amount(proj, Decimal("0"))
        view = {
            "projectId": proj.project_id, "contactId": proj.contact_id, "name": proj.name,
            "currencyCode": proj.currency, "minutesLogged": sum(e.duration for e in proj.time.values()),
            "totalTaskAmount": self._amount(proj, task_amount),
            "totalExpenseAmount": self._amount(proj, proj.expenses),
            "minutesToBeInvoiced": sum(f["rest"] for f in figures),
            "taskAmountToBeInvoiced": self._amount(proj, task_to_invoice),
            "taskAmountInvoiced": self._amount(proj, task_invoiced),
            "expenseAmountToBeInvoiced": self._amount(proj, expense_to_invoice),
            "expenseAmountInvoiced": self._amount(proj, proj.expenses_invoiced),
            "projectAmountInvoiced": self._amount(proj, task_invoiced + proj.expenses_invoiced),
            "deposit": zero, "depositApplied": zero, "creditNoteAmount": zero,
            "totalInvoiced": self._amount(proj, task_invoiced + proj.expenses_invoiced),
            "totalToBeInvoiced": self._amount(proj, task_to_invoice + expense_to_invoice),
            "estimate": self._amount(proj, proj.estimate), "status": proj.status,
        }  # fmt: skip
        if proj.deadline is not None:
            view["deadlineUtc"] = iso(proj.deadline)
        return view

    @staticmethod
    def entry_view(e: _Entry) -> dict:
        return {"timeEntryId": e.time_entry_id, "userId": e.user_id, "projectId": e.project_id, "taskId": e.task_id,
                "dateUtc": iso(e.date), "dateEnteredUtc": iso(e.entered, fraction=True), "duration": e.duration,
                "description": e.description, "status": e.status}  # fmt: skip

    # ---- HTTP ----------------------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        emu = self.emu
        body = await request.body()
        tok, why = emu.identity.resolve(request.headers.get("authorization", ""))
        tenant = request.headers.get("xero-tenant-id") or None
        if tok is None:
            return emu._with_limits(problem_response(401, why), tenant if tenant in emu.books else None)
        tenant = tenant or tok.custom_tenant
        if tenant is None or tenant not in emu.identity.tenants_of(tok) or tenant not in emu.books:
            return emu._with_limits(problem_response(403, "AuthenticationUnsuccessful"), None)
        request.state.tenant_id = tenant
        needed = READ if request.method == "GET" else WRITE
        if not set(tok.scopes) & needed:
            return emu._with_limits(
                problem_response(401, "AuthorizationUnsuccessful"), tenant, app=tok.client_id
            )
        decision = emu.rate.admit(tenant, tok.client_id)
        if not decision.admitted:
            headers = dict(decision.headers)
            headers.update(
                {"Retry-After": str(decision.retry_after), "X-Rate-Limit-Problem": decision.problem}
            )
            return Response("Rate limit exceeded", status_code=429, headers=headers, media_type="text/plain")
        try:
            segments = [s for s in request.path_params["path"].split("/") if s]
            try:
                status, payload = self._dispatch(
                    request.method, tenant, segments, dict(request.query_params), body
                )
            except _Bad as exc:
                status, payload = exc.status, exc.body
            if payload is None:
                response = Response(status_code=status)
            else:
                response = Response(json.dumps(payload), status, media_type="application/json")
        finally:
            emu.rate.release(tenant, tok.client_id)
        return emu._with_limits(response, tenant, decision.headers)

    def _dispatch(
        self, method: str, tenant: str, seg: list[str], q: dict, body: bytes
    ) -> tuple[int, dict | None]:
        st = self.state(tenant)
        with self._lock:
            if [s.lower() for s in seg] == ["projectsusers"] and method == "GET":
                return 200, _page(sorted(st.users.values(), key=lambda u: u["name"]), q)
            if not seg or seg[0].lower() != "projects":
                raise _Bad("The resource you're looking for cannot be found", status=404)
            if len(seg) == 1:
                if method == "GET":
                    return 200, self._list_projects(st, q)
                if method == "POST":
                    return 201, self._create_project(tenant, st, _json(body))
                raise _Bad("The requested resource does not support this method", status=405)
            proj = st.projects.get(seg[1])
            if proj is None:
                raise _Bad("The resource you're looking for cannot be found", status=404)
            if len(seg) == 2:
                if method == "GET":
                    return 200, self.project_view(proj)
                if method == "PATCH":
                    status = _json(body).get("status")
                    if status not in PROJECT_STATES:
                        raise _Bad("The status is not valid", {"status": ["must be INPROGRESS or CLOSED"]})
                    proj.status = status
                    return 204, None
                raise _Bad("The requested resource does not support this method", status=405)
            sub = seg[2].lower()
            if sub == "tasks" and method == "GET":
                if len(seg) == 4:
                    task = proj.tasks.get(seg[3])
                    if task is None:
                        raise _Bad("The resource you're looking for cannot be found", status=404)
                    return 200, self.task_view(proj, task)
                return 200, self._list_tasks(proj, q)
            if sub == "time":
                return self._time(proj, method, seg[3] if len(seg) == 4 else None, q, body)
            raise _Bad("The resource you're looking for cannot be found", status=404)

    def _list_projects(self, st: TenantProjects, q: dict) -> dict:
        rows = list(st.projects.values())
        if q.get("projectIds"):
            wanted = {i.strip() for i in q["projectIds"].split(",")}
            rows = [p for p in rows if p.project_id in wanted]
        if q.get("contactID"):
            rows = [p for p in rows if p.contact_id == q["contactID"]]
        if q.get("states"):
            states = {s.strip().upper() for s in q["states"].split(",")}
            if not states <= set(PROJECT_STATES):
                raise _Bad("The states filter is not valid", {"states": ["must be INPROGRESS or CLOSED"]})
            rows = [p for p in rows if p.status in states]
        rows.sort(key=lambda p: p.name.lower())
        return _page([self.project_view(p) for p in rows], q)

    def _list_tasks(self, proj: _Project, q: dict) -> dict:
        rows = list(proj.tasks.values())
        if q.get("taskIds"):
            wanted = {i.strip() for i in q["taskIds"].split(",")}
            rows = [t for t in rows if t.task_id in wanted]
        if q.get("chargeType"):
            if q["chargeType"] not in CHARGE_TYPES:
                raise _Bad(
                    "The chargeType is not valid",
                    {"chargeType": [f"must be one of {', '.join(CHARGE_TYPES)}"]},
                )
            rows = [t for t in rows if t.charge_type == q["chargeType"]]
        return _page([self.task_view(proj, t) for t in rows], q)

    def _time(
        self, proj: _Project, method: str, entry_id: str | None, q: dict, body: bytes
    ) -> tuple[int, dict | None]:
        if entry_id is None and method == "GET":
            rows = sorted(proj.time.values(), key=lambda e: (e.date, e.time_entry_id))
            kinds = {t.task_id: t.charge_type for t in proj.tasks.values()}
            for key, attr in (("userId", "user_id"), ("taskId", "task_id")):
                if q.get(key):
                    rows = [e for e in rows if getattr(e, attr) == q[key]]
            if q.get("states"):
                states = {s.strip().upper() for s in q["states"].split(",")}
                if not states <= set(TIME_STATES):
                    raise _Bad(
                        "The states filter is not valid", {"states": ["must be ACTIVE, LOCKED or INVOICED"]}
                    )
                rows = [e for e in rows if e.status in states]
            if q.get("isChargeable"):
                want = q["isChargeable"].lower() == "true"
                rows = [e for e in rows if (kinds.get(e.task_id) != "NON_CHARGEABLE") == want]
            if q.get("contactId") and q["contactId"] != proj.contact_id:
                rows = []
            for key, keep in (
                ("dateAfterUtc", lambda e, d: e.date >= d),
                ("dateBeforeUtc", lambda e, d: e.date <= d),
            ):
                if q.get(key):
                    bound = parse_iso(q[key])
                    if bound is None:
                        raise _Bad(f"The {key} filter is not a date", {key: ["must be an ISO 8601 UTC date"]})
                    rows = [e for e in rows if keep(e, bound)]
            return 200, _page([self.entry_view(e) for e in rows], q)
        if entry_id is None and method == "POST":
            data = _json(body)
            entry = self._entry_from(proj, data, None)
            proj.time[entry.time_entry_id] = entry
            return 200, self.entry_view(entry)
        entry = proj.time.get(entry_id or "")
        if entry is None:
            raise _Bad("The resource you're looking for cannot be found", status=404)
        if method == "GET":
            return 200, self.entry_view(entry)
        if method not in ("PUT", "DELETE"):
            raise _Bad("The requested resource does not support this method", status=405)
        if entry.status != "ACTIVE":
            raise _Bad(f"The time entry is {entry.status} and cannot be changed", {"status": [entry.status]})
        if method == "DELETE":
            del proj.time[entry.time_entry_id]
            return 204, None
        proj.time[entry.time_entry_id] = self._entry_from(proj, _json(body), entry)
        return 204, None

    def _entry_from(self, proj: _Project, data: dict, old: _Entry | None) -> _Entry:
        missing = [k for k in ("userId", "taskId", "dateUtc", "duration") if data.get(k) in (None, "")]
        if missing:
            raise _Bad("A validation exception occurred", {k: [f"{k} is required"] for k in missing})
        if data["taskId"] not in proj.tasks:
            raise _Bad("A validation exception occurred", {"taskId": ["the task is not on this project"]})
        duration = data["duration"]
        if not isinstance(duration, int) or not 1 <= duration <= 59940:
            raise _Bad("A validation exception occurred", {"duration": ["must be between 1 and 59940"]})
        when = parse_iso(data["dateUtc"])
        if when is None:
            raise _Bad("A validation exception occurred", {"dateUtc": ["must be an ISO 8601 UTC date"]})
        now = self.emu.clock.now()
        return _Entry(old.time_entry_id if old else str(uuid.uuid4()), proj.project_id, str(data["userId"]),
                      data["taskId"], when, old.entered if old else now, duration,
                      str(data.get("description") or ""), "ACTIVE")  # fmt: skip

    def _create_project(self, tenant: str, st: TenantProjects, data: dict) -> dict:
        if not data.get("name"):
            raise _Bad("A validation exception occurred", {"name": ["name is required"]})
        currency = self.emu.books[tenant].org.get("BaseCurrency", "NZD")
        proj = _Project(str(uuid.uuid4()), str(data.get("contactId") or ""), str(data["name"]), currency, "INPROGRESS",
                        Decimal(str(data.get("estimateAmount") or 0)), parse_iso(data.get("deadlineUtc")))  # fmt: skip
        st.projects[proj.project_id] = proj
        return self.project_view(proj)


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise _Bad("The request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise _Bad("The request body must be a JSON object")
    return data


def _int(q: dict, name: str, default: int, low: int, high: int | None) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high else f"greater than {low - 1}"
        raise _Bad(f"The {name} must be a number {bounds}", {name: [f"must be a number {bounds}"]})
    return value


def _page(items: list[dict], q: dict) -> dict:
    page = _int(q, "page", 1, 1, None)
    size = _int(q, "pageSize", 50, 1, 500)
    count = len(items)
    return {
        "pagination": {
            "page": page,
            "pageSize": size,
            "pageCount": max(1, -(-count // size)),
            "itemCount": count,
        },
        "items": items[(page - 1) * size : page * size],
    }
