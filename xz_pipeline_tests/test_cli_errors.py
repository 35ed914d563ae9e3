"""Errors people can act on: a wrong secret or an unknown connection gives one line and an exit code,
never a traceback, and a refused token request is sent once (run in process, against the tiny sandbox)."""

from __future__ import annotations

import os

import pytest

from xz_pipeline import cli, settings
from xz_pipeline.core import oauth
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.sandbox_env import export_sandbox


@pytest.fixture(autouse=True)
def _no_subform_reads(monkeypatch):
    monkeypatch.setenv("XZ_ZOHO_SUBFORMS", "off")  # one call per CRM invoice: not what these tests are about


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=41, size="tiny") as sb:
        yield sb


@pytest.fixture(autouse=True)
def _fresh_refusals():
    oauth.forget_refusals()
    yield
    oauth.forget_refusals()


def _token_posts(received) -> int:
    return sum(1 for r in received if r.method == "POST" and r.path.endswith("/token"))


@pytest.mark.parametrize(
    ("vendor", "variable", "line"),
    [
        ("zoho", "ZOHO_CLIENT_SECRET", "Zoho refused the token refresh: invalid_client_secret — check ZOHO_CLIENT_SECRET"),
        ("xero", "XERO_CLIENT_SECRET",
         "Xero refused the token refresh: invalid_client — check XERO_CLIENT_ID and XERO_CLIENT_SECRET"),
    ],
)  # fmt: skip
def test_a_wrong_secret_is_one_line_per_asset_and_one_token_request(
    sandbox, monkeypatch, capsys, vendor, variable, line
):
    export_sandbox(monkeypatch, sandbox)
    monkeypatch.setenv(variable, "not-the-secret")
    emulator = getattr(sandbox, vendor)
    before = _token_posts(emulator.received)

    code = cli.main(["sync", "--only", "mirror"])

    out, err = capsys.readouterr()
    assert code == 1
    failed = (
        [f"{vendor}_{e}" for e in ("accounts",)] if vendor == "zoho" else ["xero_contacts", "xero_invoices"]
    )
    for asset in failed:
        assert f"xz sync: {asset}: {line}" in err.splitlines()
    assert "Traceback" not in out + err and "Exceeded max_retries" not in out + err
    assert "step(s) not run because a step they need failed" in err
    assert len(err.splitlines()) < 15, err
    # Refused once for the whole run: no Dagster retry, no second asset asking again.
    assert _token_posts(emulator.received) - before == 1
    # Dagster's own events went to the log file, not the terminal.
    log = (settings.xz_home() / "logs" / "xz.log").read_text()
    assert "STEP_FAILURE" in log or "step_failure" in log.lower()


def test_verbose_shows_the_traceback(sandbox, monkeypatch, capsys):
    export_sandbox(monkeypatch, sandbox)
    monkeypatch.setenv("ZOHO_CLIENT_SECRET", "not-the-secret")
    assert cli.main(["sync", "--only", "mirror", "--verbose"]) == 1
    err = capsys.readouterr().err
    assert 'oauth.py", line' in err and "invalid_client_secret" in err  # the stack, down to the refusal
    assert "not-the-secret" not in err  # secrets never printed, even verbose


@pytest.mark.parametrize(
    "argv",
    [
        ["sync", "--connection", "nope"],
        ["plan", "--connection", "nope"],
        ["apply", "--connection", "nope"],
        ["review", "--connection", "nope"],
        ["review", "accept", "nope", "b-1", "c-1"],
        ["auth", "zoho", "--connection", "nope", "--no-browser"],
        ["setup", "zoho", "--connection", "nope"],
        ["webhooks", "--connection", "nope"],
        ["--verbose", "plan", "--connection", "nope"],
    ],
)
def test_an_unknown_connection_is_refused_with_one_line(sandbox, monkeypatch, capsys, argv):
    export_sandbox(monkeypatch, sandbox, connection="sandbox")
    before = len(sandbox.xero.received) + len(sandbox.zoho.received)

    assert cli.main(argv) == 2

    out, err = capsys.readouterr()
    command = argv[1] if argv[0] == "--verbose" else argv[0]
    assert err.splitlines() == [
        f"xz {command}: connection 'nope' is not configured; the configured ones are: sandbox"
    ]
    assert out == ""
    assert len(sandbox.xero.received) + len(sandbox.zoho.received) == before  # nothing was sent


def test_review_refuses_ids_the_mirror_does_not_hold(sandbox, monkeypatch, capsys):
    export_sandbox(monkeypatch, sandbox, connection="sandbox")
    assert cli.main(["review", "accept", "sandbox", "no-such-customer", "no-such-account"]) == 2
    assert "run `xz sync` first" in capsys.readouterr().err  # no mirror yet: nothing to check against

    assert cli.main(["sync", "--only", "mirror"]) == 0
    capsys.readouterr()
    assert cli.main(["review", "accept", "sandbox", "no-such-customer", "no-such-account"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "xz review: no record 'no-such-customer' in canonical.books_customers of connection 'sandbox'"
    ]


def test_anything_unexpected_is_one_line_and_exit_1(monkeypatch, capsys):
    def broken(environ=None):
        raise RuntimeError("the disk is on fire\nsecond line")

    monkeypatch.setattr(settings, "load_connections", broken)
    assert cli.main(["plan"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "xz plan: RuntimeError: the disk is on fire (run with --verbose for details)"
    ]
    assert cli.main(["plan", "--verbose"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1] == "xz plan: RuntimeError: the disk is on fire"


def test_a_reader_that_stops_early_gets_no_error_line(monkeypatch, capfd):
    """`xz plan | head`: the pipe closes, and xz ends quietly (141, as a process killed by SIGPIPE)."""

    def closed_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "cmd_status", closed_pipe)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions:  # route `status` to the closed pipe
        action.choices["status"].set_defaults(func=closed_pipe)
    stdout = os.dup(1)
    try:
        assert cli.main(["status"]) == 141
    finally:
        os.dup2(stdout, 1)
        os.close(stdout)
    assert capfd.readouterr().err == ""
