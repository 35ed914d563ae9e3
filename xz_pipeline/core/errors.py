"""One exception family for every vendor call, so stages can tell a bad record from a dead connection.

Each error carries what an operator needs to act on (vendor, HTTP status, the API's own error code, the
record and field at fault) and never what would leak: no token, no URL query, no request headers or body.
"""

from __future__ import annotations


class ApiError(Exception):
    """A vendor answered with an error, or could not be reached after every retry."""

    def __init__(
        self,
        vendor: str,
        status: int | None,
        code: str,
        message: str,
        *,
        record_id: str | None = None,
        field: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.vendor = vendor
        self.status = status
        self.code = code
        self.message = message
        self.record_id = record_id
        self.field = field
        self.endpoint = endpoint
        super().__init__(self._render())

    def _render(self) -> str:
        where = f" {self.endpoint}" if self.endpoint else ""
        status = f" HTTP {self.status}" if self.status is not None else ""
        parts = [f"{self.vendor}{where}:{status} {self.code}: {self.message}".replace(":  ", ": ")]
        if self.record_id:
            parts.append(f"record={self.record_id}")
        if self.field:
            parts.append(f"field={self.field}")
        return " ".join(parts)

    @property
    def transient(self) -> bool:
        """Whether the same call may succeed later (server trouble, throttling, network)."""
        return self.status is None or self.status == 429 or self.status >= 500


class AuthError(ApiError):
    """Authentication or authorisation failed: a dead refresh token, a revoked grant, a missing scope or tenant."""

    @property
    def transient(self) -> bool:
        return False


class RateLimitExhausted(ApiError):
    """A budget that will not come back soon is spent (Xero's day limit, Zoho's daily credits).

    `limit` names it (day, minute, appminute, concurrent, credits) and `retry_after` says, in seconds,
    when the vendor expects it back, when the vendor said so.
    """

    def __init__(
        self, vendor: str, limit: str, *, retry_after: float | None = None, endpoint: str | None = None
    ) -> None:
        self.limit = limit
        self.retry_after = retry_after
        after = f"; available again in about {retry_after:.0f}s" if retry_after else ""
        super().__init__(
            vendor,
            429,
            "RateLimitExhausted",
            f"the {limit} rate limit is used up{after}",
            endpoint=endpoint,
        )


class TransportError(ApiError):
    """The vendor could not be reached or answered unreadably, on every attempt."""

    def __init__(self, vendor: str, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(vendor, None, "TransportError", message, endpoint=endpoint)
