"""Xero's wire formats: .NET `/Date(ms+0000)/` dates, JSON amounts, and a minimal XML rendering.

The emulator keeps records typed (date, datetime, Decimal) and converts only at the edge, so
`where` filters and derived amounts work on real values, and the wire format lives in one place.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DATE_FIELDS = frozenset(
    {
        "Date",
        "DueDate",
        "FullyPaidOnDate",
        "ExpectedPaymentDate",
        "PlannedPaymentDate",
        "PeriodLockDate",
        "EndOfYearLockDate",
    }
)
DATETIME_FIELDS = frozenset({"UpdatedDateUTC", "CreatedDateUTC"})
NUMBER_FIELDS = frozenset(
    {
        "Quantity", "UnitAmount", "TaxAmount", "LineAmount", "DiscountRate", "DiscountAmount", "SubTotal", "TotalTax",
        "Total", "TotalDiscount", "AmountDue", "AmountPaid", "AmountCredited", "CurrencyRate", "Amount", "BankAmount",
        "RemainingCredit", "AppliedAmount", "UnitPrice", "Outstanding", "Overdue", "TotalCostPool", "QuantityOnHand",
        "Discount", "Rate", "EffectiveRate", "DisplayTaxRate",
    }
)  # fmt: skip

_MSDATE = re.compile(r"^\\?/Date\((-?\d+)([+-]\d{4})?\)\\?/$")


class WireError(ValueError):
    """A request value that cannot be read as the type Xero expects (becomes a validation error)."""


def ms_date(value: date | datetime) -> str:
    """`/Date(ms+0000)/` as Xero writes entity date fields (dates at midnight UTC)."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    ms = int((value - EPOCH) / timedelta(milliseconds=1))
    return f"/Date({ms}+0000)/"


def envelope_date(value: datetime) -> str:
    """The envelope's `DateTimeUTC` has no offset: `/Date(ms)/`."""
    return f"/Date({int((value - EPOCH) / timedelta(milliseconds=1))})/"


def iso_no_zone(value: date | datetime) -> str:
    """`DateString` style: `2019-03-07T00:00:00` (no zone)."""
    if not isinstance(value, datetime):
        return f"{value.isoformat()}T00:00:00"
    return value.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


def parse_datetime(text: str) -> datetime:
    """Read a request date/time: `/Date(ms±hhmm)/`, ISO 8601 (zone optional, UTC assumed) or `YYYY-MM-DD`."""
    text = str(text).strip()
    m = _MSDATE.match(text)
    if m:
        return EPOCH + timedelta(milliseconds=int(m.group(1)))
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WireError(f"'{text}' is not a valid date") from exc
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return parse_datetime(value).date()


def parse_number(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise WireError(f"'{value}' is not a number")
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise WireError(f"'{value}' is not a number") from exc


def from_wire(value: Any, key: str = "") -> Any:
    """API-shaped JSON (as a GET returns or a client sends) to typed values, recursively."""
    if isinstance(value, dict):
        return {k: from_wire(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [from_wire(v, key) for v in value]
    if value is None or value == "":
        return value
    if key in DATE_FIELDS:
        return parse_date(value)
    if key in DATETIME_FIELDS:
        return parse_datetime(value)
    if key in NUMBER_FIELDS:
        return parse_number(value)
    return value


def to_wire(value: Any) -> Any:
    """Typed values to JSON: dates as `/Date()/`, Decimals as numbers."""
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    if isinstance(value, datetime | date):
        return ms_date(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    return value


def _singular(name: str) -> str:
    if name.endswith("sses") or name.endswith("xes"):
        return name[:-2]
    return name[:-1] if name.endswith("s") else name


def to_xml(name: str, value: Any) -> str:
    """A minimal XML rendering of a wire-shaped value (Xero answers XML unless asked for JSON)."""
    if isinstance(value, dict):
        inner = "".join(to_xml(k, v) for k, v in value.items() if v is not None)
        return f"<{name}>{inner}</{name}>"
    if isinstance(value, list):
        child = _singular(name)
        return f"<{name}>{''.join(to_xml(child, v) for v in value)}</{name}>"
    if isinstance(value, bool):
        return f"<{name}>{'true' if value else 'false'}</{name}>"
    return f"<{name}>{escape(str(value))}</{name}>"
