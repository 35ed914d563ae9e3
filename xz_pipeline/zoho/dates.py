"""Zoho CRM's wire values: DateTime with an offset, `yyyy-MM-dd` dates, and JSON-number amounts.

The client's own reading of the wire, deliberately not shared with the sandbox: if both sides used one
parser, a bug in it would be invisible.

Zoho sends DateTime in the API user's time zone, to the second, with an offset and never a `Z`
(`2026-11-01T10:15:00+13:00`); we keep instants as aware UTC. Dates carry no zone and stay dates.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from xz_pipeline.core.wire import to_decimal  # noqa: F401 (re-exported: the vendor tables read amounts here)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_zoho_datetime(value: Any) -> datetime | None:
    """A Zoho DateTime as an aware UTC datetime; None for empty values. Raises ValueError on garbage.

    A string without an offset is refused rather than guessed: Zoho always sends one, so a zone-less
    value means the field is not what we think it is.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a Zoho DateTime needs an offset")
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise ValueError(f"not a Zoho DateTime: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a Zoho DateTime: {value!r}") from None
    if dt.tzinfo is None:
        raise ValueError(f"a Zoho DateTime needs an offset: {value!r}")
    return dt.astimezone(UTC)


def parse_zoho_date(value: Any) -> date | None:
    """A Zoho Date field (`yyyy-MM-dd`) as a date; None for empty values. Raises ValueError on garbage."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        raise ValueError("a Zoho Date is a calendar date, not an instant")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"not a Zoho Date: {value!r}")


def format_zoho_datetime(value: datetime) -> str:
    """ISO 8601 with an offset, to the second, as Zoho takes it (`2026-11-01T10:15:00+00:00`)."""
    if value.tzinfo is None:
        raise ValueError("Zoho DateTimes need an aware datetime")
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def if_modified_since(value: datetime) -> str:
    """The If-Modified-Since header value. Zoho compares to the second and includes that second, so
    the time is truncated (never rounded up): a record modified in the cursor's second comes back
    again rather than being missed."""
    return format_zoho_datetime(value)


def format_zoho_date(value: date | datetime) -> str:
    """Dates in request bodies are `yyyy-MM-dd`."""
    return (value.date() if isinstance(value, datetime) else value).isoformat()
