"""Customer entity resolution: which books customer is which CRM account, with how much confidence.

Incumbent connectors match on e-mail alone and create duplicates; here every kind of evidence is
weighed, agreeing *and* contradicting, strongest first: an explicit link (the CRM account's
`books_link` or the books contact's `crm_link`, written by our write-back), tax number, e-mail
(the account's and every contact's), the e-mail's company domain (never a free-mail provider's),
phone in E.164, the normalised name with a fuzzy score, the address, the account number.

How it runs, per connection (records of two connections are never compared):
1. Candidates come from exact keys through pandas merges (explicit ids, tax numbers, e-mails,
   domains, phones, normalised names). Records that end this step without a confident candidate
   are then compared by fuzzy name, blocked on the first letter of their first and of their last
   word, with `rapidfuzz.process.cdist` - so 40,000 customers a side never make 1.6 billion pairs.
2. Each candidate pair is scored in points, like a Fellegi-Sunter log-likelihood ratio: what agrees
   adds, what contradicts subtracts (a different tax number or a different company domain weighs
   heavily: similar names with different domains are lookalikes, not one company). The points
   become a confidence in [0, 1] by a logistic curve; `MATCH_THRESHOLD` separates `linked` from
   `review`.
3. A one-to-one assignment, best confidence first: people's decisions and explicit links are taken
   first, then the best free pair for each record. A pair whose record is already taken is kept only
   when it is a genuine duplicate (both strongly match one record: near-identical names *and*
   agreeing contact details, nothing contradicting); `duplicates()` reports those.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from xz_pipeline.reconcile.normalize import (
    city_key,
    code_key,
    company_domain,
    country_code,
    email_key,
    map_unique,
    match_key,
    phone_e164,
    postal_key,
    street_key,
    tax_key,
    web_domain,
)

LINK_COLUMNS = ["connection", "books_id", "crm_id", "method", "confidence", "status", "evidence"]
DUPLICATE_COLUMNS = ["connection", "books_id", "crm_id", "other_id", "side"]

MATCH_THRESHOLD = 0.8  # confidence from which a link is acted on (status 'linked')
REVIEW_FLOOR = 0.3  # below it a candidate is not worth a person's time: dropped
DUPLICATE_THRESHOLD = 0.95  # a second link to a taken record must be at least this confident
DUPLICATE_NAME_SCORE = 90.0  # ... and its names near-identical
FUZZY_CUTOFF = 80.0  # rapidfuzz ratio from which two names become a candidate pair
SHARED_KEY_LIMIT = 25  # a domain or phone shared by more records is a provider or a switchboard

# Evidence kinds, strongest first: a link's method is the strongest kind that agrees.
METHODS = ("explicit", "tax_number", "email", "domain", "phone", "name", "address")

# Points per piece of evidence (positive: agrees; negative: contradicts).
POINTS = {
    "explicit": 20.0,
    "tax_agree": 6.0,
    "tax_differ": -8.0,  # two tax numbers: two legal entities
    "email_exact": 5.0,
    "domain_shared": 3.0,
    "email_differ": -1.0,  # different addresses, at least one at a free-mail provider: weak
    "domain_differ": -4.0,  # different company domains: the lookalike signal
    "phone_agree": 4.0,
    "phone_differ": -2.0,
    "name_same": 0.5,  # spelled identically, not just equal once normalised
    "address_agree": 3.0,
    "street_agree": 1.5,  # same street, another city or postcode spelling
    "address_differ": -1.5,  # offices move: a weak contradiction
    "account_agree": 1.5,
}
# (minimum fuzzy score of the normalised names, points), first that applies.
NAME_POINTS = ((100.0, 4.0), (92.0, 3.0), (88.0, 2.0), (84.0, 1.0), (75.0, 0.0), (0.0, -3.0))
_CENTRE, _SLOPE = 4.0, 0.8  # confidence = logistic(_SLOPE * (points - _CENTRE))
_SEP = "\x1f"


def confidence_of(points: float) -> float:
    """The logistic map from evidence points to a confidence: 4 points (a name alone) is 0.5."""
    return 1.0 / (1.0 + math.exp(-_SLOPE * (points - _CENTRE)))


def _confidence(points: pd.Series) -> pd.Series:
    return 1.0 / (1.0 + np.exp(-_SLOPE * (points.astype(float) - _CENTRE)))


# ---------------------------------------------------------------------------------------------
# Features: the normal forms of each side


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-None when the frame lacks it (optional columns of the canonical views)."""
    if name in frame.columns:
        return frame[name].astype(object).where(frame[name].notna(), None)
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _ids(series: pd.Series) -> pd.Series:
    """Ids as text, blanks as None."""
    out = series.astype(object).where(series.notna(), None)
    return out.map(lambda v: str(v).strip() or None if v is not None else None).astype(object)


def _default_regions(*country_frames: pd.DataFrame) -> dict[str, str]:
    """Each connection's most common country: the region of a phone whose record names none."""
    both = pd.concat([f[["connection", "country"]] for f in country_frames], ignore_index=True).dropna()
    if both.empty:
        return {}
    counts = both.groupby(["connection", "country"]).size().reset_index(name="n")
    counts = counts.sort_values(["connection", "n", "country"], ascending=[True, False, True])
    return dict(counts.drop_duplicates("connection")[["connection", "country"]].itertuples(index=False))


PHONE_TAIL = 7  # digits compared before a number is worth parsing


def _raw_phones(
    frame: pd.DataFrame, id_col: str, columns: list[str], regions: dict[str, str]
) -> pd.DataFrame:
    """(connection, id, raw, region, tail) per typed phone: the region to read a number typed without a
    country code (the record's country, else the connection's usual one) and its last digits."""
    region = frame["country"].where(frame["country"].notna(), frame["connection"].map(regions))
    parts = []
    for column in columns:
        raw = _col(frame, column)
        keep = raw.notna()
        parts.append(pd.DataFrame({"connection": frame["connection"][keep], "id": frame[id_col][keep],
                                   "raw": raw[keep].astype(str), "region": region[keep]}))  # fmt: skip
    out = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["connection", "id", "raw", "region"])
    )
    digits = out["raw"].str.replace(r"\D", "", regex=True)
    out["tail"] = digits.str[-PHONE_TAIL:].where(digits.str.len() >= PHONE_TAIL)
    out["letters"] = out["raw"].str.contains(r"[A-Za-z]", regex=True)
    return out


def _resolve_phones(b_raw: pd.DataFrame, c_raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each side's phones in E.164, as (connection, id, phone).

    Two numbers can only be equal in E.164 when their last digits are, so phonenumbers (thorough, and
    the slowest step at 40,000 customers) reads only numbers whose last digits occur on the other side
    of the connection (and those typed with letters: "ext. 12", "0800 FLOWERS"). Any other plausible
    number stands as itself, prefixed "?": it can agree with nothing, but the record still has a phone.
    """
    b_tails = set(zip(b_raw["connection"], b_raw["tail"], strict=True))
    c_tails = set(zip(c_raw["connection"], c_raw["tail"], strict=True))
    shared = b_tails & c_tails
    out = []
    for raw in (b_raw, c_raw):
        rows = []
        for conn, rid, text, region, tail, letters in raw[
            ["connection", "id", "raw", "region", "tail", "letters"]
        ].itertuples(index=False, name=None):
            if letters or (conn, tail) in shared:
                e164 = phone_e164(text, region if isinstance(region, str) else None)
                if e164 is not None:
                    rows.append((conn, rid, e164))
            elif isinstance(tail, str):
                rows.append((conn, rid, "?" + text))
        out.append(pd.DataFrame(rows, columns=["connection", "id", "phone"]).drop_duplicates())
    return out[0].rename(columns={"id": "books_id"}), out[1].rename(columns={"id": "crm_id"})


def _books_features(books: pd.DataFrame) -> pd.DataFrame:
    supplier = _col(books, "is_supplier").map(lambda v: v is True or v == 1).astype(bool)
    customer = _col(books, "is_customer").map(lambda v: v is True or v == 1).astype(bool)
    name = _col(books, "name")
    email = _col(books, "email")
    return pd.DataFrame(
        {
            "connection": _ids(books["connection"]),
            "books_id": _ids(books["customer_id"]),
            "b_name": name,
            "b_key": map_unique(name, match_key),
            "b_email": map_unique(email, email_key),
            "b_domain": map_unique(map_unique(email, email_key), company_domain),
            "b_tax": map_unique(_col(books, "tax_number"), tax_key),
            "b_account": map_unique(_col(books, "account_number"), code_key),
            "b_street": map_unique(_col(books, "street"), street_key),
            "b_postal": map_unique(_col(books, "postal_code"), postal_key),
            "b_city": map_unique(_col(books, "city"), city_key),
            "country": map_unique(_col(books, "country"), country_code),
            "crm_link": _ids(_col(books, "crm_link")),
            # a supplier the organisation never sold to is not a CRM customer (nor missing from the CRM)
            "eligible": ~(supplier & ~customer),
            "phone": _col(books, "phone"),
            "mobile": _col(books, "mobile"),
        },
        index=books.index,
    ).dropna(subset=["connection", "books_id"])


def _crm_features(crm: pd.DataFrame, contacts: pd.DataFrame) -> pd.DataFrame:
    name = _col(crm, "name")
    feats = pd.DataFrame(
        {
            "connection": _ids(crm["connection"]),
            "crm_id": _ids(crm["account_id"]),
            "c_name": name,
            "c_key": map_unique(name, match_key),
            "c_tax": map_unique(_col(crm, "tax_number"), tax_key),
            "c_account": map_unique(_col(crm, "account_number"), code_key),
            "c_street": map_unique(_col(crm, "street"), street_key),
            "c_postal": map_unique(_col(crm, "postal_code"), postal_key),
            "c_city": map_unique(_col(crm, "city"), city_key),
            "country": map_unique(_col(crm, "country"), country_code),
            "books_link": _ids(_col(crm, "books_link")),
            "email": _col(crm, "email"),
            "website": _col(crm, "website"),
            "phone": _col(crm, "phone"),
        },
        index=crm.index,
    ).dropna(subset=["connection", "crm_id"])
    created = pd.Series(pd.NaT, index=feats.index, dtype="datetime64[us, UTC]")
    if len(contacts) and "source_created" in contacts.columns:
        first = (
            pd.DataFrame(
                {
                    "connection": _ids(contacts["connection"]),
                    "crm_id": _ids(contacts["account_id"]),
                    "t": pd.to_datetime(contacts["source_created"], utc=True),
                }
            )  # fmt: skip
            .dropna()
            .groupby(["connection", "crm_id"])["t"]
            .min()
        )
        idx = pd.MultiIndex.from_arrays([feats["connection"], feats["crm_id"]])
        created = pd.Series(first.reindex(idx).to_numpy(), index=feats.index)
    if "source_modified" in crm.columns:
        created = created.fillna(pd.to_datetime(crm["source_modified"], utc=True).reindex(feats.index))
    feats["c_created"] = created
    return feats


def _crm_contact_sides(
    feats: pd.DataFrame, contacts: pd.DataFrame, regions: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every e-mail, company domain and phone of each account: its own and its contacts'."""
    cols = ["connection", "crm_id", "raw"]
    emails = [feats[["connection", "crm_id", "email"]].set_axis(cols, axis=1)]
    phones_src = [feats[["connection", "crm_id", "phone", "country"]]]
    if len(contacts):
        people = pd.DataFrame(
            {
                "connection": _ids(contacts["connection"]),
                "crm_id": _ids(contacts["account_id"]),
                "email": _col(contacts, "email"),
                "secondary_email": _col(contacts, "secondary_email"),
                "phone": _col(contacts, "phone"),
                "mobile": _col(contacts, "mobile"),
                "country": map_unique(_col(contacts, "country"), country_code),
            }
        ).dropna(subset=["connection", "crm_id"])
        account_country = feats.set_index(["connection", "crm_id"])["country"]
        account_country = account_country[~account_country.index.duplicated()]
        idx = pd.MultiIndex.from_arrays([people["connection"], people["crm_id"]])
        people["country"] = people["country"].fillna(
            pd.Series(account_country.reindex(idx).to_numpy(), index=people.index)
        )
        emails += [
            people[["connection", "crm_id", c]].set_axis(cols, axis=1) for c in ("email", "secondary_email")
        ]
        phones_src.append(people[["connection", "crm_id", "phone", "country"]])
        phones_src.append(
            people[["connection", "crm_id", "mobile", "country"]].rename(columns={"mobile": "phone"})
        )
    raw = pd.concat(emails, ignore_index=True).dropna()
    email_tbl = pd.DataFrame({"connection": raw["connection"], "crm_id": raw["crm_id"],
                              "email": map_unique(raw["raw"], email_key)}).dropna().drop_duplicates()  # fmt: skip
    domains = pd.concat(
        [
            pd.DataFrame({"connection": raw["connection"], "crm_id": raw["crm_id"],
                          "domain": map_unique(raw["raw"], company_domain)}),
            pd.DataFrame({"connection": feats["connection"], "crm_id": feats["crm_id"],
                          "domain": map_unique(feats["website"], web_domain)}),
        ],
        ignore_index=True,
    ).dropna().drop_duplicates()  # fmt: skip
    phone_rows = pd.concat(phones_src, ignore_index=True)
    return email_tbl, domains, _raw_phones(phone_rows, "crm_id", ["phone"], regions)


# ---------------------------------------------------------------------------------------------
# Candidates


def _limit_shared(table: pd.DataFrame, key: str, id_col: str) -> pd.DataFrame:
    """Drop key values held by more than SHARED_KEY_LIMIT records of one side (ISPs, switchboards)."""
    held = table[["connection", key, id_col]].drop_duplicates()
    sizes = held.groupby(["connection", key]).size()
    common = sizes[sizes > SHARED_KEY_LIMIT]
    if common.empty:
        return table
    idx = pd.MultiIndex.from_arrays([table["connection"], table[key]])
    return table[~idx.isin(common.index)]


def _key_candidates(b, c, c_emails, c_domains, b_phones, c_phones) -> pd.DataFrame:
    pair = ["connection", "books_id", "crm_id"]
    elig = b[b["eligible"]]
    parts = [
        b.dropna(subset=["crm_link"]).merge(c[["connection", "crm_id"]], left_on=["connection", "crm_link"],
                                            right_on=["connection", "crm_id"])[pair],
        c.dropna(subset=["books_link"]).merge(b[["connection", "books_id"]], left_on=["connection", "books_link"],
                                              right_on=["connection", "books_id"])[pair],
    ]  # fmt: skip
    for b_col, right, r_col in (
        ("b_tax", c[["connection", "crm_id", "c_tax"]], "c_tax"),
        ("b_email", c_emails, "email"),
        ("b_domain", c_domains, "domain"),
        ("b_key", c[["connection", "crm_id", "c_key"]], "c_key"),
    ):
        left = _limit_shared(elig[["connection", "books_id", b_col]].dropna(), b_col, "books_id")
        right = _limit_shared(right.dropna(), r_col, "crm_id")
        parts.append(left.merge(right, left_on=["connection", b_col], right_on=["connection", r_col])[pair])
    phones = _limit_shared(b_phones[b_phones["books_id"].isin(set(elig["books_id"]))], "phone", "books_id")
    parts.append(phones.merge(_limit_shared(c_phones, "phone", "crm_id"), on=["connection", "phone"])[pair])
    return pd.concat(parts, ignore_index=True).drop_duplicates()


def _block_letters(keys: pd.Series) -> pd.DataFrame:
    """Two blocking keys per name: the first letter of its first word and of its last word."""
    words = keys.str.split(" ")
    first = words.str[0].str[:1]
    last = words.str[-1].str[:1]
    return pd.concat([first, last], ignore_index=False).rename("block").to_frame().reset_index(names="row")


def _fuzzy_candidates(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """Pairs of (books, crm) rows whose normalised names score >= FUZZY_CUTOFF, within blocks."""
    out = []
    left = left.dropna(subset=["b_key"]).reset_index(drop=True)
    right = right.dropna(subset=["c_key"]).reset_index(drop=True)
    for conn, lgroup in left.groupby("connection"):
        rgroup = right[right["connection"] == conn]
        if rgroup.empty:
            continue
        lb = _block_letters(lgroup["b_key"])
        rb = _block_letters(rgroup["c_key"])
        for block, lrows in lb.groupby("block"):
            rrows = rb.loc[rb["block"] == block, "row"].unique()
            if not len(rrows):
                continue
            lrows = lrows["row"].unique()
            lkeys = left.loc[lrows, "b_key"].tolist()
            rkeys = right.loc[rrows, "c_key"].tolist()
            for start in range(0, len(lkeys), 2000):  # bounded memory: 2,000 x n uint8 scores
                scores = process.cdist(
                    lkeys[start : start + 2000], rkeys, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF,
                    dtype=np.uint8, workers=-1,
                )  # fmt: skip
                li, ri = np.nonzero(scores)
                if len(li):
                    out.append(
                        pd.DataFrame(
                            {"connection": conn, "books_id": left.loc[lrows[start + li], "books_id"].to_numpy(),
                             "crm_id": right.loc[rrows[ri], "crm_id"].to_numpy()}
                        )
                    )  # fmt: skip
    if not out:
        return pd.DataFrame(columns=["connection", "books_id", "crm_id"])
    return pd.concat(out, ignore_index=True).drop_duplicates()


# ---------------------------------------------------------------------------------------------
# Scoring


def _keys(*cols: pd.Series) -> pd.Series:
    out = cols[0].astype(str)
    for col in cols[1:]:
        out = out + _SEP + col.astype(str)
    return out


def _name_scores(a: pd.Series, b: pd.Series) -> np.ndarray:
    known = (a.notna() & b.notna()).to_numpy()
    scores = np.full(len(a), np.nan)
    if known.any():
        left, right = a[known].tolist(), b[known].tolist()
        plain = process.cpdist(left, right, scorer=fuzz.ratio, workers=-1)
        swapped = process.cpdist(left, right, scorer=fuzz.token_sort_ratio, workers=-1)
        scores[known] = np.maximum(plain, swapped)
    return scores


def _score(pairs, b, c, c_emails, c_domains, b_phones, c_phones) -> pd.DataFrame:
    """Each evidence kind per pair (+1 agrees, 0 unknown, -1 contradicts; e-mail has two levels),
    the points they add up to and the confidence."""
    p = pairs.merge(b.drop(columns=["phone", "mobile"]), on=["connection", "books_id"], how="left")
    p = p.merge(c.drop(columns=["email", "website", "phone"]), on=["connection", "crm_id"], how="left",
                suffixes=("_b", "_c"))  # fmt: skip
    p = p.reset_index(drop=True)
    n = len(p)
    p["explicit"] = (p["crm_link"] == p["crm_id"]) | (p["books_link"] == p["books_id"])

    def agree(x: pd.Series, y: pd.Series) -> np.ndarray:
        both = x.notna() & y.notna()
        return np.where(both, np.where(x == y, 1, -1), 0)

    p["tax"] = agree(p["b_tax"], p["c_tax"])
    p["account"] = np.where(agree(p["b_account"], p["c_account"]) == 1, 1, 0)

    crm_key = _keys(p["connection"], p["crm_id"])
    email_exact = _keys(crm_key, p["b_email"]).isin(set(_keys(c_emails["connection"], c_emails["crm_id"],
                                                                c_emails["email"])))  # fmt: skip
    email_exact &= p["b_email"].notna()
    domain_shared = (
        _keys(crm_key, p["b_domain"]).isin(
            set(_keys(c_domains["connection"], c_domains["crm_id"], c_domains["domain"]))
        )
        & p["b_domain"].notna()
    )
    crm_has_email = crm_key.isin(set(_keys(c_emails["connection"], c_emails["crm_id"])))
    crm_has_domain = crm_key.isin(set(_keys(c_domains["connection"], c_domains["crm_id"])))
    differ = p["b_email"].notna() & crm_has_email
    p["email"] = np.select(
        [email_exact, domain_shared, differ & p["b_domain"].notna() & crm_has_domain, differ],
        [2, 1, -2, -1],
        0,
    )

    bp = b_phones.merge(p[["connection", "books_id", "crm_id"]].reset_index(names="pair"),
                        on=["connection", "books_id"])  # fmt: skip
    hit = _keys(bp["connection"], bp["crm_id"], bp["phone"]).isin(
        set(_keys(c_phones["connection"], c_phones["crm_id"], c_phones["phone"]))
    )
    phone_hit = np.zeros(n, dtype=bool)
    phone_hit[bp.loc[hit.to_numpy(), "pair"].to_numpy()] = True
    b_has_phone = _keys(p["connection"], p["books_id"]).isin(
        set(_keys(b_phones["connection"], b_phones["books_id"]))
    )
    c_has_phone = crm_key.isin(set(_keys(c_phones["connection"], c_phones["crm_id"])))
    p["phone"] = np.where(phone_hit, 1, np.where(b_has_phone & c_has_phone, -1, 0))

    p["name_score"] = _name_scores(p["b_key"], p["c_key"])
    p["name_same"] = (p["b_name"].astype(str).str.strip() == p["c_name"].astype(str).str.strip()) & p[
        "b_name"
    ].notna()

    street = agree(p["b_street"], p["c_street"])
    place = np.maximum(agree(p["b_postal"], p["c_postal"]), agree(p["b_city"], p["c_city"]))
    p["address"] = np.select(
        [(street == 1) & (place == 1), street == 1, (street == -1) & (place == -1)], [2, 1, -1], 0
    )

    name = p["name_score"].to_numpy()
    name_points = np.zeros(n)
    assigned = np.isnan(name)
    for floor, points in NAME_POINTS:
        hit_now = ~assigned & (name >= floor)
        name_points[hit_now] = points
        assigned |= hit_now
    points = (
        np.where(p["explicit"], POINTS["explicit"], 0.0)
        + np.select([p["tax"] == 1, p["tax"] == -1], [POINTS["tax_agree"], POINTS["tax_differ"]], 0.0)
        + np.select(
            [p["email"] == 2, p["email"] == 1, p["email"] == -1, p["email"] == -2],
            [POINTS["email_exact"], POINTS["domain_shared"], POINTS["email_differ"], POINTS["domain_differ"]],
            0.0,
        )
        + np.select([p["phone"] == 1, p["phone"] == -1], [POINTS["phone_agree"], POINTS["phone_differ"]], 0.0)
        + name_points
        + np.where(p["name_same"], POINTS["name_same"], 0.0)
        + np.select(
            [p["address"] == 2, p["address"] == 1, p["address"] == -1],
            [POINTS["address_agree"], POINTS["street_agree"], POINTS["address_differ"]],
            0.0,
        )
        + np.where(p["account"] == 1, POINTS["account_agree"], 0.0)
    )
    p["points"] = points
    p["confidence"] = _confidence(pd.Series(points))
    p["method"] = _method(p)
    p["duplicate_ok"] = (
        (p["confidence"] >= DUPLICATE_THRESHOLD)
        & (p["name_score"].fillna(0) >= DUPLICATE_NAME_SCORE)
        & ((p["email"] > 0) | (p["phone"] > 0) | (p["tax"] > 0))
        & (p["email"] >= -1)
        & (p["tax"] >= 0)
    )
    return p


def _method(p: pd.DataFrame) -> np.ndarray:
    return np.select(
        [p["explicit"], p["tax"] == 1, p["email"] == 2, p["email"] == 1, p["phone"] == 1,
         p["name_score"].fillna(0) >= 85, p["address"] > 0],
        list(METHODS),
        "name",
    )  # fmt: skip


def _evidence(p: pd.DataFrame) -> list[str]:
    """What agreed and what disagreed, in words (kinds and scores only: no personal data)."""
    out = []
    cols = ["explicit", "tax", "email", "phone", "name_score", "name_same", "address", "account"]
    for explicit, tax, email, phone, name, same, address, account in p[cols].itertuples(
        index=False, name=None
    ):
        yes, no = [], []
        if explicit:
            yes.append("explicit link")
        (yes if tax == 1 else no if tax == -1 else []).append("tax number")
        if email == 2:
            yes.append("email")
        elif email == 1:
            yes.append("email domain")
        elif email == -2:
            no.append("email domain")
        elif email == -1:
            no.append("email")
        (yes if phone == 1 else no if phone == -1 else []).append("phone")
        if name == name:  # not NaN
            label = "name (identical)" if same else f"name {name:.0f}"
            if name >= 85:
                yes.append(label)
            elif name < 75:
                no.append(label)
        if address == 2:
            yes.append("address")
        elif address == 1:
            yes.append("street")
        elif address == -1:
            no.append("address")
        if account == 1:
            yes.append("account number")
        text = "agrees: " + (", ".join(yes) or "nothing")
        if no:
            text += "; disagrees: " + ", ".join(no)
        out.append(text)
    return out


# ---------------------------------------------------------------------------------------------
# Decisions and assignment


def _latest_decisions(decisions: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["connection", "books_id", "crm_id", "decision", "decided_at", "by"]
    if decisions is None or decisions.empty:
        return pd.DataFrame(columns=cols)
    d = decisions.copy()
    for col in ("connection", "books_id", "crm_id"):
        d[col] = _ids(d[col])
    d["decision"] = d["decision"].astype(str).str.strip().str.lower()
    d = d[d["decision"].isin(["accept", "reject"])].dropna(subset=["connection", "books_id", "crm_id"])
    if "decided_at" in d.columns:
        d = d.assign(_t=pd.to_datetime(d["decided_at"], utc=True)).sort_values("_t", kind="stable")
    if "by" not in d.columns:
        d["by"] = None
    return d.drop_duplicates(["connection", "books_id", "crm_id"], keep="last")


def _assign(scored: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """Statuses by a one-to-one assignment, best first; decisions and explicit links first."""
    s = scored.copy()
    s["status"] = None
    s["decided"] = ""
    if len(decisions):
        d = decisions.set_index(["connection", "books_id", "crm_id"])
        idx = pd.MultiIndex.from_arrays([s["connection"], s["books_id"], s["crm_id"]])
        s["decision"] = d["decision"].reindex(idx).to_numpy()
        by = d["by"].reindex(idx).to_numpy()
        s["decided"] = [f"{dec}ed by {who}" if isinstance(dec, str) else "" for dec, who in
                        zip(s["decision"], by, strict=True)]  # fmt: skip
    else:
        s["decision"] = None
    s["priority"] = np.select([s["decision"] == "accept", s["explicit"]], [0, 1], 2)
    s = s.sort_values(["priority", "points", "c_created", "crm_id", "books_id"],
                      ascending=[True, False, True, True, True], kind="stable")  # fmt: skip
    taken_b: dict[tuple, str] = {}
    taken_c: dict[tuple, str] = {}
    status = []
    cols = ["connection", "books_id", "crm_id", "decision", "priority", "confidence", "duplicate_ok"]
    for conn, bid, cid, decision, priority, conf, dup_ok in s[cols].itertuples(index=False, name=None):
        kb, kc = (conn, bid), (conn, cid)
        if decision == "reject":
            status.append("rejected")
            continue
        held_b, held_c = taken_b.get(kb), taken_c.get(kc)
        if priority < 2:
            result = "linked"
        elif held_b is None and held_c is None:
            result = "linked" if conf >= MATCH_THRESHOLD else "review" if conf >= REVIEW_FLOOR else None
        elif "review" not in (held_b, held_c) and dup_ok:
            result = "linked"  # a genuine duplicate: both strongly match one record
        else:
            result = None
        status.append(result)
        if result is not None:
            taken_b.setdefault(kb, result)
            taken_c.setdefault(kc, result)
            if result == "linked":
                taken_b[kb] = taken_c[kc] = "linked"
    s["status"] = status
    s = s[s["status"].notna()].copy()
    s.loc[s["decision"].notna(), "method"] = "decision"
    s.loc[s["decision"] == "accept", "confidence"] = 1.0
    s.loc[s["explicit"] & s["decision"].isna(), "confidence"] = 1.0
    return s


def _empty_links() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c == "confidence" else object) for c in LINK_COLUMNS})


def match_customers(
    books: pd.DataFrame,
    crm: pd.DataFrame,
    crm_contacts: pd.DataFrame,
    decisions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Candidate links between books customers and CRM accounts, one row per link kept.

    `books` = canonical.books_customers rows, `crm` = canonical.crm_accounts rows, `crm_contacts` =
    canonical.crm_contacts rows (any number of connections; records are only compared within one);
    `decisions` = recon.link_decisions rows (connection, books_id, crm_id, decision accept|reject,
    decided_at, by), the latest per pair honoured: a rejected pair is reported `rejected` and never
    linked, an accepted one is `linked` with method `decision`. Returns LINK_COLUMNS: method (the
    strongest evidence that agreed, or `decision`), confidence in [0, 1], status `linked` |
    `review` | `rejected`, evidence (what agreed and what disagreed). Rows come strongest first
    within a connection, then earliest-created CRM account first (`duplicates()` relies on it).
    """
    if books is None or crm is None or books.empty or crm.empty:
        return _empty_links()
    contacts = crm_contacts if crm_contacts is not None else pd.DataFrame()
    b = _books_features(books)
    c = _crm_features(crm, contacts)
    regions = _default_regions(b[["connection", "country"]], c[["connection", "country"]])
    c_emails, c_domains, c_raw_phones = _crm_contact_sides(c, contacts, regions)
    b_phones, c_phones = _resolve_phones(
        _raw_phones(b, "books_id", ["phone", "mobile"], regions), c_raw_phones
    )
    sides = (b, c, c_emails, c_domains, b_phones, c_phones)
    dec = _latest_decisions(decisions)

    pairs = _key_candidates(*sides)
    if len(dec):  # an accepted pair is a candidate whatever its evidence
        known = dec.merge(b[["connection", "books_id"]]).merge(c[["connection", "crm_id"]])
        pairs = pd.concat([pairs, known[["connection", "books_id", "crm_id"]]]).drop_duplicates()
    scored = _score(pairs, *sides)

    # records without a confident candidate yet: compare their names with the other side's
    confident = scored[scored["confidence"] >= MATCH_THRESHOLD]
    sure_b = set(_keys(confident["connection"], confident["books_id"]))
    sure_c = set(_keys(confident["connection"], confident["crm_id"]))
    left = b[b["eligible"] & ~_keys(b["connection"], b["books_id"]).isin(sure_b)]
    right = c[~_keys(c["connection"], c["crm_id"]).isin(sure_c)]
    fuzzy = _fuzzy_candidates(left, right)
    if len(fuzzy):
        seen = set(_keys(pairs["connection"], pairs["books_id"], pairs["crm_id"]))
        fuzzy = fuzzy[~_keys(fuzzy["connection"], fuzzy["books_id"], fuzzy["crm_id"]).isin(seen)]
        if len(fuzzy):
            scored = pd.concat([scored, _score(fuzzy, *sides)], ignore_index=True)

    links = _assign(scored, dec)
    if links.empty:
        return _empty_links()
    evidence = _evidence(links)
    links["evidence"] = [
        f"{decided}; {text}" if decided else text
        for decided, text in zip(links["decided"], evidence, strict=True)
    ]
    links["confidence"] = links["confidence"].astype(float).round(6)
    order = links.sort_values(["connection"], kind="stable")  # keeps the assignment's strength order
    return order[LINK_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Duplicates

_METHOD_RANK = {"explicit": 0, "decision": 0}


def duplicates(links: pd.DataFrame) -> pd.DataFrame:
    """One-to-many and many-to-one among `linked` links.

    side 'crm': one books customer linked to several CRM accounts; crm_id is an extra account and
    other_id the first. side 'books': one CRM account linked to several books customers; books_id is
    an extra customer and other_id the first. "First" is the record the link is strongest to: an
    explicit link or a person's decision before anything else, then the higher confidence (an
    identically spelled name, a shared tax or account number count), then the order of `links`
    (match_customers lists equally strong links earliest-created CRM account first). So, as the
    generator's manifest does, the *second* record is the one reported.
    """
    if links is None or links.empty:
        return pd.DataFrame(columns=DUPLICATE_COLUMNS)
    linked = links[links["status"] == "linked"].reset_index(drop=True)
    linked = linked.assign(
        _rank=linked["method"].map(_METHOD_RANK).fillna(1), _conf=-linked["confidence"].astype(float),
        _pos=np.arange(len(linked)),
    ).sort_values(["_rank", "_conf", "_pos"], kind="stable")  # fmt: skip
    out = []
    for group_col, other_col, side in (("books_id", "crm_id", "crm"), ("crm_id", "books_id", "books")):
        counts = linked.groupby(["connection", group_col])[other_col].transform("nunique")
        multi = linked[counts > 1]
        if multi.empty:
            continue
        first = multi.drop_duplicates(["connection", group_col])[["connection", group_col, other_col]]
        rest = multi.merge(first.rename(columns={other_col: "other_id"}), on=["connection", group_col])
        rest = rest[rest[other_col] != rest["other_id"]].drop_duplicates(["connection", "books_id", "crm_id"])
        out.append(rest.assign(side=side)[DUPLICATE_COLUMNS])
    if not out:
        return pd.DataFrame(columns=DUPLICATE_COLUMNS)
    return pd.concat(out, ignore_index=True)
