"""The analysts' snapshot: `$XZ_HOME/snapshot.duckdb`, republished after runs, atomically.

Every run publishes (`xz sync`, `xz demo`, scheduled and manual runs), so the snapshot always matches what the
command just reported; only targeted runs (sensors, tagged `xz/trigger`) publish at most once a minute, so a
burst of webhooks does not copy the file a hundred times. The file is not named `analytics`: its catalog would
collide with the `analytics` schema and make `analytics.customer_360` ambiguous.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from xz_pipeline import plots, settings
from xz_pipeline.core.resources import TRIGGER_TAG, MirrorResource

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
        description="A consistent copy of the mirror at $XZ_HOME/snapshot.duckdb for notebooks and BI tools "
        "(open it read-only; it never blocks the pipeline).",
    )
    def analytics_snapshot(
        context: dg.AssetExecutionContext, config: SnapshotConfig, mirror: MirrorResource
    ) -> dg.MaterializeResult:
        target = settings.snapshot_path()
        targeted = TRIGGER_TAG in context.run.tags
        if target.exists() and targeted and not config.force:
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
        plots.record(store, context.run_id)  # the plots' point of this publish: in the snapshot too
        store.publish_snapshot(target)
        return dg.MaterializeResult(
            metadata={
                "published": True,
                "path": str(target),
                "bytes": target.stat().st_size,
                **plots.metadata(store),  # Markdown plots the UI shows on the asset's page
            }
        )

    return analytics_snapshot
