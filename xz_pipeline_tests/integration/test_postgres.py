"""The `postgres` deployment profile on a throwaway PostgreSQL, as an operator uses it: XZ_DAGSTER_PROFILE and
XZ_DAGSTER_PG_URL set, `xz sync --only mirror`, then `xz serve` whose daemon turns a signed Xero webhook into a
sensor-triggered (targeted) run. Runs and events are read back from Postgres itself; the rows from the mirror."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import yaml

from xz_pipeline import settings
from xz_pipeline.core.store import Store
from xz_pipeline.deploy import PROFILES
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.processes import alive, descendants, wait_for
from xz_pipeline_tests.realtime.support import CONNECTION, free_port
from xz_pipeline_tests.sandbox_env import export_sandbox

INBOX_RUNS = """select r.run_id, r.status from runs r join run_tags t on t.run_id = r.run_id
                where t.key = 'xz/trigger' and t.value = 'inbox'"""


def test_the_profile_is_the_repository_s_settings_on_postgres():
    sqlite, postgres = (yaml.safe_load(PROFILES[p].read_text()) for p in ("sqlite", "postgres"))
    assert postgres.pop("storage") == {"postgres": {"postgres_url": {"env": "XZ_DAGSTER_PG_URL"}}}
    assert postgres == sqlite, "deploy/postgres/dagster.yaml differs from dagster.yaml outside `storage:`"


def _xz(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xz_pipeline.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=timeout)  # fmt: skip


def test_mirror_and_a_webhook_run_land_in_postgres(monkeypatch, tmp_path, postgres):
    url = postgres.create_database("profile")
    monkeypatch.setenv("XZ_DAGSTER_PROFILE", "postgres")
    monkeypatch.setenv("XZ_DAGSTER_PG_URL", url)
    monkeypatch.setenv("XZ_WRITEBACK", "off")  # the mirror and the targeted run are the point
    monkeypatch.setenv("XZ_MIRROR_CRON", "0 3 1 1 *")  # no scheduled run lands during the test
    monkeypatch.setenv("XZ_FULL_SWEEP_CRON", "30 3 1 1 *")
    home = settings.xz_home()
    with SandboxServer(seed=11, size="tiny", deliver_every=0.5) as sb:
        export_sandbox(monkeypatch, sb, CONNECTION)
        done = _xz("sync", "--only", "mirror")
        assert done.returncode == 0, done.stdout + done.stderr
        instance_yaml = yaml.safe_load((home / "dagster" / "dagster.yaml").read_text())
        assert instance_yaml["storage"] == {"postgres": {"postgres_url": {"env": "XZ_DAGSTER_PG_URL"}}}
        synced = postgres.query("select run_id, status from runs", database="profile")
        assert synced and all(status == "SUCCESS" for _, status in synced), synced
        (events,) = postgres.query(
            "select count(*) from event_logs where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'",
            (synced[0][0],), database="profile",
        )  # fmt: skip
        assert events[0] > 0

        port = free_port()
        out = (tmp_path / "serve.out").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "xz_pipeline.cli", "serve", "--no-ui", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(),
        )  # fmt: skip
        children: set[int] = set()
        try:
            log = tmp_path / "serve.out"
            wait_for(lambda: "xz serve: ready" in log.read_text(), 240, "xz serve to be ready", proc)
            children = descendants(proc.pid)
            sb.xero.set_webhook(f"http://127.0.0.1:{port}/webhooks/xero", sb.xero_webhook_key)
            assert sb.xero.validate_intent_to_receive()
            contact = sb.xero.dump(sb.tenant_ids[0], "Contacts")[0]["ContactID"]
            with XeroResource().client(CONNECTION) as xero:
                xero.update_contacts([{"ContactID": contact, "EmailAddress": "on-postgres@example.com"}])

            def finished():
                rows = postgres.query(INBOX_RUNS, database="profile")
                return [r for r in rows if r[1] in ("SUCCESS", "FAILURE", "CANCELED")]

            ((run_id, status),) = wait_for(finished, 180, "the targeted run in Postgres", proc)
            assert status == "SUCCESS", log.read_text()[-3000:]
            children |= descendants(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(90)
            out.close()
        assert code == 0, (tmp_path / "serve.out").read_text()[-3000:]
    steps = postgres.query(
        "select distinct step_key from event_logs where run_id = %s and dagster_event_type = 'STEP_SUCCESS'",
        (run_id,), database="profile",
    )  # fmt: skip
    assert ("xero_contacts",) in steps, steps
    # The sensor's ticks and cursor are in Postgres too (schedule storage), and nothing went to SQLite files.
    (ticks,) = postgres.query("select count(*) from job_ticks", database="profile")
    assert ticks[0] > 0
    assert not list((home / "dagster").rglob("*.db"))
    deadline = time.monotonic() + 10
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in children if alive(p)], "a process of xz serve survived its SIGTERM"
    with Store(settings.mirror_path(CONNECTION)).read() as con:
        assert con.execute("select email from xero.contacts where contact_id = ?", [contact]).fetchall() == [
            ("on-postgres@example.com",)
        ]
