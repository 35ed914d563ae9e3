"""Writing one fetched entity into the mirror: landing, typed current state, history, cursor.

Vendor assets fetch; this module decides how fetched payloads become rows, the same way for every
entity of every vendor. A payload that cannot be typed goes to `meta.quarantine` with the field and
the reason, and its raw payload still lands: nothing fetched is ever lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from xz_pipeline.core.store import MergeCounts, Store, payload_hash


@dataclass(frozen=True)
class EntityTable:
    """Where an entity lands: `schema.table` with its DDL columns and key, and how to type a payload."""

    vendor: str
    entity: str
    schema: str
    table: str
    columns: str
    key: Sequence[str]
    record_id: Callable[[dict], str]
    modified: Callable[[dict], datetime | None]
    to_row: Callable[[dict], dict]


@dataclass(frozen=True)
class MirrorResult:
    counts: MergeCounts
    landed: int
    quarantined: int
    cursor: datetime | None
    total_rows: int


def write_entity(
    store: Store,
    spec: EntityTable,
    *,
    connection: str,
    payloads: list[dict],
    fetched_at: datetime,
    run_id: str | None,
) -> MirrorResult:
    """Land, type, merge and advance the cursor in one transaction."""
    rows, quarantine, landing = [], [], []
    for payload in payloads:
        record_id = str(spec.record_id(payload) or "")
        try:
            modified = spec.modified(payload)
        except (TypeError, ValueError):
            modified = None
        landing.append((record_id, modified, payload))
        try:
            row = spec.to_row(payload)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            quarantine.append(
                (record_id, type(exc).__name__, f"{spec.entity} {record_id or '?'}: {exc}", payload)
            )
            continue
        row.update(connection=connection, fetched_at=fetched_at, payload_hash=payload_hash(payload))
        rows.append(row)

    with store.write() as con:
        store.ensure_base(con)
        store.ensure_table(con, spec.schema, spec.table, spec.columns, list(spec.key))
        landed = store.append_landing(
            con,
            connection=connection,
            vendor=spec.vendor,
            entity=spec.entity,
            rows=landing,
            fetched_at=fetched_at,
            run_id=run_id,
        )
        for record_id, rule, reason, payload in quarantine:
            con.execute(
                "insert into meta.quarantine values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    connection,
                    spec.vendor,
                    spec.entity,
                    record_id,
                    rule,
                    reason,
                    payload_hash(payload),
                    run_id,
                    fetched_at,
                ],
            )
        frame = pd.DataFrame(rows)
        counts = store.merge_current(
            con, spec.schema, spec.table, frame, list(spec.key), valid_from=fetched_at
        )
        previous = store.get_cursor(con, connection, spec.vendor, spec.entity)
        seen = [m for _, m, _ in landing if m is not None]
        cursor = max([*seen, *([previous] if previous else [])], default=None)
        store.set_cursor(con, connection, spec.vendor, spec.entity, cursor)
        total = con.execute(
            f"select count(*) from {spec.schema}.{spec.table} where connection = ?", [connection]
        ).fetchone()[0]
    return MirrorResult(
        counts=counts, landed=landed, quarantined=len(quarantine), cursor=cursor, total_rows=total
    )


def read_cursor(store: Store, connection: str, vendor: str, entity: str) -> datetime | None:
    """The entity's sync cursor, or None before the first run (or before the mirror exists)."""
    if not store.path.exists():
        return None
    with store.write() as con:
        store.ensure_base(con)
        return store.get_cursor(con, connection, vendor, entity)
