"""A first sync killed in the middle of a paged read resumes where it stopped: no duplicate, no gap."""

from __future__ import annotations

import dagster as dg

from xz_pipeline.core import sync
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero.assets import xero_invoices
from xz_pipeline.xero.client import XeroClient
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox

CONNECTION = "sandbox"


def test_interrupted_first_sync_resumes_without_duplicates_or_gaps(monkeypatch):
    monkeypatch.setattr(sync, "CHUNK_ROWS", 500)  # write every page (1,000 rows) as it arrives
    real_iter_pages = XeroClient.iter_pages
    killed = {"done": False}

    def dying_iter_pages(self, collection, **kw):
        for n, page in enumerate(real_iter_pages(self, collection, **kw), start=1):
            yield page
            if collection == "Invoices" and n == 2 and not killed["done"]:
                killed["done"] = True
                raise ConnectionResetError("the process was killed here")

    monkeypatch.setattr(XeroClient, "iter_pages", dying_iter_pages)
    with SandboxServer(seed=17, size="demo") as sb:
        export_sandbox(monkeypatch, sb, CONNECTION)
        expected = {i["InvoiceID"] for i in sb.xero.dump(sb.tenant_ids[0], "Invoices")}
        assert len(expected) > 2_000
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
            result = dg.materialize(
                [xero_invoices], partition_key=CONNECTION, instance=instance,
                resources={"xero": XeroResource(), "mirror": MirrorResource()},
            )  # fmt: skip
            assert result.success and killed["done"]
            retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
            assert len(retries) == 1  # the killed attempt, then the asset's retry policy ran it again
            (mat,) = result.asset_materializations_for_node("xero_invoices")
            meta = {k: v.value for k, v in mat.metadata.items()}

    assert meta["mode"] == "resuming the first sync"
    assert meta["fetched"] < len(expected)  # it did not start over
    with Store(only_mirror()).read() as con:
        ids = [r[0] for r in con.execute("select invoice_id from xero.invoices").fetchall()]
        open_versions = con.execute(
            "select count(*) from xero.invoices_history where valid_to is null"
        ).fetchone()[0]
    assert len(ids) == len(set(ids)) and set(ids) == expected  # no duplicate, no gap
    assert open_versions == len(expected)
