"""Schedules and the connections sensor: incremental mirror every 15 minutes, a daily full sweep.

Connections come from settings (environment or connections file); the sensor keeps the dynamic
partitions in step with them, in one call. Each schedule asks for one run per shard of connections
(`fleet/shards.py`), not one per connection: a run over the shard's partition range, whose extract
steps mirror each connection in turn, so Dagster's launch cost (~2.7 s a run on two cores) is paid once a
batch. The unpartitioned steps of the mirror job (views, reconcile, insights, the snapshot) run once in
each batch; write-back steps, one connection's each, are left to runs of one connection.
"""

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.resources import connections_partitions
from xz_pipeline.fleet.shards import Shard, shards

INCREMENTAL_CRON = settings.mirror_cron()
FULL_SWEEP_CRON = settings.full_sweep_cron()

# A batch runs at most this long (run monitoring cancels it past it), so a targeted run waiting for its
# shard waits a bounded time; batches go after targeted runs in the queue (lower priority).
BATCH_MAX_RUNTIME = 14 * 60
BATCH_PRIORITY = "-1"


def batch_selection(
    repository_def: dg.RepositoryDefinition | None, mirror_job, extract_keys: set[dg.AssetKey]
) -> tuple[list[dg.AssetKey], list[dg.AssetCheckKey]]:
    """What a batched run materialises: the whole mirror job — its partitioned assets (extract, write-back)
    loop their range of connections — with the checks of its unpartitioned assets (they cover every
    connection at once). The partitioned assets' checks run in single-connection runs: in a batch, write-back
    `apply` enforces its guards itself."""
    if repository_def is None:
        return sorted(extract_keys, key=lambda k: k.to_user_string()), []
    graph = repository_def.asset_graph
    in_job = mirror_job.selection.resolve(graph)
    unpartitioned = {k for k in in_job if graph.get(k).partitions_def is None}
    keys = sorted(set(in_job) | extract_keys, key=lambda k: k.to_user_string())
    checks = sorted(
        (c for c in graph.asset_check_keys if c.asset_key in unpartitioned),
        key=lambda c: c.to_user_string(),
    )
    return keys, checks


def batch_request(
    shard: Shard, kind: str, stamp: str, keys, checks, run_config: dict | None
) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"{kind}:shard-{shard.label}:{stamp}",
        asset_selection=keys,
        asset_check_keys=checks,
        run_config=run_config or {},
        tags={
            **shard.tags(),
            "xz/batch": kind,
            "xz/connections": str(len(shard.connections)),
            "dagster/max_runtime": str(BATCH_MAX_RUNTIME),
            "dagster/priority": BATCH_PRIORITY,
        },
    )


def build_schedules(mirror_job, extract_assets: list[dg.AssetsDefinition]) -> list[dg.ScheduleDefinition]:
    full_config = {"ops": {a.op.name: {"config": {"full_sweep": True}} for a in extract_assets}}
    extract_keys = {k for a in extract_assets for k in a.keys}

    def _requests(context: dg.ScheduleEvaluationContext, run_config: dict | None, kind: str):
        registered = context.instance.get_dynamic_partitions(connections_partitions.name)  # one read
        if not registered:
            return dg.SkipReason("no connection registered yet (the connections sensor adds them)")
        keys, checks = batch_selection(context.repository_def, mirror_job, extract_keys)
        stamp = context.scheduled_execution_time.isoformat()
        return [batch_request(s, kind, stamp, keys, checks, run_config) for s in shards(registered)]

    @dg.schedule(
        name="mirror_incremental",
        job=mirror_job,
        cron_schedule=INCREMENTAL_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Incremental mirror of every connection (XZ_MIRROR_CRON, default every 15 minutes), "
        "one run per shard of XZ_SHARD_SIZE connections.",
    )
    def mirror_incremental(context: dg.ScheduleEvaluationContext):
        return _requests(context, None, "incremental")

    @dg.schedule(
        name="mirror_full_sweep",
        job=mirror_job,
        cron_schedule=FULL_SWEEP_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily full sweep (XZ_FULL_SWEEP_CRON): catches balances, due dates and deletions that "
        "modified-since reads cannot see; one run per shard of connections.",
    )
    def mirror_full_sweep(context: dg.ScheduleEvaluationContext):
        return _requests(context, full_config, "full")

    return [mirror_incremental, mirror_full_sweep]


@dg.sensor(
    name="connections_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for every configured connection (environment or $XZ_HOME/connections.toml), "
    "all new ones in one request.",
)
def connections_sensor(context: dg.SensorEvaluationContext):
    configured = [c.name for c in settings.load_connections()]
    known = set(context.instance.get_dynamic_partitions(connections_partitions.name))
    new = [name for name in configured if name not in known]
    if not new:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"{len(configured)} connection(s), none new"))
    return dg.SensorResult(dynamic_partitions_requests=[connections_partitions.build_add_request(new)])
