"""Materialise the pipeline in process, per connection: what `xz sync` and `xz demo` run.

No daemon watches these runs, so the runner cleans up after itself: before starting it marks failed the
runs of its instance whose process died (and frees the `duckdb` pool slots they held), it waits for
another `xz sync` on the same XZ_HOME instead of contending with it, and a stop request (SIGTERM,
Ctrl-C) ends the run at the next step boundary, after the write in flight is recorded.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.definitions.events import HookExecutionResult
from dagster._core.errors import DagsterExecutionInterruptedError
from filelock import Timeout

from xz_pipeline import deploy, runs, settings
from xz_pipeline.core.resources import APPROVE_TAG, connections_partitions
from xz_pipeline.core.store import HeldLock, process_alive, process_start
from xz_pipeline.core.sync import STOP_READS
from xz_pipeline.definitions import ASSETS, CHECKS, defs
from xz_pipeline.progress import RunProgress

# The instance settings of the deployment profile (XZ_DAGSTER_PROFILE; by default the repository's dagster.yaml).
INSTANCE_YAML = deploy.instance_yaml()

# Tags that say which process runs a run, so a later runner can tell a dead run from a live one.
PID_TAG, START_TAG, HOST_TAG = "xz/pid", "xz/process_start", "xz/host"
POOL = "duckdb"
JOB_NAME = "__ephemeral_asset_job__"  # the name `dg.materialize` gives its runs (kept for continuity)
WAIT_DEFAULT = 180.0


class SyncBusy(RuntimeError):
    """Another `xz sync` works on this XZ_HOME and did not finish within the wait."""


@dataclass
class RunOutcome:
    connection: str
    success: bool
    metadata: dict[str, dict] = field(default_factory=dict)  # asset name -> its materialization metadata
    failed_checks: list[str] = field(default_factory=list)  # "asset:check (SEVERITY)"
    error: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)  # (step, one line saying why)
    details: list[str] = field(default_factory=list)  # the full errors, for --verbose
    skipped: list[str] = field(default_factory=list)  # steps not run because a step they need failed
    stopped: bool = False  # a stop request ended the run early
    approved_past: list[str] = field(default_factory=list)  # what the mass-change guard let past by approval
    run_id: str = ""
    # The reconciliation run after this run's write-back and its refresh (shared by the connections that
    # wrote): what `recon.discrepancies` and the snapshot hold once the corrections landed.
    after_writeback: RunOutcome | None = None

    @property
    def wrote(self) -> bool:
        """Whether this run's write-back changed something remote (and refreshed it into the mirror)."""
        m = self.metadata.get("writeback_apply") or {}
        return not m.get("dry_run") and bool(m.get("applied") or m.get("refreshed_records"))


def log_path(home: Path | None = None) -> Path:
    """Where Dagster's events and logs of in-process runs go (DEBUG included), instead of the terminal."""
    return (home or settings.xz_home()) / "logs" / "xz.log"


def instance(home: Path | None = None) -> dg.DagsterInstance:
    """A persistent Dagster instance under $XZ_HOME/dagster (so `dagster dev` shows these runs).

    Its SQLite storage is created under a file lock: two first syncs at once would otherwise both
    create the same tables ("table secondary_indexes already exists")."""
    dagster_home = (home or settings.xz_home()) / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    lock = HeldLock(dagster_home / ".storage.lock")
    lock.acquire(timeout=-1)  # creating the tables takes a second or two
    try:
        if not (dagster_home / "dagster.yaml").exists() and INSTANCE_YAML.exists():
            shutil.copy(INSTANCE_YAML, dagster_home / "dagster.yaml")
        inst = dg.DagsterInstance.local_temp(str(dagster_home))
        # Touch every storage now, under the lock: each creates its tables on first use.
        inst.get_runs(limit=1)
        inst.event_log_storage.get_pool_limits()
        inst.get_dynamic_partitions(connections_partitions.name)
    finally:
        lock.release()
    return inst


STAGES = {
    "mirror": ("xero", "quickbooks", "zoho", "salesforce", "canonical", "analytics"),
    "reconcile": ("reconcile", "analytics"),
    "writeback": ("writeback",),
}


def selected_assets(only: str | None) -> list[dg.AssetsDefinition]:
    """The assets of one stage (`--only mirror|reconcile|writeback`), or all of them."""
    if only is None:
        return list(ASSETS)
    if only not in STAGES:
        raise settings.SettingsError(f"unknown stage {only!r}: choose from {', '.join(STAGES)}")
    groups = STAGES[only]
    return [a for a in ASSETS if any(a.group_names_by_key[k] in groups for k in a.keys)]


# -- runs left behind by a dead process --------------------------------------------------------------


def _run_process_alive(run: dg.DagsterRun) -> bool | None:
    """True/False for a run this host's runner started (by its pid tags); None for anyone else's."""
    tags = run.tags
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return None
    return process_alive(int(tags[PID_TAG]), tags.get(START_TAG, ""))


def reclaim_dead_runs(inst: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs of this instance still STARTING/STARTED whose process is gone, and free the
    pool slots they (or any finished run) still hold. A live process's run is left alone. Returns the run
    ids marked failed."""
    from dagster._core.storage.dagster_run import DagsterRunStatus

    active = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
              DagsterRunStatus.CANCELING]  # fmt: skip
    reclaimed = []
    for run in inst.get_runs(filters=dg.RunsFilter(statuses=active, tags={HOST_TAG: socket.gethostname()})):
        if _run_process_alive(run) is False:
            inst.report_run_failed(
                run, f"the process that ran it (pid {run.tags.get(PID_TAG)}) is gone; marked failed by xz"
            )
            inst.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            reclaimed.append(run.run_id)
    storage = inst.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            run = inst.get_run_by_id(run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
    return reclaimed


def _pool_holders(inst: dg.DagsterInstance) -> list[str]:
    """Runs of other processes holding every slot of the `duckdb` pool (empty when one is free)."""
    storage = inst.event_log_storage
    if not storage.supports_global_concurrency_limits or POOL not in storage.get_concurrency_keys():
        return []
    info = storage.get_concurrency_info(POOL)
    claimed = [s.run_id for s in info.claimed_slots]
    return claimed if info.slot_count and len(claimed) >= info.slot_count else []


# -- stopping at a step boundary --------------------------------------------------------------------


class StopRequest:
    """Set by a signal handler (or anyone): the run in progress ends after its current step."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.event.set()
        STOP_READS.set()  # a long extract ends after the chunk it is writing

    def is_set(self) -> bool:
        return self.event.is_set()


def _stop_hook(stop: StopRequest) -> dg.HookDefinition:
    """Runs after every step (a job-level hook): a stop request interrupts the run there, so the step that
    just finished keeps its writes and events, and no further step starts."""

    def hook_fn(context, _events) -> HookExecutionResult:
        if stop.is_set():
            run = context.instance.get_run_by_id(context.run_id)
            if run is not None and not run.is_finished:
                context.instance.report_run_canceling(run, f"xz: stop requested ({stop.reason})")
            raise DagsterExecutionInterruptedError(f"stop requested ({stop.reason})")
        return HookExecutionResult(hook_name="xz_stop_between_steps", is_skipped=True)

    return dg.HookDefinition(name="xz_stop_between_steps", hook_fn=hook_fn)


# -- logging to a file ------------------------------------------------------------------------------

_file_loggers: dict[str, logging.Logger] = {}
_file_loggers_lock = threading.Lock()


def file_logger(path: Path) -> logging.Logger:
    """One rotating log file per XZ_HOME (10 MB x 5), shared by every run of the process."""
    with _file_loggers_lock:
        logger = _file_loggers.get(str(path))
        if logger is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(path, maxBytes=10_000_000, backupCount=5)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger = logging.Logger(f"xz.runs.{len(_file_loggers)}", level=logging.DEBUG)
            logger.addHandler(handler)
            _file_loggers[str(path)] = logger
        return logger


def _logger_def(path: Path, extra: logging.Handler | None = None) -> dg.LoggerDefinition:
    """The run's logger: the XZ_HOME's log file, and `extra` (a terminal progress bar) when given."""

    def make(_init) -> logging.Logger:
        base = file_logger(path)
        if extra is None:
            return base
        logger = logging.Logger(f"{base.name}.progress", level=logging.DEBUG)
        for handler in [*base.handlers, extra]:
            logger.addHandler(handler)
        return logger

    return dg.LoggerDefinition(make, description=f"Dagster's events and logs to {path}")


# -- the run ----------------------------------------------------------------------------------------


def _materialize(selection: list, *, partition_key: str | None, inst: dg.DagsterInstance, run_config: dict,
                 stop: StopRequest | None, tags: dict[str, str],
                 progress: RunProgress | None = None) -> dg.ExecuteInProcessResult:  # fmt: skip
    """`dg.materialize`, with the events going to the log file (and a progress bar) and a stop hook between
    steps."""
    job_defs = _definitions_for(selection, stop, progress.handler() if progress is not None else None)
    job = job_defs.resolve_job_def(JOB_NAME)
    if progress is not None:
        progress.start_run(partition_key or "all connections", len(job.graph.nodes))
    # Loggers named in the run config replace Dagster's console logger.
    return job.execute_in_process(
        run_config={**run_config, "loggers": {"xz_file": {}}},
        instance=inst,
        partition_key=partition_key,
        raise_on_error=False,
        tags=tags,
    )


def _definitions_for(
    selection: list, stop: StopRequest | None, extra: logging.Handler | None = None
) -> dg.Definitions:
    hooks = {_stop_hook(stop)} if stop is not None else set()
    return dg.Definitions(
        jobs=[dg.define_asset_job(name=JOB_NAME, hooks=hooks)],
        assets=selection,
        resources=defs.resources,
        loggers={"xz_file": _logger_def(log_path(), extra)},
    )


def _in_worker(fn: Callable[[], dg.ExecuteInProcessResult]) -> dg.ExecuteInProcessResult:
    """Run `fn` in a thread, so Dagster installs no signal handler of its own (in the main thread it
    captures SIGINT and SIGTERM and, in process, never acts on them): ours stay in charge."""
    box: dict = {}

    def work() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="xz-run", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    if "error" in box:
        raise box["error"]
    return box["result"]


def _error_line(error) -> str:
    """The innermost cause's first line, "Type: message" (Dagster wraps user errors in its own)."""
    while error.cause is not None and error.cls_name in (
        "DagsterExecutionStepExecutionError",
        "DagsterUserCodeExecutionError",
    ):
        error = error.cause
    if error.cls_name == "DagsterExecutionInterruptedError":
        return "interrupted: the process was asked to stop while this step ran"
    message = (error.message or "").strip()
    if message.startswith(f"{error.cls_name}:") or message.startswith("dagster."):
        message = message.partition(":")[2].strip()  # "dagster…SomeError" alone has no message part
    return f"{error.cls_name}: {(message.splitlines() or [''])[0]}"


def _check_reason(evaluation) -> str:
    """One line for a failed blocking check: the reasons it lists in its metadata (or its description), and for
    the write-back guard what to do about a plan that changes too much at once."""
    reasons = evaluation.metadata.get("reasons")
    found = [str(r) for r in reasons.value] if reasons is not None and isinstance(reasons.value, list) else []
    text = "; ".join(found) or (evaluation.description or "")
    if not text:
        return ""
    line = f"blocked by {evaluation.check_name}: {text}"
    if evaluation.check_name == "writeback_guard":
        line += " — review the changes with `xz plan`, then approve them with `xz sync --apply --approve`"
    return line


def _outcome(label: str, result: dg.ExecuteInProcessResult) -> RunOutcome:
    outcome = RunOutcome(connection=label, success=result.success, run_id=result.run_id)
    why_blocked: dict[str, str] = {}  # check name -> what it found, for the step it failed
    for evaluation in result.get_asset_check_evaluations():
        approved = evaluation.metadata.get("approved_past")
        if evaluation.passed and approved is not None and isinstance(approved.value, list):
            outcome.approved_past += [str(r) for r in approved.value]
        if not evaluation.passed:
            outcome.failed_checks.append(
                f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name} ({evaluation.severity.value})"
            )
            why_blocked[evaluation.check_name] = _check_reason(evaluation)
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        outcome.metadata[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            data = event.step_failure_data
            user = data.user_failure_data
            line = user.description if user and user.description else _error_line(data.error)
            if data.error and data.error.cls_name == "DagsterAssetCheckFailedError":
                line = next(
                    (why for name, why in why_blocked.items() if event.step_key.endswith(name) and why), line
                )
            outcome.failures.append((event.step_key, line.strip().splitlines()[0]))
            if data.error:
                outcome.details.append(f"{event.step_key}:\n{data.error.to_string()}")
        elif event.event_type_value in ("PIPELINE_CANCELED", "RUN_CANCELED"):
            outcome.stopped = True
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    outcome.skipped = sorted({node.name for node in result.job_def.graph.nodes} - started)
    if not result.success:
        outcome.error = "; ".join(f"{step}: {line}" for step, line in outcome.failures) or (
            "stopped before it finished" if outcome.stopped else "the run failed (see the log)"
        )
    return outcome


def _wait_for_turn(inst: dg.DagsterInstance, lock: HeldLock, *, wait: float, on_wait, stop) -> None:
    """Take the XZ_HOME's sync lock, reclaim what dead runs held, then wait for the `duckdb` pool to have a
    free slot (a run launched by `dagster dev` may hold it): bounded by `wait` seconds, saying once what it
    waits for."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            lock.acquire(timeout=0)
            break
        except Timeout:
            pass
        if stop is not None and stop.is_set():
            raise SyncBusy(f"stopped while waiting ({stop.reason})")
        holder = lock.holder() or "another process"
        if time.monotonic() >= deadline:
            raise SyncBusy(
                f"another sync is running on {settings.xz_home()}: {holder}; gave up after {wait:.0f}s"
            )
        if not told and on_wait:
            on_wait(f"waiting up to {wait:.0f}s for {holder} to finish (another sync on this XZ_HOME)")
            told = True
        time.sleep(0.5)
    try:
        reclaim_dead_runs(inst)  # a run of a killed process would hold the pool's slot forever
        told = False
        while holders := _pool_holders(inst):
            if stop is not None and stop.is_set():
                raise SyncBusy(f"stopped while waiting ({stop.reason})")
            if time.monotonic() >= deadline:
                raise SyncBusy(
                    f"the {POOL} pool is held by run(s) {', '.join(holders)}; gave up after {wait:.0f}s"
                )
            if not told and on_wait:
                on_wait(f"waiting up to {wait:.0f}s for run(s) {', '.join(holders)} to free the {POOL} pool")
                told = True
            time.sleep(1.0)
    except BaseException:
        lock.release()
        raise


def sync(
    connections: list[str] | None = None,
    *,
    inst: dg.DagsterInstance | None = None,
    only: str | None = None,
    apply: bool = False,
    approve: bool = False,
    stop: StopRequest | None = None,
    wait: float = WAIT_DEFAULT,
    on_wait: Callable[[str], None] | None = None,
    kind: str = "sync",
    progress: RunProgress | None = None,
) -> list[RunOutcome]:
    """Materialise every asset (or one stage's) once for each connection (all configured ones by default).

    Write-back writes to Xero and Zoho only with `apply` (or a connection configured to auto-apply);
    otherwise its apply step reports what it would do. `approve` lets a plan past the mass-change guard.
    A stage of unpartitioned assets only (`reconcile`: every connection at once) runs once.
    `stop`, when given, ends the run at the next step boundary once set (the caller's signal handlers set
    it); a second sync on the same XZ_HOME waits up to `wait` seconds, telling `on_wait`, then SyncBusy.
    Each run is recorded in `meta.runs` as `kind` (sync, demo) when it ends (runs.py). `progress` shows a bar
    per run on a terminal (progress.py).
    """
    names = (
        settings.require_connections(connections)
        if connections
        else [c.name for c in settings.load_connections()]
    )
    if not names:
        raise settings.SettingsError(
            "no connection configured: set XERO_*/ZOHO_* variables (docs/configuration.md) or write "
            "$XZ_HOME/connections.toml"
        )
    assets = selected_assets(only)
    checks = _checks_of(assets)
    partitioned = any(a.partitions_def is not None for a in assets)
    run_config = (
        {"ops": {"writeback_apply": {"config": {"apply": apply, "approve": approve}}}}
        if "writeback_apply" in {a.op.name for a in assets}
        else {}
    )
    inst = inst or instance()
    STOP_READS.clear()
    lock = HeldLock(settings.xz_home() / "sync.lock")
    _wait_for_turn(inst, lock, wait=wait, on_wait=on_wait, stop=stop)
    try:
        inst.add_dynamic_partitions(connections_partitions.name, names)
        pid = os.getpid()
        tags = {PID_TAG: str(pid), START_TAG: process_start(pid), HOST_TAG: socket.gethostname(),
                runs.KIND_TAG: kind, **({APPROVE_TAG: "1"} if approve else {})}  # fmt: skip
        outcomes = []
        for name in names if partitioned else ["all connections"]:
            if stop is not None and stop.is_set():
                break

            def run(name=name) -> dg.ExecuteInProcessResult:
                return _materialize([*assets, *checks], partition_key=name if partitioned else None, inst=inst,
                                    run_config=run_config, stop=stop, tags=tags, progress=progress)  # fmt: skip

            result = _in_worker(run) if stop is not None else run()
            outcomes.append(_outcome(name, result))
            runs.record(inst, result.run_id, names)
            if outcomes[-1].stopped:
                break
        wrote = [o for o in outcomes if o.wrote]
        if wrote and not (stop is not None and stop.is_set()):
            after = _reconcile_after_writeback(inst, tags, stop, names, progress)
            for o in wrote:
                o.after_writeback = after
        return outcomes
    finally:
        lock.release()


def _checks_of(assets: list[dg.AssetsDefinition]) -> list:
    """The asset checks whose every asset is in the selection."""
    keys = {k for a in assets for k in a.keys}
    return [c for c in CHECKS if all(spec.asset_key in keys for spec in c.check_specs)]


def _reconcile_after_writeback(inst, tags: dict[str, str], stop: StopRequest | None, names: list[str],
                               progress: RunProgress | None = None) -> RunOutcome:  # fmt: skip
    """Reconcile again (and republish the snapshot) once write-back wrote and refreshed what it wrote, so
    `recon.discrepancies`, the snapshot and the report show the systems as they stand after the corrections,
    not as they stood before them. One run over every connection (the reconcile stage is unpartitioned)."""
    assets = selected_assets("reconcile")

    def run() -> dg.ExecuteInProcessResult:
        return _materialize([*assets, *_checks_of(assets)], partition_key=None, inst=inst, run_config={},
                            stop=stop, tags=tags, progress=progress)  # fmt: skip

    result = _in_worker(run) if stop is not None else run()
    runs.record(inst, result.run_id, names)
    return _outcome("reconcile after write-back", result)
