"""Guards that stand between a plan and the systems it would change.

- No ERROR accounting invariant may fail in the mirror (the reconcile stage's blocking checks, run
  again here so `xz apply` outside Dagster is held by them too).
- Mass change: a plan that touches more than `max_change_share` of a table's records (once at least
  `min_guarded_records` are touched) or more than `max_change_count` records is held until a person
  approves exactly that plan: its fingerprint (a hash of its pending change ids) in `approve`
  (configuration, `XZ_WRITEBACK_APPROVE`) or `xz apply --approve`. A different plan needs a new approval.
- Posted books documents (AUTHORISED, PAID: canonical open/paid) are never edited; their status is read
  fresh from the books just before the call, not trusted from the mirror.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from xz_pipeline.core.store import Store
from xz_pipeline.reconcile.invariants import check_invariants
from xz_pipeline.writeback import ledger
from xz_pipeline.writeback.policies import Policies

LOCKED = ("open", "paid")  # posted documents: AUTHORISED and PAID in Xero's words
TABLES = {
    ("books", "customer"): "books_customers",
    ("books", "invoice"): "books_invoices",
    ("crm", "account"): "crm_accounts",
    ("crm", "contact"): "crm_contacts",
    ("crm", "deal"): "crm_deals",
    ("crm", "invoice"): "crm_invoices",
}


@dataclass
class MassChange:
    fingerprint: str
    blocked: bool
    approved: bool
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (records changed, records)
    reasons: list[str] = field(default_factory=list)


def fingerprint(pending: pd.DataFrame) -> str:
    return ledger.digest(*sorted(pending["change_id"])) if len(pending) else ""


def mass_change(
    store: Store, connection: str, pending: pd.DataFrame, policies: Policies, approve: bool = False
) -> MassChange:
    """Is this plan too big to apply without a person's approval?"""
    touched: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in pending.itertuples():
        touched[(row.system, row.entity)].add(row.record or f"new:{row.ref}")
    result = MassChange(fingerprint(pending), False, False)
    with store.read() as con:
        for (system, entity), records in sorted(touched.items()):
            view = TABLES.get((system, entity))
            total = (
                con.execute(
                    f"select count(*) from canonical.{view} where connection = ?", [connection]
                ).fetchone()[0]
                if view
                else 0
            )
            name = view or f"{system}.{entity}"
            result.counts[name] = (len(records), int(total))
            # records with no mirrored table (CRM tasks write-back creates) are held by the count alone
            share = len(records) / total if total else (1.0 if view else 0.0)
            if len(records) > policies.max_change_count:
                result.reasons.append(
                    f"{name}: {len(records)} records changed (limit {policies.max_change_count})"
                )
            elif len(records) >= policies.min_guarded_records and share > policies.max_change_share:
                result.reasons.append(
                    f"{name}: {len(records)} of {total} records changed ({share:.0%}; limit {policies.max_change_share:.0%})"
                )
    result.approved = approve or policies.approve in ("all", result.fingerprint)
    result.blocked = bool(result.reasons) and not result.approved
    return result


def invariant_failures(store: Store) -> list[str]:
    """Names of the ERROR invariants the mirror fails now (empty when write-back may proceed)."""
    return [
        f"{o.rule.name} ({len(o.reasons)} records)"
        for o in check_invariants(store)
        if not o.passed and o.rule.blocking
    ]


def locked(status_by_id: dict[str, str], ids: list[str]) -> set[str]:
    """Which of these books documents may not be edited: posted ones (open, paid), voided or deleted
    ones, and any whose status could not be read (never edit blind). Only drafts are editable."""
    return {i for i in ids if status_by_id.get(i) != "draft"}
