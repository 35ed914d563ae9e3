"""The Salesforce extract assets materialised in process against the emulator, for an org that renamed its won
stage and keeps our fields under its own names (the connection maps them): a first sync mirroring what the
org holds, an incremental run (a change and a deletion), the canonical CRM views (won by IsWon), a Zoho asset
that does nothing for a Salesforce connection and says so, and a targeted run of exactly the announced ids."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from xz_pipeline import settings
from xz_pipeline.core.canonical import install_views
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.store import Store, publish_snapshot
from xz_pipeline.core.sync import ReadPlan
from xz_pipeline.salesforce import fieldmap, tables
from xz_pipeline.salesforce.assets import SALESFORCE_ASSETS, fetch_for, held_ids, salesforce_accounts
from xz_pipeline.salesforce.client import SalesforceClient
from xz_pipeline.salesforce.mapping import CRM_VIEWS
from xz_pipeline.salesforce.resources import SalesforceResource
from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.views import combine_views
from xz_pipeline.zoho.assets import zoho_accounts
from xz_pipeline.zoho.mapping import CRM_VIEWS as ZOHO_VIEWS
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline_tests.sandbox_env import export_sandbox

CONNECTION = "acme"
TABLES = {"Account": "accounts", "Contact": "contacts", "Opportunity": "opportunities",
          "OpportunityLineItem": "opportunity_line_items", "Product2": "products"}  # fmt: skip
RESOURCES = {"salesforce": SalesforceResource(), "zoho": ZohoResource(), "mirror": MirrorResource()}


@pytest.fixture(scope="module")
def sb():
    from datetime import UTC, datetime

    clock = ManualClock(datetime.now(UTC))
    with SandboxServer(seed=5, size="tiny", crm="salesforce", profile="renamed", clock=clock) as server:
        yield server


def _materialize(instance, assets, config: dict | None = None) -> dict[str, dict]:
    result = dg.materialize(assets, partition_key=CONNECTION, instance=instance, resources=RESOURCES,
                            run_config={"ops": config or {}})  # fmt: skip
    assert result.success
    return {a.op.name: {k: v.value for k, v in result.asset_materializations_for_node(a.op.name)[0].metadata.items()}
            for a in assets}  # fmt: skip


def _rows(store: Store, sql: str, *args) -> list[tuple]:
    with store.read() as con:
        return con.execute(sql, list(args)).fetchall()


def _poll(cursor: str | None):
    """One tick of the polling sensor, over the Salesforce assets alone (loading every definition costs seconds)."""
    from xz_pipeline.realtime.polling import salesforce_polling_sensor

    job = dg.define_asset_job("realtime", selection=dg.AssetSelection.groups("salesforce"))
    repo = dg.Definitions(assets=SALESFORCE_ASSETS, jobs=[job], sensors=[salesforce_polling_sensor],
                          resources=RESOURCES).get_repository_def()  # fmt: skip
    context = dg.build_sensor_context(
        cursor=cursor, repository_def=repo, resources={"salesforce": SalesforceResource()}
    )
    return salesforce_polling_sensor(context)


def live(sb, sobject: str) -> dict[str, dict]:
    org = sb.salesforce.orgs[sb.salesforce_org_ids[0]]
    return {rid: r for rid, r in org.records[sobject].items() if not r.get("IsDeleted")}


def test_first_sync_incremental_views_and_a_targeted_read(sb, monkeypatch, xz_home):
    env = export_sandbox(monkeypatch, sb, CONNECTION)
    assert "XZ_SALESFORCE_FIELDS" in env  # the renamed org's own names, mapped as a person would
    store = Store(settings.mirror_path(CONNECTION))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        first = _materialize(instance, [*SALESFORCE_ASSETS, zoho_accounts])
        for sobject, table in TABLES.items():
            name = f"salesforce_{table}"
            assert first[name]["mode"] == "first sync"
            held = _rows(store, f"select count(*) from salesforce.{table}")[0][0]
            assert held == len(live(sb, sobject)) > 0, sobject
        assert "nothing to do with zoho" in first["zoho_accounts"]["skipped"]
        assert _rows(store, "select count(*) from meta.quarantine") == [(0,)]
        # the org's own names read through the mapping: the books link is there under Xero_ID__c
        linked = [r for r in live(sb, "Account").values() if r.get("Xero_ID__c")]
        assert linked and _rows(
            store, "select count(*) from salesforce.accounts where books_customer_id is not null"
        )[0][0] == len(linked)

        with store.write() as con:
            install_views(con, combine_views(con, [ZOHO_VIEWS, CRM_VIEWS]))
        won_stage = {r["StageName"] for r in live(sb, "Opportunity").values() if r["IsWon"]}
        assert won_stage == {"Deal Won"}  # the renamed org's won stage
        stages = dict(_rows(store, "select stage_raw, any_value(stage) from canonical.crm_deals group by 1"))
        assert stages["Deal Won"] == "won" and "Closed Won" not in stages
        assert {s for raw, s in stages.items() if raw != "Deal Won"} <= {"open", "lost"}
        assert _rows(store, "select count(*) from canonical.crm_invoices") == [(0,)]
        # the org keeps its payment status under its own name: still tracked, and in our words
        assert _rows(store, "select distinct payment_status_tracked from canonical.crm_deals") == [(True,)]
        statuses = {r[0] for r in _rows(store, "select payment_status from canonical.crm_deals")}
        assert "paid" in statuses and statuses <= {"paid", "partially_paid", "unpaid", "overdue", None}

        # polling on SystemModstamp starts from the mirror's cursor, as the published snapshot holds it
        publish_snapshot([store], settings.snapshot_path())
        assert not _poll(None).run_requests

        # a person edits an account and deletes another; the next run reads them incrementally
        sb.clock.advance(5)
        with SalesforceClient(client_id=env["SALESFORCE_CLIENT_ID"], client_secret=env["SALESFORCE_CLIENT_SECRET"],
                              refresh_token=None, login_url=env["SALESFORCE_LOGIN_URL"],
                              token_store=TokenStore(xz_home / "tokens"), connection=CONNECTION,
                              clock=sb.clock) as c:  # fmt: skip
            edited, doomed = sorted(live(sb, "Account"))[:2]
            assert c.update("Account", [{"id": edited, "Website": "edited.example"}])[0].ok
            assert c.delete([doomed])[0].ok
        start = len(sb.salesforce.received)
        (poll,) = _poll(None).run_requests
        assert poll.run_config["ops"] == {"salesforce_accounts": {"config": {"ids": [edited]}}}
        probes = [r for r in sb.salesforce.received[start:] if r.path.endswith("/query/")]
        assert len(probes) == 5 and all(
            "SystemModstamp >" in r.query["q"] for r in probes
        )  # one call an object
        sb.clock.advance(120)  # the deletion's minute ends: the replication API reports it
        second = _materialize(instance, [salesforce_accounts])["salesforce_accounts"]
        assert second["mode"] == "incremental" and second["deleted"] == 1 and second["updated"] >= 1
        assert _rows(store, "select website from salesforce.accounts where account_id = ?", edited) == [
            ("edited.example",)
        ]
        assert _rows(store, "select count(*) from salesforce.accounts where account_id = ?", doomed) == [(0,)]
        # the next read is told of the same deletion again (a day back, whole minutes): it lands once
        with SalesforceResource().client(CONNECTION) as c:
            spec = tables.specs(fieldmap.load(CONNECTION))["Account"]
            plan = ReadPlan(False, sb.clock.now(), sb.clock.now(), "incremental")
            fetched = fetch_for(c, spec, plan, held=held_ids(store, spec, CONNECTION))
            assert fetched.deleted() == []
            assert [r["id"] for r in c.deleted("Account", plan.cursor - timedelta(days=1)).records] == [
                doomed
            ]

        # a targeted run (an Outbound Message or a poll): exactly the announced records
        start = len(sb.salesforce.received)
        config = {"salesforce_accounts": {"config": {"ids": [edited]}}}
        targeted = _materialize(instance, [salesforce_accounts], config)["salesforce_accounts"]
        assert targeted["fetched"] == 1
        queries = [r.query["q"] for r in sb.salesforce.received[start:] if r.path.endswith("/query/")]
        assert len(queries) == 1 and f"'{edited}'" in queries[0]
