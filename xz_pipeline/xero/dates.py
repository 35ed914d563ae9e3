"""Xero's wire values: .NET `/Date(ms±hhmm)/` dates, zone-less ISO strings, and JSON-number amounts.

The clients' own reading of the wire, deliberately not shared with the sandbox: if both sides used one
parser, a bug in it would be invisible.

`/Date(1419937200000+1300)/`: the number is milliseconds since the epoch, an absolute instant (as in
.NET's and xero-python's readers); the offset only says in which zone the value was meant, so it
decides the calendar day of a date field, never the instant.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from xz_pipeline.core.wire import to_decimal  # noqa: F401 (re-exported: the vendor tables read amounts here)

_MS_DATE = re.compile(r"^\\?/Date\((?P<ms>-?\d+)(?P<offset>[+-]\d{4})?\)\\?/$")


# .NET's DateTime.MinValue, 0001-01-01T00:00:00: what Xero sends in a date it has no value for.
NO_DATE_MS = -62135596800000


def is_no_date(value: Any) -> bool:
    """Is `value` Xero's "no date" (`/Date(-62135596800000+0000)/` or `0001-01-01T00:00:00`)?"""
    if not isinstance(value, str):
        return False
    parsed = _parse_ms(value)
    if parsed is not None:
        return parsed[0].year == 1
    return value.strip().startswith("0001-01-01")


def _offset(text: str | None) -> timezone:
    if not text:
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[3:5])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


@lru_cache(maxsize=1 << 16)
def _parse_ms(text: str) -> tuple[datetime, timezone] | None:
    """Cached: a million invoices carry far fewer distinct dates (Date and DueDate repeat by the day)."""
    m = _MS_DATE.match(text.strip())
    if not m:
        return None
    try:
        instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(m["ms"]))
        return instant, _offset(m["offset"])
    except (OverflowError, ValueError):
        raise ValueError(f"not a Xero date: {text!r}") from None


def parse_xero_datetime(value: Any) -> datetime | None:
    """A Xero time as an aware UTC datetime; None for empty values. Raises ValueError on garbage.

    Accepts `/Date(ms)/`, `/Date(ms±hhmm)/` (also JSON-escaped `\\/Date(...)\\/`), ISO 8601 with or
    without a zone (Xero's zone-less strings such as `UpdatedDateUTCString` and `/connections` dates are
    UTC), `YYYY-MM-DD`, and datetime/date objects.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str):
        raise ValueError(f"not a Xero date: {value!r}")
    parsed = _parse_ms(value)
    if parsed is not None:
        return parsed[0]
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a Xero date: {value!r}") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_xero_date(value: Any) -> date | None:
    """A Xero date field (Date, DueDate, FullyPaidOnDate) as a calendar date, read in the zone it was sent in."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        parsed = _parse_ms(value)
        if parsed is not None:
            instant, zone = parsed
            return instant.astimezone(zone).date()
        text = value.strip()
        if len(text) >= 10 and text[4] == "-" and text[7] == "-":
            try:
                return date.fromisoformat(text[:10])
            except ValueError:
                pass
    raise ValueError(f"not a Xero date: {value!r}")


def to_ms_date(value: date | datetime) -> str:
    """The `/Date(ms+0000)/` form, for comparing with what Xero sends."""
    dt = parse_xero_datetime(value)
    assert dt is not None
    return f"/Date({int((dt - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))}+0000)/"


def if_modified_since(value: datetime) -> str:
    """The If-Modified-Since header value: UTC, to the second, RFC 3339 (the spec's `date-time`; the
    official SDK sends an aware datetime's isoformat, as here)."""
    if value.tzinfo is None:
        raise ValueError("If-Modified-Since needs an aware datetime")
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def request_date(value: date | datetime) -> str:
    """Dates in request bodies are `YYYY-MM-DD`."""
    return (value.date() if isinstance(value, datetime) else value).isoformat()
