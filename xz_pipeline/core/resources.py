"""Dagster resources every vendor shares: the mirror, and the partitions of connections."""

from __future__ import annotations

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.store import Store

# One partition per connection (one books organisation paired with one CRM org).
connections_partitions = dg.DynamicPartitionsDefinition(name="connection")


class MirrorResource(dg.ConfigurableResource):
    """The DuckDB mirror; `path` defaults to $XZ_HOME/mirror.duckdb, read when the run starts."""

    path: str = ""
    lock_timeout: float = 30.0

    def store(self) -> Store:
        return Store(self.path or settings.mirror_path(), lock_timeout=self.lock_timeout)
