"""`xz serve` on the sandbox: a signed Xero webhook becomes a targeted run that dagster-daemon launches and
that lands the change in the mirror; one SIGTERM stops the receiver, the daemon and the webserver, and no
process of theirs survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from xz_pipeline import settings
from xz_pipeline.core.store import Store
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.processes import alive, descendants, wait_for
from xz_pipeline_tests.realtime.support import CONNECTION, free_port
from xz_pipeline_tests.sandbox_env import export_sandbox

# Real processes end to end (signals, kills, daemons, whole pairs): `make test-integration` runs these.
pytestmark = pytest.mark.end_to_end


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find every child")
def test_serve_runs_a_webhook_through_the_daemon_and_stops_on_one_sigterm(monkeypatch, tmp_path):
    with SandboxServer(seed=11, size="demo", deliver_every=0.5) as sb:
        export_sandbox(monkeypatch, sb, CONNECTION)
        monkeypatch.setenv("XZ_WRITEBACK", "off")  # an unsettled world: the run's mirror part is the point
        monkeypatch.setenv("XZ_MIRROR_CRON", "0 3 1 1 *")  # no scheduled read lands during the test
        monkeypatch.setenv("XZ_FULL_SWEEP_CRON", "30 3 1 1 *")
        port, ui_port = free_port(), free_port()
        out = (tmp_path / "serve.out").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "xz_pipeline.cli", "serve", "--port", str(port), "--ui-port", str(ui_port)],
            stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(),
        )  # fmt: skip
        try:
            log = tmp_path / "serve.out"
            wait_for(lambda: "xz serve: ready" in log.read_text(), 240, "xz serve to be ready", proc)
            text = log.read_text()
            for name in ("receiver", "daemon", "webserver"):
                assert f"xz serve: {name} up" in text
            children = descendants(proc.pid)
            assert len(children) >= 3
            sb.xero.set_webhook(f"http://127.0.0.1:{port}/webhooks/xero", sb.xero_webhook_key)
            assert sb.xero.validate_intent_to_receive()
            contact = sb.xero.dump(sb.tenant_ids[0], "Contacts")[0]["ContactID"]
            with XeroResource().client(CONNECTION) as xero:
                xero.update_contacts([{"ContactID": contact, "EmailAddress": "served@example.com"}])
            inst = dg.DagsterInstance.from_config(str(settings.xz_home() / "dagster"))
            try:

                def finished():
                    runs = inst.get_run_records(dg.RunsFilter(tags={"xz/trigger": "inbox"}))
                    done = [r for r in runs if r.dagster_run.status in (dg.DagsterRunStatus.SUCCESS,
                                                                         dg.DagsterRunStatus.FAILURE)]  # fmt: skip
                    return done

                (run,) = wait_for(finished, 180, "the targeted run to finish", proc)
                assert run.dagster_run.status == dg.DagsterRunStatus.SUCCESS, (
                    settings.xz_home() / "logs"
                ).iterdir()
                assert run.dagster_run.tags["xz/inbox_key"] == "inbox:sandbox:1-1"
            finally:
                inst.dispose()
            children = descendants(proc.pid) | children
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(90)
            out.close()
        assert code == 0, (tmp_path / "serve.out").read_text()
        assert "xz serve: SIGTERM: stopping" in (tmp_path / "serve.out").read_text()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in children if alive(p)], "a process of xz serve survived its SIGTERM"
        with Store(only_mirror()).read() as con:
            assert con.execute(
                "select email from xero.contacts where contact_id = ?", [contact]
            ).fetchall() == [("served@example.com",)]
