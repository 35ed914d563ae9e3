"""Deal ↔ invoice linking: which CRM deal each books sales invoice was raised for.

Evidence, strongest first:
1. explicit — the deal stores the invoice (`books_invoice_id`, then `books_invoice_number`), or the
   invoice's reference names the deal ("DEAL-<deal id>", or the deal's name);
2. inferred — the invoice's customer is linked to the deal's account (`recon.customer_links`,
   status 'linked'), the currencies agree, the deal's amount is within `AMOUNT_TOLERANCE` of the
   invoice total (tax included: deals are often rounded to whole units) and its close date within
   `DATE_WINDOW_DAYS` of the issue date.

Each level is a one-to-one assignment (no invoice used twice, no deal twice): mutual best candidates
are accepted first, then the next round among what is left, so a strong link never loses its invoice
to a weaker one. Pure functions over canonical-shaped frames; amounts are integer cents (see
`persist.read_canonical`).
"""

from __future__ import annotations

import pandas as pd

INVOICE_LINK_COLUMNS = ["connection", "invoice_id", "deal_id", "method", "confidence"]

# (method, confidence): explicit evidence, in the order it is trusted.
EXPLICIT_METHODS = {
    "deal_invoice_id": 1.0,
    "reference_deal_id": 1.0,
    "deal_invoice_number": 0.98,
    "reference_deal_name": 0.95,
}
AMOUNT_TOLERANCE_CENTS = 50  # a deal rounded to whole units is off by at most 0.50 ...
AMOUNT_TOLERANCE_SHARE = 0.005  # ... or 0.5% of the total, whichever is larger (for inferred links)
DATE_WINDOW_DAYS = 45  # a deal closes a few days to weeks before its invoice is issued
INFERRED_BASE = 0.9  # the best an inferred link can score; lowered by amount and date distance


def _norm(text: pd.Series) -> pd.Series:
    return text.fillna("").astype(str).str.strip().str.casefold()


def _sales(invoices: pd.DataFrame) -> pd.DataFrame:
    return invoices[invoices["type"].fillna("sale") == "sale"]


def explicit_candidates(invoices: pd.DataFrame, deals: pd.DataFrame) -> pd.DataFrame:
    """Every (invoice, deal) pair some explicit evidence names, with its method and confidence."""
    inv = _sales(invoices)[["connection", "invoice_id", "number", "reference"]].copy()
    dl = deals[["connection", "deal_id", "name", "books_invoice_id", "books_invoice_number"]].copy()
    inv["_number"] = _norm(inv["number"])
    inv["_ref"] = _norm(inv["reference"])
    dl["_name"] = _norm(dl["name"])
    dl["_inv_number"] = _norm(dl["books_invoice_number"])
    dl["_ref_id"] = "deal-" + dl["deal_id"].astype(str).str.casefold()
    dl["_inv_id"] = dl["books_invoice_id"].fillna("").astype(str)
    found = []
    pairs = (
        ("deal_invoice_id", "invoice_id", "_inv_id"),
        ("reference_deal_id", "_ref", "_ref_id"),
        ("deal_invoice_number", "_number", "_inv_number"),
        ("reference_deal_name", "_ref", "_name"),
    )
    for method, left, right in pairs:
        lhs = inv[inv[left].astype(str) != ""][list(dict.fromkeys(["connection", "invoice_id", left]))]
        rhs = dl[dl[right] != ""][["connection", "deal_id", right]]
        m = lhs.merge(rhs, left_on=["connection", left], right_on=["connection", right])
        if not m.empty:
            found.append(m[["connection", "invoice_id", "deal_id"]].assign(method=method))
    if not found:
        return pd.DataFrame(columns=INVOICE_LINK_COLUMNS)
    out = pd.concat(found, ignore_index=True)
    out["confidence"] = out["method"].map(EXPLICIT_METHODS)
    # one row per pair: its strongest evidence
    out = out.sort_values("confidence", ascending=False, kind="stable")
    return out.drop_duplicates(["connection", "invoice_id", "deal_id"])[INVOICE_LINK_COLUMNS]


def assign_one_to_one(candidates: pd.DataFrame, score: str = "confidence") -> pd.DataFrame:
    """A one-to-one subset of (invoice, deal) candidates: mutual best pairs first, round after round.

    A pair is accepted when it is the best remaining candidate of both its invoice and its deal;
    their other candidates then drop out and the next round begins. Ties break by ids, so the
    result never depends on row order.
    """
    if candidates.empty:
        return candidates.copy()
    # pairs whose invoice and deal have no other candidate need no contest
    alone = ~candidates.duplicated(["connection", "invoice_id"], keep=False) & ~candidates.duplicated(
        ["connection", "deal_id"], keep=False
    )
    accepted = [candidates[alone]]
    pool = candidates[~alone].sort_values(
        [score, "connection", "invoice_id", "deal_id"], ascending=[False, True, True, True], kind="stable"
    )
    while not pool.empty:
        best_inv = pool.drop_duplicates(["connection", "invoice_id"])
        best_deal = pool.drop_duplicates(["connection", "deal_id"])
        mutual = best_inv.merge(best_deal[["connection", "invoice_id", "deal_id"]], how="inner")
        accepted.append(mutual)
        used_inv = mutual[["connection", "invoice_id"]].assign(_u=True)
        used_deal = mutual[["connection", "deal_id"]].assign(_v=True)
        pool = pool.merge(used_inv, how="left", on=["connection", "invoice_id"]).merge(
            used_deal, how="left", on=["connection", "deal_id"]
        )
        pool = pool[pool["_u"].isna() & pool["_v"].isna()].drop(columns=["_u", "_v"])
    return pd.concat([a for a in accepted if not a.empty] or [candidates.iloc[:0]], ignore_index=True)


def inferred_candidates(
    invoices: pd.DataFrame, deals: pd.DataFrame, customer_links: pd.DataFrame
) -> pd.DataFrame:
    """Won deals and live sales invoices of linked customers whose amount, currency and dates agree."""
    linked = customer_links[customer_links["status"] == "linked"][["connection", "books_id", "crm_id"]]
    inv = _sales(invoices)
    inv = inv[~inv["status"].isin(["void", "deleted"])][
        ["connection", "invoice_id", "customer_id", "currency", "total", "issue_date"]
    ]
    dl = deals[deals["stage"] == "won"][
        ["connection", "deal_id", "account_id", "currency", "amount", "close_date"]
    ]
    if inv.empty or dl.empty or linked.empty:
        return pd.DataFrame(columns=INVOICE_LINK_COLUMNS)
    inv = inv.merge(linked, left_on=["connection", "customer_id"], right_on=["connection", "books_id"])
    m = inv.merge(
        dl,
        left_on=["connection", "crm_id", "currency"],
        right_on=["connection", "account_id", "currency"],
        suffixes=("", "_deal"),
    )
    if m.empty:
        return pd.DataFrame(columns=INVOICE_LINK_COLUMNS)
    total = m["total"].astype("float64")
    diff = (m["amount"].astype("float64") - total).abs()
    allowed = (total.abs() * AMOUNT_TOLERANCE_SHARE).clip(lower=AMOUNT_TOLERANCE_CENTS)
    days = (pd.to_datetime(m["issue_date"]) - pd.to_datetime(m["close_date"])).dt.days.abs()
    ok = (diff <= allowed) & days.le(DATE_WINDOW_DAYS)
    m = m[ok.fillna(False)].copy()
    if m.empty:
        return pd.DataFrame(columns=INVOICE_LINK_COLUMNS)
    closeness = 1 - (diff[m.index] / allowed[m.index]) * 0.5 - (days[m.index] / DATE_WINDOW_DAYS) * 0.5
    m["confidence"] = (INFERRED_BASE * (0.5 + 0.5 * closeness)).round(4)
    m["method"] = "amount_date"
    return m.drop_duplicates(["connection", "invoice_id", "deal_id"])[INVOICE_LINK_COLUMNS]


def link_deals_to_invoices(
    invoices: pd.DataFrame, deals: pd.DataFrame, customer_links: pd.DataFrame
) -> pd.DataFrame:
    """`recon.invoice_links`: one row per linked (invoice, deal), explicit links before inferred ones.

    `invoices` = canonical.books_invoices rows, `deals` = canonical.crm_deals rows, `customer_links`
    = recon.customer_links rows (all connections; nothing is linked across a connection).
    """
    explicit = assign_one_to_one(explicit_candidates(invoices, deals))
    # only what explicit evidence left unlinked is inferred (and the join stays small)
    rest_inv = invoices.merge(
        explicit[["connection", "invoice_id"]].assign(_x=True), how="left", on=["connection", "invoice_id"]
    )
    rest_deals = deals.merge(
        explicit[["connection", "deal_id"]].assign(_x=True), how="left", on=["connection", "deal_id"]
    )
    inferred = inferred_candidates(
        rest_inv[rest_inv["_x"].isna()], rest_deals[rest_deals["_x"].isna()], customer_links
    )
    parts = [p for p in (explicit, assign_one_to_one(inferred)) if not p.empty]
    if not parts:
        return pd.DataFrame(columns=INVOICE_LINK_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["confidence"] = out["confidence"].astype("float64")
    return out[INVOICE_LINK_COLUMNS].sort_values(["connection", "invoice_id"]).reset_index(drop=True)
