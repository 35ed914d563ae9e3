"""Overlapping writers never fail on DuckDB's lock: two Dagster runs and an `xz sync` at once, and an
analyst holding the snapshot open meanwhile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from xz_pipeline import runner, settings
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.mirrors import only_mirror

# Real processes end to end (signals, kills, daemons, whole pairs): `make test-integration` runs these.
pytestmark = pytest.mark.end_to_end

CONNECTION = "sandbox"


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=23, size="tiny") as sb:
        yield sb


def test_two_dagster_runs_and_a_sync_at_once(sandbox, xz_home):
    env = {**os.environ, **sandbox.env(0), "XZ_CONNECTION": CONNECTION, "XZ_HOME": str(xz_home)}
    dagster_home = xz_home / "dagster"
    shutil.copy(runner.INSTANCE_YAML, dagster_home / "dagster.yaml")
    env["DAGSTER_HOME"] = str(dagster_home)
    bin_dir = os.path.dirname(sys.executable)
    # Register the partition first (what the connections sensor does in `xz dev`).
    subprocess.run(
        [sys.executable, "-c", "import dagster as dg; i = dg.DagsterInstance.get(); "
         f"i.add_dynamic_partitions('connection', ['{CONNECTION}'])"],
        env=env, check=True, timeout=60,
    )  # fmt: skip
    materialize = [
        os.path.join(bin_dir, "dagster"), "asset", "materialize", "-m", "xz_pipeline.definitions",
        "--select", "group:xero", "--partition", CONNECTION,
    ]  # fmt: skip
    xz = os.path.join(bin_dir, "xz")
    subprocess.run([xz, "sync"], env=env, check=True, timeout=120, capture_output=True)
    snapshot = settings.snapshot_path(env)
    assert snapshot.exists()
    analyst = duckdb.connect(str(snapshot), read_only=True)  # left open during the runs below
    procs = [
        subprocess.Popen(materialize, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        subprocess.Popen(materialize, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        subprocess.Popen([xz, "sync"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
    ]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert analyst.execute("select count(*) from xero.contacts").fetchone()[0] > 0
    analyst.close()
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
        assert "could not set lock" not in out.lower(), out[-3000:]

    tenant = sandbox.env(0)["XERO_TENANT_ID"]
    con = duckdb.connect(str(only_mirror(env)), read_only=True)
    try:
        assert con.execute("select count(*) from xero.contacts").fetchone()[0] == len(
            sandbox.xero.dump(tenant, "Contacts")
        )
        # Three full reads of the same unchanged data: every version once, no duplicates in current state.
        assert (
            con.execute(
                "select count(*) from (select contact_id from xero.contacts_history where valid_to is null "
                "group by contact_id having count(*) > 1)"
            ).fetchone()[0]
            == 0
        )
    finally:
        con.close()
