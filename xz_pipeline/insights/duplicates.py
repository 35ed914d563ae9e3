"""Duplicate invoices: the same customer billed twice for the same lines.

A pair is reported when a later live sales invoice of a customer bills the same lines (items and
quantities) as an earlier one, in the same currency, for a total within 1 %, 0-30 days after it, and its
number or reference repeats the earlier one's: the same after separators and look-alike characters
(O/0, l/1, S/5, B/8, Z/2) are set aside, a short suffix ("INV-0042-A"), a dropped or doubled zero, or
one character changed or two swapped (rapidfuzz's optimal string alignment distance of 1). Rules of AP
practice (vendor + number after normalisation; amount within 1 % and 30 days; Levenshtein on the number).

What is not a duplicate: two numbers that each follow the organisation's own numbering in sequence are
two issued documents (consecutive invoices of equal totals for different jobs, or a monthly recurring
invoice); a voided invoice bills nobody (voided and reissued); another customer is another bill; and in a
series of three or more same-line invoices about a month apart, numbers one character apart ("RET-2026-10",
"RET-2026-11") are a recurring charge's own numbering.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from rapidfuzz.distance import OSA

WINDOW_DAYS = 30
AMOUNT_SHARE = 0.01
LIVE = ("draft", "open", "paid")
AUTO = re.compile(r"^(\D*?)(\d+)$")  # prefix + digits: what an organisation's own numbering produces
IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_/.#]*( ?[A-Za-z0-9\-_/.#]+)?$")  # a code, not a sentence
LOOKALIKE = str.maketrans({"O": "0", "Q": "0", "I": "1", "L": "1", "S": "5", "B": "8", "Z": "2"})
NEIGHBOURS = 10  # invoices either side, in date order, that say where the numbering stood


def _key(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", text.upper())


def how_similar(a: str, b: str) -> tuple[str, float]:
    """How `b` repeats `a`: ("same" | "typo" | "suffix" | "transposition" | "changed": one character
    other, added or dropped), with a similarity in 0-1; ("", 0) when it does not."""
    if not a or not b:
        return "", 0.0
    ka, kb = _key(a), _key(b)
    if not ka or not kb:
        return "", 0.0
    if a.strip().upper() == b.strip().upper():
        return "same", 1.0
    if ka == kb or ka.translate(LOOKALIKE) == kb.translate(LOOKALIKE):
        return "typo", 0.95
    short, long_ = sorted((ka, kb), key=len)
    if long_.startswith(short) and 0 < len(long_) - len(short) <= 3:
        return "suffix", 0.9
    ma, mb = AUTO.match(ka), AUTO.match(kb)
    if ma and mb and ma.group(1) == mb.group(1) and int(ma.group(2)) == int(mb.group(2)):
        return "typo", 0.9  # leading zeros
    if OSA.distance(ka, kb) == 1:
        swapped = len(ka) == len(kb) and sorted(ka) == sorted(kb)
        return ("transposition" if swapped else "changed"), OSA.normalized_similarity(ka, kb)
    return "", 0.0


def in_sequence(inv: pd.DataFrame) -> pd.Series:
    """Whether each invoice's number is one the organisation's own numbering issued in its turn: written
    exactly as the connection's usual numbers are (prefix with its separator, zero-padded width), with a
    value between those of the invoices dated around it."""
    out = pd.Series(False, index=inv.index)
    for _, part in inv.groupby("connection", sort=False):
        parsed = part["number"].fillna("").str.strip().str.upper().str.extract(AUTO.pattern)
        prefix, digits = parsed[0], parsed[1]
        if digits.notna().sum() == 0:
            continue
        usual = prefix.value_counts().idxmax()
        width = digits[prefix == usual].str.len().value_counts().idxmax()
        padded = digits.str.len() == width
        grown = (digits.str.len() > width) & ~digits.fillna("0").str.startswith("0")
        auto = prefix.eq(usual) & digits.notna() & (padded | grown)
        if not auto.any():
            continue
        value = digits[auto].astype(np.int64)
        order = part.loc[auto, "issue_date"].to_numpy().argsort(kind="stable")
        v = pd.Series(value.to_numpy()[order].astype(float))
        left = v.shift(1).rolling(NEIGHBOURS, min_periods=1).median()
        right = v[::-1].shift(1).rolling(NEIGHBOURS, min_periods=1).median()[::-1]
        both = pd.concat([left, right], axis=1)
        lo, hi = both.min(axis=1).fillna(v), both.max(axis=1).fillna(v)
        slack = np.maximum(5.0, 2.0 * (hi - lo) + 0.02 * hi)
        ok = ((v >= lo - slack) & (v <= hi + slack)).to_numpy()
        out.loc[value.index.to_numpy()[order]] = ok
    return out


def fingerprints(lines: pd.DataFrame) -> pd.DataFrame:
    """Per invoice: its lines as a sorted list of item (or description) x quantity, and how many."""
    if lines.empty:
        return pd.DataFrame(columns=["connection", "invoice_id", "lines_key", "n_lines"])
    what = lines["item_code"].fillna("").astype(str)
    what = what.where(what != "", lines["description"].fillna("").astype(str).str.strip().str.lower())
    qty = pd.to_numeric(lines["quantity"], errors="coerce").fillna(0).round(4).map("{:g}".format)
    tok = pd.DataFrame(
        {"connection": lines["connection"], "invoice_id": lines["invoice_id"], "tok": what + "x" + qty}
    )
    tok = tok.sort_values(["connection", "invoice_id", "tok"])
    return (
        tok.groupby(["connection", "invoice_id"], sort=False)["tok"]
        .agg(["|".join, "size"])
        .reset_index()
        .rename(columns={"join": "lines_key", "size": "n_lines"})
    )


def _recurring(inv: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Per group of `keys` (a customer's same lines): three or more invoices, a median month apart."""
    ordered = inv.sort_values([*keys, "issue_date"])
    gap = ordered.groupby(keys, sort=False)["issue_date"].diff().dt.days
    stats = gap.groupby([ordered[k] for k in keys], sort=False).agg(["median", "size"])
    monthly = stats[(stats["size"] >= 3) & stats["median"].between(25, 35)].reset_index()[keys]
    flag = inv[keys].merge(monthly.assign(_m=1), on=keys, how="left")["_m"].notna()
    return pd.Series(flag.to_numpy(), index=inv.index)


def duplicate_pairs(invoices: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """One row per (later, earlier) duplicate: connection, books_id, related_id, score, reason."""
    cols = ["connection", "books_id", "related_id", "score", "reason"]
    inv = invoices[(invoices["type"].fillna("sale") == "sale") & invoices["status"].isin(LIVE)].copy()
    if inv.empty:
        return pd.DataFrame(columns=cols)
    inv["issue_date"] = pd.to_datetime(inv["issue_date"])
    inv["total"] = pd.to_numeric(inv["total"], errors="coerce")
    inv = inv.merge(fingerprints(lines), on=["connection", "invoice_id"], how="inner")
    inv["auto"] = in_sequence(inv)
    keys = ["connection", "customer_id", "currency", "lines_key"]
    inv = inv[inv.groupby(keys)["invoice_id"].transform("size") > 1]
    inv["monthly"] = _recurring(inv, keys)
    pairs = inv.merge(inv, on=keys, suffixes=("_a", "_b"))
    pairs = pairs[pairs["invoice_id_a"] != pairs["invoice_id_b"]]
    gap = (pairs["issue_date_b"] - pairs["issue_date_a"]).dt.days
    # b is the later: dated after a, or the same day and not the one numbered in sequence
    later = (gap > 0) | ((gap == 0) & (
        (pairs["auto_a"] & ~pairs["auto_b"])
        | ((pairs["auto_a"] == pairs["auto_b"]) & (pairs["number_b"].fillna("") > pairs["number_a"].fillna("")))
    ))  # fmt: skip
    top = np.maximum(pairs["total_a"].abs(), pairs["total_b"].abs())
    rel = (pairs["total_b"] - pairs["total_a"]).abs() / top.where(top > 0, 1.0)
    pairs = pairs[later & (gap <= WINDOW_DAYS) & (rel <= AMOUNT_SHARE + 1e-9)]
    pairs = pairs.assign(gap=gap[pairs.index], rel=rel[pairs.index])
    # two numbers each issued in sequence are two documents; a monthly series is a recurring charge
    distinct = pairs["auto_a"] & pairs["auto_b"]
    recurring = (pairs["monthly_a"] & (pairs["gap"] >= 20)).tolist()
    rows = []
    apart = distinct.loc[pairs.index].tolist()
    for p, number_apart, monthly in zip(pairs.itertuples(index=False), apart, recurring, strict=True):
        how, sim, what = "", 0.0, "number"
        if not number_apart:
            how, sim = how_similar(p.number_a or "", p.number_b or "")
        if not how:
            ra, rb = (p.reference_a or "").strip(), (p.reference_b or "").strip()
            if IDENT.match(ra) and IDENT.match(rb) and any(ch.isdigit() for ch in ra):
                how, sim = how_similar(ra, rb)
                what = "reference"
        if not how or (how == "changed" and monthly):  # "RET-2026-10", "RET-2026-11": a monthly charge
            continue
        score = round(0.5 * sim + 0.25 * (1 - p.rel / AMOUNT_SHARE) + 0.25 * (1 - p.gap / WINDOW_DAYS), 3)
        rows.append((p.connection, p.invoice_id_b, p.invoice_id_a, score, _reason(p, how, what)))
    return pd.DataFrame(rows, columns=cols)


WORDS = {"same": "the same", "suffix": "with a suffix", "typo": "with a typo", "changed": "with a typo",
         "transposition": "with two characters swapped"}  # fmt: skip


def money(x: float) -> str:
    return f"{x:,.2f}"


def _reason(p, how: str, what: str) -> str:
    """'INV-0042-A repeats INV-0042: same customer (Acme), 1,250.00 within 3 days, same 2 lines (number with a suffix)'."""
    days = f"{int(p.gap)} day{'s' if p.gap != 1 else ''}" if p.gap else "the same day"
    amount = money(p.total_b) if p.total_a == p.total_b else f"{money(p.total_b)} against {money(p.total_a)}"
    within = f"within {days}" if p.gap else "on the same day"
    lines = f"same {int(p.n_lines_a)} line{'s' if p.n_lines_a != 1 else ''}"
    detail = (
        f"number {WORDS[how]}"
        if what == "number"
        else f"reference {p.reference_b} repeats {p.reference_a} ({WORDS[how]})"
    )
    name = p.customer_name_a if isinstance(p.customer_name_a, str) and p.customer_name_a else "same customer"
    who = f"same customer ({name})" if name != "same customer" else name
    return f"{p.number_b} repeats {p.number_a}: {who}, {amount} {within}, {lines} ({detail})"
