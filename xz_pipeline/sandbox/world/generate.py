"""Generating a world from a seed, and its ground-truth manifest as JSON."""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

from xz_pipeline.sandbox.profiles import Profile, get_profile
from xz_pipeline.sandbox.world.build import build
from xz_pipeline.sandbox.world.model import DISCREPANCY_KINDS, SIZES, World


def generate(
    seed: int = 7,
    size: str = "demo",
    index: int = 0,
    profile: str | Profile | None = None,
    habits: str = "realistic",
) -> World:
    """The world for (seed, size, index, profile): the same arguments always give the same records.

    `profile` (sandbox.profiles; default "full") shapes the organisations: their currencies, CRM edition,
    custom fields and names. Its records fit it, and it injects only the discrepancy kinds that can
    exist there (`undetectable` in the manifest says why the others cannot).

    `habits` (world.habits.MODES): "realistic" payment habits (drift, size, terms, month-end, disputes,
    noise) or "constant" (every invoice paid by an independent draw of one mixture: pure noise).

    `index` is the connection number: worlds of different indexes are different organisations
    whose ids never collide.

    Every created/updated/payment/invoice time is before `as_of`; only plans (due dates, open
    deals' closing dates) may lie after it. The manifest lists each root cause once: the invoices
    of a customer missing in the CRM are not also listed as invoice_without_deal, nor the won
    deals of a customer missing in the books as deal_not_invoiced. Invoices VOIDED or DELETED
    take part in nothing. `world.truth` also lists prospects (CRM-only accounts that never
    bought: hard_case "prospect"), which no books contact should be matched to.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    # Millions of small records and no reference cycles: the cyclic collector would only rescan
    # the growing heap again and again (a third of the time at large size).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return build(seed, size, SIZES[size], index, get_profile(profile), habits)
    finally:
        if was_enabled:
            gc.enable()


def timed_generate(size: str, seed: int = 7, profile: str | None = None) -> tuple[World, float]:
    """The world and the seconds it took to generate (for bench/bench_sandbox.py)."""
    start = time.perf_counter()
    world = generate(seed, size, profile=profile)
    return world, time.perf_counter() - start


def record_counts(world: World) -> dict[str, int]:
    """Records per entity on each side, injections per kind, hard cases per label."""
    b, c = world.books, world.crm
    counts = {
        "books.accounts": len(b.accounts),
        "books.tax_rates": len(b.tax_rates),
        "books.items": len(b.items),
        "books.contacts": len(b.contacts),
        "books.invoices": sum(1 for i in b.invoices if i.type == "ACCREC"),
        "books.bills": sum(1 for i in b.invoices if i.type == "ACCPAY"),
        "books.invoice_lines": sum(len(i.lines) for i in b.invoices),
        "books.payments": len(b.payments),
        "books.credit_notes": len(b.credit_notes),
        "crm.users": len(c.users),
        "crm.accounts": len(c.accounts),
        "crm.contacts": len(c.contacts),
        "crm.products": len(c.products),
        "crm.deals": len(c.deals),
        "crm.invoices": len(c.invoices),
        "truth.customers": len(world.truth),
    }
    for kind in DISCREPANCY_KINDS:
        counts[f"manifest.{kind}"] = sum(1 for m in world.manifest if m.kind == kind)
    for a in world.anomalies:
        counts[f"anomalies.{a.kind}"] = counts.get(f"anomalies.{a.kind}", 0) + 1
    for t in world.truth:
        if t.hard_case:
            key = f"hard_case.{t.hard_case}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def generation_stats(size: str, seed: int = 7) -> dict[str, object]:
    """Seconds to generate `size` and the record counts (what the benchmark prints)."""
    world, seconds = timed_generate(size, seed)
    return {"size": size, "seed": seed, "seconds": round(seconds, 3), "counts": record_counts(world)}


# The books+CRM pairings each discrepancy kind applies to. The QBO emulator renders the same world (a Xero
# draft is a QBO Estimate, a credit allocation a zero-total payment), so each injected disagreement
# exists in QuickBooks exactly as in Xero. The Salesforce emulator renders the same accounts, contacts and
# deals (as opportunities), but Salesforce keeps no invoices: a kind that needs CRM invoices
# (reconcile.rules reads `crm_invoices` only for invoice_missing_in_crm) cannot exist in a *+salesforce pair.
PAIRS = ("xero+zoho", "quickbooks+zoho", "xero+salesforce", "quickbooks+salesforce")
NEEDS_CRM_INVOICES = {
    "invoice_missing_in_crm": "Salesforce has no CRM invoices (Opportunities stand for deals; no standard "
    "invoice object): there is no CRM invoice to be missing",
}


NEEDS_XERO_PROJECTS = {  # reconcile/projects.py reads Xero Projects; QuickBooks keeps none the pipeline reads
    "time_not_invoiced": "chargeable project time comes from Xero Projects: QuickBooks has no projects here",
    "project_over_budget": "project estimates come from Xero Projects: QuickBooks has no projects here",
}


def pair_exclusions() -> dict[str, dict[str, str]]:
    """{kind: {pair: why the kind cannot exist there}} for the pairs `pairs` leaves out."""
    out = {
        kind: {p: why for p in PAIRS if p.endswith("+salesforce")} for kind, why in NEEDS_CRM_INVOICES.items()
    }
    for kind, why in NEEDS_XERO_PROJECTS.items():
        out.setdefault(kind, {}).update({p: why for p in PAIRS if p.startswith("quickbooks+")})
    return out


def manifest_document(world: World, id_maps: dict[str, dict[str, str]] | None = None) -> dict[str, object]:
    """The manifest as plain JSON-able data: injections, customer truth and counts, and which
    discrepancy kinds the profile lets exist (`detectable`) or not (`undetectable`, with the reason).

    `id_maps` is {vendor: {world id: vendor id}} for vendors whose ids are not the world's (QuickBooks
    numbers its records per company); a vendor not listed knows the records by their world ids (Xero,
    Zoho; Salesforce ids are listed under "salesforce"). `pairs` names, per discrepancy kind, the books+CRM
    pairings it applies to; `pairs_undetectable` says, per kind, why it cannot exist in the pairings left out."""
    undetectable = get_profile(world.profile).undetectable()
    return {
        "id_maps": {vendor: dict(sorted(m.items())) for vendor, m in sorted((id_maps or {}).items())},
        "pairs": {
            kind: [p for p in PAIRS if p not in pair_exclusions().get(kind, {})] for kind in DISCREPANCY_KINDS
        },
        "pairs_undetectable": pair_exclusions(),
        "seed": world.seed,
        "size": world.size,
        "profile": world.profile,
        "detectable": [k for k in DISCREPANCY_KINDS if k not in undetectable],
        "undetectable": undetectable,
        "index": world.index,
        "as_of": world.as_of.isoformat(),
        "books_tenant_id": world.books.tenant_id,
        "crm_org_id": world.crm.org_id,
        "counts": record_counts(world),
        "manifest": [
            {
                "kind": m.kind,
                "books_id": m.books_id,
                "crm_id": m.crm_id,
                "field": m.field,
                "books_value": m.books_value,
                "crm_value": m.crm_value,
                "note": m.note,
            }
            for m in world.manifest
        ],
        # billing anomalies (insights), not reconciliation discrepancies: duplicate_invoice and the hard
        # negatives (negative: true) that only look like one; books_id the later invoice, related_id the earlier
        "anomalies": [
            {
                "kind": a.kind,
                "books_id": a.books_id,
                "related_id": a.related_id,
                "negative": a.negative,
                "note": a.note,
            }
            for a in world.anomalies
        ],
        "truth": [
            {
                "customer_key": t.customer_key,
                "books_ids": t.books_ids,
                "crm_ids": t.crm_ids,
                "hard_case": t.hard_case,
            }
            for t in world.truth
        ],
    }


def write_manifest(world: World, path: str | Path, id_maps: dict[str, dict[str, str]] | None = None) -> Path:
    """Write the ground truth as JSON; the same world (and id maps) always gives byte-identical files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(manifest_document(world, id_maps), ensure_ascii=False, indent=1, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":  # python -m xz_pipeline.sandbox.world.generate [size ...]
    import sys

    for name in sys.argv[1:] or ["demo"]:
        stats = generation_stats(name)
        print(json.dumps(stats, indent=1))
