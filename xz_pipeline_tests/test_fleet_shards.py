"""Shards are fixed and disjoint: a connection keeps its shard as others are registered after it."""

from __future__ import annotations

import pytest

from xz_pipeline.fleet.shards import SHARD_TAG, shard_of, shard_size, shard_tag, shards


def test_a_connection_keeps_its_shard_as_others_are_added():
    first = [f"org-{i}" for i in range(23)]
    before = {c: s.label for s in shards(first, 5) for c in s.connections}
    grown = first + [f"late-{i}" for i in range(40)]
    after = {c: s.label for s in shards(grown, 5) for c in s.connections}
    assert all(after[c] == before[c] for c in first)
    # disjoint and complete, every shard at most the size, in registration order
    parts = shards(grown, 5)
    assert [c for s in parts for c in s.connections] == grown
    assert all(len(s.connections) <= 5 for s in parts)
    assert len({s.label for s in parts}) == len(parts) == 13
    for c in grown:
        assert shard_of(c, grown, 5).label == after[c]
        assert c in shard_of(c, grown, 5).connections
    assert shard_of("unknown", grown, 5) is None and shard_tag("unknown", grown) == {}


def test_shard_tags_name_the_range_and_the_shard(monkeypatch):
    monkeypatch.setenv("XZ_SHARD_SIZE", "2")
    (a, b) = shards(["acme", "globex", "initech"])
    assert a.tags() == {
        SHARD_TAG: "0000",
        "dagster/asset_partition_range_start": "acme",
        "dagster/asset_partition_range_end": "globex",
    }
    assert b.connections == ("initech",) and shard_tag("initech", ["acme", "globex", "initech"]) == {
        SHARD_TAG: "0001"
    }


@pytest.mark.parametrize("raw", ["0", "-3", "many"])
def test_a_bad_shard_size_says_what_is_wrong(raw):
    with pytest.raises(ValueError, match="XZ_SHARD_SIZE"):
        shard_size({"XZ_SHARD_SIZE": raw})
