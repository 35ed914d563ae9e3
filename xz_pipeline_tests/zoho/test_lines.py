"""Invoice line items: a tiny org's first sync reads them 50 invoices a COQL call, not one GET each; a
handful of changed invoices cost one call; an org that refuses COQL is read one invoice a call, losslessly."""

from __future__ import annotations

import json
import math

import dagster as dg
import pytest

from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.sandbox.zoho import DEFAULT_SCOPES
from xz_pipeline.zoho.assets import zoho_invoices
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox

CONNECTION = "sandbox"


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=29, size="tiny") as sb:
        yield sb


@pytest.fixture
def env(sandbox, monkeypatch):
    export_sandbox(monkeypatch, sandbox, CONNECTION)


def _materialize(instance) -> dict:
    result = dg.materialize([zoho_invoices], partition_key=CONNECTION, instance=instance,
                            resources={"zoho": ZohoResource(), "mirror": MirrorResource()})  # fmt: skip
    assert result.success
    return {
        k: v.value for k, v in result.asset_materializations_for_node("zoho_invoices")[0].metadata.items()
    }


def _calls(sandbox, since: int) -> dict[str, int]:
    """Zoho calls since `since`, by kind: invoice GETs by id, COQL, everything else (metadata, token)."""
    out = {"get_by_id": 0, "coql": 0, "other": 0}
    for r in sandbox.zoho.received[since:]:
        if r.path.startswith("/crm/v8/Invoices/") and r.path.split("/")[-1].isdigit():
            out["get_by_id"] += 1
        elif r.path == "/crm/v8/coql":
            out["coql"] += 1
        else:
            out["other"] += 1
    return out


def _mirrored_lines() -> dict[str, list[tuple]]:
    with Store(only_mirror()).read() as con:
        rows = con.execute("select invoice_id, item_id, line_no, product_id, product_name, quantity, list_price, "
                           "net_total, tax_percent from zoho.invoice_items order by invoice_id, line_no").fetchall()  # fmt: skip
        landed = {rid: json.loads(p).get("Invoiced_Items") for rid, p in con.execute(
            "select record_id, payload from landing.records where entity = 'Invoices' "
            "qualify row_number() over (partition by record_id order by fetched_at desc) = 1").fetchall()}  # fmt: skip
    out: dict[str, list[tuple]] = {}
    for inv, *rest in rows:
        out.setdefault(inv, []).append(tuple(float(v) if hasattr(v, "as_integer_ratio") else v for v in rest))
    return {"table": out, "landed": landed}


def _expected(sandbox) -> tuple[dict, dict]:
    invoices = sandbox.zoho.dump(sandbox.org_ids[0], "Invoices")
    table = {
        i["id"]: [(ln["id"], n, ln["Product_Name"]["id"], ln["Product_Name"]["name"], float(ln["Quantity"]),
                   float(ln["List_Price"]), float(ln["Net_Total"]),
                   float(sum(t["percentage"] for t in ln["Line_Tax"])))
                  for n, ln in enumerate(i["Invoiced_Items"], start=1)]
        for i in invoices if i.get("Invoiced_Items")
    }  # fmt: skip
    return table, {i["id"]: i["Invoiced_Items"] for i in invoices}


def _change(sandbox, n: int) -> None:
    invoices = sandbox.zoho.dump(sandbox.org_ids[0], "Invoices")[:n]
    with ZohoResource().client(CONNECTION) as client:
        results = client.update(
            "Invoices", [{"id": i["id"], "Subject": i["Subject"] + " (edited)"} for i in invoices]
        )
    assert all(r.ok for r in results)


def test_first_sync_reads_lines_fifty_invoices_a_call_and_changes_cheaply(sandbox, env):
    table, landed = _expected(sandbox)
    invoices = len(sandbox.zoho.dump(sandbox.org_ids[0], "Invoices"))
    assert invoices > 50
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        before = len(sandbox.zoho.received)
        first = _materialize(instance)
        calls = _calls(sandbox, before)
        # One GET an invoice before; now ceil(n/50) COQL calls per listing page of 200.
        assert calls["get_by_id"] == 0
        assert calls["coql"] == math.ceil(invoices / 50)
        # The org's metadata and the token included.
        assert first["api_calls"] == calls["coql"] + calls["other"] < invoices / 4
        mirrored = _mirrored_lines()
        assert mirrored["table"] == table
        assert mirrored["landed"] == landed  # the GET's shape: lookups with names, Line_Tax, ids

        _change(sandbox, 1)  # one invoice: a GET costs the same call and credit, and no COQL scope
        before = len(sandbox.zoho.received)
        _materialize(instance)
        assert _calls(sandbox, before)["get_by_id"] == 1 and _calls(sandbox, before)["coql"] == 0

        # Three more (and the first again while its second has not settled): one COQL call for them all.
        _change(sandbox, 3)
        before = len(sandbox.zoho.received)
        _materialize(instance)
        assert _calls(sandbox, before)["get_by_id"] == 0 and _calls(sandbox, before)["coql"] == 1
        assert _mirrored_lines()["table"] == _expected(sandbox)[0]


@pytest.fixture
def refusing(monkeypatch):
    """A world of its own (its invoices' times untouched by the other test), its grant without COQL."""
    with SandboxServer(seed=31, size="tiny") as sb:
        export_sandbox(monkeypatch, sb, CONNECTION)
        scopes = ",".join(s for s in DEFAULT_SCOPES.split(",") if not s.startswith("ZohoCRM.coql"))
        monkeypatch.setenv(
            "ZOHO_REFRESH_TOKEN", sb.zoho.grant_refresh_token(sb.zoho_client_id, sb.org_ids[0], scopes)
        )
        yield sb


def test_an_org_refusing_coql_is_read_one_invoice_a_call_with_the_reason(refusing):
    sandbox = refusing
    table, landed = _expected(sandbox)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        before = len(sandbox.zoho.received)
        first = _materialize(instance)
        calls = _calls(sandbox, before)
        # Refused once (a 401 is retried once after a token refresh, as for an expired token), then by id.
        assert 1 <= calls["coql"] <= 2 and calls["get_by_id"] == len(table)
        assert "OAUTH_SCOPE_MISMATCH" in first["note"] and "one invoice a call" in first["note"]
        mirrored = _mirrored_lines()
        assert mirrored["table"] == table and mirrored["landed"] == landed

        _change(sandbox, 2)  # the refusal is remembered: no COQL asked again
        before = len(sandbox.zoho.received)
        again = _materialize(instance)
        assert _calls(sandbox, before)["coql"] == 0 and _calls(sandbox, before)["get_by_id"] == 2
        assert "refused earlier" in again["note"]
        assert _mirrored_lines()["table"] == _expected(sandbox)[0]
