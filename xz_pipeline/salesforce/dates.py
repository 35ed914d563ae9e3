"""Salesforce's wire values: dateTime as `2026-11-01T10:15:00.000+0000` (UTC, an offset without a colon),
dates as `yyyy-MM-dd`, SOQL datetime literals unquoted in UTC.

The client's own reading of the wire, deliberately not shared with the sandbox.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from xz_pipeline.core.wire import to_decimal  # noqa: F401 (re-exported: the tables read amounts here)

_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})$")


def parse_sf_datetime(value: Any) -> datetime | None:
    """A Salesforce dateTime as an aware UTC datetime; None for empty values; ValueError on garbage or a
    value without a zone (Salesforce always sends one)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a Salesforce dateTime needs a zone")
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise ValueError(f"not a Salesforce dateTime: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _OFFSET.sub(r"\1\2:\3", text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a Salesforce dateTime: {value!r}") from None
    if dt.tzinfo is None:
        raise ValueError(f"a Salesforce dateTime needs a zone: {value!r}")
    return dt.astimezone(UTC)


def parse_sf_date(value: Any) -> date | None:
    """A Salesforce date (`yyyy-MM-dd`); None for empty values; ValueError on garbage."""
    if value is None or value == "":
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise ValueError(f"not a Salesforce date: {value!r}")
    return date.fromisoformat(value.strip())


def format_sf_datetime(value: datetime) -> str:
    """An instant as SOQL and the REST API take it: `2026-11-01T10:15:00Z` (UTC, whole seconds)."""
    if value.tzinfo is None:
        raise ValueError("an instant needs a zone")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_sf_date(value: date) -> str:
    return value.isoformat()
