"""The warm launcher: runs start as forks of one warm process, execute as Dagster runs (status, events),
can be cancelled, and a new warm process is started when the code on disk changes."""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest
from dagster._core.launcher import LaunchRunContext, WorkerStatus

from xz_pipeline.deploy.warm import launcher as warm
from xz_pipeline_tests.processes import alive


@dg.op
def report_pid(context) -> int:
    context.log.info(f"worker pid {os.getpid()}")
    return os.getpid()


@dg.op
def wait_long(context) -> None:
    for _ in range(600):
        time.sleep(0.1)


@dg.op
def wait_a_little() -> None:
    time.sleep(4)


@dg.job(executor_def=dg.in_process_executor)
def a_little():
    wait_a_little()


@dg.job(executor_def=dg.in_process_executor)
def quick():
    report_pid()


@dg.job(executor_def=dg.in_process_executor)
def slow():
    wait_long()


def _launch(instance, launcher, job) -> dg.DagsterRun:
    recon = dg.reconstructable(job)
    run = instance.create_run_for_job(job_def=job, job_code_origin=recon.get_python_origin())
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def _wait(instance, run_id, statuses, timeout=120.0) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.status in statuses:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {instance.get_run_by_id(run_id).status} after {timeout} s")


def _running_slow(instance, launcher) -> tuple[dg.DagsterRun, int]:
    """A run inside its long step, and its worker's pid."""
    run = _launch(instance, launcher, slow)
    _wait(instance, run.run_id, {dg.DagsterRunStatus.STARTED})
    time.sleep(0.5)  # inside the step
    return run, int(instance.get_run_by_id(run.run_id).tags[warm.PID_TAG])


def _ends(instance, run, pid) -> dg.DagsterRunStatus:
    """The status the interrupted run ends with, once its worker process is gone too."""
    done = _wait(instance, run.run_id, {dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE}, 60)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)
    return done.status


def _worker_pid(instance, run_id) -> int:
    (line,) = [e.user_message for e in instance.all_logs(run_id) if e.user_message.startswith("worker pid")]
    return int(line.split()[-1])


@pytest.fixture
def launched():
    with dg.instance_for_test() as instance:
        launcher = warm.WarmRunLauncher()
        launcher.register_instance(instance)
        try:
            yield instance, launcher
        finally:
            launcher.dispose()


def test_runs_are_forks_of_one_warm_process_and_execute_as_dagster_runs(launched):
    instance, launcher = launched
    first, second = _launch(instance, launcher, quick), None
    zygote = launcher._proc.pid
    second = _launch(instance, launcher, quick)
    pids = []
    for run in (first, second):
        done = _wait(instance, run.run_id, {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE})
        assert done.status == dg.DagsterRunStatus.SUCCESS
        pid = _worker_pid(instance, run.run_id)
        assert done.tags[warm.PID_TAG] == str(pid)  # the run executed in the process the launcher recorded
        pids.append(pid)
    assert len(set(pids)) == 2 and os.getpid() not in pids and zygote not in pids  # a process per run
    assert launcher._proc.pid == zygote  # ... forked from the same warm process
    assert (
        launcher.check_run_worker_health(instance.get_run_by_id(first.run_id)).status
        == WorkerStatus.NOT_FOUND
    )
    launcher.dispose()
    assert not alive(zygote)


def test_terminate_cancels_the_run_and_ends_its_process(launched):
    instance, launcher = launched
    run, pid = _running_slow(instance, launcher)
    assert launcher.check_run_worker_health(instance.get_run_by_id(run.run_id)).status == WorkerStatus.RUNNING
    assert launcher.terminate(run.run_id)
    assert _ends(instance, run, pid) == dg.DagsterRunStatus.CANCELED


def test_a_change_of_code_on_disk_starts_a_new_warm_process_and_the_runs_of_the_old_one_finish(
    launched, monkeypatch
):
    instance, launcher = launched
    running = _launch(instance, launcher, a_little)
    _wait(instance, running.run_id, {dg.DagsterRunStatus.STARTED})
    old = launcher._proc.pid
    monkeypatch.setattr(warm, "code_stamp", lambda: launcher._stamp + 1)
    run = _launch(instance, launcher, quick)
    finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    assert _wait(instance, run.run_id, finished).status == dg.DagsterRunStatus.SUCCESS
    assert launcher._proc.pid != old and not alive(old)
    assert _wait(instance, running.run_id, finished).status == dg.DagsterRunStatus.SUCCESS


def test_a_stopped_warm_process_interrupts_its_runs(launched):
    """SIGTERM to the warm process (the deployment stopping) ends its runs as canceled, not orphaned."""
    instance, launcher = launched
    run, pid = _running_slow(instance, launcher)
    launcher._proc.terminate()
    assert _ends(instance, run, pid) in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)


def test_without_a_warm_process_the_run_is_launched_the_default_way_and_the_log_says_why(
    launched, monkeypatch
):
    instance, launcher = launched
    monkeypatch.setattr(warm, "START_TIMEOUT", 0.0)
    fallback = []
    monkeypatch.setattr(dg.DefaultRunLauncher, "launch_run", lambda self, context: fallback.append(context))
    run = _launch(instance, launcher, quick)
    assert fallback and fallback[0].dagster_run.run_id == run.run_id
    messages = [e.dagster_event.message for e in instance.all_logs(run.run_id) if e.dagster_event]
    assert any("Warm start unavailable (the warm process was not ready in 0 s)" in m for m in messages), (
        messages
    )
