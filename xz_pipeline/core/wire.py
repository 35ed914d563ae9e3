"""JSON values both vendors' clients read and write the same way: amounts as Decimal, bodies as JSON.

Dates are each vendor's own (xero/dates.py, zoho/dates.py); what is identical lives here once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


def to_decimal(value: Any) -> Decimal | None:
    """An amount (a JSON number or text) as Decimal, through its shortest text form so 0.1 stays 0.1;
    None for empty values."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    try:
        return Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None


def jsonable(value: Any, *, datetime_text: Callable[[datetime], str] = datetime.isoformat) -> Any:
    """A request body's values for json.dumps: Decimal as a JSON number (its shortest float is its decimal
    text for currency amounts), dates as YYYY-MM-DD, datetimes through the vendor's `datetime_text`."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, datetime_text=datetime_text) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, datetime_text=datetime_text) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "E" not in str(value) else float(value)
    if isinstance(value, datetime):
        return datetime_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
