"""The analysts' snapshot: `$XZ_HOME/snapshot.duckdb`, republished after runs, atomically.

Every run publishes (`xz sync`, `xz demo`, scheduled and manual runs), so the snapshot always matches what the
command just reported; only targeted runs (sensors, tagged `xz/trigger`) publish at most once a minute, and not
while another targeted run of their connection waits to start (it will publish), so a burst of webhooks does not
copy the file a hundred times nor hold back the corrections queued behind it. The file is not named `analytics`: its catalog would
collide with the `analytics` schema and make `analytics.customer_360` ambiguous.

The mirror is one file per connection; the snapshot is one file for all of them: each connection's tables are
copied in (read-only, under that connection's lock) and the `canonical.*` and `analytics.*` views are installed
over the union, so analysts' queries name the same tables and views as on one connection's mirror.
"""

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb

from xz_pipeline import plots, settings
from xz_pipeline.core.resources import TRIGGER_TAG, MirrorResource
from xz_pipeline.core.store import Store, publish_snapshot
from xz_pipeline.reconcile.analytics import install_analytics
from xz_pipeline.views import install_canonical

MIN_INTERVAL = timedelta(minutes=1)


class SnapshotConfig(dg.Config):
    force: bool = False


def publish(
    mirror: MirrorResource,
    vendor_views: Sequence[Mapping[str, str | Sequence[str]]],
    run_id: str | None = None,
) -> int:
    """Publish the snapshot of every connection's mirror (recording each one's plot point first); returns how
    many connections it holds."""
    names = mirror.connections()
    for name in names:
        plots.record(mirror.store(name), run_id)  # the plots' point of this publish: in the snapshot too

    def views(con: duckdb.DuckDBPyConnection) -> None:
        install_canonical(con, vendor_views)
        if plots.exists(con, "recon", "discrepancies"):
            install_analytics(con)

    publish_snapshot([mirror.store(name) for name in names], settings.snapshot_path(), views)
    return len(names)


def _next_targeted_run(context) -> str | None:
    """The id of a targeted run of the same connection queued behind this one: under a stream of webhooks
    the last run of the stream publishes, and no correction waits 2-4 s behind a copy about to be redone."""
    connection = context.run.tags.get("dagster/partition")
    if not connection:
        return None
    queued = context.instance.get_run_records(
        dg.RunsFilter(
            tags={TRIGGER_TAG: context.run.tags[TRIGGER_TAG], "dagster/partition": connection},
            statuses=[dg.DagsterRunStatus.QUEUED],
        ),
        limit=1,
    )
    return queued[0].dagster_run.run_id if queued else None


def build_snapshot_asset(
    deps: list[dg.AssetsDefinition], vendor_views: Sequence[Mapping[str, str | Sequence[str]]]
) -> dg.AssetsDefinition:
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
        mirror.end_run_session()  # the last step: the copy takes each file under its lock, outside a session
        target = settings.snapshot_path()
        targeted = TRIGGER_TAG in context.run.tags
        if target.exists() and targeted and not config.force:
            age = datetime.now(UTC) - datetime.fromtimestamp(target.stat().st_mtime, UTC)
            waiting = _next_targeted_run(context)
            reason = (
                f"published {age.seconds}s ago"
                if age < MIN_INTERVAL
                else f"run {waiting[:8]} of this connection waits behind this one and publishes"
                if waiting
                else None
            )
            if reason:
                return dg.MaterializeResult(
                    metadata={"published": False, "reason": reason, "path": str(target)}
                )
        if not mirror.connections():
            return dg.MaterializeResult(
                metadata={"published": False, "reason": "no mirror yet", "path": str(target)}
            )
        started = time.monotonic()
        count = publish(mirror, vendor_views, context.run_id)
        return dg.MaterializeResult(
            metadata={
                "published": True,
                "path": str(target),
                "bytes": target.stat().st_size,
                "connections": count,
                "seconds": round(time.monotonic() - started, 2),
                **plots.metadata(Store(target)),  # Markdown plots the UI shows on the asset's page
            }
        )

    return analytics_snapshot
