"""Schedules ask for one run per shard of registered connections; the sensor registers configured
connections in one request."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from xz_pipeline.core.resources import connections_partitions
from xz_pipeline.definitions import defs
from xz_pipeline.fleet.shards import SHARD_TAG
from xz_pipeline.schedules import connections_sensor

WHEN = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)


def _connections_file(xz_home, names):
    xz_home.joinpath("connections.toml").write_text(
        "".join(f'[connections.{n}]\nXERO_CLIENT_ID = "a"\nXERO_CLIENT_SECRET = "s"\n' for n in names)
    )


def test_sensor_registers_configured_connections_in_one_request(xz_home):
    names = [f"org{i:03d}" for i in range(250)]
    _connections_file(xz_home, names)
    with dg.instance_for_test() as instance:
        result = connections_sensor(dg.build_sensor_context(instance=instance))
        (request,) = result.dynamic_partitions_requests
        assert list(request.partition_keys) == names  # registration order: the shards' order
        instance.add_dynamic_partitions(connections_partitions.name, names[:200])
        again = connections_sensor(dg.build_sensor_context(instance=instance))
        (rest,) = again.dynamic_partitions_requests
        assert list(rest.partition_keys) == names[200:]


def _ticks(schedule_name, instance):
    schedule = defs.resolve_schedule_def(schedule_name)
    ctx = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=WHEN, repository_def=defs.get_repository_def()
    )
    return schedule.evaluate_tick(ctx)


def test_schedules_ask_one_run_per_shard_with_valid_config(monkeypatch):
    monkeypatch.setenv("XZ_SHARD_SIZE", "2")
    job = defs.resolve_job_def("mirror")
    with dg.instance_for_test() as instance:
        empty = _ticks("mirror_full_sweep", instance)
        assert empty.skip_message and "no connection" in empty.skip_message
        instance.add_dynamic_partitions(connections_partitions.name, ["acme", "globex", "initech"])
        reads = []
        real = dg.DagsterInstance.get_dynamic_partitions
        monkeypatch.setattr(
            dg.DagsterInstance, "get_dynamic_partitions", lambda self, n: reads.append(n) or real(self, n)
        )
        full = _ticks("mirror_full_sweep", instance).run_requests
        incremental = _ticks("mirror_incremental", instance).run_requests
    assert len(reads) == 2  # one read of the partitions a tick, never one per connection
    for requests in (full, incremental):
        ranges = [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                  for r in requests]  # fmt: skip
        assert ranges == [("acme", "globex"), ("initech", "initech")]
        assert [r.tags[SHARD_TAG] for r in requests] == ["0000", "0001"]
        assert all(r.partition_key is None for r in requests)
        assert len({r.run_key for r in requests}) == 2
        names = {k.to_user_string() for k in requests[0].asset_selection}
        assert {"xero_invoices", "zoho_deals", "discrepancies", "analytics_snapshot"} <= names
        assert {"writeback_plan", "writeback_apply"} <= names  # write-back loops the batch's connections too
        assert "writeback_guard" not in {c.name for c in requests[0].asset_check_keys}  # apply guards itself
        assert all(c.asset_key.to_user_string() in names for c in requests[0].asset_check_keys)
    for request in full:
        ops = request.run_config["ops"]
        assert ops and all(v == {"config": {"full_sweep": True}} for v in ops.values())
        assert dg.validate_run_config(job, request.run_config)


def test_a_shard_runs_only_the_extract_steps_of_the_vendors_its_connections_pair(xz_home, monkeypatch):
    monkeypatch.setenv("XZ_SHARD_SIZE", "2")
    xz_home.joinpath("connections.toml").write_text(
        '[connections.acme]\nbooks = "xero"\n[connections.globex]\ncrm = "zoho"\n'
        '[connections.initech]\nbooks = "quickbooks"\ncrm = "salesforce"\n'
    )
    job = defs.resolve_job_def("mirror")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, ["acme", "globex", "initech"])
        full = _ticks("mirror_full_sweep", instance).run_requests
        incremental = _ticks("mirror_incremental", instance).run_requests
    for requests in (full, incremental):
        pairs, other = ({k.to_user_string() for k in r.asset_selection} for r in requests)
        assert {"xero_invoices", "zoho_deals", "writeback_plan", "discrepancies"} <= pairs
        assert not {n for n in pairs if n.startswith(("quickbooks_", "salesforce_"))}
        assert {"quickbooks_invoices", "salesforce_accounts", "writeback_plan", "discrepancies"} <= other
        assert not {n for n in other if n.startswith(("xero_", "zoho_"))}
    for request in full:  # each shard's full-sweep config names exactly its extract steps, and is valid
        subset = job.get_subset(asset_selection=set(request.asset_selection),
                                asset_check_selection=set(request.asset_check_keys))  # fmt: skip
        ops = set(request.run_config["ops"])
        assert ops and ops <= {k.to_user_string() for k in request.asset_selection}
        assert dg.validate_run_config(subset, request.run_config)
