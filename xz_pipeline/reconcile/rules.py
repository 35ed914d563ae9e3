"""The discrepancy rules: one function per kind, canonical frames in, discrepancy rows out.

Every rule returns rows with `DISCREPANCY_COLUMNS` (roles, not vendors: `books_id` is the books
record, `crm_id` the CRM record, "" where a side has none). Each root cause is reported once, under
the kind that owns it:
- a customer missing on one side owns its documents: its invoices are not also `invoice_without_deal`
  nor its won deals `deal_not_invoiced` (those rules only look at customers linked on both sides);
- a second record of one customer is a `customer_duplicate`; its fields are not compared again;
- a deal in another currency is a `currency_mismatch`; its amount is then not compared.
Only links with status 'linked' count: a pair waiting in the review queue proves nothing yet.

Severity (why): money the two systems disagree on — `amount_mismatch`, `currency_mismatch`,
`payment_status_stale`, `balance_mismatch` — is `error`: sales would act on a wrong figure. The rest
(missing, duplicate and unlinked records, contact-field differences) is `warn`: worth a person's look,
not wrong money. Amounts arrive as integer cents (exact; see `persist.read_canonical`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import phonenumbers

from xz_pipeline.reconcile import normalize
from xz_pipeline.reconcile import projects as project_rules

DISCREPANCY_COLUMNS = [
    "connection", "kind", "books_id", "crm_id", "field", "books_value", "crm_value", "severity", "detail",
]  # fmt: skip
KEY_COLUMNS = ["connection", "kind", "books_id", "crm_id", "field"]

ERROR, WARN = "error", "warn"
SEVERITY = {
    "customer_missing_in_crm": WARN,
    "customer_missing_in_books": WARN,
    "customer_duplicate": WARN,
    "customer_field_mismatch": WARN,
    "deal_not_invoiced": WARN,
    "invoice_without_deal": WARN,
    "amount_mismatch": ERROR,
    "currency_mismatch": ERROR,
    "payment_status_stale": ERROR,
    "balance_mismatch": ERROR,
    "invoice_missing_in_crm": WARN,
    "time_not_invoiced": WARN,  # projects (reconcile/projects.py): the books' own state, worth sales' look
    "project_over_budget": WARN,
}
KINDS = tuple(SEVERITY)

AMOUNT_TOLERANCE_CENTS = 50  # a deal rounded to whole units differs by at most 0.50: not a mismatch
LIVE = ("draft", "open", "paid")  # void and deleted invoices take part in nothing
# Payment status classes: overdue is unpaid seen against a clock, not a different payment record.
PAYMENT_CLASS = {"unpaid": "unpaid", "overdue": "unpaid", "partially_paid": "partially_paid", "paid": "paid"}


# ---------------------------------------------------------------------------------------------
# Field comparison keys (normalize.py's): two values with the same key say the same thing


def email_key(value) -> str:
    """An email as it compares: trimmed and case-folded ("" when absent)."""
    return normalize.email_key(value) or ""


@lru_cache(maxsize=262_144)
def phone_key(value, country=None) -> str:
    """A phone number in E.164, the record's country as the default region; when it cannot be
    placed (a national number and no known country), its national digits marked "national:"."""
    if value is None or (not isinstance(value, str) and pd.isna(value)) or not str(value).strip():
        return ""
    e164 = normalize.phone_e164(str(value), normalize.country_code(country))
    return e164 or "national:" + re.sub(r"\D", "", str(value)).lstrip("0")


def same_phone(a: str, b: str) -> bool:
    """Equal phone keys, or the same national number where one side could not be placed."""
    if a == b:
        return True
    if a.startswith("national:") or b.startswith("national:"):
        national = [
            k.removeprefix("national:") if k.startswith("national:") else _national(k) for k in (a, b)
        ]
        return national[0] == national[1]
    return False


def _national(e164: str) -> str:
    try:
        return str(phonenumbers.parse(e164, None).national_number)
    except phonenumbers.NumberParseException:
        return e164


def address_key(street, city, region, postal_code, country) -> str:
    """A billing address as it compares: street words unified, case and accents folded; the city and
    postcode kept, the region and country dropped (spelled too many ways to compare, and a postcode
    already places the address). "" when there is no street and no city."""
    s, c = normalize.street_key(street) or "", normalize.city_key(city) or ""
    if not s and not c:
        return ""
    return f"{s}|{c}|{normalize.postal_key(postal_code) or ''}"


@dataclass
class Inputs:
    """What the rules read: canonical frames (all connections) and the links made before them."""

    books_customers: pd.DataFrame
    books_invoices: pd.DataFrame
    crm_accounts: pd.DataFrame
    crm_contacts: pd.DataFrame
    crm_deals: pd.DataFrame
    crm_invoices: pd.DataFrame
    customer_links: pd.DataFrame
    duplicates: pd.DataFrame
    invoice_links: pd.DataFrame
    books_projects: pd.DataFrame | None = None  # absent where the books keep no projects
    books_project_tasks: pd.DataFrame | None = None
    books_time_entries: pd.DataFrame | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def linked(self) -> pd.DataFrame:
        """Confident customer links (connection, books_id, crm_id, confidence)."""
        if "linked" not in self._cache:
            links = self.customer_links
            self._cache["linked"] = links[links["status"] == "linked"][
                ["connection", "books_id", "crm_id", "confidence"]
            ].drop_duplicates(["connection", "books_id", "crm_id"])
        return self._cache["linked"]

    @property
    def primary(self) -> pd.DataFrame:
        """Linked pairs less the extra record of each duplicate: one pair per real customer."""
        if "primary" not in self._cache:
            extra = self.duplicates[["connection", "books_id", "crm_id"]].assign(_dup=True)
            pairs = self.linked.merge(extra, how="left", on=["connection", "books_id", "crm_id"])
            self._cache["primary"] = pairs[pairs["_dup"].isna()].drop(columns="_dup")
        return self._cache["primary"]

    @property
    def sales(self) -> pd.DataFrame:
        """Live sales invoices."""
        if "sales" not in self._cache:
            inv = self.books_invoices
            cols = [
                "connection",
                "invoice_id",
                "number",
                "status",
                "customer_id",
                "issue_date",
                "total",
                "amount_due",
            ]
            keep = (inv["type"].fillna("sale").to_numpy() == "sale") & inv["status"].isin(LIVE).to_numpy()
            self._cache["sales"] = inv[cols][keep]
        return self._cache["sales"]


def rows(frame: pd.DataFrame, kind: str, **columns) -> pd.DataFrame:
    """Discrepancy rows of `kind` from `frame`: each column a name in `frame`, a constant or a Series
    (`field` is always a constant: the name of the field compared)."""
    out = pd.DataFrame(index=frame.index)
    out["connection"] = frame["connection"]
    out["kind"] = kind
    for name in DISCREPANCY_COLUMNS[2:]:
        if name in ("kind", "severity"):
            continue
        value = columns.get(name, "")
        if name != "field" and isinstance(value, str) and value in frame.columns:
            value = frame[value]
        out[name] = value
    out["severity"] = SEVERITY[kind]
    for name in DISCREPANCY_COLUMNS:
        if name != "kind" and name != "severity":
            out[name] = out[name].fillna("").astype(str) if len(out) else out[name].astype(object)
    return out[DISCREPANCY_COLUMNS].reset_index(drop=True)


def _one_connection(*frames: pd.DataFrame) -> str | None:
    """The one connection all these frames hold rows of (None if several, or none)."""
    seen: set = set()
    for f in frames:
        seen.update(pd.unique(f["connection"]))
        if len(seen) > 1:
            return None
    return next(iter(seen)) if seen else None


def _has(frame: pd.DataFrame, other: pd.DataFrame, left: list[str], right: list[str]) -> pd.Series:
    """For each row of `frame`, whether its (connection, id) `left` key is among `other`'s `right` keys.

    One connection (the usual case) is a hash lookup on the id alone: ten times faster than a merge
    at a million invoices; several connections fall back to a two-column merge.
    """
    if frame.empty or other.empty:
        return pd.Series(False, index=frame.index)
    if _one_connection(frame, other) is not None:
        return frame[left[1]].isin(other[right[1]])
    keys = other[right].drop_duplicates().set_axis(left, axis=1).assign(_hit=True)
    m = frame[left].merge(keys, how="left", on=left)
    return pd.Series(m["_hit"].notna().to_numpy(), index=frame.index)


def _without(frame: pd.DataFrame, other: pd.DataFrame, left: list[str], right: list[str]) -> pd.DataFrame:
    """Rows of `frame` whose `left` key matches no row of `other[right]` (an anti-join)."""
    return frame[~_has(frame, other, left, right)]


def _positions(frame: pd.DataFrame, left: list[str], other: pd.DataFrame, right: list[str]) -> np.ndarray:
    """Row position in `other` of the first row whose `right` key equals each row's `left` key (-1 if none)."""
    if frame.empty or other.empty:
        return np.full(len(frame), -1, dtype=np.int64)
    if _one_connection(frame, other) is not None:
        keys = pd.Index(other[right[1]])
        if keys.is_unique:
            return keys.get_indexer(frame[left[1]])
    found = other[right].reset_index(drop=True).reset_index().drop_duplicates(right)
    m = frame[left].merge(found.set_axis(["_pos", *left], axis=1), how="left", on=left)
    return m["_pos"].fillna(-1).astype(np.int64).to_numpy()


def _take(other: pd.DataFrame, positions: np.ndarray, column: str, index: pd.Index) -> pd.Series:
    """`other[column]` at `positions` (missing where -1), indexed like the frame asking."""
    values = other[column].reset_index(drop=True)
    hit = positions >= 0
    out = pd.Series(pd.NA if values.dtype == "Int64" else None, index=index, dtype=values.dtype)
    out[hit] = values.to_numpy()[positions[hit]]
    return out


def _lookup(
    frame: pd.DataFrame, left: list[str], other: pd.DataFrame, right: list[str], value: str
) -> pd.Series:
    """`other[value]` of the first row whose `right` key equals each row's `left` key (missing if none)."""
    return _take(other, _positions(frame, left, other, right), value, frame.index)


def money(cents: pd.Series) -> pd.Series:
    """Integer cents as the decimal text people read ('1234.50'); empty where unknown."""
    out = []
    for c in cents:
        if c is None or pd.isna(c):
            out.append("")
            continue
        c = int(c)
        sign = "-" if c < 0 else ""
        out.append(f"{sign}{abs(c) // 100}.{abs(c) % 100:02d}")
    return pd.Series(out, index=cents.index, dtype=object)


# ---------------------------------------------------------------------------------------------
# Customers


def customer_missing_in_crm(x: Inputs) -> pd.DataFrame:
    """A books customer (it has live sales invoices, or the books say it is one) with no CRM account.

    A supplier-only contact is not a customer, so its absence from the CRM is no disagreement.
    """
    bc = x.books_customers
    buys = _has(bc, x.sales, ["connection", "customer_id"], ["connection", "customer_id"])
    customers = bc[bc["is_customer"].astype("boolean").fillna(False).astype(bool) | buys]
    missing = _without(customers, x.linked, ["connection", "customer_id"], ["connection", "books_id"])
    return rows(missing, "customer_missing_in_crm", books_id="customer_id", books_value="name",
                detail="no linked CRM account")  # fmt: skip


def customer_missing_in_books(x: Inputs) -> pd.DataFrame:
    """A CRM account that is a customer, not a prospect — its own type says so (`marked_customer`: which
    Account_Type values do is the org's) or it has won deals — that no books contact is linked to."""
    won = x.crm_deals[x.crm_deals["stage"] == "won"]
    counts = won.groupby(["connection", "account_id"]).size().rename("won_deals").reset_index()
    acc = x.crm_accounts.merge(counts, how="left", on=["connection", "account_id"])
    acc["won_deals"] = acc["won_deals"].fillna(0).astype("int64")
    marked = False
    if "marked_customer" in acc:
        marked = acc["marked_customer"].astype("boolean").fillna(False).astype(bool)
    acc = acc[(acc["won_deals"] > 0) | marked]
    missing = _without(acc, x.linked, ["connection", "account_id"], ["connection", "crm_id"])
    detail = missing["won_deals"].map(
        lambda n: (
            f"{n} won deal(s), no linked books contact"
            if n
            else "a customer by its type, no linked books contact"
        )
    )
    return rows(missing, "customer_missing_in_books", crm_id="account_id", crm_value="name", detail=detail)


def customer_duplicate(x: Inputs) -> pd.DataFrame:
    """The extra record of a customer held twice on one side (see `matching.duplicates`)."""
    d = x.duplicates
    if d.empty:
        return rows(d.assign(connection=""), "customer_duplicate")
    names_b = x.books_customers[["connection", "customer_id", "name"]].rename(
        columns={"customer_id": "books_id", "name": "books_name"}
    )
    names_c = x.crm_accounts[["connection", "account_id", "name"]].rename(
        columns={"account_id": "crm_id", "name": "crm_name"}
    )
    d = d.merge(names_b, how="left", on=["connection", "books_id"]).merge(
        names_c, how="left", on=["connection", "crm_id"]
    )
    side = d["side"].map({"crm": "second CRM account", "books": "second books contact"})
    detail = side + "; the first is " + d["other_id"].astype(str)
    return rows(d, "customer_duplicate", books_id="books_id", crm_id="crm_id", books_value="books_name",
                crm_value="crm_name", detail=detail)  # fmt: skip


def _pairs(x: Inputs) -> pd.DataFrame:
    b = x.books_customers.rename(columns={"customer_id": "books_id"}).add_prefix("b_")
    c = x.crm_accounts.rename(columns={"account_id": "crm_id"}).add_prefix("c_")
    p = x.primary.merge(b, left_on=["connection", "books_id"], right_on=["b_connection", "b_books_id"])
    return p.merge(c, left_on=["connection", "crm_id"], right_on=["c_connection", "c_crm_id"])


def _address_text(p: pd.DataFrame, prefix: str) -> pd.Series:
    parts = [
        p[f"{prefix}{c}"].fillna("").astype(str)
        for c in ("street", "city", "region", "postal_code", "country")
    ]
    return pd.Series(
        [", ".join(v for v in vals if v.strip()) for vals in zip(*parts, strict=True)],
        index=p.index,
        dtype=object,
    )


def customer_field_mismatch(x: Inputs) -> pd.DataFrame:
    """Email, phone or billing address of a linked customer that differ beyond spelling.

    Emails compare case-insensitively (and the books email found on any CRM contact of the account
    is no mismatch); phones compare in E.164 (each record's country as the default region);
    addresses compare normalised (street-type abbreviations, case, country spellings). A field
    empty on either side is missing data, not a disagreement. Names are never compared here:
    spelling variants are how the two systems write one name.
    """
    p = _pairs(x)
    if p.empty:
        return rows(p.assign(connection=""), "customer_field_mismatch")
    out = []
    # email
    b_email = p["b_email"].map(email_key)
    c_email = p["c_email"].map(email_key)
    known = set()
    ct = x.crm_contacts
    for col in ("email", "secondary_email"):
        if col in ct:
            keys = ct[col].map(email_key)
            known |= set(zip(ct["connection"], ct["account_id"], keys, strict=True))
    on_contact = pd.Series(
        [(cn, a, e) in known for cn, a, e in zip(p["connection"], p["crm_id"], b_email, strict=True)],
        index=p.index,
    )
    bad = (b_email != "") & (c_email != "") & (b_email != c_email) & ~on_contact
    out.append(rows(p[bad], "customer_field_mismatch", books_id="books_id", crm_id="crm_id", field="email",
                    books_value="b_email", crm_value="c_email"))  # fmt: skip
    # phone
    b_phone = [phone_key(v, cc) for v, cc in zip(p["b_phone"], p["b_country"], strict=True)]
    c_phone = [phone_key(v, cc) for v, cc in zip(p["c_phone"], p["c_country"], strict=True)]
    bad = pd.Series(
        [bool(b) and bool(c) and not same_phone(b, c) for b, c in zip(b_phone, c_phone, strict=True)],
        index=p.index,
    )
    out.append(rows(p[bad], "customer_field_mismatch", books_id="books_id", crm_id="crm_id", field="phone",
                    books_value="b_phone", crm_value="c_phone",
                    detail=pd.Series([f"{b} vs {c}" for b, c in zip(b_phone, c_phone, strict=True)],
                                     index=p.index)[bad]))  # fmt: skip
    # billing address
    b_addr = [
        address_key(s, ci, r, pc, co)
        for s, ci, r, pc, co in zip(p["b_street"], p["b_city"], p["b_region"], p["b_postal_code"], p["b_country"],
                                    strict=True)
    ]  # fmt: skip
    c_addr = [
        address_key(s, ci, r, pc, co)
        for s, ci, r, pc, co in zip(p["c_street"], p["c_city"], p["c_region"], p["c_postal_code"], p["c_country"],
                                    strict=True)
    ]  # fmt: skip
    bad = pd.Series(
        [bool(b) and bool(c) and b != c for b, c in zip(b_addr, c_addr, strict=True)], index=p.index
    )
    if bad.any():
        sub = p[bad]
        out.append(rows(sub, "customer_field_mismatch", books_id="books_id", crm_id="crm_id",
                        field="billing_address", books_value=_address_text(sub, "b_"),
                        crm_value=_address_text(sub, "c_")))  # fmt: skip
    return pd.concat(out, ignore_index=True)


def balance_mismatch(x: Inputs) -> pd.DataFrame:
    """The CRM account's outstanding balance against what the books say its customer owes.

    Owed = Σ amount_due over the open (authorised, not fully paid) sales invoices of every books
    contact linked to the account. Accounts whose balance field is empty are skipped (never written).
    """
    acc = x.crm_accounts[x.crm_accounts["outstanding"].notna()][["connection", "account_id", "outstanding"]]
    links = x.linked.rename(columns={"crm_id": "account_id"})
    owed_inv = x.sales[x.sales["status"] == "open"]
    owed = owed_inv.groupby(["connection", "customer_id"])["amount_due"].sum().rename("owed").reset_index()
    per = links.merge(
        owed, how="left", left_on=["connection", "books_id"], right_on=["connection", "customer_id"]
    )
    per["owed"] = per["owed"].fillna(0)
    total = per.groupby(["connection", "account_id"])["owed"].sum().rename("books_owed").reset_index()
    # the books id shown: the account's primary (non-duplicate) link
    first = x.primary.sort_values("confidence", ascending=False).drop_duplicates(["connection", "crm_id"])
    first = first.rename(columns={"crm_id": "account_id"})[["connection", "account_id", "books_id"]]
    m = acc.merge(total, on=["connection", "account_id"]).merge(first, on=["connection", "account_id"])
    bad = m[m["outstanding"].astype("int64") != m["books_owed"].astype("int64")]
    return rows(bad, "balance_mismatch", books_id="books_id", crm_id="account_id", field="outstanding_balance",
                books_value=money(bad["books_owed"]), crm_value=money(bad["outstanding"]))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Deals and invoices


def deal_not_invoiced(x: Inputs) -> pd.DataFrame:
    """A won deal of a linked customer that no books invoice is linked to."""
    won = x.crm_deals[x.crm_deals["stage"] == "won"]
    won = won[_has(won, x.linked, ["connection", "account_id"], ["connection", "crm_id"])]
    missing = _without(won, x.invoice_links, ["connection", "deal_id"], ["connection", "deal_id"])
    return rows(missing, "deal_not_invoiced", crm_id="deal_id", crm_value=money(missing["amount"]),
                detail=missing["name"])  # fmt: skip


def invoice_without_deal(x: Inputs) -> pd.DataFrame:
    """A live sales invoice of a linked customer that no CRM deal is linked to.

    Only invoices issued once the customer's CRM account existed: an account created later (by a person, or by
    write-back from the books) has no deals for the invoices before it, and nobody should invent them, so those
    invoices are not reported (an account's created time unknown: every invoice counts).
    """
    inv = x.sales[_has(x.sales, x.linked, ["connection", "customer_id"], ["connection", "books_id"])]
    missing = _without(inv, x.invoice_links, ["connection", "invoice_id"], ["connection", "invoice_id"])
    if "source_created" in x.crm_accounts and not missing.empty:
        created = (
            x.linked.merge(x.crm_accounts[["connection", "account_id", "source_created"]],
                           left_on=["connection", "crm_id"], right_on=["connection", "account_id"])
            .groupby(["connection", "books_id"], as_index=False)["source_created"].min()
        )  # fmt: skip
        first_day = missing.merge(
            created, how="left", left_on=["connection", "customer_id"], right_on=["connection", "books_id"]
        )["source_created"]
        first_day = pd.to_datetime(first_day, utc=True).dt.tz_localize(None).dt.normalize()
        before = pd.to_datetime(missing["issue_date"]).to_numpy() < first_day.to_numpy()  # NaT: never before
        missing = missing[~before]
    return rows(missing, "invoice_without_deal", books_id="invoice_id", books_value="number",
                detail=money(missing["total"]))  # fmt: skip


def _linked_documents(x: Inputs) -> pd.DataFrame:
    """Each invoice link with its invoice's and its deal's fields (deal columns suffixed `_deal`)."""
    if "docs" not in x._cache:
        inv = x.books_invoices
        dl = x.crm_deals
        m = x.invoice_links[["connection", "invoice_id", "deal_id"]].reset_index(drop=True)
        key_i, key_d = ["connection", "invoice_id"], ["connection", "deal_id"]
        at_i, at_d = _positions(m, key_i, inv, key_i), _positions(m, key_d, dl, key_d)
        for col in ("number", "status", "currency", "total", "amount_paid", "amount_due", "amount_credited"):
            m[col] = _take(inv, at_i, col, m.index)
        tracked = [c for c in ("payment_status_tracked",) if c in dl]  # absent in frames built by hand
        for col in ("currency", "amount", "payment_status", "payment_status_raw", *tracked):
            m[f"{col}_deal" if col == "currency" else col] = _take(dl, at_d, col, m.index)
        x._cache["docs"] = m[m["status"].notna()]
    return x._cache["docs"]


def currency_mismatch(x: Inputs) -> pd.DataFrame:
    """A deal in another currency than the invoice it was linked to."""
    m = _linked_documents(x)
    bad = m[m["currency"].notna() & m["currency_deal"].notna() & (m["currency"] != m["currency_deal"])]
    return rows(bad, "currency_mismatch", books_id="invoice_id", crm_id="deal_id", field="currency",
                books_value="currency", crm_value="currency_deal")  # fmt: skip


def amount_mismatch(x: Inputs) -> pd.DataFrame:
    """A deal amount more than 0.50 from its invoice's total (tax included), in the same currency."""
    m = _linked_documents(x)
    same = m[(m["currency"] == m["currency_deal"]) & m["amount"].notna() & m["total"].notna()]
    diff = (same["amount"].astype("int64") - same["total"].astype("int64")).abs()
    bad = same[diff > AMOUNT_TOLERANCE_CENTS]
    return rows(bad, "amount_mismatch", books_id="invoice_id", crm_id="deal_id", field="amount",
                books_value=money(bad["total"]), crm_value=money(bad["amount"]))  # fmt: skip


def expected_payment_status(inv: pd.DataFrame) -> pd.Series:
    """What a deal should say about each invoice: paid, partially_paid or unpaid (None if not live)."""
    due = inv["amount_due"].fillna(0).astype("int64")
    settled = inv["amount_paid"].fillna(0).astype("int64") + inv["amount_credited"].fillna(0).astype("int64")
    status = inv["status"]
    out = pd.Series("unpaid", index=inv.index, dtype=object)
    out[settled > 0] = "partially_paid"
    out[(status == "paid") | ((status == "open") & (due <= 0))] = "paid"
    out[~status.isin(LIVE)] = None
    return out


def payment_status_stale(x: Inputs) -> pd.DataFrame:
    """A deal whose payment status says less (or more) than the books know about its invoice.

    Compared by class — unpaid (or overdue), partially paid, paid — so a status that only moves
    with the calendar is not reported; a deal without a payment status counts as unpaid. Only where the org
    keeps a payment status on deals (`payment_status_tracked`): an org without the field, or where it is not
    mapped, has nothing to be stale.
    """
    m = _linked_documents(x)
    if "payment_status_tracked" in m:
        m = m[m["payment_status_tracked"].astype("boolean").fillna(True).astype(bool)]
    expected = expected_payment_status(m)
    said = m["payment_status"].map(PAYMENT_CLASS).fillna("unpaid")
    bad = m[expected.notna() & (expected != said)]
    return rows(bad, "payment_status_stale", books_id="invoice_id", crm_id="deal_id", field="payment_status",
                books_value=expected[bad.index], crm_value=bad["payment_status_raw"].fillna(""))  # fmt: skip


def invoice_missing_in_crm(x: Inputs) -> pd.DataFrame:
    """An issued sales invoice (open or paid) absent from the CRM's invoices, for accounts whose invoices
    the CRM keeps. A draft is not issued yet: a CRM that keeps invoices records them once they are (and
    write-back raises its invoices for won deals as drafts, recorded on their deals).

    Runs only where the CRM invoices view has rows; an account keeps CRM invoices when it has at
    least one. A CRM invoice stands for a books invoice by its stored books id, else by number.
    """
    ci = x.crm_invoices
    if ci.empty:
        return rows(ci.assign(connection=""), "invoice_missing_in_crm")
    keeping = ci[["connection", "account_id"]].dropna().drop_duplicates()
    links = x.linked[_has(x.linked, keeping, ["connection", "crm_id"], ["connection", "account_id"])]
    issued = x.sales[x.sales["status"] != "draft"]
    inv = issued[_has(issued, links, ["connection", "customer_id"], ["connection", "books_id"])].copy()
    inv["crm_id"] = _lookup(inv, ["connection", "customer_id"], links, ["connection", "books_id"], "crm_id")
    by_id = ci[ci["books_invoice_id"].fillna("") != ""][["connection", "books_invoice_id"]]
    inv = _without(inv, by_id, ["connection", "invoice_id"], ["connection", "books_invoice_id"])
    by_number = ci[ci["number"].fillna("") != ""][["connection", "number"]]
    missing = _without(inv, by_number, ["connection", "number"], ["connection", "number"])
    return rows(missing, "invoice_missing_in_crm", books_id="invoice_id", books_value="number",
                detail="crm_account=" + missing["crm_id"].astype(str))  # fmt: skip


RULES = {
    "customer_missing_in_crm": customer_missing_in_crm,
    "customer_missing_in_books": customer_missing_in_books,
    "customer_duplicate": customer_duplicate,
    "customer_field_mismatch": customer_field_mismatch,
    "deal_not_invoiced": deal_not_invoiced,
    "invoice_without_deal": invoice_without_deal,
    "amount_mismatch": amount_mismatch,
    "currency_mismatch": currency_mismatch,
    "payment_status_stale": payment_status_stale,
    "balance_mismatch": balance_mismatch,
    "invoice_missing_in_crm": invoice_missing_in_crm,
    "time_not_invoiced": project_rules.time_not_invoiced,
    "project_over_budget": project_rules.project_over_budget,
}


def discrepancies(x: Inputs) -> pd.DataFrame:
    """Every rule's rows, one per (connection, kind, books_id, crm_id, field)."""
    found = [RULES[kind](x) for kind in KINDS]
    out = pd.concat([f for f in found if not f.empty] or [rows(pd.DataFrame({"connection": []}), KINDS[0])],
                    ignore_index=True)  # fmt: skip
    return out.drop_duplicates(KEY_COLUMNS).sort_values(KEY_COLUMNS).reset_index(drop=True)
