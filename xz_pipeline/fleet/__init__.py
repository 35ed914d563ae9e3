"""Running many connections: fixed shards of connections, one batched run per shard."""
