"""QBO's JSON on the wire: times with the company's offset, money as numbers, and the `Fault` envelope.

Records are kept with Python values (Decimal, date, aware datetime); `to_wire` renders them the way
QBO sends them: `2026-10-02T09:14:05-07:00` in the company's time zone, dates as `YYYY-MM-DD`,
amounts as JSON numbers. Errors are QBO's `{"Fault": {"Error": [...], "type": ...}, "time": ...}`.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

CURRENCY_NAMES = {
    "USD": "United States Dollar",
    "GBP": "British Pound Sterling",
    "EUR": "Euro",
    "NZD": "New Zealand Dollar",
    "AUD": "Australian Dollar",
    "CAD": "Canadian Dollar",
}


class WireError(ValueError):
    """A value in a request that QBO would not parse."""


def iso(dt: datetime, zone: ZoneInfo | None = None) -> str:
    """`2026-10-02T09:14:05-07:00`: seconds, the company's offset (QBO never sends `Z`)."""
    local = dt.astimezone(zone or UTC).replace(microsecond=0)
    text = local.isoformat()
    return text[:-6] + "+00:00" if text.endswith("+00:00") else text


def to_wire(value: Any, zone: ZoneInfo | None = None) -> Any:
    """A stored record as QBO's JSON values (recursively; keys starting with `_` are the emulator's own)."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return value
    if kind is dict:
        return {k: to_wire(v, zone) for k, v in value.items() if k[:1] != "_"}
    if kind is list:
        return [to_wire(v, zone) for v in value]
    if kind is Decimal:
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, datetime):
        return iso(value, zone)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_wire(v, zone) for k, v in value.items() if k[:1] != "_"}
    return value


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def parse_datetime(text: str) -> datetime:
    """ISO 8601 as clients send it (`2026-10-01T00:00:00-07:00`, `...Z`, `-0700`, or a bare date)."""
    raw = str(text).strip()
    if len(raw) == 10:
        try:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
        except ValueError as exc:
            raise WireError(f"bad date {text!r}") from exc
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    if len(raw) >= 5 and raw[-5] in "+-" and raw[-3] != ":":  # -0700 -> -07:00
        raw = raw[:-2] + ":" + raw[-2:]
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise WireError(f"bad date-time {text!r}") from exc
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(str(text).strip()[:10])
    except ValueError as exc:
        raise WireError(f"bad date {text!r}") from exc


def money(value: Any) -> Decimal:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (ArithmeticError, ValueError) as exc:
        raise WireError(f"bad amount {value!r}") from exc


class QboFault(Exception):
    """An error QBO answers with a Fault body: `code` is its error code, `status` the HTTP status."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str = "",
        *,
        status: int = 400,
        kind: str = "ValidationFault",
        element: str = "",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code, self.message, self.detail = code, message, detail
        self.status, self.kind, self.element = status, kind, element

    def body(self) -> dict:
        error = {"Message": self.message, "Detail": self.detail or self.message, "code": self.code}
        if self.element:
            error["element"] = self.element
        return {"Error": [error], "type": self.kind}


def fault_payload(fault: QboFault, now: datetime, zone: ZoneInfo | None = None) -> dict:
    return {"Fault": fault.body(), "time": iso_ms(now, zone)}


def iso_ms(dt: datetime, zone: ZoneInfo | None = None) -> str:
    """The envelope's `time`: milliseconds and the company's offset (`2026-11-02T01:00:00.123-08:00`)."""
    local = dt.astimezone(zone or UTC)
    text = local.isoformat(timespec="milliseconds")
    return text


# The faults QBO answers most often, by code (values as QBO documents them in its error list).
def stale_object(entity: str, rid: str, token: str) -> QboFault:
    return QboFault(
        "5010",
        "Stale Object Error",
        f"Stale Object Error : You and another user were working on the same thing. "
        f"Please try again. {entity} Id={rid} SyncToken={token}",
    )


def not_found(entity: str, rid: str) -> QboFault:
    return QboFault(
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive. "
        f"Check the fields with accounts, customers, items, vendors or employees. {entity} Id={rid}",
    )


def required(element: str, why: str = "") -> QboFault:
    return QboFault(
        "2020", "Required param missing, need to supply the required value for the API", why or element,
        element=element,
    )  # fmt: skip


def invalid(element: str, why: str) -> QboFault:
    return QboFault("2010", "Request has invalid or unsupported property", why, element=element)


def duplicate_name(name: str, rid: str) -> QboFault:
    return QboFault(
        "6240",
        "Duplicate Name Exists Error",
        f"The name supplied already exists. : Another customer, vendor or employee is already using this "
        f"name. Please use a different name. Id={rid}",
    )


def query_error(detail: str) -> QboFault:
    return QboFault("4000", "Error parsing query", f"QueryParserError: {detail}")
