"""`dagster-daemon`, with the sensor loop every second instead of every five.

Dagster's sensor daemon evaluates due sensors in a loop that sleeps to 5 s (`MIN_INTERVAL_LOOP_TIME`, not a
setting), so an event reaching the inbox waited 2.5 s on average, 5 s at worst, before the inbox sensor
saw it: half the near-real-time budget. `xz serve` and `make bench-latency ARGS=--daemon` start the daemon
through this module, which shortens that loop and is otherwise `dagster-daemon` itself (same arguments,
same threads, same heartbeats), with Dagster's SQLite storage tuned as in every process of ours
(dagster_storage.py). A due sensor costs one tick; a sensor whose minimum interval has not
passed costs a read of its state. `xz dev` keeps Dagster's loop.

Run as `python -m xz_pipeline.deploy.daemon run -w workspace.yaml`.
"""

from __future__ import annotations

import sys

SENSOR_LOOP_SECONDS = 1


def shorten_sensor_loop(seconds: float = SENSOR_LOOP_SECONDS) -> None:
    """Set the sensor daemon's loop period; refuses (one line) on a Dagster without the constant."""
    import dagster._daemon.sensor as sensor_daemon

    if not isinstance(getattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME", None), (int, float)):
        raise SystemExit(
            "xz: this Dagster has no sensor loop period to shorten (dagster._daemon.sensor."
            "MIN_INTERVAL_LOOP_TIME); run dagster-daemon itself or install the pinned dagster"
        )
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = seconds


def main() -> None:
    from xz_pipeline.dagster_storage import tune_sqlite_storage

    shorten_sensor_loop()
    # The daemon writes a submitted run's planned-materialization events itself (one per asset and check of
    # the run: 24 for a payment's targeted run) and loads no code in process, so definitions.py's tuning
    # never reached it: 30-45 ms an event, 1 s a run, before the queue saw it.
    tune_sqlite_storage()
    from dagster._daemon.cli import main as dagster_daemon

    sys.argv[0] = "dagster-daemon"
    dagster_daemon()


if __name__ == "__main__":
    main()
