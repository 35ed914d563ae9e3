"""A schedule's RunRequest executed in this process, as the run worker the queue would launch runs it:
its assets and checks, its tags (the shard's partition range among them), its run config. The bench and
the tests use it; a deployment's daemon launches the same requests through the run queue."""

from __future__ import annotations

import dagster as dg


def execute_request(
    defs: dg.Definitions, request: dg.RunRequest, instance: dg.DagsterInstance, job_name: str = "mirror"
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(request.job_name or job_name)
    if request.asset_selection is not None:
        job = job.get_subset(
            asset_selection=set(request.asset_selection),
            asset_check_selection=set(request.asset_check_keys or []),
        )
    return job.execute_in_process(
        run_config=request.run_config or None,
        instance=instance,
        partition_key=request.partition_key,
        tags=dict(request.tags),
        raise_on_error=False,
    )
