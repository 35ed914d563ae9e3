"""Xero Projects as the canonical `books_projects`, `books_project_tasks` and `books_time_entries` views.

Vocabularies are normalised here (status in_progress | closed; charge_type time | fixed | non_chargeable; time
status active | locked | invoiced) so reconciliation and write-back never meet Xero's words. An organisation
whose grant has no Projects scope has no `xero.projects`: the views are then empty, never missing.
"""

from __future__ import annotations

from xz_pipeline.core.canonical import project, sql_case

PROJECT_STATUS = {"INPROGRESS": "in_progress", "CLOSED": "closed"}
CHARGE_TYPE = {"TIME": "time", "FIXED": "fixed", "NON_CHARGEABLE": "non_chargeable"}
TIME_STATUS = {"ACTIVE": "active", "LOCKED": "locked", "INVOICED": "invoiced"}

_PROJECTS = {
    "connection": "p.connection", "project_id": "p.project_id", "customer_id": "p.contact_id", "name": "p.name",
    "currency": "p.currency_code", "status": sql_case("p.status", PROJECT_STATUS), "status_raw": "p.status",
    "estimate": "coalesce(p.estimate, 0)", "minutes_logged": "coalesce(p.minutes_logged, 0)",
    "minutes_to_be_invoiced": "coalesce(p.minutes_to_be_invoiced, 0)",
    "task_amount": "coalesce(p.total_task_amount, 0)", "task_amount_invoiced": "coalesce(p.task_amount_invoiced, 0)",
    "task_amount_to_be_invoiced": "coalesce(p.task_amount_to_be_invoiced, 0)",
    "expense_amount": "coalesce(p.total_expense_amount, 0)",
    "expense_amount_invoiced": "coalesce(p.expense_amount_invoiced, 0)",
    "expense_amount_to_be_invoiced": "coalesce(p.expense_amount_to_be_invoiced, 0)",
    "total_invoiced": "coalesce(p.total_invoiced, 0)", "total_to_be_invoiced": "coalesce(p.total_to_be_invoiced, 0)",
    "deadline": "p.deadline_utc", "source_modified": "null", "fetched_at": "p.fetched_at",
}  # fmt: skip

_TASKS = {
    "connection": "t.connection", "task_id": "t.task_id", "project_id": "t.project_id", "name": "t.name",
    "charge_type": sql_case("t.charge_type", CHARGE_TYPE), "rate": "coalesce(t.rate, 0)",
    "estimate_minutes": "t.estimate_minutes", "total_minutes": "coalesce(t.total_minutes, 0)",
    "minutes_invoiced": "coalesce(t.minutes_invoiced, 0)", "amount_invoiced": "coalesce(t.amount_invoiced, 0)",
    "amount_to_be_invoiced": "coalesce(t.amount_to_be_invoiced, 0)", "status": "lower(t.status)",
    "source_modified": "null", "fetched_at": "t.fetched_at",
}  # fmt: skip

_TIME = {
    "connection": "e.connection", "time_entry_id": "e.time_entry_id", "project_id": "e.project_id",
    "task_id": "e.task_id", "user_id": "e.user_id", "user_name": "u.name", "worked_on": "e.date_utc",
    "minutes": "e.duration", "description": "e.description", "status": sql_case("e.status", TIME_STATUS),
    "chargeable": "coalesce(t.charge_type in ('TIME', 'FIXED'), false)", "source_modified": "e.date_entered_utc",
    "fetched_at": "e.fetched_at",
}  # fmt: skip

_TIME_FROM = (
    "from xero.time_entries e "
    "left join xero.project_tasks t on t.connection = e.connection and t.task_id = e.task_id "
    "left join xero.project_users u on u.connection = e.connection and u.user_id = e.user_id"
)

PROJECT_VIEWS: dict[str, str | list[str]] = {
    "books_projects": f"select {project('books_projects', _PROJECTS)} from xero.projects p",
    "books_project_tasks": f"select {project('books_project_tasks', _TASKS)} from xero.project_tasks t",
    "books_time_entries": f"select {project('books_time_entries', _TIME)} {_TIME_FROM}",
}
"""The SQL of the project views; `definitions.py` hands it to the canonical views asset beside `BOOKS_VIEWS`."""
