"""Salesforce's wire format: JSON errors as a list of {message, errorCode[, fields]}, records with their
`attributes` {type, url}, datetimes as `2026-11-02T09:00:00.000+0000`, and the datetime literals clients
send (ISO 8601 with Z or an offset)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


class SfError(Exception):
    """An API error: status plus one {message, errorCode, fields} entry."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def body(self) -> list[dict]:
        entry: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            entry["fields"] = self.fields
        return [entry]

    def record_error(self) -> dict:
        """The shape inside a per-record result (collections): statusCode instead of errorCode."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}


def not_found(message: str = "The requested resource does not exist") -> SfError:
    return SfError(404, "NOT_FOUND", message)


def sf_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 datetime with Z or an offset (+00:00 or +0000); ValueError otherwise."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    if len(raw) >= 5 and raw[-5] in "+-" and raw[-3] != ":" and "T" in raw:
        raw = raw[:-2] + ":" + raw[-2:]
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return value.astimezone(UTC)


def to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return sf_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def render(sobject: str, rec: dict, url_base: str, names: list[str] | None = None) -> dict:
    """A record as the API sends it: `attributes` first, then the fields (all, or `names` in order)."""
    out: dict[str, Any] = {
        "attributes": {"type": sobject, "url": f"{url_base}/sobjects/{sobject}/{rec['Id']}"}
    }
    for name in names if names is not None else rec:
        out[name] = to_json(rec.get(name))
    return out


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
