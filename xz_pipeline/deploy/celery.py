"""xz-pipeline's steps on Celery workers: the same Definitions with Dagster's `celery_executor`, and the
plumbing to start (and stop) workers on this machine.

A run's process submits each step to the Redis broker at `XZ_CELERY_BROKER` (results go back through the same
Redis); any worker listening on that broker runs it, on this machine or another one that shares the instance
(Postgres storage, deploy/postgres) and the mirror files. Operators point a workspace at
`xz_pipeline.deploy.celery:celery_defs` (deploy/celery/workspace.yaml) and start workers with
`dagster-celery worker start -A dagster_celery.app -y deploy/celery/worker.yaml`; tests and benches use
`workers()` and `execute()` below.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster_celery import celery_executor

from xz_pipeline.definitions import defs

BROKER_ENV = "XZ_CELERY_BROKER"
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0

executor = celery_executor.configured(
    {"broker": {"env": BROKER_ENV}, "backend": {"env": BROKER_ENV}}, name="celery"
)
# Every job of the code location (mirror, targeted runs, ...) with its steps sent to Celery workers.
celery_defs = dg.Definitions(
    assets=defs.assets,
    asset_checks=defs.asset_checks,
    jobs=defs.jobs,
    schedules=defs.schedules,
    sensors=defs.sensors,
    resources=defs.resources,
    loggers=defs.loggers,
    metadata=defs.metadata,
    executor=executor,
)


def reconstructable(job_name: str = "mirror"):
    """The job as the workers rebuild it: by module and attribute, not by object."""
    return ReconstructableRepository.for_module(__name__, "celery_defs").get_reconstructable_job(job_name)


def execute(
    instance: dg.DagsterInstance,
    job_name: str = "mirror",
    *,
    tags: Mapping[str, str] | None = None,
    run_config: Mapping | None = None,
    asset_selection: Iterable[dg.AssetKey] | None = None,
    asset_check_selection: Iterable[dg.AssetCheckKey] | None = None,
) -> dg.JobExecutionResult:
    """One run of `job_name` driven from this process (the run worker), each step on a Celery worker
    (XZ_CELERY_BROKER set, the workers started on the same broker and instance). Partitions go in tags
    (`dagster/partition`, or `dagster/asset_partition_range_start`/`_end` for a batch)."""
    if not os.environ.get(BROKER_ENV):
        raise RuntimeError(f"{BROKER_ENV} is not set: the Redis URL the Celery workers listen on")
    job = reconstructable(job_name)
    if asset_selection is not None or asset_check_selection is not None:
        job = job.get_subset(
            asset_selection=set(asset_selection) if asset_selection is not None else None,
            asset_check_selection=set(asset_check_selection) if asset_check_selection is not None else None,
        )
    return dg.execute_job(job, instance=instance, tags=dict(tags or {}), run_config=dict(run_config or {}))


def execute_request(
    instance: dg.DagsterInstance, request: dg.RunRequest, job_name: str = "mirror"
) -> dg.JobExecutionResult:
    """A schedule's RunRequest (a shard's batched run, say) run as the daemon would, steps on Celery."""
    tags = dict(request.tags)
    if request.partition_key is not None:
        tags["dagster/partition"] = request.partition_key
    return execute(
        instance,
        request.job_name or job_name,
        tags=tags,
        run_config=request.run_config,
        asset_selection=request.asset_selection,
        asset_check_selection=request.asset_check_keys,
    )


@dataclass
class Worker:
    name: str  # the Celery node name is f"{name}@{hostname}"
    proc: subprocess.Popen
    log: Path

    def processes(self) -> set[int]:
        """Every live process of this worker: the dagster-celery wrapper, celery and its pool children."""
        return _session(self.proc.pid)


@dataclass
class Workers:
    items: list[Worker] = field(default_factory=list)

    def pids(self) -> dict[str, set[int]]:
        return {w.name: w.processes() for w in self.items}

    def stop(self) -> list[int]:
        """SIGTERM to each worker's session (Celery's warm shutdown), SIGKILL after STOP_TIMEOUT; returns the
        pids still alive after that (none expected)."""
        for w in self.items:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(w.processes() for w in self.items) and time.monotonic() < deadline:
            time.sleep(0.2)
        for w in self.items:
            for pid in w.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=5)
        time.sleep(0.2)
        return sorted(p for w in self.items for p in w.processes())


@contextlib.contextmanager
def workers(
    broker: str,
    count: int = 2,
    *,
    concurrency: int = 1,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
) -> Iterator[Workers]:
    """`count` workers (`dagster-celery worker start`, each `concurrency` pool processes) on `broker`, each in
    a session of its own; all stopped at the end, pool children included. DAGSTER_HOME (in `env` or
    os.environ) must be the instance the runs use."""
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="xz-celery-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    config = log_dir / "worker.yaml"
    config.write_text(f"execution:\n  config:\n    broker: '{broker}'\n    backend: '{broker}'\n")
    bin_dir = Path(sys.executable).parent  # dagster-celery runs `celery` from PATH
    environment = {**os.environ, **(env or {}), BROKER_ENV: broker}
    environment["PATH"] = f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}"
    tool = str(bin_dir / "dagster-celery")
    group = Workers()
    try:
        for i in range(1, count + 1):
            name = f"xz-worker-{i}"
            log = log_dir / f"{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [tool, "worker", "start", "-A", "dagster_celery.app", "-y", str(config), "-n", name,
                     "--", f"--concurrency={concurrency}"],
                    env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            group.items.append(Worker(name, proc, log))
        deadline = time.monotonic() + READY_TIMEOUT
        for w in group.items:
            while " ready." not in w.log.read_text(errors="replace"):
                if w.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Celery worker {w.name} did not start: see {w.log}")
                time.sleep(0.2)
        yield group
    finally:
        left = group.stop()
        if left:
            raise RuntimeError(f"Celery worker processes outlived SIGKILL: {left}")


def _session(sid: int) -> set[int]:
    """Live (non-zombie) processes whose session id is `sid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.add(int(entry.name))
    return found
