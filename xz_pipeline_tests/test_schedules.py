"""Schedules ask for one run per registered connection; the sensor registers configured connections."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from xz_pipeline.core.resources import connections_partitions
from xz_pipeline.definitions import defs
from xz_pipeline.schedules import connections_sensor


def test_sensor_registers_configured_connections(xz_home):
    (xz_home / "connections.toml").write_text(
        '[connections.acme]\nXERO_CLIENT_ID = "a"\nXERO_CLIENT_SECRET = "s"\n'
        '[connections.globex]\nXERO_CLIENT_ID = "b"\nXERO_CLIENT_SECRET = "t"\n'
    )
    with dg.instance_for_test() as instance:
        result = connections_sensor(dg.build_sensor_context(instance=instance))
        (request,) = result.dynamic_partitions_requests
        assert sorted(request.partition_keys) == ["acme", "globex"]
        instance.add_dynamic_partitions(connections_partitions.name, ["acme", "globex"])
        again = connections_sensor(dg.build_sensor_context(instance=instance))
        assert not again.dynamic_partitions_requests


def test_full_sweep_schedule_runs_every_connection_with_valid_config():
    job = defs.resolve_job_def("mirror")
    schedule = defs.resolve_schedule_def("mirror_full_sweep")
    with dg.instance_for_test() as instance:
        when = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
        empty = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        )
        assert empty.skip_message and "no connection" in empty.skip_message
        instance.add_dynamic_partitions(connections_partitions.name, ["acme", "globex"])
        ctx = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
        )
        requests = schedule.evaluate_tick(ctx).run_requests
    assert sorted(r.partition_key for r in requests) == ["acme", "globex"]
    assert len({r.run_key for r in requests}) == 2
    for request in requests:
        ops = request.run_config["ops"]
        assert ops and all(v == {"config": {"full_sweep": True}} for v in ops.values())
        assert dg.validate_run_config(job, request.run_config)
