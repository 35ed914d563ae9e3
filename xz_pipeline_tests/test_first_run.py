"""`first_mirror_sensor`: an empty mirror gets its first mirror run at once, once per mirror incarnation; a
mirror that holds the connection asks for nothing; a run in flight or a held mirror waits a tick."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg
import pytest

from xz_pipeline import settings
from xz_pipeline.core.resources import connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.first_run import FIRST_TAG, first_mirror_sensor


@pytest.fixture
def inst(xz_home):
    with dg.instance_for_test(temp_dir=str(xz_home / "dagster")) as instance:
        yield instance


def _tick(inst, cursor: str | None = None):
    context = dg.build_sensor_context(instance=inst, cursor=cursor)
    result = first_mirror_sensor(context)
    return result, context.cursor


def _mirror_holds(connection: str) -> None:
    store = Store(settings.mirror_path(connection))
    with store.write() as con:
        Store.ensure_base(con)
        con.execute(
            "insert into meta.cursors (connection, vendor, entity, cursor_value, updated_at) "
            "values (?, 'xero', 'contacts', null, ?)",
            [connection, datetime.now(UTC)],
        )


def test_it_is_on_by_default_and_targets_the_mirror_job():
    from xz_pipeline.definitions import defs

    sensor = defs.resolve_sensor_def("first_mirror_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "mirror"


def test_no_connection_no_run(inst):
    result, _ = _tick(inst)
    assert isinstance(result, dg.SkipReason) and "no connection registered" in result.skip_message


def test_an_empty_mirror_gets_one_first_run_per_connection_with_a_stable_key(inst):
    inst.add_dynamic_partitions(connections_partitions.name, ["a", "b"])
    _mirror_holds("b")  # b was mirrored already; a was added later and has nothing yet
    first, cursor = _tick(inst)
    assert [(r.partition_key, r.tags[FIRST_TAG]) for r in first] == [("a", json.loads(cursor)["a"])]
    assert first[0].run_key.startswith("first_mirror:a:none@")  # a's own mirror file does not exist yet
    again, cursor2 = _tick(inst, cursor)  # the next tick asks with the same key: Dagster launches it once
    assert [r.run_key for r in again] == [first[0].run_key] and cursor2 == cursor


def test_a_mirror_made_again_is_a_new_incarnation_with_a_new_key(inst):
    inst.add_dynamic_partitions(connections_partitions.name, ["a"])
    (first,), cursor = _tick(inst)
    assert first.run_key.startswith("first_mirror:a:none@")  # no mirror file at all yet
    _mirror_holds("a")
    skipped, cursor = _tick(inst, cursor)
    assert isinstance(skipped, dg.SkipReason) and json.loads(cursor) == {}
    settings.mirror_path("a").unlink()  # the operator starts over
    (later,), _ = _tick(inst, cursor)
    assert later.partition_key == "a" and later.run_key != first.run_key


def test_a_held_mirror_waits_for_the_next_tick(inst):
    inst.add_dynamic_partitions(connections_partitions.name, ["a"])
    path = settings.mirror_path("a")
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen(  # a process holding the mirror read-write (a cron `xz sync`, a notebook)
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(path)], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        result, cursor = _tick(inst)
    finally:
        holder.kill()
        holder.wait()
    assert isinstance(result, dg.SkipReason) and result.skip_message.startswith("a mirror is busy")
    assert cursor is None  # nothing decided: the next tick looks again


def test_a_run_in_flight_waits_for_the_next_tick(inst):
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    inst.add_dynamic_partitions(connections_partitions.name, ["a"])
    inst.add_run(DagsterRun(job_name="mirror", run_id="r1", status=DagsterRunStatus.STARTED))
    result, cursor = _tick(inst)
    assert isinstance(result, dg.SkipReason) and "a run is in flight" in result.skip_message
    assert cursor is None
