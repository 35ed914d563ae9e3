"""`first_mirror_sensor`: a deployment that starts on an empty mirror mirrors at once.

The schedules read every 15 minutes, so `xz dev` (or `xz serve`) on a fresh XZ_HOME would show empty assets
until the first tick. This sensor asks for one `mirror` run per registered connection that the mirror holds
nothing of (no mirror file of its own, or no row of that connection in its `meta.cursors`).

A run key is skipped forever once the instance has seen it, so the key names the mirror's incarnation: the
file's identity (its inode, or `none` while there is no file) and when this sensor first found the connection
empty, kept in the cursor until the connection's data lands. A mirror deleted and started again is a new
incarnation and gets its first run; a first run that fails before writing anything is not asked for again
(the schedule's next tick reads instead), so a broken configuration does not launch a run every tick.
The sensor opens the connections' mirrors only while no run is in flight, read-only and briefly.
"""

from __future__ import annotations

import json
import time

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.resources import connections_partitions
from xz_pipeline.core.store import Store, StoreBusy

FIRST_TAG = "xz/first_mirror"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def mirror_identity(store: Store) -> str:
    """Which mirror file this is: `ino<inode>` (a file deleted and made again gets another), `none` without."""
    try:
        return f"ino{store.path.stat().st_ino}"
    except FileNotFoundError:
        return "none"


def mirrored_connections(store: Store) -> set[str]:
    """The connections the mirror holds a read of (a row in `meta.cursors`); empty without a mirror."""
    if not store.path.exists():
        return set()
    with store.read() as con:
        has = con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'meta' and table_name = 'cursors'"
        ).fetchall()[0][0]
        if not has:
            return set()
        return {row[0] for row in con.execute("select distinct connection from meta.cursors").fetchall()}


@dg.sensor(
    name="first_mirror_sensor",
    job_name="mirror",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches the first mirror run of each connection the mirror holds nothing of (a fresh "
    "deployment shows data at once instead of at the schedule's next tick).",
)
def first_mirror_sensor(context: dg.SensorEvaluationContext):
    connections = context.instance.get_dynamic_partitions(connections_partitions.name)
    if not connections:
        return dg.SkipReason("no connection registered yet (the connections sensor adds them)")
    if context.instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT), limit=1):
        return dg.SkipReason("a run is in flight: the mirror is looked at once none is")
    stores = {c: Store(settings.mirror_path(c), lock_timeout=1.0) for c in connections}
    try:
        mirrored = {c for c, store in stores.items() if c in mirrored_connections(store)}
    except StoreBusy as exc:
        return dg.SkipReason(f"a mirror is busy ({exc}); looked at again next tick")
    episodes: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    episodes = {c: e for c, e in episodes.items() if c not in mirrored and c in connections}
    requests = []
    for connection in sorted(set(connections) - mirrored):
        identity = mirror_identity(stores[connection])
        episode = episodes.setdefault(connection, f"{identity}@{time.time_ns() // 1000}")  # µs: unique
        requests.append(
            dg.RunRequest(
                partition_key=connection,
                run_key=f"first_mirror:{connection}:{episode}",
                tags={FIRST_TAG: episode},
            )
        )
    context.update_cursor(json.dumps(episodes, sort_keys=True))
    if not requests:
        return dg.SkipReason(f"the mirror holds {len(mirrored)} connection(s): nothing to start")
    return requests
