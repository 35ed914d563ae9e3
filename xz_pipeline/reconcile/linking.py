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

import numpy as np
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


SALES_COLUMNS = ["connection", "invoice_id", "number", "type", "reference", "status", "customer_id", "currency", "total",
                 "issue_date"]  # fmt: skip


def _sales(invoices: pd.DataFrame) -> pd.DataFrame:
    """Sales invoices, with only the columns linking reads (a million wide rows are slow to copy)."""
    inv = invoices[[c for c in SALES_COLUMNS if c in invoices]]
    sale = invoices["type"].fillna("sale").to_numpy() == "sale"
    return inv if sale.all() else inv[sale]


def _equal_keys(inv_keys: pd.Series, deal_keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (invoice, deal) wherever an invoice key equals a deal key ("" and missing never match)."""
    a = (inv_keys.notna() & (inv_keys != "")).to_numpy()
    b = (deal_keys.notna() & (deal_keys != "")).to_numpy()
    inv_at, deal_at = np.flatnonzero(a), np.flatnonzero(b)
    index = pd.Index(deal_keys.to_numpy()[b])
    if index.is_unique:  # a hash lookup, no merge: fast at a million rows
        pos = index.get_indexer(inv_keys.to_numpy()[a])
        hit = pos >= 0
        return inv_at[hit], deal_at[pos[hit]]
    left = pd.DataFrame({"k": inv_keys.to_numpy()[a], "i": inv_at})
    right = pd.DataFrame({"k": deal_keys.to_numpy()[b], "d": deal_at})
    m = left.merge(right, on="k")
    return m["i"].to_numpy(), m["d"].to_numpy()


def _explicit_in(connection: str, inv: pd.DataFrame, deals: pd.DataFrame) -> pd.DataFrame:
    """Explicit candidates within one connection: each pair once, with its strongest evidence."""
    ref = inv["reference"].fillna("").astype(str).str.strip()
    is_deal_ref = (ref.str[:5].str.casefold() == "deal-").to_numpy()
    deal_ref = ref.where(is_deal_ref, "").str[5:].str.strip()
    name_ref = ref.where(~is_deal_ref, "").str.casefold()
    found = [
        (_equal_keys(inv["invoice_id"], deals["books_invoice_id"]), "deal_invoice_id"),
        (_equal_keys(deal_ref, deals["deal_id"]), "reference_deal_id"),
        (_equal_keys(inv["number"], deals["books_invoice_number"]), "deal_invoice_number"),
        (_equal_keys(name_ref, _norm(deals["name"])), "reference_deal_name"),
    ]
    methods = list(EXPLICIT_METHODS)
    i = np.concatenate([f[0][0] for f in found])
    d = np.concatenate([f[0][1] for f in found])
    rank = np.concatenate([np.full(len(f[0][0]), methods.index(f[1])) for f in found])
    order = np.lexsort((rank, d, i))  # by pair, strongest evidence first
    i, d, rank = i[order], d[order], rank[order]
    first = np.ones(len(i), dtype=bool)
    first[1:] = (i[1:] != i[:-1]) | (d[1:] != d[:-1])
    i, d, rank = i[first], d[first], rank[first]
    method = np.array(methods, dtype=object)[rank]
    return pd.DataFrame({
        "connection": connection,
        "invoice_id": inv["invoice_id"].to_numpy()[i],
        "deal_id": deals["deal_id"].to_numpy()[d],
        "method": method,
        "confidence": pd.Series(method).map(EXPLICIT_METHODS).to_numpy(),
    })  # fmt: skip


def explicit_candidates(invoices: pd.DataFrame, deals: pd.DataFrame) -> pd.DataFrame:
    """Every (invoice, deal) pair some explicit evidence names, with its strongest method and confidence."""
    inv = _sales(invoices)[["connection", "invoice_id", "number", "reference"]]
    deals = deals[["connection", "deal_id", "name", "books_invoice_id", "books_invoice_number"]]
    inv_conns, deal_conns = set(pd.unique(inv["connection"])), set(pd.unique(deals["connection"]))
    one = len(inv_conns) == 1 and len(deal_conns) == 1
    found = [
        _explicit_in(
            connection,
            (inv if one else inv[inv["connection"] == connection]).reset_index(drop=True),
            (deals if one else deals[deals["connection"] == connection]).reset_index(drop=True),
        )
        for connection in sorted(inv_conns & deal_conns)
    ]
    found = [f for f in found if not f.empty]
    if not found:
        return pd.DataFrame(columns=INVOICE_LINK_COLUMNS)
    return pd.concat(found, ignore_index=True)[INVOICE_LINK_COLUMNS]


def _unique_in(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Whether each row's (connection, column) value occurs only once in `frame`."""
    codes = pd.factorize(frame[column])[0]
    if len(pd.unique(frame["connection"])) > 1:
        codes = pd.factorize(
            pd.Series(codes).astype(str) + "\x1f" + frame["connection"].astype(str).to_numpy()
        )[0]
    return np.bincount(codes)[codes] == 1


def assign_one_to_one(candidates: pd.DataFrame, score: str = "confidence") -> pd.DataFrame:
    """A one-to-one subset of (invoice, deal) candidates: mutual best pairs first, round after round.

    A pair is accepted when it is the best remaining candidate of both its invoice and its deal;
    their other candidates then drop out and the next round begins. Ties break by ids, so the
    result never depends on row order.
    """
    if candidates.empty:
        return candidates.copy()
    # pairs whose invoice and deal have no other candidate need no contest
    alone = _unique_in(candidates, "invoice_id") & _unique_in(candidates, "deal_id")
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


def _linked(frame: pd.DataFrame, links: pd.DataFrame, column: str) -> np.ndarray:
    """Whether each row's (connection, `column`) appears in `links`."""
    if links.empty or frame.empty:
        return np.zeros(len(frame), dtype=bool)
    if len(set(pd.unique(frame["connection"])) | set(pd.unique(links["connection"]))) == 1:
        return frame[column].isin(links[column]).to_numpy()
    keys = links[["connection", column]].drop_duplicates().assign(_x=True)
    return (
        frame[["connection", column]]
        .merge(keys, how="left", on=["connection", column])["_x"]
        .notna()
        .to_numpy()
    )


def link_deals_to_invoices(
    invoices: pd.DataFrame, deals: pd.DataFrame, customer_links: pd.DataFrame
) -> pd.DataFrame:
    """`recon.invoice_links`: one row per linked (invoice, deal), explicit links before inferred ones.

    `invoices` = canonical.books_invoices rows, `deals` = canonical.crm_deals rows, `customer_links`
    = recon.customer_links rows (all connections; nothing is linked across a connection).
    """
    explicit = assign_one_to_one(explicit_candidates(invoices, deals))
    # only what explicit evidence left unlinked is inferred (and the join stays small)
    inv = _sales(invoices)
    inferred = inferred_candidates(
        inv[~_linked(inv, explicit, "invoice_id")],
        deals[~_linked(deals, explicit, "deal_id")],
        customer_links,
    )
    parts = [p for p in (explicit, assign_one_to_one(inferred)) if not p.empty]
    if not parts:
        return pd.DataFrame(columns=INVOICE_LINK_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["confidence"] = out["confidence"].astype("float64")
    return out[INVOICE_LINK_COLUMNS]
