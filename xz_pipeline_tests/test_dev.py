"""`xz dev`: sandbox + `dagster dev` come up, schedules and the sensor are on, SIGTERM stops everything."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

# Real processes end to end (signals, kills, daemons, whole pairs): `make test-integration` runs these.
pytestmark = pytest.mark.end_to_end

QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  schedules { name scheduleState { status } } sensors { name sensorState { status } } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _in_session(session: int) -> list[str]:
    return subprocess.run(["pgrep", "-s", str(session)], capture_output=True, text=True).stdout.split()


def test_xz_dev_serves_the_ui_and_stops_on_sigterm(xz_home):
    port = _free_port()
    xz = os.path.join(os.path.dirname(sys.executable), "xz")
    proc = subprocess.Popen(
        [xz, "dev", "--port", str(port)],
        env={**os.environ, "XZ_HOME": str(xz_home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sessions = [proc.pid]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(1)
        else:
            raise AssertionError("dagster dev did not come up within 90 s")
        sessions += _children(proc.pid)  # `dagster dev`'s own session, up by now
        data = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=30).json()
        (repo,) = data["data"]["repositoriesOrError"]["nodes"]
        states = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
        states |= {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert states["mirror_incremental"] == states["mirror_full_sweep"] == "RUNNING"
        assert states["connections_sensor"] == states["inbox_sensor"] == "RUNNING"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if (
            proc.poll() is None
        ):  # `dagster dev` runs in a session of its own: stop it too, never leave it behind
            for group in [*_children(proc.pid), proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
    time.sleep(5)  # children get a moment to exit; none may outlive the sessions
    leftovers = [pid for session in sessions for pid in _in_session(session)]
    assert not leftovers
