"""The sandbox with QuickBooks as the books system: environment, connections file, manifest id maps, `xz sandbox`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from xz_pipeline import settings
from xz_pipeline.sandbox.server import QBO_ENV_KEYS, SandboxServer

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def received():
    """A loopback receiver standing for the app's /webhooks/quickbooks: (headers, body) per POST."""
    got: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/quickbooks", got
    server.shutdown()


@pytest.fixture(scope="module")
def sandbox(received):
    url, _ = received
    with SandboxServer(
        seed=5, size="tiny", connections=2, books="quickbooks", webhook_url=url, deliver_every=0.05
    ) as sb:
        yield sb


def qbo_token(env: dict) -> dict:
    resp = requests.post(env["QBO_TOKEN_URL"], auth=(env["QBO_CLIENT_ID"], env["QBO_CLIENT_SECRET"]), timeout=10,
                         data={"grant_type": "refresh_token", "refresh_token": env["QBO_REFRESH_TOKEN"]})  # fmt: skip
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_env_names_quickbooks_and_keeps_the_zoho_side(sandbox):
    env = sandbox.env(0)
    assert env["XZ_BOOKS"] == "quickbooks" and not any(k.startswith("XERO_") for k in env)
    assert set(QBO_ENV_KEYS) <= set(env) and env["QBO_API_URL"] == sandbox.quickbooks_url
    assert {k for k in env if k.startswith("ZOHO_")} >= {
        "ZOHO_CLIENT_ID",
        "ZOHO_REFRESH_TOKEN",
        "ZOHO_NOTIFY_TOKEN",
    }
    token = qbo_token(env)["access_token"]
    realm = env["QBO_REALM_ID"]
    resp = requests.get(f"{env['QBO_API_URL']}/v3/company/{realm}/query", timeout=10,
                        params={"query": "select count(*) from Customer", "minorversion": "75"},
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})  # fmt: skip
    assert resp.status_code == 200 and resp.json()["QueryResponse"]["totalCount"] > 0
    assert sandbox.env(1)["QBO_REALM_ID"] != realm
    other = requests.get(f"{env['QBO_API_URL']}/v3/company/{sandbox.env(1)['QBO_REALM_ID']}/preferences",
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
    assert other.status_code == 403  # one connection's token never reads the other's company


def test_changes_reach_the_webhook_receiver_signed(sandbox, received):
    _, got = received
    env = sandbox.env(0)
    token = qbo_token(env)["access_token"]
    resp = requests.post(f"{env['QBO_API_URL']}/v3/company/{env['QBO_REALM_ID']}/customer", timeout=10,
                         json={"DisplayName": "Webhook Watcher"},
                         headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    made = resp.json()["Customer"]["Id"]
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:  # the sandbox delivers on its own, every 50 ms here
        time.sleep(0.02)
    headers, body = got[0]
    digest = hmac.new(env["QBO_WEBHOOK_VERIFIER"].encode(), body, hashlib.sha256).digest()
    assert base64.b64decode(headers["intuit-signature"]) == digest
    [event] = json.loads(body)
    assert (event["type"], event["intuitentityid"], event["intuitaccountid"]) == (
        "qbo.customer.created.v1",
        made,
        env["QBO_REALM_ID"],
    )


def test_connections_file_round_trips_through_settings(sandbox, xz_home):
    path = sandbox.write_connections_file()
    assert 'books = "quickbooks"' in path.read_text()
    conns = settings.load_connections()
    assert [(c.name, c.books, c.crm) for c in conns] == [
        ("sandbox-1", "quickbooks", "zoho"),
        ("sandbox-2", "quickbooks", "zoho"),
    ]
    for conn, index in zip(conns, (0, 1), strict=True):
        env = sandbox.env(index)
        assert (
            conn.quickbooks.realm_id == env["QBO_REALM_ID"]
            and conn.quickbooks.api_url == sandbox.quickbooks_url
        )
        assert conn.quickbooks.refresh_token == env["QBO_REFRESH_TOKEN"]
        assert conn.quickbooks.token_url == env["QBO_TOKEN_URL"] and conn.quickbooks.webhook_verifier
        assert conn.xero is None and conn.zoho.refresh_token == env["ZOHO_REFRESH_TOKEN"]


def test_manifest_maps_world_ids_to_qbo_ids(sandbox, tmp_path):
    paths = sandbox.write_manifests(tmp_path)
    doc = json.loads(paths[0].read_text())
    ids = doc["id_maps"]["quickbooks"]
    world = sandbox.worlds[0]
    emu, realm = sandbox.quickbooks, sandbox.realm_ids[0]
    invoice = next(i for i in world.books.invoices if i.type == "ACCREC" and i.status == "AUTHORISED")
    assert emu.record(realm, "Invoice", ids[invoice.id])["DocNumber"] == invoice.number
    contact = next(c for c in world.books.contacts if c.id == invoice.contact_id)
    assert emu.record(realm, "Customer", ids[contact.id])["DisplayName"] == contact.name
    every = {"xero+zoho", "quickbooks+zoho", "xero+salesforce", "quickbooks+salesforce"}
    assert all(set(p) | set(doc["pairs_undetectable"].get(k, {})) == every for k, p in doc["pairs"].items())
    assert "quickbooks+zoho" in doc["pairs"]["amount_mismatch"]
    for kind in (
        "time_not_invoiced",
        "project_over_budget",
    ):  # Xero Projects: no QuickBooks pairing shows them
        assert doc["pairs"][kind] == ["xero+zoho", "xero+salesforce"]
        assert "Xero Projects" in doc["pairs_undetectable"][kind]["quickbooks+zoho"]
    assert set(doc["pairs"]) == set(doc["detectable"]) | set(doc["undetectable"])
    # the map is the seeding order: the same world gives the same ids in another sandbox
    again = json.loads(sandbox.write_manifests(tmp_path / "again")[0].read_text())
    assert again["id_maps"] == doc["id_maps"]


def test_bad_pairings_fail_before_starting(tmp_path):
    with pytest.raises(ValueError, match="books must be one of"):
        SandboxServer(books="sage")
    with pytest.raises(ValueError, match="fixture folder"):
        SandboxServer(books="quickbooks", fixture_dir=tmp_path)


def test_xz_sandbox_books_quickbooks_prints_the_qbo_lines(tmp_path):
    env = {**os.environ, "XZ_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xz_pipeline.cli", "sandbox", "--books", "quickbooks", "--crm", "zoho",
         "--size", "tiny", "--seed", "5"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def reader() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("export ZOHO_NOTIFY_TOKEN"):
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(60)
    try:
        exported = dict(shlex.split(line.split(" ", 1)[1])[0].split("=", 1) for line in lines)
        assert exported.get("XZ_BOOKS") == "quickbooks", (
            lines,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        assert set(QBO_ENV_KEYS) <= set(exported) and not any(k.startswith("XERO_") for k in exported)
        assert qbo_token(exported)["access_token"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0
