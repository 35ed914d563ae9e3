"""The billing anomalies other than duplicates: an amount far from the customer's usual, credit beyond an
invoice's total, and a won deal billed far from its amount where reconciliation says nothing.

Each rule takes canonical frames (amounts as floats in the document's currency) and returns rows of
(connection, books_id, related_id, score, reason); `related_id` is None where nothing else is involved.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from xz_pipeline.insights.duplicates import LIVE, money

COLUMNS = ["connection", "books_id", "related_id", "score", "reason"]

# amount_outlier: robust z-score of log(total) against the customer's own invoices (Iglewicz & Hoaglin's
# modified z = 0.6745 (x - median) / MAD, outliers beyond 3.5), and a factor of 3 from the median so a
# customer whose amounts barely vary does not flag an invoice that is merely 40 % larger.
MIN_HISTORY = 12
Z_LIMIT = 3.5
FACTOR = 3.0
# won_deal_invoice_differs: what a won deal's invoice bills net of credit, against the deal's amount
DEAL_SHARE = 0.10
DEAL_MINIMUM = 1.0
RECON_KINDS = ("amount_mismatch", "currency_mismatch")  # what reconciliation already reports of a pair
NUMBER_TOKEN = re.compile(r"[A-Za-z]{1,6}-?\d+")


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=COLUMNS)


def _sales(invoices: pd.DataFrame) -> pd.DataFrame:
    inv = invoices[(invoices["type"].fillna("sale") == "sale") & invoices["status"].isin(LIVE)].copy()
    inv["total"] = pd.to_numeric(inv["total"], errors="coerce")
    return inv


def amount_outliers(invoices: pd.DataFrame) -> pd.DataFrame:
    """Invoices far from their customer's usual amount (customers with MIN_HISTORY invoices or more)."""
    inv = _sales(invoices)
    inv = inv[inv["total"] > 0]
    keys = ["connection", "customer_id", "currency"]
    inv = inv[inv.groupby(keys)["invoice_id"].transform("size") >= MIN_HISTORY]
    if inv.empty:
        return _empty()
    x = np.log(inv["total"])
    med = x.groupby([inv[k] for k in keys]).transform("median")
    mad = (x - med).abs().groupby([inv[k] for k in keys]).transform("median")
    z = (0.6745 * (x - med) / mad.where(mad > 0)).fillna(0.0)  # every amount alike: nothing stands out
    ratio = np.exp(x - med)
    hit = ((z.abs() > Z_LIMIT) & ((ratio >= FACTOR) | (ratio <= 1 / FACTOR))).to_numpy(dtype=bool)
    count = inv.groupby(keys)["invoice_id"].transform("size")
    out = inv.assign(z=z, ratio=ratio, usual=np.exp(med), n=count)[hit]
    rows = []
    for r in out.itertuples(index=False):
        who = r.customer_name if isinstance(r.customer_name, str) and r.customer_name else "the customer"
        size = f"{r.ratio:.1f} times" if r.ratio >= 1 else f"1/{1 / r.ratio:.0f} of"
        rows.append((r.connection, r.invoice_id, None, round(min(1.0, abs(r.z) / 10), 3),
                     f"{r.number}: {money(r.total)} {r.currency} is {size} {who}'s usual {money(r.usual)} "
                     f"(robust z {r.z:+.1f} over {r.n} invoices)"))  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def credit_beyond_invoice(
    invoices: pd.DataFrame, notes: pd.DataFrame, allocations: pd.DataFrame
) -> pd.DataFrame:
    """Credit allocated to an invoice beyond its total, or a credit note issued for an invoice (named in its
    reference) for more than that invoice's total."""
    inv = _sales(invoices)
    live_notes = notes[
        notes["status"].isin(("open", "paid")) & (notes["type"].fillna("sale") == "sale")
    ].copy()
    live_notes["total"] = pd.to_numeric(live_notes["total"], errors="coerce")
    rows = []
    alloc = allocations.merge(
        live_notes[["connection", "credit_note_id", "number"]], on=["connection", "credit_note_id"]
    )
    alloc = alloc.assign(amount=pd.to_numeric(alloc["amount"], errors="coerce"))
    over_ids: set[tuple[str, str]] = set()
    if not alloc.empty:
        per = (
            alloc.sort_values("date")
            .groupby(["connection", "invoice_id"])
            .agg(
                credited=("amount", "sum"),
                last=("credit_note_id", "last"),
                notes=("number", lambda s: ", ".join(map(str, s))),
            )
            .reset_index()
        )
        per = per.merge(inv, on=["connection", "invoice_id"])
        per = per[per["credited"] > per["total"] + 0.005]
        for r in per.itertuples(index=False):
            over_ids.add((r.connection, r.invoice_id))
            rows.append((r.connection, r.invoice_id, r.last, 1.0,
                         f"{r.number}: credit notes {r.notes} allocate {money(r.credited)} against its total of "
                         f"{money(r.total)} ({money(r.credited - r.total)} too much)"))  # fmt: skip
    named = live_notes.assign(token=live_notes["reference"].fillna("").str.findall(NUMBER_TOKEN)).explode(
        "token"
    )
    named = named[named["token"].notna()]
    if not named.empty and not inv.empty:
        hits = named.merge(inv, left_on=["connection", "customer_id", "token"],
                           right_on=["connection", "customer_id", "number"], suffixes=("_cn", ""))  # fmt: skip
        hits = hits[hits["total_cn"] > hits["total"] + 0.005]
        for r in hits.itertuples(index=False):
            if (r.connection, r.invoice_id) in over_ids:
                continue
            rows.append((r.connection, r.invoice_id, r.credit_note_id, 0.8,
                         f"{r.number}: credit note {r.number_cn} for it is {money(r.total_cn)}, more than its "
                         f"total of {money(r.total)}"))  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS).drop_duplicates(["connection", "books_id", "related_id"])


def won_deal_differs(
    invoices: pd.DataFrame, deals: pd.DataFrame, links: pd.DataFrame, open_discrepancies: pd.DataFrame
) -> pd.DataFrame:
    """A won deal whose linked invoice bills, net of the credit allocated to it, more than 10 % (and 1.00) away
    from the deal's amount, in the same currency. Reconciliation compares the invoice's total with the deal's
    amount (amount_mismatch, currency_mismatch): a pair it already reports is left to it; what remains is the
    money taken back by credit notes after the deal was won."""
    inv = _sales(invoices)
    won = deals[deals["stage"] == "won"].copy()
    if inv.empty or won.empty or links.empty:
        return _empty()
    won["amount"] = pd.to_numeric(won["amount"], errors="coerce")
    m = (
        links[["connection", "invoice_id", "deal_id"]]
        .merge(won, on=["connection", "deal_id"])
        .merge(inv, on=["connection", "invoice_id"], suffixes=("_deal", ""))
    )
    m = m[m["currency"] == m["currency_deal"]]
    credited = pd.to_numeric(m["amount_credited"], errors="coerce").fillna(0.0)
    net = m["total"] - credited
    diff = net - m["amount"]
    far = diff.abs() > np.maximum(DEAL_SHARE * m["amount"].abs(), DEAL_MINIMUM)
    m = m[far].assign(net=net[far], diff=diff[far], credited=credited[far])
    if not open_discrepancies.empty:
        told = open_discrepancies[open_discrepancies["kind"].isin(RECON_KINDS)]
        said = set(zip(told["connection"], told["books_id"], strict=True))
        m = m[[(c, i) not in said for c, i in zip(m["connection"], m["invoice_id"], strict=True)]]
    rows = []
    for r in m.itertuples(index=False):
        share = r.diff / r.amount if r.amount else 0.0
        why = f", after {money(r.credited)} credited" if r.credited else ""
        rows.append((r.connection, r.invoice_id, r.deal_id, round(min(1.0, abs(share)), 3),
                     f"{r.number} bills {money(r.net)} {r.currency}{why} for the won deal '{r.name}' of "
                     f"{money(r.amount)} ({share:+.0%})"))  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)
