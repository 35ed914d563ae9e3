"""QuickBooks Online's wire values: `YYYY-MM-DD` dates, ISO instants with an offset, JSON-number amounts.

The client's own reading of the wire, deliberately not shared with the sandbox (a shared parser would hide
its own bugs). Query literals go out as `YYYY-MM-DDTHH:MM:SS-00:00` (QBO compares instants, offset kept).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from xz_pipeline.core.wire import to_decimal  # noqa: F401 (re-exported: the tables read amounts here)


def parse_qbo_date(value: Any) -> date | None:
    """`TxnDate`, `DueDate`: a calendar day; QBO sometimes appends a zone (`2024-01-15-08:00`): the day holds."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a date")
    return date.fromisoformat(value.strip()[:10])


def parse_qbo_datetime(value: Any) -> datetime | None:
    """`MetaData.LastUpdatedTime` etc.: ISO 8601 with an offset (`2015-07-24T10:48:27-07:00`), as UTC.
    A value without an offset is taken as UTC."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a time")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def query_instant(value: datetime) -> str:
    """An instant as a query literal: UTC, seconds, explicit offset."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
