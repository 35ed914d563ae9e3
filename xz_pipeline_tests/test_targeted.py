"""Targeted extract runs (what the near-real-time sensors request): exactly the announced records,
deletions applied, and the incremental cursor left alone so unannounced changes are still read later."""

from __future__ import annotations

import dagster as dg

from xz_pipeline import runner
from xz_pipeline.core.mirror import read_sync_state
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.store import Store
from xz_pipeline.definitions import defs
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox

CONNECTION = "sandbox"


def _targeted(instance, asset: str, **config) -> dict:
    (asset_def,) = [a for a in runner.ASSETS if a.op.name == asset]
    checks = [c for c in runner.CHECKS if c.node_def.name == f"{asset}_checks"]
    result = dg.materialize(
        [asset_def, *checks], partition_key=CONNECTION, instance=instance,
        resources={"xero": XeroResource(), "zoho": ZohoResource(), "mirror": MirrorResource()},
        run_config={"ops": {asset: {"config": config}}},
    )  # fmt: skip
    assert result.success
    # the blocking checks read only the announced records, as the near-real-time runs need
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(
        e.metadata["scope"].value.startswith(
            f"the {len(config.get('ids', []) + config.get('deleted_ids', []))} "
        )
        for e in evaluations
    )
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def test_targeted_runs_read_only_the_announced_records(monkeypatch):
    assert defs is not None
    with SandboxServer(seed=19, size="tiny") as sb:
        export_sandbox(monkeypatch, sb, CONNECTION)
        inst = runner.instance()
        runner.sync([CONNECTION], inst=inst, only="mirror")
        store = Store(only_mirror())
        cursor_before = read_sync_state(store, CONNECTION, "xero", "Contacts")[0]

        tenant, org = sb.tenant_ids[0], sb.org_ids[0]
        first, second = sb.xero.dump(tenant, "Contacts")[:2]
        with XeroResource().client(CONNECTION) as xero:
            xero.update_contacts([{"ContactID": first["ContactID"], "EmailAddress": "announced@example.com"}])
            xero.update_contacts(
                [{"ContactID": second["ContactID"], "EmailAddress": "unannounced@example.com"}]
            )
        meta = _targeted(inst, "xero_contacts", ids=[first["ContactID"]])
        assert meta["fetched"] == 1 and meta["updated"] == 1 and meta["api_calls"] == 1
        assert read_sync_state(store, CONNECTION, "xero", "Contacts")[0] == cursor_before
        # The next incremental run still finds the change nobody announced.
        later = runner.sync([CONNECTION], inst=inst, only="mirror")[0].metadata["xero_contacts"]
        assert later["updated"] == 1
        with store.read() as con:
            emails = dict(con.execute("select contact_id, email from xero.contacts").fetchall())
        assert emails[first["ContactID"]] == "announced@example.com"
        assert emails[second["ContactID"]] == "unannounced@example.com"

        # Zoho too: a targeted read costs one call for the announced record, not a read of the module
        edited, other = (str(a["id"]) for a in sb.zoho.dump(org, "Accounts")[:2])
        with ZohoResource().client(CONNECTION) as zoho:
            zoho.update("Accounts", [{"id": edited, "Phone": "+64 9 555 0101"},
                                     {"id": other, "Phone": "+64 9 555 0102"}])  # fmt: skip
        meta = _targeted(inst, "zoho_accounts", ids=[edited])
        assert meta["fetched"] == 1 and meta["updated"] == 1 and meta["api_calls"] == 1
        with store.read() as con:
            phones = dict(con.execute("select account_id, phone from zoho.accounts").fetchall())
        assert phones[edited] == "+64 9 555 0101" and phones[other] != "+64 9 555 0102"

        account = sb.zoho.dump(org, "Accounts")[0]["id"]
        with ZohoResource().client(CONNECTION) as zoho:
            zoho.delete("Accounts", [account])
        meta = _targeted(inst, "zoho_accounts", deleted_ids=[account])
        assert meta["deleted"] == 1 and meta["api_calls"] == 0
        with store.read() as con:
            assert con.execute(
                "select count(*) from zoho.accounts where account_id = ?", [account]
            ).fetchone() == (0,)
