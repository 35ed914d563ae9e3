"""`xz doctor`: one line per check and connection, healthy and broken, against the tiny sandbox (in process):
real token refreshes (and never a token printed), scopes, the bare org's missing fields, webhook secrets and the
receiver, clock skew against the vendors' Date headers, a spent day budget, a locked mirror, missing config."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from xz_pipeline import cli, doctor, settings
from xz_pipeline.core import oauth
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.core.store import HeldLock, Store
from xz_pipeline.realtime.receiver import serve_in_thread
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.sandbox_env import export_sandbox

CHECKS = ("config", "tokens", "scopes", "fields", "budget", "webhooks", "receiver", "clock", "mirror")


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=23, size="tiny") as sb:
        yield sb


@pytest.fixture(autouse=True)
def _fresh_refusals():
    oauth.forget_refusals()
    yield
    oauth.forget_refusals()


@pytest.fixture
def env(sandbox, monkeypatch):
    monkeypatch.delenv("XZ_PUBLIC_URL", raising=False)
    name = sandbox.connection_name(0)
    return {**export_sandbox(monkeypatch, sandbox, name), "XZ_CONNECTION": name}


def _doctor(capsys, *args) -> tuple[int, dict[str, str], str]:
    """Exit code, {check: its line} (the last line of each check name), and all the output."""
    code = cli.main(["doctor", *args])
    out, err = capsys.readouterr()
    lines = {}
    for line in out.splitlines():
        m = re.match(r"^[^:]+: (\w+)\s+(ok|PROBLEM): ", line)
        assert m, line
        lines.setdefault(m[1], "")
        lines[m[1]] += line + "\n"
    return code, lines, out + err


def _token_posts(emulator) -> int:
    return sum(1 for r in emulator.received if r.method == "POST" and r.path.endswith("/token"))


def test_a_healthy_connection_is_ok_on_every_line_and_prints_no_token(env, sandbox, capsys):
    before = (_token_posts(sandbox.xero), _token_posts(sandbox.zoho))
    code, lines, out = _doctor(capsys)
    assert code == 0, out
    assert set(CHECKS) <= set(lines), lines
    assert "PROBLEM" not in out
    # a real refresh at each configured token URL
    assert (_token_posts(sandbox.xero), _token_posts(sandbox.zoho)) == (before[0] + 1, before[1] + 1)
    store = TokenStore(settings.xz_home() / "tokens")
    for vendor in ("xero", "zoho"):
        tokens = store.load(env["XZ_CONNECTION"], vendor)
        assert tokens is not None
        assert tokens.access_token not in out and tokens.refresh_token not in out
    for secret in ("XERO_CLIENT_SECRET", "ZOHO_CLIENT_SECRET", "XERO_REFRESH_TOKEN", "ZOHO_REFRESH_TOKEN",
                   "XERO_WEBHOOK_KEY", "ZOHO_NOTIFY_TOKEN"):  # fmt: skip
        assert env[secret] not in out
    assert "Zoho: all 7 scopes" in lines["scopes"] and "accounting.contacts" in lines["scopes"]
    assert re.search(r"Xero: \d+ of its day budget left today", lines["budget"])
    assert "writable and not locked" in lines["mirror"] or "no mirror yet" in lines["mirror"]


@pytest.mark.parametrize(
    ("variable", "words"),
    [("ZOHO_CLIENT_SECRET", "Zoho refused the token refresh: invalid_client_secret"),
     ("XERO_CLIENT_SECRET", "Xero refused the token refresh: invalid_client")],
)  # fmt: skip
def test_a_wrong_secret_is_a_blocking_token_problem(env, monkeypatch, capsys, variable, words):
    monkeypatch.setenv(variable, "not-the-secret")
    code, lines, out = _doctor(capsys)
    assert code == 1
    assert "PROBLEM" in lines["tokens"] and words in lines["tokens"], lines["tokens"]
    assert "not-the-secret" not in out
    assert "would stop a sync" in out


def test_missing_scopes_are_named_with_what_to_do(env, sandbox, monkeypatch, capsys):
    monkeypatch.setenv(
        "XZ_HOME", str(settings.xz_home() / "other")
    )  # no stored tokens: the new grant is used
    monkeypatch.setenv("XERO_REFRESH_TOKEN", sandbox.xero.grant_refresh_token(
        env["XERO_CLIENT_ID"], [env["XERO_TENANT_ID"]], "openid offline_access accounting.settings"))  # fmt: skip
    monkeypatch.setenv("ZOHO_REFRESH_TOKEN", sandbox.zoho.grant_refresh_token(
        env["ZOHO_CLIENT_ID"], sandbox.org_ids[0], "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.org.READ"))  # fmt: skip
    code, lines, _ = _doctor(capsys)
    assert code == 1  # Xero cannot read contacts or invoices
    xero_line, zoho_line = lines["scopes"].splitlines()
    assert "PROBLEM: Xero: not granted accounting.contacts" in xero_line and "xz auth xero" in xero_line
    assert "PROBLEM: Zoho: not granted" in zoho_line and "ZohoCRM.composite_requests.CUSTOM" in zoho_line
    assert "ZohoCRM.modules.ALL" not in zoho_line


def test_the_bare_org_lacks_the_integrations_fields(monkeypatch, capsys):
    with SandboxServer(seed=31, size="tiny", profile="bare") as sb:
        monkeypatch.delenv("XZ_PUBLIC_URL", raising=False)
        export_sandbox(monkeypatch, sb, sb.connection_name(0))
        code, lines, _ = _doctor(capsys)
    assert code == 0  # features are skipped with a reason; the sync runs
    assert "PROBLEM: Zoho lacks Accounts.Xero_Contact_ID" in lines["fields"]
    assert f"xz setup zoho --connection {sb.connection_name(0)}" in lines["fields"]


def test_webhook_secrets_and_the_receiver(env, monkeypatch, capsys):
    url, stop = serve_in_thread("127.0.0.1", 0)
    try:
        monkeypatch.setenv("XZ_PUBLIC_URL", url)
        code, lines, _ = _doctor(capsys)
        assert code == 0 and f"receiver ok: {url}/health answers" in lines["receiver"]
    finally:
        stop()
    monkeypatch.delenv("XERO_WEBHOOK_KEY")
    code, lines, _ = _doctor(capsys)  # the receiver is gone now
    assert "PROBLEM: XERO_WEBHOOK_KEY is not set" in lines["webhooks"]
    assert "PROBLEM" in lines["receiver"] and "not reachable" in lines["receiver"]
    assert code == 0  # neither stops a sync


def test_clock_skew_against_the_vendors_date_headers(env, monkeypatch, capsys):
    class Ahead(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(minutes=5)

    code, lines, _ = _doctor(capsys)
    assert "clock    ok" in lines["clock"]
    monkeypatch.setattr(doctor, "datetime", Ahead)
    code, lines, _ = _doctor(capsys)
    assert re.search(
        r"PROBLEM: this machine is 3\d\ds ahead of the vendors' clocks: synchronise it", lines["clock"]
    )


def test_a_spent_day_budget_stops_the_sync(monkeypatch, capsys):
    with SandboxServer(seed=29, size="tiny", faults="429:day@path=/api.xro/2.0/Organisation") as sb:
        monkeypatch.delenv("XZ_PUBLIC_URL", raising=False)
        export_sandbox(monkeypatch, sb, sb.connection_name(0))
        code, lines, _ = _doctor(capsys)
    assert code == 1
    assert "PROBLEM: Xero's day budget is spent for today" in lines["budget"]


def test_a_locked_mirror_stops_the_sync(env, capsys):
    store = Store(settings.mirror_path(env["XZ_CONNECTION"]))
    with store.write() as con:
        store.ensure_base(con)
    lock = HeldLock(str(store.path) + ".lock")
    lock.acquire(timeout=1)
    try:
        code, lines, _ = _doctor(capsys)
    finally:
        lock.release()
    assert code == 1
    assert "mirror   PROBLEM" in lines["mirror"] and "being written by another process" in lines["mirror"]
    code, lines, _ = _doctor(capsys)
    assert code == 0 and "writable and not locked" in lines["mirror"], lines


def test_missing_configuration_exits_2(env, monkeypatch, capsys):
    monkeypatch.delenv("ZOHO_CLIENT_ID")
    code, lines, _ = _doctor(capsys)
    assert code == 2 and "PROBLEM: Zoho CRM not configured" in lines["config"]
    code, lines, out = _doctor(capsys, "--connection", "nope")
    assert code == 2 and "connection 'nope' is not configured" in out


def test_token_lines_show_the_stored_tokens_lifetime(env, capsys):
    _, lines, _ = _doctor(capsys)
    store = TokenStore(settings.xz_home() / "tokens")
    for vendor, line in zip(("xero", "zoho"), lines["tokens"].splitlines(), strict=True):
        expires = store.load(env["XZ_CONNECTION"], vendor).expires_at
        assert line.endswith(f"valid until {expires.astimezone(UTC):%H:%M} UTC"), line
