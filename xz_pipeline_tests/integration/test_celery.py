"""Steps of one run on two Celery workers (dagster-celery over a throwaway Redis), the instance on a throwaway
PostgreSQL: both workers execute steps, the mirror gets the sandbox's rows, every event lands in Postgres, and
no worker process (celery's pool children included) outlives the test."""

from __future__ import annotations

import shutil

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.resources import connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.deploy import PROFILES
from xz_pipeline.deploy import celery as xz_celery
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.processes import alive
from xz_pipeline_tests.sandbox_env import export_sandbox

# Independent extract steps of two vendors: enough to keep both workers busy, few enough for a short test.
# Without their checks: extract steps are in no pool (a file per connection), so on two workers a check's
# read-only open can meet another step's writer on the same connection's file and fail at once (StoreBusy);
# writers wait for each other on the file lock. docs/deploy.md says so.
SELECTION = ["xero_contacts", "xero_invoices", "zoho_accounts", "zoho_contacts"]


def test_one_run_s_steps_run_on_two_celery_workers(monkeypatch, tmp_path, postgres, redis_server):
    from xz_pipeline import runner

    url = postgres.create_database("celery")
    home = settings.xz_home()
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    shutil.copy(PROFILES["postgres"], home / "dagster" / "dagster.yaml")  # the documented copy step
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("XZ_DAGSTER_PG_URL", url)
    monkeypatch.setenv("XZ_WRITEBACK", "off")
    monkeypatch.setenv(xz_celery.BROKER_ENV, redis_server.url)
    seen: dict[str, set[int]] = {}
    with SandboxServer(seed=5, size="tiny") as sb:
        export_sandbox(monkeypatch, sb)
        name = sb.connection_name(0)
        monkeypatch.setenv("XZ_CONNECTION", name)
        inst = runner.instance(home)
        try:
            inst.add_dynamic_partitions(connections_partitions.name, [name])
            with xz_celery.workers(redis_server.url, 2, log_dir=tmp_path / "celery") as group:
                seen = group.pids()
                assert all(len(p) >= 2 for p in seen.values()), seen  # wrapper, celery, its pool child
                request = dg.RunRequest(
                    partition_key=name,
                    asset_selection=[dg.AssetKey(k) for k in SELECTION],
                    asset_check_keys=[],
                )
                result = xz_celery.execute_request(inst, request)
                for worker, pids in group.pids().items():
                    seen[worker] |= pids
            assert result.success
            run_id = result.run_id
            engine = inst.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
            nodes = {
                e.event_log_entry.dagster_event.engine_event_data.metadata["Celery worker"].value
                for e in engine
                if "Celery worker" in e.event_log_entry.dagster_event.engine_event_data.metadata
            }
            assert {n.split("@")[0] for n in nodes} == {"xz-worker-1", "xz-worker-2"}, nodes
            starts = inst.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
            step_pids = {e.event_log_entry.dagster_event.pid for e in starts}
            assert {e.event_log_entry.dagster_event.step_key for e in starts} == set(SELECTION)
            for worker, pids in seen.items():
                assert step_pids & pids, f"{worker} ran no step ({step_pids} vs {pids})"
            assert step_pids <= set().union(*seen.values())  # no step ran outside the workers
        finally:
            inst.dispose()
        assert not [p for pids in seen.values() for p in pids if alive(p)], "a Celery process outlived stop"
        # The events are in Postgres, not in SQLite files under DAGSTER_HOME.
        (status,) = postgres.query("select status from runs where run_id = %s", (run_id,), database="celery")
        assert status == ("SUCCESS",)
        succeeded = postgres.query(
            "select step_key from event_logs where run_id = %s and dagster_event_type = 'STEP_SUCCESS'",
            (run_id,), database="celery",
        )  # fmt: skip
        assert {s for (s,) in succeeded} >= set(SELECTION)
        assert not list((home / "dagster").rglob("*.db"))
        # The steps the workers ran filled the connection's mirror from its own tenant.
        tenant = sb.tenant_ids[0]
        contacts = {c["ContactID"] for c in sb.xero.dump(tenant, "Contacts")}
        with Store(settings.mirror_path(name)).read() as con:
            mirrored = {r for (r,) in con.execute("select contact_id from xero.contacts").fetchall()}
            accounts = con.execute("select count(*) from zoho.accounts").fetchone()[0]
        assert mirrored == contacts and contacts
        assert accounts > 0
