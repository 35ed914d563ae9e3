"""Fixed, disjoint shards of connections: the batches the schedules mirror in one run each.

A shard is a run of consecutive connections in the order they were registered (the dynamic partitions'
own order), `shard_size()` of them: a connection keeps its shard as others are added after it, and a
shard is a partition key range, so Dagster runs it as one run (`BackfillPolicy.single_run()` on the
extract assets). Each run carries `SHARD_TAG`; dagster.yaml limits that tag to one run per value, so
shards run side by side but never the same shard twice, and a targeted run of a connection carrying its
shard's tag waits for the batch that holds the connection.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

SHARD_TAG = "xz/shard"
DEFAULT_SHARD_SIZE = 50  # 1,000 connections: 20 runs a sweep instead of 1,000 (~2.7 s of launch each)


def shard_size(environ: os._Environ[str] | dict[str, str] | None = None) -> int:
    """`XZ_SHARD_SIZE`: connections per batched run (default 50). Change it only with no run in flight:
    it moves connections between shards."""
    raw = (environ if environ is not None else os.environ).get("XZ_SHARD_SIZE", "").strip()
    if not raw:
        return DEFAULT_SHARD_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise ValueError(f"XZ_SHARD_SIZE must be a whole number of connections, got {raw!r}") from None
    if size < 1:
        raise ValueError(f"XZ_SHARD_SIZE must be at least 1, got {size}")
    return size


@dataclass(frozen=True)
class Shard:
    index: int
    connections: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.index:04d}"  # sorts as a string in the UI's tag filter

    @property
    def first(self) -> str:
        return self.connections[0]

    @property
    def last(self) -> str:
        return self.connections[-1]

    def tags(self) -> dict[str, str]:
        """The run's tags: its shard (limited to one run a value) and its partition key range."""
        return {
            SHARD_TAG: self.label,
            ASSET_PARTITION_RANGE_START_TAG: self.first,
            ASSET_PARTITION_RANGE_END_TAG: self.last,
        }


def shards(registered: Sequence[str], size: int | None = None) -> list[Shard]:
    """`registered`: every connection's partition key, in registration order (one read of the instance)."""
    size = size or shard_size()
    return [Shard(i // size, tuple(registered[i : i + size])) for i in range(0, len(registered), size)]


def shard_of(connection: str, registered: Sequence[str], size: int | None = None) -> Shard | None:
    """The shard that holds `connection`; None when it is not registered yet."""
    size = size or shard_size()
    try:
        position = list(registered).index(connection)
    except ValueError:
        return None
    start = position - position % size
    return Shard(position // size, tuple(registered[start : start + size]))


def shard_tag(connection: str, registered: Sequence[str]) -> dict[str, str]:
    """The tag that queues a run of one connection behind its shard's batch (empty when unregistered)."""
    shard = shard_of(connection, registered)
    return {SHARD_TAG: shard.label} if shard is not None else {}
