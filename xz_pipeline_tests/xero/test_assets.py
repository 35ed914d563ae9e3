"""xero_contacts materialised in process against the Xero emulator: full, then incremental, with history."""

from __future__ import annotations

import dagster as dg
import pytest

from xz_pipeline import settings
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.definitions import defs
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero.assets import xero_contacts
from xz_pipeline.xero.resources import XeroResource

CONNECTION = "sandbox"


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=11, size="demo") as sb:
        yield sb


@pytest.fixture
def env(sandbox, monkeypatch):
    for key, value in sandbox.env(0).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XZ_CONNECTION", CONNECTION)
    return sandbox.env(0)


def _materialize(instance):
    result = dg.materialize(
        [xero_contacts],
        partition_key=CONNECTION,
        instance=instance,
        resources={"xero": XeroResource(), "mirror": MirrorResource()},
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("xero_contacts")
    return {k: v.value for k, v in mat.metadata.items()}


def _contacts_requests(sandbox, since: int):
    return [r for r in sandbox.xero.received[since:] if "/Contacts" in str(getattr(r, "path", r))]


def test_full_then_incremental_sync_with_history(sandbox, env):
    tenant = env["XERO_TENANT_ID"]
    expected = sandbox.xero.dump(tenant, "Contacts")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        first = _materialize(instance)
        assert first["mode"] == "full"
        assert first["dagster/row_count"] == len(expected) == first["fetched"] == first["inserted"]

        store = Store(settings.mirror_path())
        with store.read() as con:
            ids = {r[0] for r in con.execute("select contact_id from xero.contacts").fetchall()}
            landed = con.execute("select count(*) from landing.records where entity = 'Contacts'").fetchone()[
                0
            ]
        assert ids == {c["ContactID"] for c in expected}
        assert landed == len(expected)

        # Someone edits one contact in Xero; the next run reads only what changed since the cursor.
        target = expected[0]
        with XeroResource().client(CONNECTION) as client:
            (written,) = client.update_contacts(
                [{"ContactID": target["ContactID"], "EmailAddress": "accounts@renamed.example"}]
            )
        assert written.ok
        before = len(sandbox.xero.received)
        second = _materialize(instance)
        assert second["mode"] == "incremental"
        assert second["updated"] == 1 and second["inserted"] == 0
        assert second["fetched"] < len(expected)
        contact_calls = _contacts_requests(sandbox, before)
        assert len(contact_calls) == 1

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
        assert "xero contacts for sandbox" in text
        assert not any(s in text for s in secrets)


def test_definitions_load():
    assert defs.resolve_job_def("mirror") is not None
    assert {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()} >= {"xero_contacts"}
