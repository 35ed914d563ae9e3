"""Xero Projects payloads as typed mirror tables: `xero.projects`, `xero.project_tasks`, `xero.time_entries`,
`xero.project_users` (each with its `_history`).

The Projects API speaks camelCase with ISO 8601 UTC times (entry times with seven fractional digits, one more
than Python reads) and money as `{currency, value}`; amounts land as DECIMAL(18, 2). No record carries a
modified time, so none moves a cursor: `projects_assets.py` decides what to re-read from the totals.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from xz_pipeline.core.mirror import MONEY, Col, EntityTable, ident, text
from xz_pipeline.xero.dates import to_decimal

_FRACTION = re.compile(r"\.(\d+)")


def parse_instant(value: Any) -> datetime | None:
    """ "2020-02-28T03:24:29.2215641Z" (or without a fraction, or with an offset) as an aware UTC time."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{type(value).__name__} where a date-time belongs")
    text_ = _FRACTION.sub(lambda m: "." + m[1][:6].ljust(6, "0"), value.strip()).replace("Z", "+00:00")
    dt = datetime.fromisoformat(text_)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def instant(field: str) -> Callable[[dict], datetime | None]:
    return lambda p: parse_instant(p.get(field))


def amount(field: str) -> Callable[[dict], Decimal | None]:
    """The `value` of an Amount object ({currency, value}); None when the field is absent."""

    def get(p: dict) -> Decimal | None:
        value = p.get(field)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise TypeError(f"{type(value).__name__} where an Amount object belongs")
        return to_decimal(value.get("value"))

    return get


def minutes(field: str) -> Callable[[dict], int | None]:
    def get(p: dict) -> int | None:
        value = p.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{value!r} where whole minutes belong")
        return value

    return get


def _none(_p: dict) -> None:
    return None


PROJECTS = EntityTable(
    vendor="xero",
    entity="Projects",
    schema="xero",
    table="projects",
    key=["connection", "project_id"],
    record_id=lambda p: p.get("projectId", ""),
    modified=_none,
    cols=[
        Col("project_id", "varchar not null", ident("projectId")),
        Col("contact_id", "varchar", text("contactId")),
        Col("name", "varchar", text("name")),
        Col("currency_code", "varchar", text("currencyCode")),
        Col("status", "varchar", text("status")),
        Col("minutes_logged", "integer", minutes("minutesLogged")),
        Col("minutes_to_be_invoiced", "integer", minutes("minutesToBeInvoiced")),
        Col("total_task_amount", MONEY, amount("totalTaskAmount")),
        Col("task_amount_invoiced", MONEY, amount("taskAmountInvoiced")),
        Col("task_amount_to_be_invoiced", MONEY, amount("taskAmountToBeInvoiced")),
        Col("total_expense_amount", MONEY, amount("totalExpenseAmount")),
        Col("expense_amount_invoiced", MONEY, amount("expenseAmountInvoiced")),
        Col("expense_amount_to_be_invoiced", MONEY, amount("expenseAmountToBeInvoiced")),
        Col("project_amount_invoiced", MONEY, amount("projectAmountInvoiced")),
        Col("deposit", MONEY, amount("deposit")),
        Col("credit_note_amount", MONEY, amount("creditNoteAmount")),
        Col("total_invoiced", MONEY, amount("totalInvoiced")),
        Col("total_to_be_invoiced", MONEY, amount("totalToBeInvoiced")),
        Col(
            "estimate",
            MONEY,
            lambda p: amount("estimate")(p) if p.get("estimate") else amount("estimateAmount")(p),
        ),
        Col("deadline_utc", "timestamptz", instant("deadlineUtc")),
    ],
)

PROJECT_TASKS = EntityTable(
    vendor="xero",
    entity="ProjectTasks",
    schema="xero",
    table="project_tasks",
    key=["connection", "task_id"],
    record_id=lambda p: p.get("taskId", ""),
    modified=_none,
    cols=[
        Col("task_id", "varchar not null", ident("taskId")),
        Col("project_id", "varchar", text("projectId")),
        Col("name", "varchar", text("name")),
        Col("charge_type", "varchar", text("chargeType")),
        Col("rate", MONEY, amount("rate")),
        Col("estimate_minutes", "integer", minutes("estimateMinutes")),
        Col("total_minutes", "integer", minutes("totalMinutes")),
        Col("minutes_invoiced", "integer", minutes("minutesInvoiced")),
        Col("minutes_to_be_invoiced", "integer", minutes("minutesToBeInvoiced")),
        Col("total_amount", MONEY, amount("totalAmount")),
        Col("amount_invoiced", MONEY, amount("amountInvoiced")),
        Col("amount_to_be_invoiced", MONEY, amount("amountToBeInvoiced")),
        Col("status", "varchar", text("status")),
    ],
)

TIME_ENTRIES = EntityTable(
    vendor="xero",
    entity="TimeEntries",
    schema="xero",
    table="time_entries",
    key=["connection", "time_entry_id"],
    record_id=lambda p: p.get("timeEntryId", ""),
    modified=instant("dateEnteredUtc"),
    cols=[
        Col("time_entry_id", "varchar not null", ident("timeEntryId")),
        Col("project_id", "varchar", text("projectId")),
        Col("task_id", "varchar", text("taskId")),
        Col("user_id", "varchar", text("userId")),
        Col("date_utc", "timestamptz", instant("dateUtc")),
        Col("date_entered_utc", "timestamptz", instant("dateEnteredUtc")),
        Col("duration", "integer", minutes("duration")),
        Col("description", "varchar", text("description")),
        Col("status", "varchar", text("status")),
    ],
)

PROJECT_USERS = EntityTable(
    vendor="xero",
    entity="ProjectUsers",
    schema="xero",
    table="project_users",
    key=["connection", "user_id"],
    record_id=lambda p: p.get("userId", ""),
    modified=_none,
    cols=[
        Col("user_id", "varchar not null", ident("userId")),
        Col("name", "varchar", text("name")),
        Col("email", "varchar", text("email")),
    ],
)

ENTITIES = [PROJECTS, PROJECT_TASKS, TIME_ENTRIES, PROJECT_USERS]
