"""The Zoho extract assets against the emulator: full, idle (list + deleted probe), changes and deletions."""

from __future__ import annotations

from decimal import Decimal

import dagster as dg
import pytest

from xz_pipeline.core.canonical import install_views
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.zoho.assets import ZOHO_ASSETS
from xz_pipeline.zoho.mapping import CRM_VIEWS
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline.zoho.writer import ZohoWriterResource
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox

CONNECTION = "sandbox"
TABLES = {
    "zoho_accounts": ("Accounts", "zoho.accounts"),
    "zoho_contacts": ("Contacts", "zoho.contacts"),
    "zoho_deals": ("Deals", "zoho.deals"),
    "zoho_invoices": ("Invoices", "zoho.invoices"),
    "zoho_products": ("Products", "zoho.products"),
}


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=13, size="demo") as sb:
        yield sb


@pytest.fixture
def env(sandbox, monkeypatch):
    export_sandbox(monkeypatch, sandbox, CONNECTION)


def _materialize(instance, names=tuple(TABLES)) -> dict[str, dict]:
    assets = [a for a in ZOHO_ASSETS if a.op.name in names]
    result = dg.materialize(
        assets,
        partition_key=CONNECTION,
        instance=instance,
        resources={"zoho": ZohoResource(), "mirror": MirrorResource()},
    )
    assert result.success
    return {
        a.op.name: {
            k: v.value for k, v in result.asset_materializations_for_node(a.op.name)[0].metadata.items()
        }
        for a in assets
    }


def test_full_idle_changes_and_deletions(sandbox, env):
    org = sandbox.org_ids[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        first = _materialize(instance)
        store = Store(only_mirror())
        with store.read() as con:
            for name, (module, table) in TABLES.items():
                expected = sandbox.zoho.dump(org, module)
                assert first[name]["dagster/row_count"] == len(expected) > 0, name
                assert con.execute(f"select count(*) from {table}").fetchone()[0] == len(expected), table
            items = con.execute("select count(*) from zoho.invoice_items").fetchone()[0]
        assert (
            items == sum(len(i.get("Invoiced_Items") or []) for i in sandbox.zoho.dump(org, "Invoices")) > 0
        )

        idle = _materialize(instance)
        for name, meta in idle.items():
            # one list call answered 304 and one /deleted probe
            assert meta["api_calls"] <= 2, (name, meta)
            assert meta["inserted"] == meta["updated"] == meta["deleted"] == 0, name

        deals = sandbox.zoho.dump(org, "Deals")
        accounts = sandbox.zoho.dump(org, "Accounts")
        with ZohoResource().client(CONNECTION) as client:
            (changed,) = client.update("Deals", [{"id": deals[0]["id"], "Amount": 12345.67}])
            (gone,) = client.delete("Accounts", [accounts[-1]["id"]])
        assert changed.ok and gone.ok
        after = _materialize(instance, ("zoho_deals", "zoho_accounts"))
        # Only what moved past the cursor (plus the cursor's own second, re-read as in the idle run).
        assert after["zoho_deals"]["updated"] == 1 and after["zoho_deals"]["inserted"] == 0
        assert after["zoho_deals"]["fetched"] == idle["zoho_deals"]["fetched"] + 1
        assert after["zoho_accounts"]["deleted"] == 1
        with store.read() as con:
            amount = con.execute(
                "select amount from zoho.deals where deal_id = ?", [deals[0]["id"]]
            ).fetchone()[0]
            assert amount == Decimal("12345.67")
            assert con.execute(
                "select count(*) from zoho.accounts where account_id = ?", [accounts[-1]["id"]]
            ).fetchone() == (0,)
            closed = con.execute(
                "select count(*) from zoho.accounts_history where account_id = ? and valid_to is not null",
                [accounts[-1]["id"]],
            ).fetchone()[0]
            notice = con.execute(
                "select count(*) from landing.records where entity = 'Accounts:deleted' and record_id = ?",
                [accounts[-1]["id"]],
            ).fetchone()[0]
        assert closed == 1 and notice == 1


def _related_reads(sandbox, since: int = 0) -> list[str]:
    return [r.path.split("/")[-2] for r in sandbox.zoho.received[since:] if r.path.endswith("/Products")
            and "/Deals/" in r.path]  # fmt: skip


def test_deal_products_are_read_only_for_the_deals_asked_once_per_version(sandbox, env):
    """Mirroring deals reads no related lists; write-back asks for the deals it will invoice, each read
    once per version of the deal (a deal that changes is read again, alone)."""
    org = sandbox.org_ids[0]
    emu = sandbox.zoho
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        before = len(emu.received)
        _materialize(instance, ("zoho_deals",))
        assert _related_reads(sandbox, before) == []
        related = emu.orgs[org].relations
        deals = {d["id"]: d for d in emu.dump(org, "Deals")}
        asked = sorted(i for i in deals if related.get(("Deals", i, "Products")))[:3]
        store = Store(only_mirror())
        writer = ZohoWriterResource().writer(CONNECTION)
        try:
            before = len(emu.received)
            assert writer.read_deal_products(store, asked, run_id="t") == len(asked) + 1  # + the deals by id
            assert sorted(_related_reads(sandbox, before)) == asked
            with store.write() as con:
                install_views(con, CRM_VIEWS)
                rows = con.execute(
                    "select deal_id, product_code, quantity, unit_price from canonical.crm_deal_lines "
                    "order by deal_id, line_no"
                ).fetchall()
            codes = {p["id"]: p["Product_Code"] for p in emu.dump(org, "Products")}
            want = [(deal_id, codes[r["id"]], Decimal(str(r["Quantity"])), Decimal(str(r["List_Price"])))
                    for deal_id in asked for r in related[("Deals", deal_id, "Products")]]  # fmt: skip
            assert sorted(rows) == sorted(want) and rows

            # asked again: nothing to read; a deal that changed (and was mirrored since) is read again, alone
            assert writer.read_deal_products(store, asked, run_id="t") == 0
            changed = asked[0]
            with emu.lock:
                o = emu.orgs[org]
                o.update(
                    "Deals", o.records["Deals"][changed], {"Amount": 1234.5}, o.api_user, emu.clock.now()
                )
            _materialize(instance, ("zoho_deals",))
            before = len(emu.received)
            assert writer.read_deal_products(store, asked, run_id="t") == 2
            assert _related_reads(sandbox, before) == [changed]
            with store.read() as con:  # the products stayed in the mirror while the deal was re-listed
                assert (
                    con.execute("select count(distinct deal_id) from zoho.deal_products").fetchone()[0] == 3
                )
        finally:
            writer.close()
