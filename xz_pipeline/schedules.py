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


def paired_vendors(shard: Shard, connections: dict[str, settings.Connection]) -> set[str] | None:
    """The vendors the shard's connections pair (books and crm); None when one is not configured (then
    every vendor's assets run, and the vendor's resource says what is missing)."""
    used: set[str] = set()
    for name in shard.connections:
        conn = connections.get(name)
        if conn is None:
            return None
        used.update((conn.books, conn.crm))
    return used


def for_shard(keys: list[dg.AssetKey], run_config: dict | None, vendor_of: dict[dg.AssetKey, str],
              ops: dict[str, dg.AssetKey], used: set[str] | None) -> tuple[list[dg.AssetKey], dict | None]:  # fmt: skip
    """The batch's selection and run config without the extract steps of vendors no connection of the shard
    pairs: in a Xero+Zoho shard a QuickBooks step only says "nothing to do" for each connection, at a
    materialization event and a metadata write each and a step's own events (~0.4 s a connection a run
    over the 16 such steps)."""
    if used is None:
        return keys, run_config
    kept = [k for k in keys if vendor_of.get(k) is None or vendor_of[k] in used]
    if not run_config or "ops" not in run_config:
        return kept, run_config
    wanted = set(kept)
    config_ops = {op: v for op, v in run_config["ops"].items() if ops.get(op) is None or ops[op] in wanted}
    return kept, {**run_config, "ops": config_ops}


def _configured() -> dict[str, settings.Connection]:
    try:
        return {c.name: c for c in settings.load_connections()}
    except settings.SettingsError:
        return {}  # a broken connections file: every shard runs every vendor's steps, which say why they fail


def build_schedules(mirror_job, extract_assets: list[dg.AssetsDefinition]) -> list[dg.ScheduleDefinition]:
    full_config = {"ops": {a.op.name: {"config": {"full_sweep": True}} for a in extract_assets}}
    extract_keys = {k for a in extract_assets for k in a.keys}
    vendor_of = {k: a.group_names_by_key[k] for a in extract_assets for k in a.keys}
    ops = {a.op.name: a.key for a in extract_assets}

    def _requests(context: dg.ScheduleEvaluationContext, run_config: dict | None, kind: str):
        registered = context.instance.get_dynamic_partitions(connections_partitions.name)  # one read
        if not registered:
            return dg.SkipReason("no connection registered yet (the connections sensor adds them)")
        keys, checks = batch_selection(context.repository_def, mirror_job, extract_keys)
        stamp = context.scheduled_execution_time.isoformat()
        configured = _configured()
        out = []
        for s in shards(registered):
            shard_keys, shard_config = for_shard(
                keys, run_config, vendor_of, ops, paired_vendors(s, configured)
            )
            out.append(batch_request(s, kind, stamp, shard_keys, checks, shard_config))
        return out

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
