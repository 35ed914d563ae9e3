"""Customer entity resolution: which books customer is which CRM account, with how much confidence.

Incumbent connectors match on e-mail alone and create duplicates; here every kind of evidence is
weighed, agreeing *and* contradicting, strongest first: an explicit link (the CRM account's
`books_link` or the books contact's `crm_link`, written by our write-back), tax number, e-mail
(the account's and every contact's), the e-mail's company domain (never a free-mail provider's),
phone in E.164, the normalised name with a fuzzy score, the address, the account number.

How it runs, per connection (records of two connections are never compared):
1. Candidates come from exact keys (explicit ids, tax numbers, e-mails, domains, phones,
   normalised names), joined as integer codes: records are numbered, values factorised. Records
   that end this step without a confident candidate are then compared by fuzzy name, blocked on
   the first letter of their first and of their last word, with `rapidfuzz.process.cdist` - so
   40,000 customers a side never make 1.6 billion pairs.
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


def _confidence(points: pd.Series) -> pd.Series:
    """The logistic map from evidence points to a confidence: 4 points (a name alone) is 0.5."""
    return 1.0 / (1.0 + np.exp(-_SLOPE * (points.astype(float) - _CENTRE)))


# ---------------------------------------------------------------------------------------------
# Features: the normal forms of each side. Records are numbered (books row `bi`, CRM row `ci`) and
# every value that is joined on becomes an integer code, so 40,000 customers a side join as integers.


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-None when the frame lacks it (optional columns of the canonical views)."""
    if name in frame.columns:
        return frame[name].astype(object).where(frame[name].notna(), None)
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _ids(series: pd.Series) -> pd.Series:
    """Ids as text, blanks as None."""
    out = series.astype(object).where(series.notna(), None)
    return out.map(lambda v: str(v).strip() or None if v is not None else None).astype(object)


def _flag(series: pd.Series) -> pd.Series:
    return series.map(lambda v: v is True or v == 1).astype(bool)


_NEVER = np.iinfo(np.int64).max


def _nanos(values: pd.Series) -> np.ndarray:
    """UTC times as int64 nanoseconds (unknown: _NEVER, so it sorts last)."""
    times = pd.to_datetime(values, utc=True)
    out = times.astype("int64").to_numpy() if len(times) else np.empty(0, dtype=np.int64)
    return np.where(times.isna().to_numpy(), _NEVER, out)


def _books_features(books: pd.DataFrame) -> pd.DataFrame:
    name = _col(books, "name")
    email = map_unique(_col(books, "email"), email_key)
    supplier, customer = _flag(_col(books, "is_supplier")), _flag(_col(books, "is_customer"))
    frame = pd.DataFrame(
        {
            "connection": _ids(books["connection"]),
            "books_id": _ids(books["customer_id"]),
            "name": name,
            "key": map_unique(name, match_key),
            "email": email,
            "domain": map_unique(email, company_domain),
            **_registry_features(books),
            "link": _ids(_col(books, "crm_link")),
            # a supplier the organisation never sold to is not a CRM customer (nor missing from the CRM)
            "eligible": ~(supplier & ~customer),
            "phone": _col(books, "phone"),
            "mobile": _col(books, "mobile"),
        },
        index=books.index,
    )
    frame = frame.dropna(subset=["connection", "books_id"]).drop_duplicates(["connection", "books_id"])
    return frame.reset_index(drop=True)


def _registry_features(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The keys both sides carry alike: tax and account numbers, the address parts."""
    return {
        "tax": map_unique(_col(frame, "tax_number"), tax_key),
        "account": map_unique(_col(frame, "account_number"), code_key),
        "street": map_unique(_col(frame, "street"), street_key),
        "postal": map_unique(_col(frame, "postal_code"), postal_key),
        "city": map_unique(_col(frame, "city"), city_key),
        "country": map_unique(_col(frame, "country"), country_code),
    }


def _crm_features(crm: pd.DataFrame, contacts: pd.DataFrame) -> pd.DataFrame:
    name = _col(crm, "name")
    frame = pd.DataFrame(
        {
            "connection": _ids(crm["connection"]),
            "crm_id": _ids(crm["account_id"]),
            "name": name,
            "key": map_unique(name, match_key),
            **_registry_features(crm),
            "link": _ids(_col(crm, "books_link")),
            "email": _col(crm, "email"),
            "website": _col(crm, "website"),
            "phone": _col(crm, "phone"),
            "modified": _nanos(crm["source_modified"]) if "source_modified" in crm else _NEVER,
        },
        index=crm.index,
    )
    frame = frame.dropna(subset=["connection", "crm_id"]).drop_duplicates(["connection", "crm_id"])
    frame = frame.reset_index(drop=True)
    frame["created"] = _created(frame, contacts)
    return frame


def _created(frame: pd.DataFrame, contacts: pd.DataFrame) -> np.ndarray:
    """When each account was created: its first contact's creation (the view has no created time for
    accounts), else its last modification."""
    created = np.full(len(frame), _NEVER, dtype=np.int64)
    if len(contacts) and "source_created" in contacts.columns:
        rows = _rows_of(frame, contacts)
        t = _nanos(contacts["source_created"])
        keep = rows >= 0
        np.minimum.at(created, rows[keep], t[keep])
    return np.where(created == _NEVER, frame["modified"].to_numpy(dtype=np.int64), created)


def _rows_of(accounts: pd.DataFrame, contacts: pd.DataFrame) -> np.ndarray:
    """The account row of each contact (-1: no such account in the connection)."""
    if not len(contacts):
        return np.empty(0, dtype=np.int64)
    index = pd.MultiIndex.from_arrays([accounts["connection"], accounts["crm_id"]])
    wanted = pd.MultiIndex.from_arrays([_ids(contacts["connection"]), _ids(contacts["account_id"])])
    return index.get_indexer(wanted)


def _default_regions(b: pd.DataFrame, c: pd.DataFrame) -> dict[str, str]:
    """Each connection's most common country: the region of a phone whose record names none."""
    both = pd.concat([b[["connection", "country"]], c[["connection", "country"]]], ignore_index=True).dropna()
    if both.empty:
        return {}
    counts = both.groupby(["connection", "country"]).size().reset_index(name="n")
    counts = counts.sort_values(["connection", "n", "country"], ascending=[True, False, True])
    return dict(counts.drop_duplicates("connection")[["connection", "country"]].itertuples(index=False))


PHONE_TAIL = 7  # last digits two numbers must share before they are worth parsing


def _raw_phones(rows: np.ndarray, raws: list[pd.Series], regions: pd.Series) -> pd.DataFrame:
    """(row, raw, region, tail, letters) per typed phone: the region a number typed without a country
    code is read in, its last digits, whether it has letters."""
    parts = []
    for raw in raws:
        keep = raw.notna().to_numpy()
        parts.append(pd.DataFrame({"row": rows[keep], "raw": raw[keep].astype(str).to_numpy(),
                                   "region": regions.to_numpy()[keep]}))  # fmt: skip
    out = pd.concat(parts, ignore_index=True)
    digits = out["raw"].str.replace(r"\D", "", regex=True)
    out["tail"] = digits.str[-PHONE_TAIL:].where(digits.str.len() >= PHONE_TAIL)
    out["letters"] = out["raw"].str.contains(r"[A-Za-z]", regex=True)
    return out


def _resolve_phones(
    b_raw: pd.DataFrame, c_raw: pd.DataFrame, b_conn: np.ndarray, c_conn: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each side's phones as (row, phone): E.164 where it can matter.

    Two numbers can only be equal in E.164 when their last digits are, so phonenumbers (thorough, and
    the slowest step at 40,000 customers) reads only numbers whose last digits occur on the other side
    of the connection (and those typed with letters: "ext. 12", "0800 FLOWERS"). Any other plausible
    number stands as itself, prefixed "?": it can agree with nothing, but the record still has a phone.
    """
    b_tails = set(zip(b_conn[b_raw["row"].to_numpy()], b_raw["tail"], strict=True))
    c_tails = set(zip(c_conn[c_raw["row"].to_numpy()], c_raw["tail"], strict=True))
    shared = b_tails & c_tails
    out = []
    for raw, conn in ((b_raw, b_conn), (c_raw, c_conn)):
        rows, phones = [], []
        cols = raw[["row", "raw", "region", "tail", "letters"]].itertuples(index=False, name=None)
        for row, text, region, tail, letters in cols:
            if letters or (conn[row], tail) in shared:
                phone = phone_e164(text, region if isinstance(region, str) else None)
            else:
                phone = "?" + text if isinstance(tail, str) else None
            if phone is not None:
                rows.append(row)
                phones.append(phone)
        out.append(pd.DataFrame({"row": np.asarray(rows, dtype=np.int64), "phone": phones}).drop_duplicates())
    return out[0], out[1]


class _Sides:
    """Both sides' features and the many-valued facts of each record: a CRM account's e-mails, company
    domains and phones (its own and its contacts'), a books customer's phones."""

    def __init__(self, books: pd.DataFrame, crm: pd.DataFrame, contacts: pd.DataFrame) -> None:
        b = self.b = _books_features(books)
        c = self.c = _crm_features(crm, contacts)
        self.nb, self.nc = len(b), len(c)
        conn_codes, _ = pd.factorize(pd.concat([b["connection"], c["connection"]], ignore_index=True))
        self.b_cc, self.c_cc = conn_codes[: self.nb], conn_codes[self.nb :]
        regions = _default_regions(b, c)
        b_region = b["country"].where(b["country"].notna(), b["connection"].map(regions))
        c_region = c["country"].where(c["country"].notna(), c["connection"].map(regions))

        emails = [pd.DataFrame({"row": np.arange(self.nc), "raw": c["email"]})]
        c_rows = [np.arange(self.nc)]
        c_phone_raw = [c["phone"]]
        c_phone_region = [c_region]
        if len(contacts):
            rows = _rows_of(c, contacts)
            keep = rows >= 0
            rows = rows[keep]
            people = contacts[keep]
            own = map_unique(_col(people, "country"), country_code).to_numpy()
            region = np.where(pd.notna(own), own, c_region.to_numpy()[rows])
            for column in ("email", "secondary_email"):
                emails.append(pd.DataFrame({"row": rows, "raw": _col(people, column).to_numpy()}))
            for column in ("phone", "mobile"):
                c_rows.append(rows)
                c_phone_raw.append(_col(people, column).reset_index(drop=True))
                c_phone_region.append(pd.Series(region))
        raw = pd.concat(emails, ignore_index=True).dropna()
        email = map_unique(raw["raw"], email_key)
        self.c_emails = pd.DataFrame({"row": raw["row"], "value": email}).dropna().drop_duplicates()
        domains = pd.concat(
            [
                pd.DataFrame({"row": raw["row"], "value": map_unique(email, company_domain)}),
                pd.DataFrame({"row": np.arange(self.nc), "value": map_unique(c["website"], web_domain)}),
            ],
            ignore_index=True,
        )
        self.c_domains = domains.dropna().drop_duplicates()

        b_raw = _raw_phones(np.arange(self.nb), [b["phone"], b["mobile"]], b_region)
        c_raw = pd.concat(
            [
                _raw_phones(r, [p.reset_index(drop=True)], g.reset_index(drop=True))
                for r, p, g in zip(c_rows, c_phone_raw, c_phone_region, strict=True)
            ],
            ignore_index=True,
        )
        b_conn, c_conn = b["connection"].to_numpy(), c["connection"].to_numpy()
        self.b_phones, self.c_phones = _resolve_phones(b_raw, c_raw, b_conn, c_conn)

        # one integer code space per kind of value, shared by both sides
        self.email_code = _Codes(b["email"], self.c_emails["value"])
        self.domain_code = _Codes(b["domain"], self.c_domains["value"])
        self.phone_code = _Codes(self.b_phones["phone"], self.c_phones["phone"])


class _Codes:
    """Integer codes for the values of a books-side and a CRM-side column (-1 for None)."""

    def __init__(self, left: pd.Series, right: pd.Series) -> None:
        codes, uniques = pd.factorize(pd.concat([left, right], ignore_index=True))
        self.left, self.right = codes[: len(left)], codes[len(left) :]
        self.size = len(uniques) + 1


# ---------------------------------------------------------------------------------------------
# Candidates


def _join(b_rows, b_codes, b_cc, c_rows, c_codes, c_cc, size) -> pd.DataFrame:
    """(bi, ci) pairs sharing a value within a connection; values held by more than SHARED_KEY_LIMIT
    records of one side (an ISP's domain, a switchboard) are no evidence of identity and join nothing."""
    frames = []
    for rows, codes, cc in ((b_rows, b_codes, b_cc), (c_rows, c_codes, c_cc)):
        keep = codes >= 0
        key = cc[rows[keep]].astype(np.int64) * size + codes[keep]
        held = pd.DataFrame({"row": rows[keep], "key": key}).drop_duplicates()
        counts = held["key"].value_counts()
        frames.append(held[~held["key"].isin(counts.index[counts > SHARED_KEY_LIMIT])])
    joined = frames[0].merge(frames[1], on="key", suffixes=("_b", "_c"))
    return pd.DataFrame({"bi": joined["row_b"].to_numpy(), "ci": joined["row_c"].to_numpy()})


def _key_candidates(s: _Sides) -> pd.DataFrame:
    b, c = s.b, s.c
    parts = []
    # explicit links, from either side, whatever the record's role
    b_index = pd.MultiIndex.from_arrays([b["connection"], b["books_id"]])
    c_index = pd.MultiIndex.from_arrays([c["connection"], c["crm_id"]])
    target = c_index.get_indexer(pd.MultiIndex.from_arrays([b["connection"], b["link"]]))
    parts.append(pd.DataFrame({"bi": np.flatnonzero(target >= 0), "ci": target[target >= 0]}))
    target = b_index.get_indexer(pd.MultiIndex.from_arrays([c["connection"], c["link"]]))
    parts.append(pd.DataFrame({"bi": target[target >= 0], "ci": np.flatnonzero(target >= 0)}))

    eligible = b["eligible"].to_numpy()
    b_all, c_all = np.arange(s.nb), np.arange(s.nc)
    for column in ("tax", "key"):
        codes = _Codes(b[column], c[column])
        parts.append(
            _join(b_all[eligible], codes.left[eligible], s.b_cc, c_all, codes.right, s.c_cc, codes.size)
        )
    for codes, b_rows, c_rows in (
        (s.email_code, b_all, s.c_emails["row"].to_numpy()),
        (s.domain_code, b_all, s.c_domains["row"].to_numpy()),
        (s.phone_code, s.b_phones["row"].to_numpy(), s.c_phones["row"].to_numpy()),
    ):
        ok = eligible[b_rows]
        parts.append(_join(b_rows[ok], codes.left[ok], s.b_cc, c_rows, codes.right, s.c_cc, codes.size))
    return _unique_pairs(pd.concat(parts, ignore_index=True), s.nc)


def _unique_pairs(pairs: pd.DataFrame, nc: int) -> pd.DataFrame:
    key = pairs["bi"].to_numpy(dtype=np.int64) * max(nc, 1) + pairs["ci"].to_numpy(dtype=np.int64)
    _, first = np.unique(key, return_index=True)
    return pairs.iloc[np.sort(first)].reset_index(drop=True)


def _fuzzy_candidates(s: _Sides, b_rows: np.ndarray, c_rows: np.ndarray) -> pd.DataFrame:
    """(bi, ci) pairs whose normalised names score >= FUZZY_CUTOFF, compared within blocks: the same
    connection and the same first letter of the first word, or of the last word."""

    def blocks(keys: pd.Series, cc: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
        words = keys.str.split(" ")
        firsts = pd.DataFrame({"row": rows, "cc": cc[rows], "letter": words.str[0].str[:1].to_numpy()})
        lasts = firsts.assign(letter=words.str[-1].str[:1].to_numpy())
        return pd.concat([firsts, lasts], ignore_index=True).drop_duplicates()

    b_keys, c_keys = s.b["key"].to_numpy(), s.c["key"].to_numpy()
    b_rows = b_rows[pd.notna(b_keys[b_rows])]
    c_rows = c_rows[pd.notna(c_keys[c_rows])]
    if not len(b_rows) or not len(c_rows):
        return pd.DataFrame({"bi": [], "ci": []}, dtype=np.int64)
    left = blocks(pd.Series(b_keys[b_rows]), s.b_cc, b_rows)
    right = blocks(pd.Series(c_keys[c_rows]), s.c_cc, c_rows)
    right_groups = {k: g["row"].to_numpy() for k, g in right.groupby(["cc", "letter"])}
    out = []
    for block, group in left.groupby(["cc", "letter"]):
        rrows = right_groups.get(block)
        if rrows is None:
            continue
        lrows = group["row"].to_numpy()
        rkeys = c_keys[rrows].tolist()
        for start in range(0, len(lrows), 2000):  # bounded memory: 2,000 x n uint8 scores
            chunk = lrows[start : start + 2000]
            scores = process.cdist(b_keys[chunk].tolist(), rkeys, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF,
                                   dtype=np.uint8, workers=-1)  # fmt: skip
            li, ri = np.nonzero(scores)
            out.append(pd.DataFrame({"bi": chunk[li], "ci": rrows[ri]}))
    if not out:
        return pd.DataFrame({"bi": [], "ci": []}, dtype=np.int64)
    return _unique_pairs(pd.concat(out, ignore_index=True), s.nc)


# ---------------------------------------------------------------------------------------------
# Scoring


def _agree(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """+1 equal, -1 different, 0 where either is unknown."""
    both = pd.notna(x) & pd.notna(y)
    return np.where(both, np.where(x == y, 1, -1), 0)


def _member(rows: np.ndarray, codes: np.ndarray, table_rows: np.ndarray, table_codes: np.ndarray, size: int):
    """Whether (row, code) is one of the table's (row, code) pairs; False where code is -1."""
    wanted = rows.astype(np.int64) * size + codes
    held = table_rows.astype(np.int64) * size + table_codes
    return (codes >= 0) & np.isin(wanted, held)


def _name_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    known = pd.notna(a) & pd.notna(b)
    scores = np.full(len(a), np.nan)
    if known.any():
        left, right = a[known].tolist(), b[known].tolist()
        plain = process.cpdist(left, right, scorer=fuzz.ratio, workers=-1)
        swapped = process.cpdist(left, right, scorer=fuzz.token_sort_ratio, workers=-1)
        scores[known] = np.maximum(plain, swapped)
    return scores


def _score(pairs: pd.DataFrame, s: _Sides) -> pd.DataFrame:
    """Each evidence kind per pair (+1 agrees, 0 unknown, -1 contradicts; e-mail has two levels),
    the points they add up to and the confidence."""
    b, c = s.b, s.c
    bi, ci = pairs["bi"].to_numpy(dtype=np.int64), pairs["ci"].to_numpy(dtype=np.int64)
    n = len(bi)

    def bcol(name: str) -> np.ndarray:
        return b[name].to_numpy()[bi]

    def ccol(name: str) -> np.ndarray:
        return c[name].to_numpy()[ci]

    p = pd.DataFrame({"bi": bi, "ci": ci})
    p["explicit"] = (bcol("link") == ccol("crm_id")) | (ccol("link") == bcol("books_id"))
    p["tax"] = _agree(bcol("tax"), ccol("tax"))
    p["account"] = (_agree(bcol("account"), ccol("account")) == 1).astype(int)

    e, d = s.email_code, s.domain_code
    email_exact = _member(ci, e.left[bi], s.c_emails["row"].to_numpy(), e.right, e.size)
    domain_shared = _member(ci, d.left[bi], s.c_domains["row"].to_numpy(), d.right, d.size)
    crm_has_email = np.isin(ci, s.c_emails["row"].to_numpy())
    crm_has_domain = np.isin(ci, s.c_domains["row"].to_numpy())
    differ = (e.left[bi] >= 0) & crm_has_email
    p["email"] = np.select(
        [email_exact, domain_shared, differ & (d.left[bi] >= 0) & crm_has_domain, differ], [2, 1, -2, -1], 0
    )

    ph = s.phone_code
    b_phone_rows = s.b_phones["row"].to_numpy()
    expanded = pd.DataFrame({"pair": np.arange(n), "bi": bi, "ci": ci}).merge(
        pd.DataFrame({"bi": b_phone_rows, "code": ph.left}), on="bi"
    )
    hit = _member(expanded["ci"].to_numpy(), expanded["code"].to_numpy(), s.c_phones["row"].to_numpy(),
                  ph.right, ph.size)  # fmt: skip
    phone_hit = np.zeros(n, dtype=bool)
    phone_hit[expanded["pair"].to_numpy()[hit]] = True
    has_b = np.isin(bi, b_phone_rows)
    has_c = np.isin(ci, s.c_phones["row"].to_numpy())
    p["phone"] = np.where(phone_hit, 1, np.where(has_b & has_c, -1, 0))

    name = _name_scores(bcol("key"), ccol("key"))
    p["name_score"] = name
    b_names, c_names = bcol("name"), ccol("name")
    p["name_same"] = [isinstance(x, str) and isinstance(y, str) and x.strip() == y.strip()
                      for x, y in zip(b_names, c_names, strict=True)]  # fmt: skip

    street = _agree(bcol("street"), ccol("street"))
    place = np.maximum(_agree(bcol("postal"), ccol("postal")), _agree(bcol("city"), ccol("city")))
    p["address"] = np.select(
        [(street == 1) & (place == 1), street == 1, (street == -1) & (place == -1)], [2, 1, -1], 0
    )

    name_points = np.zeros(n)
    assigned = np.isnan(name)
    for floor, points in NAME_POINTS:
        now = ~assigned & (name >= floor)
        name_points[now] = points
        assigned |= now
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
    p["created"] = ccol("created")
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


def _latest_decisions(decisions: pd.DataFrame | None, s: _Sides) -> pd.DataFrame:
    """The latest answer per pair whose records still exist, as (bi, ci, decision, by)."""
    cols = ["bi", "ci", "decision", "by"]
    if decisions is None or decisions.empty:
        return pd.DataFrame(columns=cols)
    d = decisions.copy()
    for col in ("connection", "books_id", "crm_id"):
        d[col] = _ids(d[col])
    d["decision"] = d["decision"].astype(str).str.strip().str.lower()
    d = d[d["decision"].isin(["accept", "reject"])].dropna(subset=["connection", "books_id", "crm_id"])
    if "decided_at" in d.columns:
        d = d.assign(_t=pd.to_datetime(d["decided_at"], utc=True)).sort_values("_t", kind="stable")
    d = d.drop_duplicates(["connection", "books_id", "crm_id"], keep="last")
    d["bi"] = pd.MultiIndex.from_arrays([s.b["connection"], s.b["books_id"]]).get_indexer(
        pd.MultiIndex.from_arrays([d["connection"], d["books_id"]])
    )
    d["ci"] = pd.MultiIndex.from_arrays([s.c["connection"], s.c["crm_id"]]).get_indexer(
        pd.MultiIndex.from_arrays([d["connection"], d["crm_id"]])
    )
    d["by"] = d["by"] if "by" in d.columns else None
    return d[(d["bi"] >= 0) & (d["ci"] >= 0)][cols].reset_index(drop=True)


def _assign(scored: pd.DataFrame, decisions: pd.DataFrame, nb: int, nc: int) -> pd.DataFrame:
    """Statuses by a one-to-one assignment, best first; decisions and explicit links first."""
    sc = (
        scored.merge(decisions, on=["bi", "ci"], how="left")
        if len(decisions)
        else scored.assign(decision=None, by=None)
    )
    sc["decided"] = [
        f"{d}ed by {who}" if isinstance(d, str) else ""
        for d, who in zip(sc["decision"], sc["by"], strict=True)
    ]
    sc["priority"] = np.select([sc["decision"] == "accept", sc["explicit"]], [0, 1], 2)
    sc = sc.sort_values(["priority", "points", "created", "ci", "bi"], ascending=[True, False, True, True, True],
                        kind="stable", na_position="last")  # fmt: skip
    taken_b: list[str | None] = [None] * nb
    taken_c: list[str | None] = [None] * nc
    status = []
    cols = ["bi", "ci", "decision", "priority", "confidence", "duplicate_ok"]
    for bi, ci, decision, priority, conf, dup_ok in sc[cols].itertuples(index=False, name=None):
        if decision == "reject":
            status.append("rejected")
            continue
        held_b, held_c = taken_b[bi], taken_c[ci]
        if priority < 2:
            result = "linked"
        elif held_b is None and held_c is None:
            result = "linked" if conf >= MATCH_THRESHOLD else "review" if conf >= REVIEW_FLOOR else None
        elif "review" not in (held_b, held_c) and dup_ok:
            result = "linked"  # a genuine duplicate: both strongly match one record
        else:
            result = None
        status.append(result)
        if result == "linked":
            taken_b[bi] = taken_c[ci] = "linked"
        elif result == "review":
            taken_b[bi] = taken_b[bi] or "review"
            taken_c[ci] = taken_c[ci] or "review"
    sc["status"] = status
    sc = sc[sc["status"].notna()].copy()
    sc.loc[sc["decision"].notna(), "method"] = "decision"
    sc.loc[sc["decision"] == "accept", "confidence"] = 1.0
    sc.loc[sc["explicit"] & sc["decision"].isna(), "confidence"] = 1.0
    return sc


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
    s = _Sides(books, crm, contacts)
    if not s.nb or not s.nc:
        return _empty_links()
    dec = _latest_decisions(decisions, s)

    pairs = _key_candidates(s)
    if len(dec):  # an accepted (or rejected) pair is a candidate whatever its evidence
        pairs = _unique_pairs(pd.concat([pairs, dec[["bi", "ci"]]], ignore_index=True), s.nc)
    scored = _score(pairs, s)

    # records without a confident candidate yet: compare their names with the other side's
    confident = scored[scored["confidence"] >= MATCH_THRESHOLD]
    sure_b = np.zeros(s.nb, dtype=bool)
    sure_b[confident["bi"].to_numpy()] = True
    sure_c = np.zeros(s.nc, dtype=bool)
    sure_c[confident["ci"].to_numpy()] = True
    left = np.flatnonzero(s.b["eligible"].to_numpy() & ~sure_b)
    fuzzy = _fuzzy_candidates(s, left, np.flatnonzero(~sure_c))
    if len(fuzzy):
        seen = pairs["bi"].to_numpy(dtype=np.int64) * s.nc + pairs["ci"].to_numpy(dtype=np.int64)
        fresh = ~np.isin(
            fuzzy["bi"].to_numpy(dtype=np.int64) * s.nc + fuzzy["ci"].to_numpy(dtype=np.int64), seen
        )
        if fresh.any():
            scored = pd.concat([scored, _score(fuzzy[fresh], s)], ignore_index=True)

    links = _assign(scored, dec, s.nb, s.nc)
    if links.empty:
        return _empty_links()
    evidence = _evidence(links)
    bi, ci = links["bi"].to_numpy(), links["ci"].to_numpy()
    out = pd.DataFrame(
        {
            "connection": s.b["connection"].to_numpy()[bi],
            "books_id": s.b["books_id"].to_numpy()[bi],
            "crm_id": s.c["crm_id"].to_numpy()[ci],
            "method": links["method"].to_numpy(),
            "confidence": links["confidence"].astype(float).round(6).to_numpy(),
            "status": links["status"].to_numpy(),
            "evidence": [f"{d}; {t}" if d else t for d, t in zip(links["decided"], evidence, strict=True)],
        }
    )
    # connections apart, the assignment's order (strongest first) is kept
    return out.sort_values("connection", kind="stable")[LINK_COLUMNS].reset_index(drop=True)


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
