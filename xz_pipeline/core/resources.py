"""Dagster resources every vendor shares: the mirror, and the partitions of connections."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.store import Store

# One partition per connection (one books organisation paired with one CRM org).
connections_partitions = dg.DynamicPartitionsDefinition(name="connection")

# The tag the near-real-time sensors put on the targeted runs they request (its value: what triggered it).
TRIGGER_TAG = "xz/trigger"
# A run started with `--approve` (`xz sync --apply --approve`): its write-back guard lets a held plan through.
APPROVE_TAG = "xz/approve"


class MirrorResource(dg.ConfigurableResource):
    """The DuckDB mirror; `path` defaults to $XZ_HOME/mirror.duckdb, read when the run starts."""

    path: str = ""
    lock_timeout: float = 30.0

    def store(self) -> Store:
        return Store(self.path or settings.mirror_path(), lock_timeout=self.lock_timeout)

    def step_session(self, context) -> AbstractContextManager:
        """One DuckDB connection for a step of a targeted run (a sensor's: its few records take a second).
        A scheduled run's step may take minutes (a large reconcile, an apply paced by the rate limits):
        it opens the mirror per read and per write, so other runs' writers can go in between."""
        targeted = context.run.tags.get(TRIGGER_TAG) is not None
        return self.store().session() if targeted else nullcontext()
