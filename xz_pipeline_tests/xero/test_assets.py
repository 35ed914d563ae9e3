"""The Xero extract assets materialised in process against the emulator: full, idle, incremental, history."""

from __future__ import annotations

import dagster as dg
import pytest

from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.definitions import defs
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero.assets import XERO_ASSETS
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox

CONNECTION = "sandbox"
TABLES = {
    "xero_contacts": ("Contacts", "xero.contacts"),
    "xero_invoices": ("Invoices", "xero.invoices"),
    "xero_payments": ("Payments", "xero.payments"),
    "xero_credit_notes": ("CreditNotes", "xero.credit_notes"),
    "xero_items": ("Items", "xero.items"),
    "xero_accounts": ("Accounts", "xero.accounts"),
    "xero_organisation": ("Organisation", "xero.organisation"),
}


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=11, size="demo") as sb:
        yield sb


@pytest.fixture
def env(sandbox, monkeypatch):
    export_sandbox(monkeypatch, sandbox, CONNECTION)
    return sandbox.env(0)


def _materialize(instance, assets=XERO_ASSETS) -> dict[str, dict]:
    result = dg.materialize(
        assets,
        partition_key=CONNECTION,
        instance=instance,
        resources={"xero": XeroResource(), "mirror": MirrorResource()},
    )
    assert result.success
    out = {}
    for asset in assets:
        (mat,) = result.asset_materializations_for_node(asset.op.name)
        out[asset.op.name] = {k: v.value for k, v in mat.metadata.items()}
    return out


def test_full_then_idle_then_incremental_with_history(sandbox, env):
    tenant = env["XERO_TENANT_ID"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        first = _materialize(instance)
        store = Store(only_mirror())
        with store.read() as con:
            for name, (collection, table) in TABLES.items():
                expected = sandbox.xero.dump(tenant, collection)
                assert first[name]["mode"] in ("first sync", "full sweep requested"), name
                assert first[name]["dagster/row_count"] == len(expected) > 0, name
                mirrored = con.execute(f"select count(*) from {table}").fetchone()[0]
                assert mirrored == len(expected), table
            lines = con.execute("select count(*) from xero.invoice_lines").fetchone()[0]
            expected_lines = sum(len(i.get("LineItems") or []) for i in sandbox.xero.dump(tenant, "Invoices"))
            assert lines == expected_lines > 0
            landed = con.execute("select count(*) from landing.records where entity = 'Contacts'").fetchone()[
                0
            ]
            assert landed == len(sandbox.xero.dump(tenant, "Contacts"))

        # Nothing changed: one call per entity, nothing written.
        idle = _materialize(instance)
        for name, meta in idle.items():
            assert meta["api_calls"] == 1, (name, meta)
            assert meta["inserted"] == meta["updated"] == meta["deleted"] == 0, name

        # Someone edits one contact in Xero; the next run reads only what changed since the cursor.
        contacts = sandbox.xero.dump(tenant, "Contacts")
        target = contacts[0]
        with XeroResource().client(CONNECTION) as client:
            (written,) = client.update_contacts(
                [{"ContactID": target["ContactID"], "EmailAddress": "accounts@renamed.example"}]
            )
        assert written.ok
        before = len(sandbox.xero.received)
        third = _materialize(instance, [a for a in XERO_ASSETS if a.op.name == "xero_contacts"])[
            "xero_contacts"
        ]
        assert third["mode"] == "incremental"
        assert third["updated"] == 1 and third["inserted"] == 0
        assert third["fetched"] < len(contacts)
        assert len([r for r in sandbox.xero.received[before:] if "/Contacts" in r.path]) == 1

        with store.read() as con:
            versions = con.execute(
                "select email, valid_to is null from xero.contacts_history where contact_id = ? order by valid_from",
                [target["ContactID"]],
            ).fetchall()
        assert [v[1] for v in versions] == [False, True]
        assert versions[-1][0] == "accounts@renamed.example"

        # No secret reached the event log.
        secrets = [env["XERO_CLIENT_SECRET"], env["XERO_REFRESH_TOKEN"]]
        text = " ".join(
            f"{entry.user_message} {entry.dagster_event}"
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
        )
        assert "xero Contacts for sandbox" in text
        assert not any(s in text for s in secrets)


def test_definitions_load():
    assert defs.resolve_job_def("mirror") is not None
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys >= set(TABLES)
