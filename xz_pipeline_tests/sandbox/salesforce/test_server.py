"""The sandbox with Salesforce as the CRM: environment, connections file, manifest, outbound delivery, `xz sandbox`."""

from __future__ import annotations

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
from xz_pipeline.sandbox.server import SF_ENV_KEYS, SandboxServer

REPO = Path(__file__).resolve().parents[3]
ACK = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
       b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
       b"</notificationsResponse></soapenv:Body></soapenv:Envelope>")  # fmt: skip


@pytest.fixture(scope="module")
def received():
    """A loopback receiver standing for the app's /webhooks/salesforce: (path, body) per POST."""
    got: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            got.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.end_headers()
            self.wfile.write(ACK)

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()


@pytest.fixture(scope="module")
def sandbox(received):
    url, _ = received
    with SandboxServer(seed=5, size="tiny", connections=2, crm="salesforce", profile="renamed",
                       sf_outbound_url=f"{url}/webhooks/salesforce", deliver_every=0.05) as sb:  # fmt: skip
        yield sb


def sf_token(env: dict) -> dict:
    resp = requests.post(f"{env['SALESFORCE_LOGIN_URL']}/services/oauth2/token", timeout=10, data={
        "grant_type": "refresh_token", "client_id": env["SALESFORCE_CLIENT_ID"],
        "client_secret": env["SALESFORCE_CLIENT_SECRET"], "refresh_token": env["SALESFORCE_REFRESH_TOKEN"]})  # fmt: skip
    assert resp.status_code == 200, resp.text
    return resp.json()


def fresh(sandbox, index: int) -> dict:
    """The connection's environment with a refresh token of its own (the renamed org rotates them)."""
    env = sandbox.env(index)
    org_id = sandbox.salesforce_org_ids[index]
    return {
        **env,
        "SALESFORCE_REFRESH_TOKEN": sandbox.salesforce.grant_refresh_token(sandbox.sf_client_id, org_id),
    }


def test_env_names_salesforce_in_place_of_zoho(sandbox):
    env = fresh(sandbox, 0)
    assert env["XZ_CRM"] == "salesforce" and set(SF_ENV_KEYS) <= set(env)
    assert not any(k.startswith(("ZOHO_", "XZ_ZOHO")) for k in env) and "XERO_CLIENT_ID" in env
    token = sf_token(env)
    assert token["instance_url"] == env["SALESFORCE_INSTANCE_URL"] != env["SALESFORCE_LOGIN_URL"]
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    count = requests.get(f"{token['instance_url']}/services/data/v62.0/query", headers=auth, timeout=10,
                         params={"q": "SELECT COUNT() FROM Account"})  # fmt: skip
    assert count.json()["totalSize"] == len(sandbox.worlds[0].crm.accounts)
    other = sandbox.env(1)["SALESFORCE_INSTANCE_URL"]
    assert other != token["instance_url"]
    assert requests.get(f"{other}/services/data/v62.0/limits", headers=auth, timeout=10).status_code == 401
    # the renamed org keeps our fields under its own names: the mapping a person would write
    assert json.loads(env["XZ_SALESFORCE_FIELDS"])["fields"]["Account.Books_Customer_Id__c"] == "Xero_ID__c"


def test_connections_file_reads_back_as_salesforce_connections(sandbox, tmp_path):
    sandbox.write_connections_file(tmp_path / "connections.toml")
    conns = settings.load_connections({"XZ_HOME": str(tmp_path)})
    assert [c.name for c in conns] == ["sandbox-1", "sandbox-2"]
    for index, conn in enumerate(conns):
        env = sandbox.env(index)
        assert conn.crm == "salesforce" and conn.zoho is None
        assert conn.salesforce.refresh_token == env["SALESFORCE_REFRESH_TOKEN"]
        assert conn.salesforce.instance_url == env["SALESFORCE_INSTANCE_URL"]
    mapping, _where = settings.salesforce_mapping_doc("sandbox-1", {"XZ_HOME": str(tmp_path)})
    assert mapping["values"]["Opportunity.Payment_Status__c"] == {"Paid": "Fully Paid"}


def test_manifest_maps_world_ids_to_salesforce_ids(sandbox, tmp_path):
    doc = json.loads(sandbox.write_manifests(tmp_path)[0].read_text())
    ids = doc["id_maps"]["salesforce"]
    world, emu, org_id = sandbox.worlds[0], sandbox.salesforce, sandbox.salesforce_org_ids[0]
    deal = next(d for d in world.crm.deals if d.stage == "Deal Won")
    rec = emu.record(org_id, "Opportunity", ids[deal.id])
    assert rec["Name"] == deal.name and rec["IsWon"] is True and ids[deal.account_id].startswith("001")
    assert "xero+salesforce" not in doc["pairs"]["invoice_missing_in_crm"]
    assert (
        "Salesforce has no CRM invoices"
        in doc["pairs_undetectable"]["invoice_missing_in_crm"]["xero+salesforce"]
    )
    assert "xero+salesforce" in doc["pairs"]["amount_mismatch"]


def test_books_name_their_deals_by_the_salesforce_ids(sandbox):
    """An invoice whose reference names its deal (`DEAL-<id>`) names the org's Opportunity, as a Salesforce
    shop's books do: reconciliation links them on that evidence (the world itself keeps Zoho's ids)."""
    emu, org_id = sandbox.salesforce, sandbox.salesforce_org_ids[0]
    invoices = sandbox.xero.books[sandbox.tenant_ids[0]].records["Invoices"].values()
    refs = [r[len("DEAL-") :] for i in invoices if (r := i.get("Reference") or "").startswith("DEAL-")]
    assert refs and all(r.startswith("006") for r in refs)
    assert all(emu.record(org_id, "Opportunity", r)["Id"] == r for r in refs)


def test_changes_reach_the_outbound_listener(sandbox, received):
    _, got = received
    token = sf_token(fresh(sandbox, 0))
    opp = sandbox.salesforce.id_map(sandbox.salesforce_org_ids[0])[sandbox.worlds[0].crm.deals[0].id]
    resp = requests.patch(f"{token['instance_url']}/services/data/v62.0/sobjects/Opportunity/{opp}",
                          json={"Amount": 5}, headers={"Authorization": f"Bearer {token['access_token']}"},
                          timeout=10)  # fmt: skip
    assert resp.status_code == 204
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:  # the sandbox delivers on its own, every 50 ms here
        time.sleep(0.02)
    path, body = got[0]
    assert (
        path == "/webhooks/salesforce"
        and opp.encode() in body
        and sandbox.salesforce_org_ids[0].encode() in body
    )


def test_bad_pairings_fail_before_starting(tmp_path):
    with pytest.raises(ValueError, match="crm must be one of"):
        SandboxServer(crm="hubspot")
    with pytest.raises(ValueError, match="fixture folder"):
        SandboxServer(crm="salesforce", fixture_dir=tmp_path)


def test_xz_sandbox_crm_salesforce_prints_the_salesforce_lines(tmp_path):
    env = {**os.environ, "XZ_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xz_pipeline.cli", "sandbox", "--crm", "salesforce", "--size", "tiny", "--seed", "5"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def reader() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("export SALESFORCE_INSTANCE_URL"):
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(60)
    try:
        exported = dict(shlex.split(line.split(" ", 1)[1])[0].split("=", 1) for line in lines)
        assert exported.get("XZ_CRM") == "salesforce", (
            lines,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        assert set(SF_ENV_KEYS) <= set(exported) and not any(k.startswith("ZOHO_") for k in exported)
        assert sf_token(exported)["instance_url"] == exported["SALESFORCE_INSTANCE_URL"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0
