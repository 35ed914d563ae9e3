"""The warm process: imports the code location and the libraries its steps use once, then forks one
child per run it is asked for. Each run still has a process of its own (a crash or a leak ends with it),
but starts in milliseconds instead of the seconds a fresh interpreter takes to import Dagster, pandas and
the project (measured with `make bench-latency ARGS=--daemon`).

Protocol, over a Unix socket: the launcher sends one JSON line `{"run_id": ..., "instance_ref": ...}`
(the instance reference serialized by Dagster's serdes) and reads one line back, `{"pid": n}` or
`{"error": "..."}`. The process ends when its socket is removed (the launcher replaced it: its runs go on),
on SIGTERM or when its parent (the daemon) is gone (its runs are interrupted).

Run as `python -m xz_pipeline.deploy.warm.zygote SOCKET`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

WARM_MODULES = ("pandas", "pandera.pandas", "duckdb", "rapidfuzz", "phonenumbers", "requests")
_children: set[int] = set()  # runs forked and not yet reaped
INSTANCE_ENV = "XZ_WARM_INSTANCE_REF"  # the launcher's instance, serialized: its storage is warmed too


def code_stamp() -> float:
    """The newest modification time of the project's Python files: the launcher starts a new warm process
    when it moves, so a run never executes code older than what is on disk."""
    root = Path(__file__).resolve().parents[2]
    return max((p.stat().st_mtime for p in root.rglob("*.py")), default=0.0)


def _warm(instance_ref: str | None) -> None:
    import contextlib
    import importlib

    for name in WARM_MODULES:
        with contextlib.suppress(ImportError):  # an optional library: its steps import it themselves
            importlib.import_module(name)
    from xz_pipeline.dagster_storage import close_keepers
    from xz_pipeline.definitions import defs

    repository = defs.get_repository_def()  # cached on the Definitions object: the children skip building it
    for job in repository.get_all_jobs():
        job.get_job_snapshot()  # and the jobs the runs subset
    if instance_ref:  # the instance's storage classes and their SQL layers, imported once here (1-1.5 s)
        from dagster._core.instance import DagsterInstance
        from dagster._serdes import deserialize_value

        with DagsterInstance.from_ref(deserialize_value(instance_ref)) as instance:
            instance.get_run_records(limit=1)
        close_keepers()  # no SQLite connection of this process may reach a child


def _reap(*_) -> None:
    try:
        while True:
            pid, _status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            _children.discard(pid)
    except ChildProcessError:
        return


def _stop(*_) -> None:
    raise SystemExit(0)


def _interrupt_runs() -> None:
    """The warm process was stopped (SIGTERM) or its daemon is gone: the runs it forked are interrupted, as
    the default launcher's run workers are when the deployment's process group is signalled (Dagster stops
    them at once and marks them canceled). A warm process replaced by a newer one (its socket removed by
    the launcher) leaves its runs to finish."""
    for pid in list(_children):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            _children.discard(pid)


def _run(run_id: str, instance_ref_json: str) -> int:
    """In the child: execute one run as `dagster api execute_run` does, in this (forked) process."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.instance import DagsterInstance
    from dagster._serdes import deserialize_value
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), DagsterInstance.from_ref(deserialize_value(instance_ref_json)) as instance:
        return _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=True)


def _fork(request: dict) -> int:
    pid = os.fork()
    if pid:
        _children.add(pid)
        return pid
    code = 1
    try:
        # The warm process's group (the daemon's): stopping the deployment reaches the run as it did
        # under the default launcher, where SIGTERM, like SIGINT, interrupts it at the next step.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        code = _run(request["run_id"], request["instance_ref"])
    except BaseException as exc:  # noqa: BLE001 - the run's failure is in its event log; say why here too
        print(f"warm run {request.get('run_id')}: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # not the warm process's atexit handlers


def serve(path: str) -> None:
    parent = os.getppid()
    _warm(os.environ.pop(INSTANCE_ENV, None))
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, _stop)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{path}.{os.getpid()}"
    server.bind(tmp)
    server.listen(16)
    os.replace(tmp, path)  # the socket appears only once the process is warm
    server.settimeout(1.0)
    replaced = False
    try:
        _accept(server, path, parent)
        replaced = not os.path.exists(path)
    finally:
        server.close()
        if not replaced:
            _interrupt_runs()


def _accept(server: socket.socket, path: str, parent: int) -> None:
    while os.getppid() == parent and os.path.exists(path):
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        except InterruptedError:
            continue
        with conn, conn.makefile("rw") as stream:
            try:
                request = json.loads(stream.readline())
                answer = {"pid": _fork(request)}
            except Exception as exc:  # noqa: BLE001 - answered, the launcher falls back
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            stream.write(json.dumps(answer) + "\n")
            stream.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
