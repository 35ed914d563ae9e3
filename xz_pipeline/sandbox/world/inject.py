"""Which invoices carry a deliberate disagreement, chosen on the ledger's arrays.

Each kind gets its own invoices (no invoice carries two), all of customers present on both sides
and of live invoices (not VOIDED or DELETED), so each disagreement has exactly one explanation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xz_pipeline.sandbox.world.customers import Customer
from xz_pipeline.sandbox.world.ledger import AUTHORISED, Ledger

SHARES = {
    "invoice_without_deal": 0.01,
    "amount_mismatch": 0.01,
    "currency_mismatch": 0.005,
    "payment_status_stale": 0.01,
    "invoice_missing_in_crm": 0.01,
}
MINIMUM = 3
DEAL_NOT_INVOICED_SHARE = 0.01


@dataclass
class InvoiceInjections:
    """Invoice indices per kind (boolean masks over the ledger)."""

    without_deal: np.ndarray
    amount: np.ndarray
    currency: np.ndarray
    stale: np.ndarray
    missing_crm_invoice: np.ndarray

    def count(self) -> dict[str, int]:
        return {
            "invoice_without_deal": int(self.without_deal.sum()),
            "amount_mismatch": int(self.amount.sum()),
            "currency_mismatch": int(self.currency.sum()),
            "payment_status_stale": int(self.stale.sum()),
            "invoice_missing_in_crm": int(self.missing_crm_invoice.sum()),
        }


def _pick(
    rng: np.random.Generator, candidates: np.ndarray, share: float, base: int, skip: bool = False
) -> np.ndarray:
    if skip:
        return candidates[:0]
    k = min(len(candidates), max(MINIMUM, round(share * base)))
    return rng.choice(candidates, size=k, replace=False) if k else candidates[:0]


def choose(
    rng: np.random.Generator, ledger: Ledger, customers: list[Customer], skip: frozenset[str] = frozenset()
) -> InvoiceInjections:
    """The invoices of each kind; kinds in `skip` (those the org's profile cannot show) get none."""
    n = ledger.n
    linked = np.array([c.linked for c in customers], dtype=bool)[ledger.cust]
    crm_invoicing = np.array([c.crm_invoicing for c in customers], dtype=bool)[ledger.cust]
    eligible = ledger.live & linked & ~ledger.forced
    base = int(eligible.sum())
    taken = np.zeros(n, dtype=bool)
    masks = {}
    for kind in ("invoice_without_deal", "amount_mismatch", "currency_mismatch"):
        idx = _pick(rng, np.flatnonzero(eligible & ~taken), SHARES[kind], base, kind in skip)
        mask = np.zeros(n, dtype=bool)
        mask[idx] = True
        taken |= mask
        masks[kind] = mask
    # stale: a PAID invoice whose deal still says Unpaid (customers without CRM invoices, so the
    # deal is the only CRM record that speaks of the payment)
    stale_pool = np.flatnonzero(eligible & ~taken & ledger.paid_by_payment & ~crm_invoicing)
    idx = _pick(rng, stale_pool, SHARES["payment_status_stale"], base, "payment_status_stale" in skip)
    stale = np.zeros(n, dtype=bool)
    stale[idx] = True
    taken |= stale
    # missing CRM invoice: an issued one (a draft is not missing anywhere yet), at most one per customer,
    # who keeps at least one other CRM invoice
    live_crm = ledger.live & crm_invoicing & linked
    per_customer = np.bincount(ledger.cust[live_crm], minlength=len(customers))
    issued = ledger.status == AUTHORISED
    pool = np.flatnonzero(eligible & ~taken & issued & crm_invoicing & (per_customer[ledger.cust] >= 2))
    pool = rng.permutation(pool)
    _, first = np.unique(ledger.cust[pool], return_index=True)
    pool = np.sort(pool[first])
    idx = _pick(
        rng, pool, SHARES["invoice_missing_in_crm"], int(live_crm.sum()), "invoice_missing_in_crm" in skip
    )
    missing = np.zeros(n, dtype=bool)
    missing[idx] = True
    return InvoiceInjections(
        masks["invoice_without_deal"], masks["amount_mismatch"], masks["currency_mismatch"], stale, missing
    )
