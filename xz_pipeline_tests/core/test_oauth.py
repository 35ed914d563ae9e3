"""Token store and refresh against the Xero emulator's identity service: rotation, grace, locking, consent."""

from __future__ import annotations

import logging
import multiprocessing
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from xz_pipeline.core.errors import AuthError
from xz_pipeline.core.http import HttpClient
from xz_pipeline.core.oauth import OAuthSession, TokenSet, TokenStore, authorization_url
from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.xero.client import complete_consent, consent_request
from xz_pipeline_tests.xero.support import CLIENT_ID, CLIENT_SECRET, XeroSandbox


def _session(sb: XeroSandbox, store: TokenStore, **kw) -> OAuthSession:
    args = dict(
        vendor="xero",
        token_url=f"{sb.url}/connect/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        store=store,
        connection="main",
        http=HttpClient("xero", timeout=(2.0, 5.0)),
        bootstrap_refresh_token=sb.refresh_token,
    )
    if isinstance(sb.clock, ManualClock):
        args["now"] = sb.clock.now
    args.update(kw)
    return OAuthSession(**args)


def _connections(sb: XeroSandbox, token: str) -> int:
    return requests.get(
        f"{sb.url}/connections", headers={"Authorization": f"Bearer {token}"}, timeout=5
    ).status_code


# -- the store ------------------------------------------------------------------------------------


def test_store_round_trip_is_private_and_atomic(tmp_path):
    store = TokenStore(tmp_path / "tokens")
    assert store.load("main", "xero") is None
    tokens = TokenSet(
        "access-aaaaaa", "refresh-bbbbbb", datetime(2030, 1, 1, tzinfo=UTC), "a b", {"api_domain": "x"}
    )
    store.save("main", "xero", tokens)
    store.save("main", "xero", TokenSet("access-cccccc", "refresh-dddddd", tokens.expires_at))
    path = store.path("main", "xero")
    assert path.name == "main-xero.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = store.load("main", "xero")
    assert (loaded.access_token, loaded.refresh_token, loaded.expires_at) == (
        "access-cccccc",
        "refresh-dddddd",
        tokens.expires_at,
    )
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert "access-cccccc" not in repr(loaded) and "refresh-dddddd" not in repr(loaded)
    with pytest.raises(ValueError):
        store.path("../evil", "xero")


def test_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    folder = tmp_path / "tokens"
    store = TokenStore(folder)
    store.save("main", "xero", TokenSet("access-111111", "refresh-111111", datetime(2030, 1, 1, tzinfo=UTC)))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.save(
            "main", "xero", TokenSet("access-222222", "refresh-222222", datetime(2030, 1, 1, tzinfo=UTC))
        )
    monkeypatch.undo()
    assert store.load("main", "xero").refresh_token == "refresh-111111"
    assert sorted(p.name for p in folder.iterdir()) == ["main-xero.json"]  # no temp file left behind


# -- refresh ----------------------------------------------------------------------------------------


def test_first_use_rotates_and_persists_then_reuses_the_stored_token(tmp_path):
    with XeroSandbox() as sb:
        store = TokenStore(tmp_path)
        first = _session(sb, store)
        token = first.access_token()
        saved = store.load("main", "xero")
        assert saved.access_token == token
        assert saved.refresh_token and saved.refresh_token != sb.refresh_token  # rotated
        assert _connections(sb, token) == 200
        # Another process, later: the stored access token is still good, so no token call.
        calls = len(sb.token_calls())
        second = _session(sb, store)
        assert second.access_token() == token
        assert len(sb.token_calls()) == calls == 1


def test_refreshes_within_a_minute_of_expiry_and_not_before(tmp_path):
    clock = ManualClock()
    with XeroSandbox(clock=clock) as sb:
        store = TokenStore(tmp_path)
        session = _session(sb, store)
        t1 = session.access_token()
        clock.advance(28 * 60)
        assert session.access_token() == t1 and len(sb.token_calls()) == 1
        clock.advance(90)  # 29.5 minutes: inside the 60 s margin
        t2 = session.access_token()
        assert t2 != t1 and len(sb.token_calls()) == 2
        assert store.load("main", "xero").access_token == t2


def test_a_failed_save_drops_the_new_token_and_the_grace_period_recovers(tmp_path, monkeypatch):
    clock = ManualClock()
    with XeroSandbox(clock=clock) as sb:
        store = TokenStore(tmp_path)
        _session(sb, store).access_token()
        before = store.load("main", "xero")
        clock.advance(31 * 60)  # the access token has expired

        real_save = TokenStore.save

        def failing_save(self, *a, **k):
            raise OSError("disk full")

        monkeypatch.setattr(TokenStore, "save", failing_save)
        crashed = _session(sb, store)
        with pytest.raises(AuthError) as info:
            crashed.access_token()
        assert info.value.code == "token_store_write_failed"
        assert before.refresh_token not in str(info.value)
        monkeypatch.setattr(TokenStore, "save", real_save)
        assert store.load("main", "xero").refresh_token == before.refresh_token

        clock.advance(10 * 60)  # within the 30-minute grace of the rotated-but-unsaved refresh
        recovered = _session(sb, store)
        token = recovered.access_token()
        assert _connections(sb, token) == 200
        assert sb.token_forms.refresh_tokens_spent()[-2:] == [before.refresh_token, before.refresh_token]


def test_stale_refresh_token_after_the_grace_period_is_a_clear_auth_error(tmp_path):
    clock = ManualClock()
    with XeroSandbox(clock=clock) as sb:
        store = TokenStore(tmp_path)
        _session(sb, store).access_token()
        clock.advance(45 * 60)
        # Someone restored an old copy of the store holding the bootstrap token, long rotated.
        store.save("main", "xero", TokenSet("", sb.refresh_token, clock.now(), extra={}))
        with pytest.raises(AuthError) as info:
            _session(sb, store, bootstrap_refresh_token=None).access_token()
        assert info.value.code == "invalid_grant" and "xz auth xero" in str(info.value)
        assert sb.refresh_token not in str(info.value)


def test_a_new_bootstrap_token_replaces_a_store_from_an_older_grant(tmp_path):
    with XeroSandbox() as sb:
        store = TokenStore(tmp_path)
        _session(sb, store).access_token()
        newer = sb.emulator.grant_refresh_token(CLIENT_ID, [sb.tenant_id])
        token = _session(sb, store, bootstrap_refresh_token=newer).access_token()
        assert sb.token_forms.refresh_tokens_spent()[-1] == newer
        assert store.load("main", "xero").access_token == token


def test_401_refreshes_once_unless_someone_else_already_did(tmp_path):
    with XeroSandbox() as sb:
        store = TokenStore(tmp_path)
        a, b = _session(sb, store), _session(sb, store)
        old = a.access_token()
        assert b.access_token() == old
        a.refresh_after_unauthorized({"Authorization": f"Bearer {old}"})
        calls = len(sb.token_calls())
        # b saw a 401 for the same old token: it adopts a's new token instead of refreshing again.
        b.refresh_after_unauthorized({"Authorization": f"Bearer {old}"})
        assert b.access_token() == a.access_token() != old
        assert len(sb.token_calls()) == calls == 2


def _refresh_many(url: str, store_dir: str, bootstrap: str, rounds: int, out) -> None:
    store = TokenStore(store_dir)
    session = OAuthSession(vendor="xero", token_url=f"{url}/connect/token", client_id=CLIENT_ID,
                           client_secret=CLIENT_SECRET, store=store, connection="main",
                           http=HttpClient("xero", timeout=(2.0, 10.0)), bootstrap_refresh_token=bootstrap)  # fmt: skip
    errors = 0
    for _ in range(rounds):
        try:
            session.force_refresh()
        except AuthError:
            errors += 1
    out.put((session.refreshes, errors))


def test_two_processes_refreshing_at_once_never_fork_or_lose_the_token(tmp_path):
    clock = ManualClock()
    with XeroSandbox(clock=clock) as sb:
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_refresh_many, args=(sb.url, str(tmp_path), sb.refresh_token, 6, out))
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
        assert [e for _, e in results] == [0, 0]
        spent = sb.token_forms.refresh_tokens_spent()
        # A process that finds the token already replaced adopts it instead of refreshing again.
        assert len(spent) == sum(r for r, _ in results) and 6 <= len(spent) <= 12
        # Every refresh spent the newest token: no token was used twice, so the chain never forked.
        assert len(set(spent)) == len(spent)
        # Long after the grace period the stored token still works: nothing was lost.
        clock.advance(2 * 3600)
        session = _session(sb, TokenStore(tmp_path), bootstrap_refresh_token=None)
        session.force_refresh()
        assert _connections(sb, session.access_token()) == 200


# -- custom connections and consent -----------------------------------------------------------------


def test_client_credentials_needs_no_refresh_token(tmp_path):
    with XeroSandbox(custom_connection=True) as sb:
        store = TokenStore(tmp_path)
        session = _session(sb, store, bootstrap_refresh_token=None, grant="client_credentials")
        token = session.access_token()
        assert sb.token_forms.forms[-1]["grant_type"] == "client_credentials"
        assert "refresh_token" not in sb.token_forms.forms[-1]
        assert store.load("main", "xero").refresh_token == ""
        reply = requests.get(f"{sb.url}/api.xro/2.0/Organisation", timeout=5,
                             headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})  # fmt: skip
        assert reply.status_code == 200 and reply.json()["Organisations"][0]["Name"] == "Harbour Test Traders"


def test_consent_with_pkce_and_state(tmp_path):
    with XeroSandbox() as sb:
        redirect = "http://localhost:8765/callback"
        request = consent_request(sb.url, client_id=CLIENT_ID, redirect_uri=redirect)
        query = parse_qs(urlsplit(request.url).query)
        assert query["code_challenge_method"] == ["S256"] and "offline_access" in query["scope"][0].split()
        answer = requests.get(request.url + "&auto=1", allow_redirects=False, timeout=5)
        assert answer.status_code in (302, 303, 307)
        back = parse_qs(urlsplit(answer.headers["location"]).query)
        assert back["state"] == [request.state]
        store = TokenStore(tmp_path)
        with pytest.raises(AuthError):  # a forged callback
            complete_consent(identity_url=sb.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, request=request,
                             code=back["code"][0], returned_state="forged", redirect_uri=redirect, token_store=store)  # fmt: skip
        tokens = complete_consent(identity_url=sb.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                  request=request, code=back["code"][0], returned_state=back["state"][0],
                                  redirect_uri=redirect, token_store=store)  # fmt: skip
        assert sb.token_forms.forms[-1]["code_verifier"] == request.code_verifier
        assert store.load("default", "xero").refresh_token == tokens.refresh_token
        assert _connections(sb, tokens.access_token) == 200
        # The code was single-use: and a wrong verifier would not have passed either.
        other = authorization_url(f"{sb.url}/identity/connect/authorize", client_id=CLIENT_ID, redirect_uri=redirect,
                                  scopes="offline_access accounting.contacts")  # fmt: skip
        assert other.code_verifier != request.code_verifier and other.state != request.state


def test_refresh_logs_carry_no_secret(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with XeroSandbox() as sb:
        store = TokenStore(tmp_path)
        session = _session(sb, store)
        token = session.access_token()
        session.force_refresh()
        session.access_token()
        tokens = store.load("main", "xero")
    secrets = [CLIENT_SECRET, sb.refresh_token, token, tokens.access_token, tokens.refresh_token]
    assert not any(s in caplog.text for s in secrets)
    assert Path(store.path("main", "xero")).exists()
    assert tokens.expires_at > datetime.now(UTC) + timedelta(minutes=20)


def test_an_unreachable_token_endpoint_is_not_a_refusal(tmp_path):
    """No answer from the token endpoint (network down, proxy) is transient and says to check the network,
    never to run `xz auth` again: the grant may be perfectly good."""
    import socket

    from xz_pipeline.core.errors import TransportError, explain
    from xz_pipeline.core.http import RetryPolicy

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    session = OAuthSession(
        vendor="xero", token_url=f"http://127.0.0.1:{port}/connect/token", client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET, store=TokenStore(tmp_path), connection="main",
        http=HttpClient("xero", timeout=(1.0, 1.0), retry=RetryPolicy(attempts=2, backoff_factor=0.01)),
        bootstrap_refresh_token="a-refresh-token",
    )  # fmt: skip
    with pytest.raises(TransportError) as info:
        session.access_token()
    assert not isinstance(info.value, AuthError)
    verdict = explain(info.value)
    assert (
        verdict.retry
        and "Xero could not be reached" in verdict.message
        and "check the network" in verdict.message
    )
    assert "xz auth" not in verdict.message and "a-refresh-token" not in verdict.message
