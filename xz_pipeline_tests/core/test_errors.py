"""The one classification of failures: what Dagster may retry, and the line a person reads."""

from __future__ import annotations

import dagster as dg
import pytest

from xz_pipeline import settings
from xz_pipeline.core.errors import (
    ApiError,
    AuthError,
    RateLimitExhausted,
    TransportError,
    explain,
    fail_fast,
)
from xz_pipeline.core.store import StoreBusy


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (AuthError("zoho", 200, "invalid_client_secret", "x", endpoint="oauth token"),
         "Zoho refused the token refresh: invalid_client_secret — check ZOHO_CLIENT_SECRET"),
        (AuthError("xero", 400, "invalid_client", "x", endpoint="oauth token"),
         "Xero refused the token refresh: invalid_client — check XERO_CLIENT_ID and XERO_CLIENT_SECRET"),
        (AuthError("zoho", 200, "invalid_code", "x"), "Zoho refused the consent code: invalid_code"),
        (AuthError("xero", 400, "invalid_grant", "x"), "run `xz auth xero`"),
        # A refused grant is permanent by its code, whatever status carried it.
        (ApiError("zoho", 200, "invalid_client", "x"), "check ZOHO_CLIENT_ID and ZOHO_CLIENT_SECRET"),
        (AuthError("zoho", 401, "OAUTH_SCOPE_MISMATCH", "x", endpoint="GET Deals"),
         "Zoho refused GET Deals: the grant lacks a scope (OAUTH_SCOPE_MISMATCH) — run `xz auth zoho`"),
        (ApiError("zoho", 400, "INVALID_MODULE", "x", endpoint="GET Invoices"), "the org's edition lacks this module"),
        (ApiError("xero", 400, "ValidationException", "Email is not valid", record_id="c-1"),
         "Xero refused: ValidationException: Email is not valid (record c-1) — fix the request or the record"),
        (ApiError("zoho", 400, "INVALID_DATA", "invalid field", field="Foo_Bar"), "(field Foo_Bar)"),
        (RateLimitExhausted("xero", "day", retry_after=3600), "Xero's day budget is spent"),
        (settings.SettingsError("connection 'nope' is not configured"), "'nope' is not configured — fix the configuration"),
        (KeyError("Contacts"), "KeyError: 'Contacts'"),
    ],
)  # fmt: skip
def test_what_no_retry_heals_fails_at_once_with_one_line(error, line):
    verdict = explain(error)
    assert not verdict.retry
    assert line in verdict.message
    assert "\n" not in verdict.message
    with pytest.raises(dg.Failure) as failed, fail_fast():
        raise error
    assert failed.value.description == verdict.message
    assert failed.value.allow_retries is False
    assert failed.value.__cause__ is error  # the traceback stays in the log, for --verbose


@pytest.mark.parametrize(
    "error",
    [
        ApiError("zoho", 503, "HTTP503", "unavailable"),
        ApiError("xero", 429, "HTTP429", "slow down"),
        RateLimitExhausted("xero", "minute", retry_after=30),
        TransportError("xero", "read timeout after 6 attempt(s)"),
        StoreBusy("the mirror is being written by another process"),
        ConnectionResetError("connection reset by peer"),  # dropped outside the client's own retries
        TimeoutError("timed out"),
    ],
)
def test_what_may_heal_propagates_unchanged_for_dagster_to_retry(error):
    assert explain(error).retry
    with pytest.raises(type(error)), fail_fast():
        raise error


def test_an_explicit_failure_passes_through():
    with pytest.raises(dg.Failure, match="blocked"), fail_fast():
        raise dg.Failure(description="blocked", allow_retries=False)
