"""The analysts' snapshot: opened exactly as the README says, it holds what the mirror holds, its views resolve
by their documented names, and a DuckDB 1.x reader opens it. With several connections (one mirror file each) it
is still one file: their tables together, the views over all of them, each row under its `connection`."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from xz_pipeline import runner, settings
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox

REPO = Path(__file__).resolve().parents[1]
FETCHED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
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
    mirror = duckdb.connect(str(only_mirror({"XZ_HOME": str(synced)})), read_only=True)
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
    mirror = duckdb.connect(str(only_mirror({"XZ_HOME": str(synced)})), read_only=True)
    try:
        assert seen["invoices"] == mirror.execute("select count(*) from xero.invoices").fetchone()[0] > 0
        assert (
            seen["customers"] == mirror.execute("select count(*) from analytics.customer_360").fetchone()[0]
        )
    finally:
        mirror.close()


# -- several connections: one mirror file each, one snapshot ---------------------------------------------


@pytest.fixture(scope="module")
def two_mirrors(tmp_path_factory):
    """Two connections' mirror files (different worlds), with their canonical views and reconciliation."""
    import dagster as dg

    from xz_pipeline.core.mirror import write_entity
    from xz_pipeline.core.resources import MirrorResource
    from xz_pipeline.core.store import Store
    from xz_pipeline.definitions import canonical_views
    from xz_pipeline.reconcile.assets import RECONCILE_ASSETS
    from xz_pipeline.sandbox.world import generate
    from xz_pipeline.sandbox.xero import XeroEmulator
    from xz_pipeline.sandbox.zoho import ZohoEmulator
    from xz_pipeline.xero import tables as xero_tables
    from xz_pipeline.zoho import tables as zoho_tables

    directory = tmp_path_factory.mktemp("mirrors") / "mirror"
    for connection, seed in (("acme", 3), ("globex", 4)):
        world = generate(seed=seed, size="tiny")
        xero, zoho = XeroEmulator(), ZohoEmulator()
        tenant, org = xero.seed_world(world), zoho.seed_world(world)
        store = Store(directory / f"{connection}.duckdb")
        for specs, emulator, owner in (
            (xero_tables.ENTITIES, xero, tenant),
            (zoho_tables.ENTITIES, zoho, org),
        ):
            for spec in specs:
                write_entity(store, spec, connection=connection, payloads=emulator.dump(owner, spec.entity),
                             fetched_at=FETCHED_AT, run_id="r", full=True)  # fmt: skip
    mirror = MirrorResource(path=str(directory))
    assert dg.materialize([canonical_views, *RECONCILE_ASSETS], resources={"mirror": mirror}).success
    return mirror


def test_several_connections_publish_one_snapshot_with_the_same_views(two_mirrors, xz_home):
    from xz_pipeline.definitions import VENDOR_VIEWS
    from xz_pipeline.publish import publish

    assert publish(two_mirrors, VENDOR_VIEWS) == 2
    snapshot = settings.snapshot_path()
    assert snapshot.exists() and not snapshot.with_name(snapshot.name + ".tmp").exists()
    per_file: dict[str, dict[str, int]] = {}
    for name in ("acme", "globex"):
        con = duckdb.connect(str(two_mirrors.store(name).path), read_only=True)
        try:
            per_file[name] = {
                **_counts(con),
                **{f"canonical.{v}": con.execute(f"select count(*) from canonical.{v}").fetchone()[0]
                   for v in ("books_invoices", "crm_deals")},
                "analytics.customer_360": con.execute("select count(*) from analytics.customer_360").fetchone()[0],
            }  # fmt: skip
        finally:
            con.close()
    analyst = duckdb.connect(str(snapshot), read_only=True)  # as the README says: alone, read-only
    try:
        assert (
            analyst.execute("select count(*) from duckdb_databases() where not internal").fetchone()[0] == 1
        )
        tables = _counts(analyst)
        for table, n in tables.items():
            if table != "meta.schema_version":  # the only table without a connection column: each file's rows
                assert n == per_file["acme"].get(table, 0) + per_file["globex"].get(table, 0), table
        for view in ("canonical.books_invoices", "canonical.crm_deals", "analytics.customer_360"):
            by_connection = dict(
                analyst.execute(f"select connection, count(*) from {view} group by 1").fetchall()
            )
            assert by_connection == {"acme": per_file["acme"][view], "globex": per_file["globex"][view]}, view
            assert min(by_connection.values()) > 0
    finally:
        analyst.close()


def test_a_targeted_run_leaves_the_publish_to_the_run_of_its_connection_queued_behind_it(
    two_mirrors, xz_home
):
    """Under a stream of webhooks the last run publishes: a targeted run with another of its connection
    queued does not copy the snapshot (once a minute at most otherwise), a scheduled run always does."""
    import os
    import uuid

    import dagster as dg

    from xz_pipeline.definitions import analytics_snapshot
    from xz_pipeline_tests.realtime.support import ORIGIN

    snapshot = settings.snapshot_path()
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.write_bytes(b"")
    os.utime(snapshot, (0, 0))  # published long ago: the once-a-minute rule does not hold it back
    targeted = {"xz/trigger": "inbox", "dagster/partition": "acme"}

    def published(inst, tags) -> dict:
        result = dg.materialize(
            [analytics_snapshot], instance=inst, tags=tags, resources={"mirror": two_mirrors}
        )
        assert result.success
        metadata = result.asset_materializations_for_node("analytics_snapshot")[0].metadata
        return {k: v.value for k, v in metadata.items() if k in ("published", "reason")}

    with dg.instance_for_test() as inst:
        waiting = dg.DagsterRun(job_name="realtime", run_id=str(uuid.uuid4()), tags=targeted,
                                status=dg.DagsterRunStatus.QUEUED, remote_job_origin=ORIGIN)  # fmt: skip
        inst.add_run(waiting)
        held = published(inst, targeted)
        assert held == {"published": False, "reason": f"run {waiting.run_id[:8]} of this connection waits "
                        "behind this one and publishes"}  # fmt: skip
        assert snapshot.stat().st_size == 0
        assert published(inst, {"xz/trigger": "inbox", "dagster/partition": "globex"})["published"] is True
        os.utime(snapshot, (0, 0))
        assert published(inst, {})["published"] is True  # a scheduled or manual run: always
