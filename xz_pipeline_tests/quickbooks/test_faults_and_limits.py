"""What QBO refuses and how much it allows: Fault envelopes classified by `core.errors` (a stale object, a
business rule and a refused token are fixed by people: one line, no retry; throttling and server trouble are
retried), and the per-realm minute budget counted on our side."""

from __future__ import annotations

import json

import pytest

from xz_pipeline.core.errors import AuthError, explain
from xz_pipeline.core.http import Reply
from xz_pipeline.quickbooks.client import parse_error


def fault(status: int, code: str, message: str, detail: str = "", key: str = "Fault") -> Reply:
    errors = "Error" if key == "Fault" else "error"
    body = {key: {errors: [{"Message" if key == "Fault" else "message": message, "Detail": detail, "code": code,
                            "element": "SyncToken" if code == "5010" else ""}], "type": "ValidationFault"}}  # fmt: skip
    raw = json.dumps(body).encode()
    return Reply(status, {"Content-Type": "application/json"}, raw, body)


@pytest.mark.parametrize(
    ("reply", "code", "retry", "says"),
    [
        (
            fault(400, "5010", "Stale Object Error", "You and Ann were working on this at the same time."),
            "5010",
            False,
            "QuickBooks refused POST batch: 5010: Stale Object Error: You and Ann",
        ),
        (
            fault(400, "6000", "A business validation error has occurred", "Duplicate Document Number"),
            "6000",
            False,
            "6000: A business validation error has occurred: Duplicate Document Number",
        ),
        (
            fault(401, "3200", "message=AuthenticationFailed", key="fault"),
            "3200",
            False,
            "run `xz auth quickbooks`",
        ),
        (fault(429, "003001", "ThrottleExceeded"), "003001", True, "ThrottleExceeded"),
        (fault(503, "10000", "An application error has occurred"), "10000", True, "An application error"),
    ],
    ids=["stale", "business", "auth", "throttled", "server"],
)
def test_faults(reply, code, retry, says):
    exc = parse_error(reply, "POST batch")
    assert exc.code == code and exc.vendor == "quickbooks"
    assert isinstance(exc, AuthError) == (code == "3200")
    verdict = explain(exc)
    assert verdict.retry is retry and says in verdict.message and "\n" not in verdict.message


def test_a_refused_refresh_names_the_qbo_variables():
    exc = AuthError("quickbooks", 400, "invalid_client", "refused", endpoint="oauth token")
    assert "check QBO_CLIENT_ID and QBO_CLIENT_SECRET" in explain(exc).message


class FakeTimer:
    def __init__(self) -> None:
        self.now, self.slept = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_minute_budget_waits_for_the_oldest_call_to_age_out():
    """QBO sends no remaining-count headers: 500 calls a minute per realm are counted here."""
    from xz_pipeline.quickbooks.client import MinuteWindow

    timer, window = FakeTimer(), MinuteWindow(500)
    for n in range(500):
        timer.now = 1000.0 + n * 0.01
        assert window.reserve(timer) == 0
    waited = window.reserve(timer)  # the 501st within the minute
    assert 55 < waited < 61 and timer.now >= 1060.0
