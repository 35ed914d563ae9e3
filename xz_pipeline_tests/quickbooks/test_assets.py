"""The QuickBooks extract assets materialised in process against the QBO emulator: a first sync that mirrors
what the company holds, an incremental run by CDC (a change and a deletion), the canonical books views over
both vendors' tables, and a Xero asset that does nothing for a QuickBooks connection and says so."""

from __future__ import annotations

import dagster as dg
import pytest

from xz_pipeline import settings
from xz_pipeline.core.canonical import install_views
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.quickbooks.assets import QUICKBOOKS_ASSETS
from xz_pipeline.quickbooks.client import QuickBooksClient
from xz_pipeline.quickbooks.mapping import BOOKS_VIEWS as QBO_VIEWS
from xz_pipeline.quickbooks.resources import QuickBooksResource
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.views import combine_views
from xz_pipeline.xero.assets import xero_contacts
from xz_pipeline.xero.mapping import BOOKS_VIEWS as XERO_VIEWS
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.sandbox_env import export_sandbox

CONNECTION = "us"
TABLES = {"quickbooks_customers": ("Customer", "customers"), "quickbooks_invoices": ("Invoice", "invoices"),
          "quickbooks_payments": ("Payment", "payments"), "quickbooks_credit_memos": ("CreditMemo", "credit_memos"),
          "quickbooks_bills": ("Bill", "bills"), "quickbooks_items": ("Item", "items"),
          "quickbooks_accounts": ("Account", "accounts")}  # fmt: skip
RESOURCES = {"quickbooks": QuickBooksResource(), "xero": XeroResource(), "mirror": MirrorResource()}


@pytest.fixture(scope="module")
def sb():
    with SandboxServer(seed=5, size="tiny", books="quickbooks") as server:
        yield server


def _materialize(instance, assets) -> dict[str, dict]:
    result = dg.materialize(assets, partition_key=CONNECTION, instance=instance, resources=RESOURCES)
    assert result.success
    return {
        a.op.name: {
            k: v.value for k, v in result.asset_materializations_for_node(a.op.name)[0].metadata.items()
        }
        for a in assets
    }


def _count(store: Store, sql: str) -> int:
    with store.read() as con:
        return con.execute(sql).fetchone()[0]


def test_first_sync_incremental_cdc_and_the_views(sb, monkeypatch, xz_home):
    export_sandbox(monkeypatch, sb, CONNECTION)
    company = sb.quickbooks.companies[sb.realm_ids[0]]
    store = Store(settings.mirror_path(CONNECTION))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        first = _materialize(instance, [*QUICKBOOKS_ASSETS, xero_contacts])
        for asset, (entity, table) in TABLES.items():
            assert first[asset]["mode"] == "first sync" or asset in (
                "quickbooks_items",
                "quickbooks_accounts",
            )
            assert _count(store, f"select count(*) from quickbooks.{table}") == len(
                company.records[entity]
            ), asset
        assert _count(store, "select count(*) from quickbooks.preferences") == 1
        assert "nothing to do with xero" in first["xero_contacts"]["skipped"]
        assert first["xero_contacts"]["api_calls"] == 0
        assert _count(store, "select count(*) from meta.quarantine") == 0

        # A person edits a customer and deletes an invoice; the next run reads them by CDC.
        env = sb.env(0)
        with QuickBooksClient(client_id=env["QBO_CLIENT_ID"], client_secret=env["QBO_CLIENT_SECRET"],
                              refresh_token=None, api_url=env["QBO_API_URL"], token_url=env["QBO_TOKEN_URL"],
                              token_store=TokenStore(xz_home / "tokens"), connection=CONNECTION,
                              realm_id=env["QBO_REALM_ID"]) as client:  # fmt: skip
            cust = client.get("Customer", "2")
            inv = client.get("Invoice", "3")
            client.batch([
                {"operation": "update", "Customer": {"Id": "2", "SyncToken": cust["SyncToken"], "sparse": True,
                                                     "Notes": "moved offices"}},
                {"operation": "delete", "Invoice": {"Id": "3", "SyncToken": inv["SyncToken"]}},
            ])  # fmt: skip
        start = len(sb.quickbooks.received)
        second = _materialize(instance, QUICKBOOKS_ASSETS[:2])
        assert (
            second["quickbooks_customers"]["mode"] == "incremental"
            and second["quickbooks_customers"]["updated"] == 1
        )
        assert second["quickbooks_invoices"]["deleted"] == 1
        assert _count(store, "select count(*) from quickbooks.invoices where invoice_id = '3'") == 0
        assert _count(store, "select count(*) from quickbooks.customers where notes = 'moved offices'") == 1
        assert {r.path.rsplit("/", 1)[-1] for r in sb.quickbooks.received[start:]} == {"cdc"}

        # A webhook's targeted run: exactly the announced ids, a deletion announced as such.
        start = len(sb.quickbooks.received)
        config = {"ops": {"quickbooks_invoices": {"config": {"ids": ["4", "5"], "deleted_ids": ["6"]}}}}
        result = dg.materialize([QUICKBOOKS_ASSETS[1]], partition_key=CONNECTION, instance=instance,
                                resources=RESOURCES, run_config=config)  # fmt: skip
        assert result.success
        (query,) = [r.query["query"] for r in sb.quickbooks.received[start:] if r.path.endswith("/query")]
        assert "Id in ('4', '5')" in query
        assert (
            _count(store, "select count(*) from quickbooks.invoices where invoice_id in ('4', '5', '6')") == 2
        )

    # The books views are the union of both vendors' renderings; the Xero side has no tables here.
    with store.write() as con:
        made = install_views(con, combine_views(con, [XERO_VIEWS, QBO_VIEWS]))
    assert set(made.values()) == {"source"}
    assert _count(store, "select count(*) from canonical.books_invoices") == _count(
        store,
        "select (select count(*) from quickbooks.invoices) + (select count(*) from quickbooks.bills) "
        "+ (select count(*) from quickbooks.estimates)",
    )
    assert _count(store, "select count(*) from canonical.books_customers where connection = 'us'") == len(
        company.records["Customer"]
    )


def test_the_realtime_job_reaches_the_quickbooks_assets():
    from xz_pipeline.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_job_def("realtime").asset_layer.executable_asset_keys}
    assert {a.op.name for a in QUICKBOOKS_ASSETS} <= keys
