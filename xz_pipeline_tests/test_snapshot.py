"""The analysts' snapshot: opened exactly as the README says, it holds what the mirror holds, its views resolve
by their documented names, and a DuckDB 1.x reader opens it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pytest

from xz_pipeline import runner, settings
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.sandbox_env import export_sandbox

REPO = Path(__file__).resolve().parents[1]
DUCKDB1 = REPO / ".venv-duckdb1" / "bin" / "python"  # installed by the Makefile beside .venv


def _counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = current_database()"
    ).fetchall()
    return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in tables}


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    home = tmp_path_factory.mktemp("snapshot-home")
    with pytest.MonkeyPatch.context() as mp, SandboxServer(seed=5, size="tiny") as sb:
        mp.setenv("XZ_HOME", str(home))
        export_sandbox(mp, sb)
        outcomes = runner.sync(inst=runner.instance(home))
        assert all(o.success for o in outcomes), [o.error for o in outcomes]
        yield home


def test_the_snapshot_matches_the_mirror_and_its_views_resolve_as_documented(synced):
    snapshot = synced / "snapshot.duckdb"
    assert settings.snapshot_path({"XZ_HOME": str(synced)}) == snapshot
    analyst = duckdb.connect(str(snapshot), read_only=True)  # as the README says: duckdb -readonly
    try:
        accounts = analyst.execute("select count(*) from analytics.customer_360").fetchone()[0]
        aging = analyst.execute("select count(*) from analytics.ar_aging").fetchone()[0]
        snap_counts = _counts(analyst)
    finally:
        analyst.close()
    mirror = duckdb.connect(str(synced / "mirror.duckdb"), read_only=True)
    try:
        mirror_counts = _counts(mirror)
        assert accounts == mirror.execute("select count(*) from analytics.customer_360").fetchone()[0] > 0
        assert aging == mirror.execute("select count(*) from analytics.ar_aging").fetchone()[0]
    finally:
        mirror.close()
    # meta.runs gets a run's row when the run ends, after the run published the snapshot: one row behind
    assert snap_counts.pop("meta.runs") == mirror_counts.pop("meta.runs") - 1
    # and so are its API calls per vendor (meta.api_calls, written with meta.runs): none before the first run
    assert snap_counts.pop("meta.api_calls", 0) == 0 and mirror_counts.pop("meta.api_calls") > 0
    assert snap_counts == mirror_counts
    assert snap_counts["xero.invoices"] > 0 and snap_counts["zoho.deals"] > 0
    # what was published is after write-back's plan: the last run's tables are in it
    assert snap_counts["writeback.plan"] == mirror_counts["writeback.plan"]


@pytest.mark.skipif(not DUCKDB1.exists(), reason="no DuckDB 1.x reader: `make install` creates .venv-duckdb1")
def test_a_duckdb_1x_reader_opens_the_snapshot(synced):
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(json.dumps({'version': duckdb.__version__,\n"
        "  'invoices': con.execute('select count(*) from xero.invoices').fetchone()[0],\n"
        "  'customers': con.execute('select count(*) from analytics.customer_360').fetchone()[0]}))\n"
    )
    out = subprocess.run(
        [str(DUCKDB1), "-c", script, str(synced / "snapshot.duckdb")],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    seen = json.loads(out)
    assert seen["version"].startswith("1.")
    mirror = duckdb.connect(str(synced / "mirror.duckdb"), read_only=True)
    try:
        assert seen["invoices"] == mirror.execute("select count(*) from xero.invoices").fetchone()[0] > 0
        assert (
            seen["customers"] == mirror.execute("select count(*) from analytics.customer_360").fetchone()[0]
        )
    finally:
        mirror.close()
