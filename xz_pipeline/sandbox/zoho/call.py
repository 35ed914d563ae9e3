"""One call to the emulated CRM API, the route that answers it, and the whole-request errors it can raise.

The handlers (reads, writes, settings, composite) take a Call and raise ApiError; the router picks them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
    """A whole-request error in Zoho's shape `{code, details, message, status}`."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}

    def body(self) -> dict:
        return {"code": self.code, "details": self.details, "message": self.message, "status": "error"}


@dataclass
class Call:
    method: str
    version: str
    parts: list[str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    org: Any = None
    token: Any = None
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    def json(self) -> Any:
        """The JSON body; a body that does not parse is a 400 INVALID_DATA."""
        if not self._parsed:
            self._parsed = True
            if self.body.strip():
                try:
                    self._json = json.loads(self.body)
                except ValueError:
                    raise ApiError(
                        400, "INVALID_DATA", "invalid data", {"reason": "body is not JSON"}
                    ) from None
        return self._json

    def data_count(self) -> int:
        try:
            body = self.json()
        except ApiError:
            return 0
        data = body.get("data") if isinstance(body, dict) else None
        return len(data) if isinstance(data, list) else 0


@dataclass
class Route:
    handler: Callable[[Call], tuple[int, Any]]
    scopes: list[tuple[str, ...]]
    complex: bool = False
    credits: int = 1


def invalid_module(index: int = 0) -> ApiError:
    return ApiError(
        400, "INVALID_MODULE", "The module name given seems to be invalid", {"resource_path_index": index}
    )


def bad_method() -> ApiError:
    return ApiError(400, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one")


def bad_url() -> ApiError:
    return ApiError(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")


def feature_not_supported(feature: str) -> ApiError:
    """What Zoho answers for a feature the org's edition lacks (v8 record.json: FEATURE_NOT_SUPPORTED)."""
    return ApiError(400, "FEATURE_NOT_SUPPORTED", f"{feature} feature is not available in your edition")
