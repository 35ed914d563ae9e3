"""`xz serve`: the single-machine production deployment — the webhook receiver, `dagster-daemon` and
`dagster-webserver` over one DAGSTER_HOME (`$XZ_HOME/dagster`), started together and stopped together.

Each runs as a child process in a process group of its own, started with default signal handling
(a process started from a non-interactive shell otherwise inherits SIGINT ignored, and Dagster copies
that onto SIGTERM). A SIGTERM or SIGINT to `xz serve` is passed to every group, so the daemon's run
workers and code servers stop with it; whatever still runs after `GRACE` seconds is killed. A child
that exits on its own stops the others: systemd (or whoever started us) sees the failure and restarts
the whole, rather than a half-deployment that silently receives webhooks nobody turns into runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from xz_pipeline import settings

GRACE = 30.0  # seconds a child has to stop after SIGTERM before it is killed
READY_TIMEOUT = 180.0
WORKSPACE = """\
# Written by `xz serve`: the daemon and the webserver load the same code location.
load_from:
  - python_module:
      module_name: xz_pipeline.definitions
      location_name: xz_pipeline
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="the receiver's interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="the receiver's port (default 8787)")
    parser.add_argument(
        "--ui-host", default="127.0.0.1", help="the Dagster UI's interface (default 127.0.0.1)"
    )
    parser.add_argument("--ui-port", type=int, default=3000, help="the Dagster UI's port (default 3000)")
    parser.add_argument("--no-ui", action="store_true", help="run without dagster-webserver")


def _default_signals() -> None:
    """In the child, before exec: default SIGINT/SIGTERM handling (Dagster ignores SIGTERM otherwise)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _tool(name: str) -> str:
    beside = Path(sys.executable).with_name(name)  # the virtualenv's own, even when not on PATH
    return str(beside) if beside.exists() else (shutil.which(name) or name)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    ready: bool = False
    note: str = field(default="")

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)


def prepare_home():
    """DAGSTER_HOME with its dagster.yaml (ours, unless the operator keeps one there) and a workspace file;
    the instance's storage is created once here, before two processes race to create its tables.
    Returns (the instance, the workspace file)."""
    from xz_pipeline import runner

    inst = runner.instance(settings.xz_home())
    workspace = settings.xz_home() / "dagster" / "workspace.yaml"
    workspace.write_text(WORKSPACE, encoding="utf-8")
    return inst, workspace


def commands(args: argparse.Namespace, workspace: Path) -> dict[str, list[str]]:
    cmds = {
        "receiver": [sys.executable, "-m", "xz_pipeline.realtime.receiver", "--host", args.host,
                     "--port", str(args.port)],
        # dagster-daemon with a one-second sensor loop (deploy/daemon.py says why)
        "daemon": [sys.executable, "-m", "xz_pipeline.deploy.daemon", "run", "-w", str(workspace)],
    }  # fmt: skip
    if not args.no_ui:
        cmds["webserver"] = [_tool("dagster-webserver"), "-w", str(workspace), "-h", args.ui_host,
                             "-p", str(args.ui_port)]  # fmt: skip
    return cmds


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 (our own loopback URL)
            return reply.status == 200
    except OSError:
        return False


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def _check_ready(children: dict[str, Child], args: argparse.Namespace, inst) -> None:
    for name, child in children.items():
        if child.ready:
            continue
        if name == "receiver":
            child.ready = _answers(f"http://{_local(args.host)}:{args.port}/health")
            child.note = f"http://{args.host}:{args.port}/webhooks/xero, /webhooks/zoho"
        elif name == "webserver":
            child.ready = _answers(f"http://{_local(args.ui_host)}:{args.ui_port}/server_info")
            child.note = f"http://{args.ui_host}:{args.ui_port}"
        else:
            child.ready = {"SENSOR", "QUEUED_RUN_COORDINATOR"} <= set(inst.get_daemon_heartbeats())
            child.note = "sensors, schedules and the run queue"
        if child.ready:
            print(f"xz serve: {name} up (pid {child.proc.pid}): {child.note}", flush=True)


def stop_all(children: dict[str, Child], grace: float = GRACE) -> None:
    """SIGTERM every group, wait up to `grace` seconds, SIGKILL what is left (a group's stragglers too)."""
    for child in children.values():
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for child in children.values():
        child.signal_group(signal.SIGKILL)  # the group: a run worker the daemon left behind included
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout=5)


def run(args: argparse.Namespace) -> int:
    try:
        connections = settings.load_connections()
    except settings.SettingsError as exc:
        print(f"xz serve: {exc}", file=sys.stderr)
        return 2
    if not connections:
        print("xz serve: no connection configured: set XERO_*/ZOHO_* or write $XZ_HOME/connections.toml",
              file=sys.stderr)  # fmt: skip
        return 2
    inst, workspace = prepare_home()
    dagster_home = workspace.parent
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    stop = {"signal": 0}

    def _stop(signum, _frame) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    children: dict[str, Child] = {}
    logs = settings.xz_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"xz serve: DAGSTER_HOME {dagster_home}; logs in {logs}", flush=True)
    try:
        for name, cmd in commands(args, workspace).items():
            out = (logs / f"{name}.log").open("ab")
            children[name] = Child(name, subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_default_signals, start_new_session=True,
            ))  # fmt: skip
            out.close()
        started, announced = time.monotonic(), False
        with inst:
            while not stop["signal"]:
                dead = [c for c in children.values() if c.proc.poll() is not None]
                if dead:
                    c = dead[0]
                    print(f"xz serve: {c.name} exited with {c.proc.returncode}: stopping the others; see "
                          f"{logs / (c.name + '.log')}", file=sys.stderr, flush=True)  # fmt: skip
                    return 1
                if not announced:
                    _check_ready(children, args, inst)
                    if all(c.ready for c in children.values()):
                        print("xz serve: ready", flush=True)
                        announced = True
                    elif time.monotonic() - started > READY_TIMEOUT:
                        late = ", ".join(c.name for c in children.values() if not c.ready)
                        print(f"xz serve: {late} not up after {READY_TIMEOUT:.0f}s: stopping; see {logs}",
                              file=sys.stderr, flush=True)  # fmt: skip
                        return 1
                time.sleep(0.5)
        print(f"xz serve: {signal.Signals(stop['signal']).name}: stopping", flush=True)
        return 0
    finally:
        stop_all(children)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xz serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
