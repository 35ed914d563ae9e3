"""One exception family for every vendor call, so stages can tell a bad record from a dead connection.

Each error carries what an operator needs to act on (vendor, HTTP status, the API's own error code, the
record and field at fault) and never what would leak: no token, no URL query, no request headers or body.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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


# -- what a failure means to the person running the pipeline ----------------------------------------

# Token-endpoint error codes that no retry heals (Zoho sends them inside an HTTP 200): the fix is a person's.
REFUSED_GRANT_HINTS = {
    "invalid_client": "check {V}_CLIENT_ID and {V}_CLIENT_SECRET",
    "invalid_client_secret": "check {V}_CLIENT_SECRET",
    "unauthorized_client": "check {V}_CLIENT_ID: the app may not use this grant",
    "invalid_grant": "the refresh token is expired, revoked or already used: run `xz auth {v}`",
    "invalid_code": "the consent code expired or was already used: run `xz auth {v}` again",
    "invalid_redirect_uri": "register the redirect URI (XZ_REDIRECT_URI) in the {N} app",
    "no_refresh_token": "run `xz auth {v}` or set {V}_REFRESH_TOKEN",
    "token_store_unreadable": "remove the damaged file under $XZ_HOME/tokens and run `xz auth {v}`",
    "NoTenant": "run `xz auth {v}` and pick an organisation",
}
# A grant that lacks a scope, an org whose edition lacks a module: the fix is in the vendor's console.
SCOPE_CODES = frozenset({"OAUTH_SCOPE_MISMATCH", "AuthorizationUnsuccessful", "insufficient_scope"})
MODULE_CODES = frozenset({"INVALID_MODULE", "NOT_SUPPORTED", "FEATURE_NOT_SUPPORTED", "FEATURE_NOT_ENABLED"})
# Day-long budgets: a retry seconds later finds them as spent.
SPENT_FOR_THE_DAY = frozenset({"day", "credits"})

_NAMES = {"xero": "Xero", "zoho": "Zoho", "quickbooks": "QuickBooks", "salesforce": "Salesforce"}
_ENV_PREFIX = {"quickbooks": "QBO"}  # the variables' prefix where it is not the vendor's name


def vendor_name(vendor: str) -> str:
    return _NAMES.get(vendor.lower(), vendor)


def grant_hint(vendor: str, code: str) -> str | None:
    """What to do about a refused token request with this error code; None if the code is not one we know."""
    hint = REFUSED_GRANT_HINTS.get(code)
    v = vendor.lower()
    return hint.format(V=_ENV_PREFIX.get(v, v.upper()), v=v, N=vendor_name(vendor)) if hint else None


class Verdict:
    """Whether a failure may heal by itself (`retry`), and one line saying what happened and what to do."""

    __slots__ = ("message", "retry")

    def __init__(self, retry: bool, message: str) -> None:
        self.retry = retry
        self.message = message

    def __repr__(self) -> str:
        return f"Verdict(retry={self.retry}, message={self.message!r})"


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


def explain(exc: BaseException) -> Verdict:
    """The one classification of failures, used by every asset step and the CLI.

    Retried: throttling that may lift (429 below a day's budget), 5xx, timeouts and dropped connections,
    and a mirror busy with another writer. Everything else fails at once: a refused grant (by its error
    code, whatever the HTTP status), a missing scope or module, validation, an unknown field or
    connection, and bugs.
    """
    from xz_pipeline.settings import SettingsError  # settings imports nothing of ours: no cycle

    if isinstance(exc, SettingsError):
        return Verdict(False, f"{_first_line(str(exc))} — fix the configuration (docs/configuration.md)")
    if isinstance(exc, RateLimitExhausted):
        if exc.limit in SPENT_FOR_THE_DAY:
            return Verdict(
                False,
                f"{vendor_name(exc.vendor)}'s {exc.limit} budget is spent — the next run resumes when it comes back",
            )
        return Verdict(True, _first_line(str(exc)))
    if isinstance(exc, ApiError):
        name = vendor_name(exc.vendor)
        hint = grant_hint(exc.vendor, exc.code)
        if hint is not None:
            what = "the consent code" if exc.code == "invalid_code" else "the token refresh"
            return Verdict(False, f"{name} refused {what}: {exc.code} — {hint}")
        where = f" {exc.endpoint}" if exc.endpoint else ""
        if exc.code in SCOPE_CODES:
            return Verdict(
                False,
                f"{name} refused{where}: the grant lacks a scope ({exc.code}) — run `xz auth {exc.vendor.lower()}` "
                "and approve every scope asked",
            )
        if exc.code in MODULE_CODES:
            return Verdict(False, f"{name} refused{where}: {exc.code} — the org's edition lacks this module")
        if isinstance(exc, TransportError):
            return Verdict(
                True, f"{name} could not be reached{where}: {_first_line(exc.message)} — check the network"
            )
        if exc.transient and not isinstance(exc, AuthError):
            return Verdict(True, _first_line(str(exc)))
        record = (
            f" (record {exc.record_id}" + (f", field {exc.field})" if exc.field else ")")
            if exc.record_id
            else ""
        )
        field = f" (field {exc.field})" if exc.field and not exc.record_id else ""
        todo = (
            f"run `xz auth {exc.vendor.lower()}` to reconnect"
            if isinstance(exc, AuthError)
            else "fix the request or the record; retrying will not help"
        )
        message = _first_line(exc.message) or "refused"
        return Verdict(False, f"{name} refused{where}: {exc.code}: {message}{record}{field} — {todo}")
    from xz_pipeline.core.store import StoreBusy

    if isinstance(exc, StoreBusy):  # another writer finishes: worth another attempt
        return Verdict(True, _first_line(str(exc)))
    import requests

    dropped = (ConnectionError, TimeoutError, requests.ConnectionError, requests.Timeout)
    if isinstance(exc, dropped):  # a connection dropped or timed out outside the client's own retries
        return Verdict(True, f"{type(exc).__name__}: {_first_line(str(exc)) or 'connection lost'}")
    return Verdict(False, f"{type(exc).__name__}: {_first_line(str(exc)) or 'no message'}")


@contextmanager
def fail_fast() -> Iterator[None]:
    """Inside an asset step: a failure no retry heals becomes `dg.Failure(allow_retries=False)` with the
    one line of `explain`, so Dagster's RetryPolicy never repeats a refused request; a transient one
    propagates unchanged and is retried."""
    import dagster as dg

    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        verdict = explain(exc)
        if verdict.retry:
            raise
        raise dg.Failure(description=verdict.message, allow_retries=False) from exc
