"""Dagster resources every vendor shares: the mirror, and the partitions of connections."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

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
    _run_session: ExitStack | None = PrivateAttr(default=None)

    @contextmanager
    def yield_for_execution(self, context) -> Iterator[MirrorResource]:
        """A targeted run of one connection (a sensor's realtime run: its steps execute one after another in
        the run's process) holds its connection's mirror open from its first step to its last, instead of
        opening the file in every step: some 30 openings, each reading the catalogue and checkpointing on
        close (0.7-1.7 s of a run of a few seconds). The writers' lock is held as long: other processes wait
        their turn (bounded, logged), as they would for the steps one by one."""
        run = context.dagster_run
        tags = run.tags if run is not None else {}
        connection = tags.get("dagster/partition")
        if run is None or tags.get(TRIGGER_TAG) is None or not connection or run.job_name != "realtime":
            yield self
            return
        with ExitStack() as stack:
            stack.enter_context(self.store(connection).session())
            self._run_session = stack
            try:
                yield self
            finally:
                self._run_session = None

    def end_run_session(self) -> None:
        """Close the run's held mirror early (the snapshot copies the file under its lock, outside a session)."""
        if self._run_session is not None:
            self._run_session.close()
            self._run_session = None

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
