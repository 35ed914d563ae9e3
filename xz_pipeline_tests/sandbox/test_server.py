"""SandboxServer and `xz sandbox`: live servers, working credentials, separate connections, clean stop."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from xz_pipeline import settings
from xz_pipeline.sandbox.server import ENV_KEYS, SandboxServer, build_parser

REPO = Path(__file__).resolve().parents[2]


def xero_token(env: dict) -> dict:
    r = requests.post(
        f"{env['XERO_IDENTITY_URL']}/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": env["XERO_REFRESH_TOKEN"]},
        auth=(env["XERO_CLIENT_ID"], env["XERO_CLIENT_SECRET"]),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def zoho_token(env: dict) -> dict:
    r = requests.post(
        f"{env['ZOHO_ACCOUNTS_URL']}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": env["ZOHO_REFRESH_TOKEN"],
            "client_id": env["ZOHO_CLIENT_ID"],
            "client_secret": env["ZOHO_CLIENT_SECRET"],
        },
        timeout=10,
    )
    assert r.status_code == 200 and "access_token" in r.json(), r.text
    return r.json()


def xero_get(env: dict, token: str, path: str, **params) -> requests.Response:
    return requests.get(
        f"{env['XERO_API_URL']}/api.xro/2.0/{path}",
        params=params,
        headers={
            "Authorization": f"Bearer {token}",
            "xero-tenant-id": env["XERO_TENANT_ID"],
            "Accept": "application/json",
        },
        timeout=10,
    )


def zoho_get(env: dict, token: str, path: str, **params) -> requests.Response:
    return requests.get(
        f"{env['ZOHO_API_DOMAIN']}/crm/v8/{path}",
        params=params,
        headers={"Authorization": f"Zoho-oauthtoken {token}"},
        timeout=10,
    )


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=11, size="demo", connections=2) as sb:
        yield sb


def test_env_points_at_live_servers(sandbox):
    env = sandbox.env(0)
    assert tuple(env) == ENV_KEYS
    assert env["XERO_API_URL"] == env["XERO_IDENTITY_URL"] == env["XERO_LOGIN_URL"] == sandbox.xero_url
    assert env["ZOHO_ACCOUNTS_URL"] == env["ZOHO_API_DOMAIN"] == sandbox.zoho_url
    assert sandbox.xero_url.startswith("http://127.0.0.1:") and sandbox.zoho_url != sandbox.xero_url
    assert sandbox.xero.base_url == sandbox.xero_url and sandbox.zoho.base_url == sandbox.zoho_url
    # Without a token both answer as the vendors do: 401, not a connection error.
    assert requests.get(f"{sandbox.xero_url}/connections", timeout=5).status_code == 401
    assert requests.get(f"{sandbox.zoho_url}/crm/v8/Accounts", timeout=5).status_code == 401


def test_credentials_are_stable_per_seed(sandbox):
    other = SandboxServer(seed=11)
    assert (other.xero_client_id, other.zoho_client_secret) == (
        sandbox.xero_client_id,
        sandbox.zoho_client_secret,
    )
    assert SandboxServer(seed=12).xero_client_id != sandbox.xero_client_id


def test_token_refresh_and_reads_against_both_origins(sandbox):
    env, world = sandbox.env(0), sandbox.worlds[0]
    xt = xero_token(env)
    assert xt["token_type"] == "Bearer" and xt["refresh_token"] != env["XERO_REFRESH_TOKEN"]  # rotated
    tenants = requests.get(
        f"{env['XERO_API_URL']}/connections",
        headers={"Authorization": f"Bearer {xt['access_token']}"},
        timeout=5,
    ).json()
    assert env["XERO_TENANT_ID"] in {t["tenantId"] for t in tenants}
    contacts = xero_get(env, xt["access_token"], "Contacts", page=1).json()["Contacts"]
    assert contacts and {c["ContactID"] for c in contacts} <= {c.id for c in world.books.contacts}

    zt = zoho_token(env)
    assert zt["api_domain"] == sandbox.zoho_url and zt["expires_in"] == 3600
    accounts = zoho_get(env, zt["access_token"], "Accounts", fields="Account_Name", per_page=50).json()[
        "data"
    ]
    assert accounts and {a["id"] for a in accounts} <= {a.id for a in world.crm.accounts}


def test_two_connections_do_not_mix(sandbox):
    env0, env1 = sandbox.env(0), sandbox.env(1)
    assert env0["XERO_TENANT_ID"] != env1["XERO_TENANT_ID"]
    assert env0["XERO_REFRESH_TOKEN"] != env1["XERO_REFRESH_TOKEN"]
    assert env0["ZOHO_REFRESH_TOKEN"] != env1["ZOHO_REFRESH_TOKEN"]
    w0, w1 = sandbox.worlds
    x1 = xero_token(env1)["access_token"]
    ids1 = {c["ContactID"] for c in xero_get(env1, x1, "Contacts", page=1).json()["Contacts"]}
    assert ids1 and ids1 <= {c.id for c in w1.books.contacts} and not ids1 & {c.id for c in w0.books.contacts}
    org1 = zoho_get(
        env1, zoho_token(env1)["access_token"], "Accounts", fields="Account_Name", per_page=200
    ).json()
    crm1 = {a["id"] for a in org1["data"]}
    assert crm1 and crm1 <= {a.id for a in w1.crm.accounts} and not crm1 & {a.id for a in w0.crm.accounts}


def test_connections_file_round_trips_through_settings(sandbox, xz_home):
    path = sandbox.write_connections_file()
    assert path == xz_home / "connections.toml" and (path.stat().st_mode & 0o777) == 0o600
    conns = settings.load_connections()
    assert [c.name for c in conns] == ["sandbox-1", "sandbox-2"]
    for conn, index in zip(conns, (0, 1), strict=True):
        env = sandbox.env(index)
        assert conn.xero.tenant_id == env["XERO_TENANT_ID"] and conn.xero.api_url == sandbox.xero_url
        assert (
            conn.xero.refresh_token == env["XERO_REFRESH_TOKEN"]
            and conn.xero.webhook_key == env["XERO_WEBHOOK_KEY"]
        )
        assert (
            conn.zoho.refresh_token == env["ZOHO_REFRESH_TOKEN"] and conn.zoho.api_domain == sandbox.zoho_url
        )
        assert conn.zoho.notify_token == env["ZOHO_NOTIFY_TOKEN"]


def test_write_manifests(sandbox, tmp_path):
    paths = sandbox.write_manifests(tmp_path / "truth")
    assert [p.name for p in paths] == ["sandbox-1.json", "sandbox-2.json"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_bad_arguments_fail_before_starting():
    with pytest.raises(ValueError, match="bad fault 'nope'"):
        SandboxServer(faults="nope")
    with pytest.raises(ValueError, match="connections"):
        SandboxServer(connections=0)
    with pytest.raises(RuntimeError, match="not running"):
        SandboxServer().env()
    with pytest.raises(RuntimeError, match="not running"):
        _ = SandboxServer().zoho_url
    with pytest.raises(ValueError, match="one connection"):
        SandboxServer(fixture_dir=".", connections=2)


def test_env_of_a_connection_that_does_not_exist(sandbox):
    with pytest.raises(IndexError, match="connection 2 does not exist"):
        sandbox.env(2)


def test_stop_frees_the_ports_and_cuts_slow_responses_short():
    sb = SandboxServer(seed=3, faults="slow:30@vendor=xero").start()
    url = sb.xero_url
    result: dict = {}

    def call() -> None:
        try:
            result["r"] = requests.get(f"{url}/connections", timeout=60)
        except requests.RequestException as exc:
            result["r"] = exc

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.2)  # the request is now held by the slow fault
    started = time.monotonic()
    sb.stop()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - started < 8
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/connections", timeout=2)


# --------------------------------------------------------------------------------------------
# The CLI


def test_parser_defaults():
    args = build_parser().parse_args([])
    assert (args.seed, args.size, args.connections, args.faults) == (7, "demo", 1, None)
    args = build_parser().parse_args(["--size", "medium", "--faults", "drop@every=3", "--xero-port", "0"])
    assert (args.size, args.faults) == ("medium", "drop@every=3")


def _start_cli(*argv: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "XZ_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "xz_pipeline.sandbox.server", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_lines(proc: subprocess.Popen, count: int, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout

    def reader() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if len(lines) >= count:
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(max(0.0, deadline - time.monotonic()))
    if len(lines) < count:
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
        pytest.fail(f"got {lines!r}; exit {proc.poll()}; stderr: {proc.stderr.read()[-2000:]}")
    return lines


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_prints_exports_serves_and_exits_0_on_sigterm(tmp_path):
    proc = _start_cli("--seed", "5", "--manifest", str(tmp_path / "m.json"), home=tmp_path)
    try:
        lines = _read_lines(proc, len(ENV_KEYS))
        env = {}
        for line in lines:
            word, assignment = line.split(" ", 1)
            assert word == "export"
            key, value = shlex.split(assignment)[0].split("=", 1)
            env[key] = value
        assert tuple(env) == ENV_KEYS
        assert xero_token(env)["access_token"] and zoho_token(env)["access_token"]
        assert (tmp_path / "m.json").stat().st_size > 0
    finally:
        code = _stop(proc)
    assert code == 0


def test_cli_with_several_connections_writes_the_connections_file(tmp_path):
    proc = _start_cli("--connections", "2", "--seed", "5", home=tmp_path)
    try:
        (line,) = _read_lines(proc, 1)
        assert Path(line) == tmp_path / "connections.toml"
        conns = settings.load_connections({"XZ_HOME": str(tmp_path)})
        assert [c.name for c in conns] == ["sandbox-1", "sandbox-2"]
        assert zoho_token(
            {
                "ZOHO_ACCOUNTS_URL": conns[1].zoho.accounts_url,
                "ZOHO_REFRESH_TOKEN": conns[1].zoho.refresh_token,
                "ZOHO_CLIENT_ID": conns[1].zoho.client_id,
                "ZOHO_CLIENT_SECRET": conns[1].zoho.client_secret,
            }
        )
    finally:
        code = _stop(proc)
    assert code == 0


def test_cli_rejects_a_bad_fault_spec(tmp_path):
    proc = _start_cli("--faults", "429@often=2", home=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "often" in err and out == ""


def test_webhooks_are_delivered_and_faults_reach_only_their_vendor():
    """--webhook-url: the sandbox pushes signed Xero events on its own; vendor= keeps faults apart."""
    import base64
    import hashlib
    import hmac

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from xz_pipeline.sandbox.server import LoopbackServer

    bodies: list[tuple[bytes, str]] = []

    async def hook(request: Request) -> Response:
        bodies.append((await request.body(), request.headers.get("x-xero-signature", "")))
        return Response(status_code=200)

    receiver = LoopbackServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    with (
        receiver,
        SandboxServer(
            seed=3, webhook_url=f"{receiver.url}/hook", deliver_every=0.05, faults="5xx:503@vendor=zoho"
        ) as sb,
    ):
        env = sb.env(0)
        token = xero_token(env)["access_token"]
        created = requests.put(
            f"{env['XERO_API_URL']}/api.xro/2.0/Contacts",
            json={"Contacts": [{"Name": "Webhook Test Ltd"}]},
            headers={
                "Authorization": f"Bearer {token}",
                "xero-tenant-id": env["XERO_TENANT_ID"],
                "Accept": "application/json",
            },
            timeout=10,
        )
        assert created.status_code == 200, created.text
        contact_id = created.json()["Contacts"][0]["ContactID"]
        deadline = time.monotonic() + 10
        while not bodies and time.monotonic() < deadline:
            time.sleep(0.05)
        zoho = requests.get(f"{sb.zoho_url}/crm/v8/Accounts", timeout=5)
        assert zoho.status_code == 503 and sb.zoho_faults.injected == {"5xx": 1}
        assert sb.xero_faults.injected == {}
    assert bodies, "no webhook arrived"
    body, signature = bodies[0]
    expected = base64.b64encode(
        hmac.new(env["XERO_WEBHOOK_KEY"].encode(), body, hashlib.sha256).digest()
    ).decode()
    assert hmac.compare_digest(signature, expected)
    events = [e for b, _ in bodies for e in json.loads(b)["events"]]
    assert {(e["resourceId"], e["eventCategory"], e["eventType"]) for e in events} >= {
        (contact_id, "CONTACT", "CREATE")
    }
