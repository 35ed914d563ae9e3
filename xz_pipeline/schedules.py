"""Schedules and the connections sensor: incremental mirror every 15 minutes, a daily full sweep.

Connections come from settings (environment or connections file); the sensor keeps the dynamic
partitions in step with them, and each schedule asks for one run per connection.
"""

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.resources import connections_partitions

INCREMENTAL_CRON = settings.mirror_cron()
FULL_SWEEP_CRON = settings.full_sweep_cron()


def build_schedules(mirror_job, extract_assets: list[dg.AssetsDefinition]) -> list[dg.ScheduleDefinition]:
    full_config = {"ops": {a.op.name: {"config": {"full_sweep": True}} for a in extract_assets}}

    def _requests(context, run_config: dict | None, kind: str):
        keys = context.instance.get_dynamic_partitions(connections_partitions.name)
        if not keys:
            return dg.SkipReason("no connection registered yet (the connections sensor adds them)")
        stamp = context.scheduled_execution_time.isoformat()
        return [
            dg.RunRequest(partition_key=k, run_key=f"{kind}:{k}:{stamp}", run_config=run_config or {})
            for k in keys
        ]

    @dg.schedule(
        name="mirror_incremental",
        job=mirror_job,
        cron_schedule=INCREMENTAL_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Incremental mirror of every connection (XZ_MIRROR_CRON, default every 15 minutes).",
    )
    def mirror_incremental(context: dg.ScheduleEvaluationContext):
        return _requests(context, None, "incremental")

    @dg.schedule(
        name="mirror_full_sweep",
        job=mirror_job,
        cron_schedule=FULL_SWEEP_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily full sweep (XZ_FULL_SWEEP_CRON): catches balances, due dates and deletions that "
        "modified-since reads cannot see.",
    )
    def mirror_full_sweep(context: dg.ScheduleEvaluationContext):
        return _requests(context, full_config, "full")

    return [mirror_incremental, mirror_full_sweep]


@dg.sensor(
    name="connections_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for every configured connection (environment or $XZ_HOME/connections.toml).",
)
def connections_sensor(context: dg.SensorEvaluationContext):
    configured = [c.name for c in settings.load_connections()]
    known = set(context.instance.get_dynamic_partitions(connections_partitions.name))
    new = [name for name in configured if name not in known]
    if not new:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"{len(configured)} connection(s), none new"))
    return dg.SensorResult(dynamic_partitions_requests=[connections_partitions.build_add_request(new)])
