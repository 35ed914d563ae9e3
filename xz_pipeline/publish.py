"""The analysts' snapshot: `$XZ_HOME/analytics.duckdb`, republished after runs, atomically.

Scheduled runs always publish; targeted runs (sensors) publish at most once a minute, so a burst of
webhooks does not copy the file a hundred times.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.resources import MirrorResource

MIN_INTERVAL = timedelta(minutes=1)


class SnapshotConfig(dg.Config):
    force: bool = False


def build_snapshot_asset(deps: list[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    deps = [key for d in deps for key in d.keys]

    @dg.asset(
        name="analytics_snapshot",
        group_name="analytics",
        kinds={"duckdb"},
        deps=deps,
        pool="duckdb",
        description="A consistent copy of the mirror at $XZ_HOME/analytics.duckdb for notebooks and BI tools "
        "(open it read-only; it never blocks the pipeline).",
    )
    def analytics_snapshot(
        context: dg.AssetExecutionContext, config: SnapshotConfig, mirror: MirrorResource
    ) -> dg.MaterializeResult:
        target = settings.snapshot_path()
        scheduled = context.run.tags.get("dagster/schedule_name") is not None
        if target.exists() and not (config.force or scheduled):
            age = datetime.now(UTC) - datetime.fromtimestamp(target.stat().st_mtime, UTC)
            if age < MIN_INTERVAL:
                return dg.MaterializeResult(
                    metadata={
                        "published": False,
                        "reason": f"published {age.seconds}s ago",
                        "path": str(target),
                    }
                )
        store = mirror.store()
        if not store.path.exists():
            return dg.MaterializeResult(
                metadata={"published": False, "reason": "no mirror yet", "path": str(target)}
            )
        store.publish_snapshot(target)
        return dg.MaterializeResult(
            metadata={"published": True, "path": str(target), "bytes": target.stat().st_size}
        )

    return analytics_snapshot
