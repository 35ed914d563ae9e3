"""`python -m xz_pipeline.deploy.daemon`: dagster-daemon with its sensor loop and run queue read every half
second (Dagster's own: 5 s and 1-1.5 s), refusing in one line on a Dagster without the loop's constant."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import dagster._daemon.controller as controller
import dagster._daemon.sensor as sensor_daemon
import pytest
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from xz_pipeline.deploy import daemon

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def restored(monkeypatch):
    """The patched module attributes put back after the test (monkeypatch restores what it set)."""
    monkeypatch.setattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME", sensor_daemon.MIN_INTERVAL_LOOP_TIME)
    monkeypatch.setattr(controller, "create_daemon_of_type", controller.create_daemon_of_type)


def test_the_sensor_loop_and_the_run_queue_are_read_every_half_second(restored, tmp_path):
    assert sensor_daemon.MIN_INTERVAL_LOOP_TIME == 5  # Dagster's, before
    daemon.shorten_sensor_loop()
    daemon.quicken_run_queue()
    assert sensor_daemon.MIN_INTERVAL_LOOP_TIME == 0.5
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        queue = controller.create_daemon_of_type(QueuedRunCoordinatorDaemon.daemon_type(), instance)
        assert isinstance(queue, QueuedRunCoordinatorDaemon) and queue.interval_seconds == 0.5
        other = controller.create_daemon_of_type("SCHEDULER", instance)
        assert not isinstance(other, QueuedRunCoordinatorDaemon)


def test_a_dagster_without_the_loop_constant_is_refused_in_one_line(restored, monkeypatch):
    monkeypatch.delattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME")
    with pytest.raises(SystemExit) as stopped:
        daemon.shorten_sensor_loop()
    assert "run dagster-daemon itself or install the pinned dagster" in str(stopped.value)
