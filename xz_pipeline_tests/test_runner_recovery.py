"""A run that dies releases what it held; SIGTERM stops a sync at the next step boundary; two syncs on one
XZ_HOME take turns. Real `xz sync` processes (signals), against the tiny sandbox."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus

from xz_pipeline import runner, settings
from xz_pipeline.core.store import Store, StoreBusy, process_start
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.mirrors import only_mirror

# Real processes end to end (signals, kills, daemons, whole pairs): `make test-integration` runs these.
pytestmark = pytest.mark.end_to_end

XZ = str(Path(sys.executable).with_name("xz"))
CONTACTS = "/api.xro/2.0/Contacts"


@pytest.fixture(scope="module")
def sandbox():
    # Xero's first contacts page is held back 4 s: a step that is surely in flight when the signal comes.
    with SandboxServer(seed=47, size="tiny", faults=f"slow:4@path={CONTACTS},nth=1") as sb:
        yield sb


def _env(sandbox, home: Path) -> dict[str, str]:
    return {**os.environ, **sandbox.env(0), "XZ_CONNECTION": "sandbox", "XZ_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"), "XZ_ZOHO_SUBFORMS": "off"}  # fmt: skip


def _start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [XZ, "sync", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_log(home: Path, text: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    log = home / "logs" / "xz.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in {log}")


def _contacts_in_flight(sandbox, home: Path, proc: subprocess.Popen) -> None:
    """Wait until the xero_contacts step started and its first (slow) page is being served."""
    _wait_for_log(home, 'Started execution of step "xero_contacts"', proc)
    time.sleep(1.0)


def test_sigterm_stops_after_the_step_in_flight(sandbox, xz_home):
    proc = _start(_env(sandbox, xz_home))
    _contacts_in_flight(sandbox, xz_home, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent

    assert proc.returncode == 143, err
    assert took < 15, took
    assert "xz sync: SIGTERM received: stopping after the step in progress" in err
    assert "xz sync: stopped by SIGTERM after the step in progress; the next sync resumes from there" in err
    assert "Traceback" not in err
    # The write in flight finished and was recorded: every contact landed, and its cursor moved.
    tenant = sandbox.tenant_ids[0]
    con = duckdb.connect(str(only_mirror({"XZ_HOME": str(xz_home)})), read_only=True)
    try:
        assert con.execute("select count(*) from xero.contacts").fetchone()[0] == len(
            sandbox.xero.dump(tenant, "Contacts")
        )
        assert con.execute("select count(*) from meta.cursors where entity = 'Contacts'").fetchone()[0] == 1
        assert (
            con.execute("select count(*) from duckdb_tables() where schema_name = 'recon'").fetchone()[0] == 0
        )
    finally:
        con.close()
    inst = runner.instance(xz_home)
    (run,) = inst.get_runs(limit=1)
    assert run.status == DagsterRunStatus.CANCELED
    assert inst.event_log_storage.get_concurrency_info(runner.POOL).claimed_slots == []


def test_a_killed_sync_blocks_nothing(sandbox, xz_home):
    env = _env(sandbox, xz_home)
    proc = _start(env)
    _contacts_in_flight(sandbox, xz_home, proc)
    proc.kill()
    proc.wait(timeout=10)
    inst = runner.instance(xz_home)
    (dead,) = inst.get_runs(limit=1)
    assert dead.status == DagsterRunStatus.STARTED
    # An extract step writes its own connection's file under that file's lock, not in the `duckdb` pool:
    # the dead process holds no pool slot, and its file lock died with it.
    assert inst.event_log_storage.get_concurrency_info(runner.POOL).claimed_slots == []
    with Store(only_mirror({"XZ_HOME": str(xz_home)}), lock_timeout=0.5).write():
        pass

    again = subprocess.run(
        [XZ, "sync", "--only", "mirror", "--wait", "30"], env=env, capture_output=True, text=True, timeout=240
    )

    assert again.returncode == 0, again.stderr
    assert "blocked" not in again.stdout + again.stderr
    assert inst.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert inst.get_runs(limit=1)[0].status == DagsterRunStatus.SUCCESS


def test_a_live_process_keeps_its_run(xz_home):
    inst = runner.instance(xz_home)
    storage = inst.event_log_storage
    storage.set_concurrency_slots(runner.POOL, 1)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    runs = {}
    for who, pid in (("dead", gone.pid), ("live", os.getpid())):
        run = dg.DagsterRun(job_name=runner.JOB_NAME, run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED,
                            tags={runner.PID_TAG: str(pid), runner.START_TAG: process_start(pid) if who == "live" else "1",
                                  runner.HOST_TAG: socket.gethostname()})  # fmt: skip
        inst.add_run(run)
        runs[who] = run.run_id
    storage.claim_concurrency_slot(runner.POOL, runs["dead"], "xero_contacts", 0)

    assert runner.reclaim_dead_runs(inst) == [runs["dead"]]

    assert inst.get_run_by_id(runs["dead"]).status == DagsterRunStatus.FAILURE
    assert inst.get_run_by_id(runs["live"]).status == DagsterRunStatus.STARTED
    assert storage.get_concurrency_info(runner.POOL).claimed_slots == []


def test_two_first_syncs_on_a_fresh_home_take_turns(sandbox, tmp_path):
    home = tmp_path / "fresh"  # nothing in it: both processes meet Dagster's storage uncreated
    env = _env(sandbox, home)
    procs = [_start(env, "--only", "mirror"), _start(env, "--only", "mirror")]
    results = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert "already exists" not in out + err
    waited = [err for _, err in results if "waiting up to 180s for `xz sync" in err]
    assert len(waited) <= 1
    if waited:  # the other one named by its command line and pid
        assert "(another sync on this XZ_HOME)" in waited[0] and "(pid " in waited[0]


def test_a_held_mirror_is_named_by_its_holder(xz_home, capsys):
    """A process holding the mirror read-write (outside the pipeline's lock) turns the report into one line
    naming it; a writer holding the pipeline's lock is named in StoreBusy."""
    from xz_pipeline import report

    path = settings.mirror_path("sandbox")
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(path)], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        text = report.render([runner.RunOutcome("sandbox", True)], Store(path))
        assert "the mirror is busy (held by `python -c import duckdb" in text
        assert f"(pid {holder.pid})" in text and "Traceback" not in text
    finally:
        holder.kill()
        holder.wait()

    locker = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from xz_pipeline.core.store import Store; s = Store(sys.argv[1]); "
         "w = s.write(); w.__enter__(); print('held', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert locker.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusy) as busy, Store(path, lock_timeout=0.5).write():
            pass
        assert f"(pid {locker.pid})" in str(busy.value) and "python -c import sys, time" in str(busy.value)
    finally:
        locker.kill()
        locker.wait()
