"""`WarmRunLauncher`: Dagster's default launcher, except that a run starts as a fork of a warm process.

The default launcher asks the code server to start `dagster api execute_run` in a new interpreter, which
imports Dagster, pandas and the project before the first step: about 2.5-4 s of every targeted run on
this project's two-core machines, more than the steps of a run of one changed record. This launcher keeps
one warm process (`zygote.py`) per daemon, started on the first launch and again whenever the project's
code on disk changes, and hands it each run. The run executes exactly as under the default launcher
(`_execute_run_command_body`: the same events, run status, cancellation thread and exit), in a process of
its own. When the warm process cannot be had, the run is launched the default way and the log says why.

Configured in `dagster.yaml` (`run_launcher: module: xz_pipeline.deploy.warm.launcher, class:
WarmRunLauncher`); `terminate` interrupts the run's process group as `dagster api` would on SIGINT, and run
monitoring can ask whether the worker is still alive.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from dagster import DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._serdes import serialize_value

from xz_pipeline.deploy.warm.zygote import INSTANCE_ENV, code_stamp

PID_TAG = "xz/warm_pid"
START_TIMEOUT = 90.0  # a cold import of the project on a busy two-core machine


class WarmUnavailable(RuntimeError):
    """The warm process could not be started or did not answer."""


class WarmRunLauncher(DefaultRunLauncher):
    def __init__(self, inst_data=None):
        super().__init__(inst_data=inst_data)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._dir: str | None = None
        self._stamp = 0.0

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data)

    # -- the warm process ---------------------------------------------------------------------------

    @property
    def _socket(self) -> str:
        return os.path.join(self._dir or "", "warm.sock")

    def _start(self) -> None:
        self._stop()
        self._dir = tempfile.mkdtemp(prefix="xz-warm-")  # short: a Unix socket path is at most 107 bytes
        self._stamp = code_stamp()
        env = {**os.environ, INSTANCE_ENV: serialize_value(self._instance.get_ref())}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "xz_pipeline.deploy.warm.zygote", self._socket], env=env
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(self._socket):
            problem = None
            if self._proc.poll() is not None:
                problem = f"the warm process exited {self._proc.returncode} while starting"
            elif time.monotonic() > deadline:
                problem = f"the warm process was not ready in {START_TIMEOUT:.0f} s"
            if problem:
                self._stop()
                raise WarmUnavailable(problem)
            time.sleep(0.05)

    def _stop(self) -> None:
        """Retire the warm process: its socket goes first, so it ends within a second and leaves the runs
        it started running (they are Dagster's to finish, as under the default launcher)."""
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None

    def _fork(self, run_id: str) -> int:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None or code_stamp() != self._stamp:
                self._start()
            request = {"run_id": run_id, "instance_ref": serialize_value(self._instance.get_ref())}
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                    conn.settimeout(30)
                    conn.connect(self._socket)
                    with conn.makefile("rw") as stream:
                        stream.write(json.dumps(request) + "\n")
                        stream.flush()
                        answer = json.loads(stream.readline() or "{}")
            except (OSError, ValueError) as exc:
                self._stop()
                raise WarmUnavailable(f"the warm process did not answer: {exc}") from exc
        if "pid" not in answer:
            raise WarmUnavailable(answer.get("error") or "the warm process gave no pid")
        return int(answer["pid"])

    # -- RunLauncher ------------------------------------------------------------------------------------

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        try:
            pid = self._fork(run.run_id)
        except WarmUnavailable as exc:
            self._instance.report_engine_event(
                f"Warm start unavailable ({exc}); launching the run in a new process.", run, cls=type(self)
            )
            super().launch_run(context)
            return
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(pid)})
        self._run_ids.add(run.run_id)

    def _pid(self, run_id: str) -> int | None:
        run = self._instance.get_run_by_id(run_id)
        value = run.tags.get(PID_TAG) if run else None
        return int(value) if value else None

    def terminate(self, run_id: str) -> bool:
        pid = self._pid(run_id)
        if pid is None:
            return super().terminate(run_id)
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(pid, signal.SIGINT)  # Dagster stops at the next step boundary and marks it canceled
        except ProcessLookupError:
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        pid = run.tags.get(PID_TAG)
        if not pid:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "not started by the warm process")
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, f"run worker process {pid} is gone")
        except PermissionError:
            pass
        return CheckRunHealthResult(WorkerStatus.RUNNING, "")

    def dispose(self) -> None:
        with self._lock:
            self._stop()
        super().dispose()
