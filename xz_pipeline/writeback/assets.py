"""The write-back stage as Dagster assets: `writeback_plan` (nothing remote) and `writeback_apply`.

Both are partitioned by connection and take the `duckdb` pool. Writers reach the vendors through two
resource keys the Definitions wire (`books_writer`: xero.writer.XeroWriterResource, `crm_writer`:
zoho.writer.ZohoWriterResource), each with `.writer(connection)`; write-back names no vendor.
`writeback_guard` is a blocking check on the plan (ERROR invariants, the mass-change guard): when it
fails, `writeback_apply` does not run. Remote writes happen only when the run asks (`apply: true` in the
apply asset's config: `xz apply`, `xz sync --apply`, `xz demo`) or configuration allows it (`auto_apply`);
otherwise the apply step reports what it would do.

(No `from __future__ import annotations`: Dagster inspects the `context` annotation.)
"""

import warnings
from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg

from xz_pipeline.core.resources import APPROVE_TAG, MirrorResource, connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.core.sync import for_each_connection
from xz_pipeline.reconcile.invariants import INVARIANTS
from xz_pipeline.writeback import guards, ledger
from xz_pipeline.writeback.apply import ApplyReport, apply
from xz_pipeline.writeback.plan import World, build_plan, deals_to_invoice, plan_table
from xz_pipeline.writeback.policies import load_policies
from xz_pipeline.writeback.ports import Capabilities

BOOKS_WRITER, CRM_WRITER = "books_writer", "crm_writer"
PREVIEW_ROWS = 20


class ApplyConfig(dg.Config):
    """`apply`: write for real this run; `approve`: approve a plan the mass-change guard holds."""

    apply: bool = False
    approve: bool = False


def _preview(frame) -> str:
    cols = ["policy", "system", "entity", "op", "record", "ref", "field", "old", "new", "status", "error"]
    shown = frame[cols].head(PREVIEW_ROWS).fillna("").astype(str).map(lambda v: v.replace("|", "\\|")[:60])
    return shown.to_markdown(index=False) if len(shown) else "(nothing to change)"


def _ranged(**kwargs):
    """A write-back asset: partitioned by connection; a run over a range of connections (a shard's batch,
    `fleet/shards.py`) is one step that plans or applies each connection in turn (`for_each_connection`).
    Its guard check runs in single-connection runs; in a batch, `apply` enforces the same guards itself."""
    with warnings.catch_warnings():  # `backfill_policy` is beta in Dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.asset(
            partitions_def=connections_partitions, backfill_policy=dg.BackfillPolicy.single_run(), **kwargs
        )


@_ranged(
    name="writeback_plan",
    # insights: what payment_risk_to_crm and reminders_to_crm carry to the CRM
    deps=[dg.AssetKey("discrepancies"), dg.AssetKey("payment_risk"), dg.AssetKey("reminders")],
    group_name="writeback",
    kinds={"duckdb"},
    pool="duckdb",
    required_resource_keys={"mirror", CRM_WRITER},
    description="writeback.plan: one row per intended field change (system, record, field, old, new, policy, "
    "reason, source rows, idempotency key); computed from open discrepancies and links. Writes nothing remote "
    "(it reads the products of the won deals it will invoice).",
)
def writeback_plan(context: dg.AssetExecutionContext):
    yield from for_each_connection(context, _plan_one)


def _plan_one(context) -> dg.MaterializeResult:
    connection = context.partition_key
    store = context.resources.mirror.store(connection)
    policies = load_policies(connection)
    with context.resources.mirror.step_session(context, connection):
        world = plan_world(store, connection, policies)
        product_calls = read_products_to_invoice(
            store, connection, policies, context.resources, context.run_id, world
        )
        capabilities = crm_capabilities(store, connection, context.resources)
        # What the deals were chosen from is what the plan reads, unless products were mirrored meanwhile:
        # the canonical views are loaded once a step (0.3-0.9 s each time).
        counts = build_plan(
            store, connection, policies, capabilities=capabilities, world=world if not product_calls else None
        )
        pending = ledger.pending(store, connection)
    context.log.info(f"write-back plan for {connection}: {len(pending)} pending change(s); {counts}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(pending),
            "new": counts["new"],
            "obsolete": counts["obsolete"],
            "echoes_suppressed": counts["echoes"],
            "by_policy": dg.MetadataValue.json(
                {str(k): int(v) for k, v in pending["policy"].value_counts().items()} if len(pending) else {}
            ),
            "preview": dg.MetadataValue.md(_preview(pending)),
            "deal_product_calls": product_calls,
            "skipped_not_in_org": counts.get("skipped", 0),
            "crm_lacks": dg.MetadataValue.json(
                sorted({*capabilities.missing_fields.values(), *capabilities.unavailable.values()})
                if capabilities
                else []
            ),
        }
    )


def _resource(resources, key: str):
    """A wired writer resource from Dagster's resources (attributes) or a plain mapping (the CLI)."""
    return resources[key] if isinstance(resources, dict) else getattr(resources, key)


def crm_capabilities(store: Store, connection: str, resources) -> Capabilities | None:
    """What the connection's CRM org lacks (fields, endpoints), from its writer; None if it cannot say."""
    crm = _resource(resources, CRM_WRITER).writer(connection)
    try:
        ask = getattr(crm, "capabilities", None)
        return ask(store) if ask is not None else None
    finally:
        crm.close()


def plan_world(store: Store, connection: str, policies) -> World | None:
    """The mirror as the policies read it, when the products of deals to invoice must be chosen from it."""
    if not policies.active("won_deal_to_invoice"):
        return None
    with store.read() as con:
        return World(con, connection, datetime.now(UTC).date())


def read_products_to_invoice(
    store: Store, connection: str, policies, resources, run_id: str | None, world: World | None = None
) -> int:
    """Mirror the products of the won deals about to be invoiced (those of known customers and of
    customers the same plan creates in the books), so their invoices get product lines: one CRM call per
    such deal and version, instead of reading every won deal's related list while mirroring. Returns the
    calls spent."""
    if not policies.active("won_deal_to_invoice"):
        return 0
    with store.read() as con:
        deals = deals_to_invoice(con, connection, policies, world)
    if not deals:
        return 0
    crm = _resource(resources, CRM_WRITER).writer(connection)
    try:
        return crm.read_deal_products(store, deals, run_id)
    finally:
        crm.close()


@dg.asset_check(
    asset=writeback_plan,
    name="writeback_guard",
    blocking=True,
    description="No ERROR accounting invariant fails, and the plan is within the mass-change limits (or approved).",
)
def writeback_guard(context: dg.AssetCheckExecutionContext, mirror: MirrorResource) -> dg.AssetCheckResult:
    names = [context.partition_key] if context.has_partition_key else mirror.connections()
    stores = [mirror.store(name) for name in names if mirror.store(name).path.exists()]
    reasons, counts, fingerprints, approved_past = [], {}, {}, []
    if stores and not _passed_in_this_run(context, INVARIANT_CHECKS):
        reasons += guards.invariant_failures(stores)  # this run's connections' mirrors
    for store in stores:
        with mirror.step_session(context, store.path.stem):
            for connection in _connections(context, store):
                pending = ledger.pending(store, connection)
                approved = context.run.tags.get(APPROVE_TAG) == "1"  # `xz sync --apply --approve`
                mass = guards.mass_change(
                    store, connection, pending, load_policies(connection), approve=approved
                )
                counts[connection] = {k: list(v) for k, v in mass.counts.items()}
                fingerprints[connection] = mass.fingerprint
                if mass.blocked:
                    reasons += [f"{connection}: {r}" for r in mass.reasons]
                elif mass.reasons:  # over the limits, let past by an approval: said, not silent
                    approved_past += [f"{connection}: {r}" for r in mass.reasons]
    return dg.AssetCheckResult(
        passed=not reasons,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "reasons": dg.MetadataValue.json(reasons),
            "changed_records": dg.MetadataValue.json(counts),
            "fingerprints": dg.MetadataValue.json(fingerprints),
            "approved_past": dg.MetadataValue.json(approved_past),
        },
    )


INVARIANTS_ASSET = dg.AssetKey("discrepancies")
INVARIANT_CHECKS = [dg.AssetCheckKey(INVARIANTS_ASSET, rule.name) for rule in INVARIANTS if rule.blocking]


def _passed_in_this_run(context, keys: list[dg.AssetCheckKey]) -> bool:
    """These blocking checks already passed in this very run (a failing one stops the steps after it):
    reading the whole mirror again for them would only repeat them — about a second per targeted run."""
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return len(latest) == len(keys) and all(
        record.run_id == context.run.run_id and record.status.value == "SUCCEEDED"
        for record in latest.values()
    )


def _connections(context, store: Store) -> list[str]:
    """This run's connection (its partition); every planned one when the check runs unpartitioned."""
    if context.has_partition_key:
        return [context.partition_key]
    with store.read() as con:
        rows = ledger.plan_rows(con)
    return sorted(set(rows["connection"])) if len(rows) else []


@_ranged(
    name="writeback_apply",
    deps=[writeback_plan],
    group_name="writeback",
    kinds={"duckdb", "python"},
    pool="duckdb",
    required_resource_keys={"mirror", BOOKS_WRITER, CRM_WRITER},
    description="Applies the write-back plan in batches (Zoho ≤ 100, Xero ≤ 50), every call in writeback.ledger, "
    "then reads exactly the records written back into the mirror.",
)
def writeback_apply(context: dg.AssetExecutionContext, config: ApplyConfig):
    yield from for_each_connection(context, lambda one: _apply_one(one, config))


def _apply_one(context, config: ApplyConfig) -> dg.MaterializeResult:
    connection = context.partition_key
    store = context.resources.mirror.store(connection)
    policies = load_policies(connection)
    guarded = _passed_in_this_run(context, [dg.AssetCheckKey(writeback_plan.key, "writeback_guard")])
    with context.resources.mirror.step_session(context, connection):
        report = run_apply(store, connection, context.resources, policies, write=config.apply,
                           approve=config.approve, run_id=context.run_id, check_invariants=not guarded)  # fmt: skip
    context.log.info(report.summary())
    if report.blocked:
        raise dg.Failure(description=report.blocked, allow_retries=False)
    done = "would_apply" if report.dry_run else "applied"  # a dry run wrote nothing: it never says applied
    return dg.MaterializeResult(
        metadata={
            done: report.applied,
            "rejected": report.rejected,
            "refused": report.refused,
            "waiting": report.waiting,
            "found_by_lookup": report.found_by_lookup,
            "settled_calls": report.settled_calls,
            "dry_run": report.dry_run,
            "write_calls": dg.MetadataValue.json(report.write_calls),
            "api_calls": dg.MetadataValue.json(report.calls),
            "refreshed_records": report.refreshed,
            "errors": dg.MetadataValue.json(report.errors[:20]),
        }
    )


def run_apply(store: Store, connection: str, resources, policies, *, write: bool, approve: bool = False,
              run_id: str | None = None, check_invariants: bool = True,
              retry_rejected: bool = False) -> ApplyReport:  # fmt: skip
    """Apply through the wired writer resources (an object or mapping with `books_writer` and
    `crm_writer`); without `write` (and no `auto_apply`) only a dry run."""
    if not (write or policies.auto_apply):
        policies = replace(policies, dry_run=True)
    books = _resource(resources, BOOKS_WRITER).writer(connection)
    crm = _resource(resources, CRM_WRITER).writer(connection, trigger=policies.zoho_trigger)
    try:
        return apply(store, connection, books, crm, policies, approve=approve, run_id=run_id,
                     check_invariants=check_invariants, retry_rejected=retry_rejected)  # fmt: skip
    finally:
        books.close()
        crm.close()


# -- for the CLI (`xz plan`, `xz apply`) -------------------------------------------------------


def plan_connection(store: Store, connection: str, resources=None) -> str:
    """`xz plan`: compute the plan of one connection (nothing remote) and return it as a table; with the
    wired writer resources, changes the CRM org cannot take are shown skipped with the reason."""
    capabilities = crm_capabilities(store, connection, resources) if resources is not None else None
    build_plan(store, connection, load_policies(connection), capabilities=capabilities)
    return plan_table(store, connection)


def apply_connection(
    store: Store, connection: str, resources, *, approve: bool = False, retry_rejected: bool = False
) -> ApplyReport:
    """`xz apply [--approve] [--retry-rejected]`: plan again (the mirror may have moved), then apply for
    real, guards first. `resources` holds the wired writer resources (`definitions.defs.resources` will do)."""
    read_products_to_invoice(store, connection, load_policies(connection), resources, None)
    capabilities = crm_capabilities(store, connection, resources)
    build_plan(store, connection, load_policies(connection), capabilities=capabilities)
    return run_apply(store, connection, resources, load_policies(connection), write=True, approve=approve,
                     retry_rejected=retry_rejected)  # fmt: skip


WRITEBACK_ASSETS = [writeback_plan, writeback_apply]
WRITEBACK_CHECKS = [writeback_guard]
