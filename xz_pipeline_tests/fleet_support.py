"""The fleet tests' shared step: register connections, tick the incremental schedule, get its batches."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from xz_pipeline.core.resources import connections_partitions
from xz_pipeline.definitions import defs


def shard_requests(instance: dg.DagsterInstance, names: list[str]) -> list[dg.RunRequest]:
    """The RunRequests one `mirror_incremental` tick asks for, `names` registered as partitions first."""
    instance.add_dynamic_partitions(connections_partitions.name, names)
    ctx = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime.now(UTC),
        repository_def=defs.get_repository_def(),
    )
    return list(defs.resolve_schedule_def("mirror_incremental").evaluate_tick(ctx).run_requests)
