"""Outbound Messages at /webhooks/salesforce: acknowledged with `<Ack>true</Ack>` once stored, routed by the
org (and the URL secret), a retried message stored once, and what a targeted run then reads."""

from __future__ import annotations

from starlette.testclient import TestClient

from xz_pipeline import settings
from xz_pipeline.realtime.inbox import Inbox
from xz_pipeline.realtime.receiver import build_app
from xz_pipeline.realtime.sensors import plan_runs

ORG = "00DHs0000012345MAA"


def message(*notes: tuple[str, str, str], org: str = ORG) -> bytes:
    """A SOAP Outbound Message as Salesforce posts it: (notification id, sObject type, record id) each."""
    items = "".join(
        f'<Notification><Id>{nid}</Id><sObject xsi:type="sf:{kind}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>{rid}</sf:Id><sf:SystemModstamp>2026-11-02T09:00:00.000Z</sf:SystemModstamp></sObject></Notification>"
        for nid, kind, rid in notes
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04kHs000000001AAA</ActionId>"
        '<SessionId xsi:nil="true"/><EnterpriseUrl>https://x.my.salesforce.com/services/Soap/c/62.0</EnterpriseUrl>'
        f"{items}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def connection(secret: str = "") -> settings.Connection:
    sf = settings.SalesforceSettings(
        client_id="cid", client_secret="cs", org_id=ORG[:15], notify_token=secret
    )
    return settings.Connection(name="acme", xero=None, zoho=None, crm="salesforce", salesforce=sf)


def post(client: TestClient, body: bytes, query: str = ""):
    return client.post(
        f"/webhooks/salesforce{query}", content=body, headers={"Content-Type": "text/xml; charset=utf-8"}
    )


def test_acknowledged_once_stored_and_a_retry_stores_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XZ_HOME", str(tmp_path))
    inbox = Inbox(tmp_path / "inbox.sqlite")
    client = TestClient(build_app(inbox, [connection()]))
    body = message(("04lA1", "Account", "001Hs00001AcmeAAA"), ("04lA2", "Opportunity", "006Hs00001WonxAAA"),
                   ("04lA3", "Task", "00THs00001TaskAAA"))  # fmt: skip
    first = post(client, body)
    assert first.status_code == 200 and b"<Ack>true</Ack>" in first.content
    assert first.headers["content-type"].startswith("text/xml")
    events = inbox.after(0)
    assert sorted((e.asset, e.record_id, e.connection, e.source) for e in events) == [
        ("salesforce_accounts", "001Hs00001AcmeAAA", "acme", "salesforce"),
        ("salesforce_opportunities", "006Hs00001WonxAAA", "acme", "salesforce"),
    ]  # the Task is acknowledged but not mirrored
    # Salesforce retries what it did not see acknowledged, maybe twice and out of order: stored once
    again = post(
        client,
        message(("04lA2", "Opportunity", "006Hs00001WonxAAA"), ("04lA1", "Account", "001Hs00001AcmeAAA")),
    )
    assert again.status_code == 200 and b"<Ack>true</Ack>" in again.content
    assert inbox.count() == 2
    # the targeted run reads exactly the announced records, each once
    from xz_pipeline.definitions import defs

    (run,) = plan_runs(inbox.after(0), defs.get_repository_def().asset_graph)
    ops = run.run_config["ops"]
    assert ops["salesforce_accounts"]["config"]["ids"] == ["001Hs00001AcmeAAA"]
    assert ops["salesforce_opportunities"]["config"]["ids"] == ["006Hs00001WonxAAA"]
    assert run.partition_key == "acme"


def test_other_orgs_wrong_secrets_and_hostile_bodies_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XZ_HOME", str(tmp_path))
    inbox = Inbox(tmp_path / "inbox.sqlite")
    client = TestClient(build_app(inbox, [connection(secret="s3cret-url-token")]))
    note = ("04lB1", "Account", "001Hs00001AcmeAAA")
    assert post(client, message(note, org="00DHs0000099999MAA")).status_code == 401
    assert post(client, message(note)).status_code == 401  # the URL secret is missing
    assert post(client, message(note), "?token=wrong").status_code == 401
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    assert post(client, bomb, "?token=s3cret-url-token").status_code == 400
    assert post(client, b"<not-soap/>", "?token=s3cret-url-token").status_code == 400
    assert inbox.count() == 0
    ok = post(client, message(note), "?token=s3cret-url-token")
    assert ok.status_code == 200 and inbox.count() == 1


def test_the_emulators_messages_retried_duplicated_and_shuffled_are_stored_once(tmp_path, monkeypatch):
    """Outbound Messages as the emulator sends them: refused while the URL lacks its secret (retried after the
    back-off), then acknowledged; a duplicate of an acknowledged message and a shuffled order store nothing twice."""
    from datetime import UTC, datetime

    from xz_pipeline.core.oauth import TokenStore
    from xz_pipeline.realtime.receiver import serve_in_thread
    from xz_pipeline.salesforce.client import SalesforceClient
    from xz_pipeline.sandbox.clock import ManualClock
    from xz_pipeline.sandbox.server import SandboxServer

    monkeypatch.setenv("XZ_HOME", str(tmp_path))
    inbox = Inbox(tmp_path / "inbox.sqlite")
    clock = ManualClock(datetime.now(UTC))
    with SandboxServer(seed=11, size="tiny", crm="salesforce", clock=clock) as sb:
        org_id = sb.salesforce_org_ids[0]
        sf = settings.SalesforceSettings(
            client_id="cid", client_secret="cs", org_id=org_id, notify_token="url-secret-1"
        )
        conn = settings.Connection(name="acme", xero=None, zoho=None, crm="salesforce", salesforce=sf)
        url, stop = serve_in_thread(inbox=inbox, connections=[conn])
        try:
            emulator = sb.salesforce
            emulator.set_outbound(org_id, f"{url}/webhooks/salesforce")  # the secret forgotten
            emulator.outbound.duplicate = emulator.outbound.shuffle = True
            env = sb.env(0)
            with SalesforceClient(client_id=env["SALESFORCE_CLIENT_ID"], client_secret=env["SALESFORCE_CLIENT_SECRET"],
                                  refresh_token=env["SALESFORCE_REFRESH_TOKEN"], login_url=env["SALESFORCE_LOGIN_URL"],
                                  token_store=TokenStore(tmp_path / "tokens"), connection="acme", clock=clock) as c:  # fmt: skip
                accounts = sorted(emulator.orgs[org_id].records["Account"])[:2]
                opp = sorted(emulator.orgs[org_id].records["Opportunity"])[0]
                assert all(
                    r.ok for r in c.update("Account", [{"id": a, "Website": "x.example"} for a in accounts])
                )
                assert c.update("Opportunity", [{"id": opp, "Description": "edited"}])[0].ok
            assert (
                emulator.flush_outbound() == 0 and inbox.count() == 0
            )  # 401: not acknowledged, kept for later
            emulator.set_outbound(org_id, f"{url}/webhooks/salesforce?token=url-secret-1")
            assert emulator.flush_outbound() == 0  # not due yet: the back-off runs on
            clock.advance(16)  # the first retry comes 15 s later
            assert emulator.flush_outbound() == 3
            assert sorted((e.asset, e.record_id) for e in inbox.after(0)) == sorted(
                [("salesforce_accounts", a) for a in accounts] + [("salesforce_opportunities", opp)]
            )
            assert inbox.count() == 3  # the duplicated message stored nothing twice
            assert emulator.outbound.pending == []
        finally:
            stop()
