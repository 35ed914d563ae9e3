"""Helpers the vendors' mapping tests share: a mirror built from emulator dumps, and the role views'
contract check (rows equal their source's, columns and types equal CANONICAL_VIEWS, no vendor names)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from xz_pipeline.core.canonical import CANONICAL_VIEWS, OPTIONAL_VIEWS
from xz_pipeline.core.mirror import EntityTable, write_entity
from xz_pipeline.core.store import Store

CONNECTION = "demo"
FETCHED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def mirror_from_dumps(path, entities: list[EntityTable], dumps: dict[str, list[dict]]) -> Store:
    store = Store(path)
    for spec in entities:
        if spec.entity in dumps:
            write_entity(store, spec, connection=CONNECTION, payloads=dumps[spec.entity], fetched_at=FETCHED,
                         run_id="test", full=True)  # fmt: skip
    return store


def sql_type(sql: str) -> str:
    return re.sub(r"\s", "", sql.upper()).replace("TIMESTAMPTZ", "TIMESTAMPWITHTIMEZONE")


def view_rows(store: Store, sql: str) -> list[dict]:
    with store.read() as con:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def assert_role_views(store: Store, made: dict[str, str], role: str, sources: dict[str, str]) -> None:
    assert set(made) == {v for v in CANONICAL_VIEWS if v.startswith(f"{role}_") and v not in OPTIONAL_VIEWS}
    assert set(made.values()) == {"source"}
    with store.read() as con:
        for view, source in sources.items():
            mirrored = con.execute(f"select count(*) from {source}").fetchone()[0]
            shown = con.execute(f"select count(*) from canonical.{view}").fetchone()[0]
            assert shown == mirrored > 0, view
            described = con.execute(f"describe canonical.{view}").fetchall()
            assert [(d[0], sql_type(d[1])) for d in described] == [
                (n, sql_type(t)) for n, t in CANONICAL_VIEWS[view]
            ]
            assert not [d[0] for d in described if "xero" in d[0] or "zoho" in d[0]]
