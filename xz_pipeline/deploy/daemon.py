"""`dagster-daemon`, with the sensor loop every half second instead of every five, and the run queue read
every half second instead of every one to one and a half.

Dagster's sensor daemon evaluates due sensors in a loop that sleeps to 5 s (`MIN_INTERVAL_LOOP_TIME`, not a
setting), so an event reaching the inbox waited 2.5 s on average, 5 s at worst, before the inbox sensor
saw it: half the near-real-time budget. `xz serve` and `make bench-latency ARGS=--daemon` start the daemon
through this module, which shortens that loop and is otherwise `dagster-daemon` itself (same arguments,
same threads, same heartbeats), with Dagster's SQLite storage tuned as in every process of ours
(dagster_storage.py). The queue's `dequeue_interval_seconds` is a whole number of seconds and its wait
polls in half seconds, so a queued run waited 1-1.5 s to start; it is read every 0.5 s here (one query of
the run storage each time). A due sensor costs one tick; a sensor whose minimum interval has not
passed costs a read of its state. `xz dev` keeps Dagster's loop.

Run as `python -m xz_pipeline.deploy.daemon run -w workspace.yaml`.
"""

from __future__ import annotations

import sys

SENSOR_LOOP_SECONDS = 0.5
DEQUEUE_SECONDS = 0.5


def shorten_sensor_loop(seconds: float = SENSOR_LOOP_SECONDS) -> None:
    """Set the sensor daemon's loop period; refuses (one line) on a Dagster without the constant."""
    import dagster._daemon.sensor as sensor_daemon

    if not isinstance(getattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME", None), (int, float)):
        raise SystemExit(
            "xz: this Dagster has no sensor loop period to shorten (dagster._daemon.sensor."
            "MIN_INTERVAL_LOOP_TIME); run dagster-daemon itself or install the pinned dagster"
        )
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = seconds


def quicken_run_queue(seconds: float = DEQUEUE_SECONDS) -> None:
    """The run-queue daemon the controller creates reads the queue every `seconds`."""
    import dagster._daemon.controller as controller
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    create = controller.create_daemon_of_type

    def create_daemon_of_type(daemon_type, instance):
        daemon = create(daemon_type, instance)
        if isinstance(daemon, QueuedRunCoordinatorDaemon):
            daemon.interval_seconds = seconds
        return daemon

    controller.create_daemon_of_type = create_daemon_of_type


def main() -> None:
    from xz_pipeline.dagster_storage import tune_sqlite_storage

    shorten_sensor_loop()
    quicken_run_queue()
    # The daemon writes a submitted run's planned-materialization events itself (one per asset and check of
    # the run: 24 for a payment's targeted run) and loads no code in process, so definitions.py's tuning
    # never reached it: 30-45 ms an event, 1 s a run, before the queue saw it.
    tune_sqlite_storage()
    from dagster._daemon.cli import main as dagster_daemon

    sys.argv[0] = "dagster-daemon"
    dagster_daemon()


if __name__ == "__main__":
    main()
