"""Every stage of `xz sync` alone, in order, in process: mirror, then reconcile (unpartitioned: one run for
every connection), then write-back; then `xz plan` and `xz review` on what they left."""

from __future__ import annotations

import duckdb
import pytest

from xz_pipeline import cli
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox


@pytest.fixture(autouse=True)
def _no_subform_reads(monkeypatch):
    monkeypatch.setenv("XZ_ZOHO_SUBFORMS", "off")  # one call per CRM invoice: not what these tests are about


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=43, size="tiny") as sb:
        yield sb


def _count(sql: str) -> int:
    con = duckdb.connect(str(only_mirror()), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def _tables(schema: str) -> set[str]:
    con = duckdb.connect(str(only_mirror()), read_only=True)
    try:
        return {
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where schema_name = ?", [schema]
            ).fetchall()
        }
    finally:
        con.close()


def test_each_stage_alone_then_plan_and_review(sandbox, monkeypatch, capsys):
    export_sandbox(monkeypatch, sandbox, connection="sandbox")
    tenant = sandbox.tenant_ids[0]

    assert cli.main(["sync", "--only", "mirror"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "sandbox       ok" in out
    assert _count("select count(*) from xero.contacts") == len(sandbox.xero.dump(tenant, "Contacts"))
    assert not _tables("recon") and not _tables("writeback")  # the mirror stage only

    xero_calls, zoho_calls = len(sandbox.xero.received), len(sandbox.zoho.received)
    assert cli.main(["sync", "--only", "reconcile"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "all connections  ok" in out  # one run reconciles every connection
    assert _count("select count(*) from recon.customer_links where connection = 'sandbox'") > 0
    assert _count("select count(*) from recon.discrepancies where connection = 'sandbox'") > 0
    assert not _tables("writeback")
    assert (len(sandbox.xero.received), len(sandbox.zoho.received)) == (xero_calls, zoho_calls)  # offline

    assert cli.main(["sync", "--only", "writeback"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Write-back" in out and "dry run" in out  # without --apply nothing is written
    assert _count("select count(*) from writeback.plan where connection = 'sandbox'") > 0

    assert cli.main(["plan", "--connection", "sandbox"]) == 0
    assert "Write-back plan for sandbox" in capsys.readouterr().out

    assert cli.main(["review", "--connection", "sandbox"]) == 0
    out = capsys.readouterr().out
    assert "nothing waiting" in out or "Decide with: xz review accept|reject" in out
