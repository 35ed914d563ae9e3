"""Dagster resources every vendor shares: the mirror, and the partitions of connections."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

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
    """The DuckDB mirror: one file per connection, `<path>/<connection>.duckdb`, each with its own writers'
    lock, so connections are written in parallel. `path` defaults to $XZ_HOME/mirror, read when used."""

    path: str = ""
    lock_timeout: float = 30.0

    def directory(self) -> Path:
        return Path(self.path) if self.path else settings.mirror_dir()

    def store(self, connection: str) -> Store:
        """The mirror of one connection (its file need not exist yet: the first write creates it)."""
        name = settings.check_connection_name(connection)
        return Store(self.directory() / f"{name}.duckdb", lock_timeout=self.lock_timeout)

    def connections(self) -> list[str]:
        """The connections with a mirror file (`settings.mirror_connections`): the unpartitioned steps (views,
        reconcile, insights, the snapshot) loop over these, one file at a time."""
        return settings.mirror_connections(self.directory())

    def stores(self) -> list[Store]:
        """The mirror of each connection that has one (see `connections`)."""
        return [self.store(name) for name in self.connections()]

    def step_session(self, context, connection: str) -> AbstractContextManager:
        """One DuckDB connection for a step of a targeted run (a sensor's: its few records take a second).
        A scheduled run's step may take minutes (a large reconcile, an apply paced by the rate limits):
        it opens the mirror per read and per write, so other runs' writers can go in between."""
        targeted = context.run.tags.get(TRIGGER_TAG) is not None
        return self.store(connection).session() if targeted else nullcontext()
