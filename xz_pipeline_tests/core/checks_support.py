"""Test support for the data-quality checks: a mirror typed from the demo world, built once.

The mirror is written the way the extract assets write it (`core.mirror.write_entity`) from the
emulators' own dumps, without HTTP: a few seconds instead of a full sandbox sync. Each test copies
the built file, so corrupting rows in one test never leaks into another.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from xz_pipeline.core.checks import Outcome, run_checks
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.store import Store
from xz_pipeline.sandbox.world import generate
from xz_pipeline.sandbox.xero import XeroEmulator
from xz_pipeline.sandbox.zoho import ZohoEmulator
from xz_pipeline.xero import checks as xero_checks
from xz_pipeline.xero import tables as xero_tables
from xz_pipeline.zoho import checks as zoho_checks
from xz_pipeline.zoho import tables as zoho_tables

CONNECTION = "demo"
SEED = 11
FETCHED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
VENDOR_RULES = {"xero": xero_checks.RULES, "zoho": zoho_checks.RULES}


@dataclass
class DemoPayloads:
    """What the emulators serve for the demo world, per vendor and entity."""

    xero: dict[str, list[dict]] = field(default_factory=dict)
    zoho: dict[str, list[dict]] = field(default_factory=dict)


def demo_payloads(seed: int = SEED) -> DemoPayloads:
    world = generate(seed=seed, size="demo")
    xero, zoho = XeroEmulator(), ZohoEmulator()
    tenant, org = xero.seed_world(world), zoho.seed_world(world)
    out = DemoPayloads()
    for spec in xero_tables.ENTITIES:
        out.xero[spec.entity] = xero.dump(tenant, spec.entity)
    for spec in zoho_tables.ENTITIES:
        out.zoho[spec.entity] = zoho.dump(org, spec.entity)
    return out


def write_mirror(path: Path, payloads: DemoPayloads, connection: str = CONNECTION) -> Store:
    store = Store(path)
    for specs, by_entity in ((xero_tables.ENTITIES, payloads.xero), (zoho_tables.ENTITIES, payloads.zoho)):
        for spec in specs:
            write_entity(store, spec, connection=connection, payloads=by_entity[spec.entity],
                         fetched_at=FETCHED_AT, run_id="extract-run", full=True)  # fmt: skip
    return store


def copy_mirror(built: Path, target_dir: Path) -> Store:
    target = target_dir / "mirror.duckdb"
    shutil.copyfile(built, target)
    return Store(target)


def check_asset(
    store: Store,
    vendor: str,
    asset: str,
    *,
    run_id: str = "check-run",
    connection: str = CONNECTION,
    now=None,
) -> dict[str, Outcome]:
    """Run one asset's rules as its asset check does; outcomes by rule name."""
    spec, rules = VENDOR_RULES[vendor][asset]
    outcomes = run_checks(store, rules, connection=connection, vendor=vendor, entity=spec.entity,
                          run_id=run_id, now=now)  # fmt: skip
    return {o.rule.name: o for o in outcomes}


def quarantine_rows(store: Store, **where) -> list[dict]:
    clauses = " and ".join(f"{k} = ?" for k in where) or "true"
    with store.read() as con:
        frame = con.execute(
            f"select * from meta.quarantine where {clauses} order by quarantined_at, rule, record_id",
            list(where.values()),
        ).df()
    return frame.to_dict("records")


def execute(store: Store, sql: str, params=()) -> None:
    with store.write() as con:
        con.execute(sql, list(params))


def scalar(store: Store, sql: str, params=()):
    with store.read() as con:
        return con.execute(sql, list(params)).fetchone()[0]
