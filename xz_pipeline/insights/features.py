"""Payment-risk features of an invoice as of a cut-off day t, from records dated before t only.

One connection's sales ledger (`Ledger.build` from the canonical frames) is indexed once: per customer,
its invoices sorted by issue day, by settlement day, by the day they became more than 5 days late, and
its credit notes by date, each with running sums. A feature "as of t" is then a binary search and a
difference of two running sums, so nothing dated on or after t can reach it (no leakage), and a
hundred thousand (invoice, t) queries take a second.

Days are integers (days since 1970-01-01). An invoice is *settled* on the first day its payments and
credit allocations cover its total (the books' own paid date when they never do); it is
*late* when settled more than 5 days after its due date, or not settled by then (Appel et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

LATE_AFTER = 5  # days past due before an invoice counts as late
NEVER = 1 << 40  # the settlement day of an invoice not settled
_K = np.int64(1 << 24)  # key = customer * _K + day (days since 1970 stay far below 2**24)
RECENT = 3  # invoices in "recent behaviour"
MEDIAN_OF = 10  # the median of the last ten paid invoices' delays
TREND_ORIGIN = 18_000  # a day in 2019: issue days are centred on it for the trend's sums of squares
TREND_MIN = 3  # paid invoices a trend needs (spread over at least TREND_SPAN days of issue)
TREND_SPAN = 30
FALLEN_DUE = 3  # its last invoices fallen due, as they stood at t (paid or not)

# feature name -> what it means, in words (used for the reasons)
FEATURES: dict[str, str] = {
    "n_paid": "paid invoices in its history",
    "share_late": "share of its paid invoices paid late",
    "recent_share_late": "share of its last 5 paid invoices paid late",
    "mean_delay": "its mean days after due",
    "median_delay": "median days after due (last 10)",
    "recent_delay": "mean days after due (last 3)",
    "delay_trend": "last 3 against older (days after due)",
    "delay_sd": "spread of its days after due",
    "days_since_paid": "days since it last settled an invoice",
    "payday_share": "share of its payments on its usual day of the month",
    "days_to_payday": "days from due to its usual payment day",
    "n_invoices": "invoices issued to it before",
    "tenure_days": "days since its first invoice",
    "n_open": "its other open invoices",
    "open_amount": "its other open balance",
    "n_open_late": "its other invoices more than 5 days late",
    "late_amount": "its balance more than 5 days late",
    "n_credit_notes": "credit notes it received",
    "credit_note_share": "credit notes per invoice",
    "log_amount": "invoice amount (log)",
    "amount_vs_usual": "amount against its usual (log ratio)",
    "terms_days": "payment terms (days)",
    "due_day_of_month": "day of month it falls due",
    "issue_day_of_month": "day of month it was issued",
    "due_quarter_end": "due in the last 10 days of a quarter",
    "foreign_currency": "billed in a foreign currency",
    "line_count": "lines on the invoice",
    "age_days": "days since issue",
    "days_to_due": "days until due",
    "paid_share": "share already paid",
    "credited": "credited already",
    # drift: where its delays are heading, not only where they were
    "trend_delay": "its delay trend extrapolated to this invoice",
    "trend_slope": "its delay trend (days per year)",
    "trend_delay_10": "its last-10 delay trend extrapolated",
    # outcomes in the order they became known: paid, or still unpaid 6 days past due (late)
    "known_share_late": "share late of its invoices whose outcome is known",
    "known_recent_late": "share late of its last 5 known outcomes",
    "known_recent3_late": "share late of its last 3 known outcomes",
    "days_since_known_late": "days since an invoice of it became late",
    # its last invoices fallen due, paid or not, as they stood at t (unpaid ones count as late so far)
    "fallen_due_last": "days after due of its last invoice fallen due (as of now)",
    "fallen_due_mean": "mean days after due of its last invoices fallen due (as of now)",
    "fallen_due_max": "most days after due among them",
    "fallen_due_open": "of them still unpaid",
    "fallen_due_median": "median days after due of them",
}


def _days(series: pd.Series) -> np.ndarray:
    """Dates to int64 days since 1970 (NaT -> NEVER)."""
    values = pd.to_datetime(series).dt.normalize()
    out = (values.values.astype("datetime64[D]").astype(np.int64)).copy()
    out[values.isna().to_numpy()] = NEVER
    return out


def to_day(value) -> int:
    return int(np.datetime64(pd.Timestamp(value).date(), "D").astype(np.int64))


def from_day(day: int | np.ndarray):
    return np.asarray(day, dtype=np.int64).astype("datetime64[D]")


def day_date(day: int) -> date:
    return date.fromordinal(_EPOCH + int(day))


_EPOCH = date(1970, 1, 1).toordinal()


@dataclass
class _Index:
    """Events of one kind, sorted by (customer, day), with running sums of their values."""

    key: np.ndarray
    sums: dict[str, np.ndarray]  # name -> cumulative sum with a leading 0

    @classmethod
    def of(cls, cust: np.ndarray, day: np.ndarray, **values: np.ndarray) -> _Index:
        keep = day < NEVER
        key = cust[keep] * _K + day[keep]
        order = np.argsort(key, kind="stable")
        sums = {
            k: np.concatenate(([0.0], np.cumsum(v[keep][order].astype(float)))) for k, v in values.items()
        }
        return cls(key[order], sums)

    def positions(self, cust: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first event of the customer, first event on or after t) as positions in the sorted order."""
        lo = np.searchsorted(self.key, cust * _K, side="left")
        hi = np.searchsorted(self.key, cust * _K + t, side="left")
        return lo, hi

    def between(self, name: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        s = self.sums[name]
        return s[hi] - s[lo]


class Ledger:
    """One connection's sales invoices, settlement days and credit notes, indexed for as-of queries."""

    def __init__(
        self,
        invoices: pd.DataFrame,
        payments: pd.DataFrame,
        allocations: pd.DataFrame,
        credit_notes: pd.DataFrame,
        lines: pd.DataFrame,
    ) -> None:
        inv = invoices[(invoices["type"] == "sale") & invoices["status"].isin(["open", "paid"])]
        inv = inv[inv["issue_date"].notna() & inv["due_date"].notna() & inv["customer_id"].notna()]
        inv = inv.reset_index(drop=True)
        self.invoices = inv
        self.n = len(inv)
        codes, self.customers = pd.factorize(inv["customer_id"])
        self.cust = codes.astype(np.int64)
        self.issue = _days(inv["issue_date"])
        self.due = np.maximum(_days(inv["due_date"]), self.issue)
        total = pd.to_numeric(inv["total"], errors="coerce").fillna(0).astype(float).to_numpy()
        rate = pd.to_numeric(inv["currency_rate"], errors="coerce").fillna(1.0).to_numpy(dtype=float)
        rate[rate <= 0] = 1.0
        self.total = total / rate  # in the organisation's currency
        self.log_total = np.log1p(np.maximum(self.total, 0.0))
        self.foreign = (rate != 1.0).astype(float)  # the invoice's own fact, not the ledger's majority
        by_id = pd.Series(np.arange(self.n), index=inv["invoice_id"])
        # settlement: the last payment or allocation of a paid invoice, else the books' paid date
        pay = payments[(payments["status"] != "deleted") & payments["invoice_id"].isin(by_id.index)]
        alloc = allocations[allocations["invoice_id"].isin(by_id.index)]
        money = pd.concat(
            [pay[["invoice_id", "date", "amount"]], alloc[["invoice_id", "date", "amount"]]],
            ignore_index=True,
        )
        money = money[money["date"].notna()]
        m_inv = by_id.loc[money["invoice_id"]].to_numpy()
        m_day = _days(money["date"])
        m_amt = pd.to_numeric(money["amount"], errors="coerce").fillna(0).astype(float).to_numpy()
        # the first day the running sum of payments and credits covers the total: a later record can
        # neither move it nor create it before t (the last payment's date would: drop a later one and an
        # earlier part-payment becomes the "settlement")
        order = np.lexsort((m_day, m_inv))
        cum = pd.Series(m_amt[order]).groupby(m_inv[order]).cumsum().to_numpy()
        need = total[m_inv[order]] - np.maximum(0.01, 0.001 * np.abs(total[m_inv[order]]))
        covered = np.full(self.n, NEVER, dtype=np.int64)
        hit = cum >= need
        np.minimum.at(covered, m_inv[order][hit], m_day[order][hit])
        paid_books = _days(inv["paid_date"]) if "paid_date" in inv else np.full(self.n, NEVER)
        settled = np.where(covered < NEVER, covered, paid_books)
        settled = np.where(inv["status"].to_numpy() == "paid", settled, NEVER)
        self.settled = np.where(settled < NEVER, np.maximum(settled, self.issue), NEVER)
        self.delay = np.where(self.settled < NEVER, self.settled - self.due, 0)
        # per-invoice money before t: payments and credits on the invoice itself
        m_rate = rate[m_inv]
        self._money = _Index.of(m_inv, m_day, amount=m_amt / m_rate)
        credit_alloc = np.zeros(len(money), dtype=bool)
        credit_alloc[len(pay) :] = True
        self._credits_on = _Index.of(
            m_inv[credit_alloc], m_day[credit_alloc], one=np.ones(credit_alloc.sum())
        )
        n_lines = lines.groupby("invoice_id").size() if len(lines) else pd.Series(dtype=float)
        self.line_count = inv["invoice_id"].map(n_lines).fillna(1).to_numpy(dtype=float)
        issue_dt = pd.to_datetime(inv["issue_date"])
        due_dt = pd.to_datetime(pd.Series(from_day(self.due)))
        self.issue_dom = issue_dt.dt.day.to_numpy(dtype=float)
        self.due_dom = due_dt.dt.day.to_numpy(dtype=float)
        month_end = (due_dt + pd.offsets.MonthEnd(0)).dt.day.to_numpy()
        self.due_quarter_end = ((due_dt.dt.month % 3 == 0) & (month_end - due_dt.dt.day <= 9)).to_numpy(float)

        settled_mask = self.settled < NEVER
        late = (self.delay > LATE_AFTER).astype(float)
        self._paid = _Index.of(
            self.cust, self.settled, one=np.ones(self.n), late=late, delay=self.delay.astype(float),
            delay2=self.delay.astype(float) ** 2, total=self.total,
        )  # fmt: skip
        # rolling median of the last MEDIAN_OF delays, at each paid event in sorted order
        keep = settled_mask
        order = np.argsort(self.cust[keep] * _K + self.settled[keep], kind="stable")
        sorted_cust = self.cust[keep][order]
        sorted_delay = pd.Series(self.delay[keep][order].astype(float))
        self._paid_median = (
            sorted_delay.groupby(sorted_cust).rolling(MEDIAN_OF, min_periods=1).median().to_numpy()
            if len(sorted_delay)
            else np.zeros(0)
        )
        self._paid_day = self.settled[keep][order]
        # the day of the month it settles on (0 = the month's last day), one-hot with running sums: a
        # customer paying in a monthly run settles on the same day again and again
        paid_dt = pd.to_datetime(pd.Series(from_day(self._paid_day)))
        bucket = np.where(paid_dt.dt.is_month_end, 0, paid_dt.dt.day).astype(np.int64)
        onehot = np.zeros((len(bucket) + 1, 32))
        onehot[np.arange(1, len(bucket) + 1), bucket] = 1.0
        self._payday = np.cumsum(onehot, axis=0)
        self.due_days_in_month = due_dt.dt.days_in_month.to_numpy(dtype=float)
        self._issued = _Index.of(
            self.cust, self.issue, one=np.ones(self.n), total=self.total, log=self.log_total
        )
        late_day = self.due + LATE_AFTER  # late from the day after this one
        self._late_from = _Index.of(self.cust, late_day, one=np.ones(self.n), total=self.total)
        late_settled = np.where(settled_mask, np.maximum(late_day, self.settled), NEVER)
        self._late_settled = _Index.of(self.cust, late_settled, one=np.ones(self.n), total=self.total)
        first = np.full(len(self.customers), NEVER, dtype=np.int64)
        np.minimum.at(first, self.cust, self.issue)
        self._first_issue = first
        # Drift (a customer paying later and later shows it first in these, before its averages move):
        # - the least-squares line of days after due on issue day over its paid invoices (by settlement);
        #   in whole days, so its running sums are exact and a later record cannot move one by a rounding
        x, y = self.issue - TREND_ORIGIN, self.delay
        self._trend = _Index.of(self.cust, self.settled, one=np.ones(self.n), x=x, x2=x * x, y=y, xy=x * y)
        # - outcomes the day they became known: paid, or unpaid 6 days past due (late from then on);
        known_day = np.minimum(self.settled, self.due + LATE_AFTER + 1)
        known_late = (self.settled > self.due + LATE_AFTER).astype(float)
        self._known = _Index.of(self.cust, known_day, one=np.ones(self.n), late=known_late)
        # the last day one became known late, at each outcome in `_known`'s order (-1: none yet)
        late_days = pd.Series(np.where(np.diff(self._known.sums["late"]) > 0, self._known.key % _K, -1))
        self._last_late_day = late_days.groupby(self._known.key // _K).cummax().to_numpy()
        # - its invoices by due day, to read the last ones fallen due as they stood at t.
        due_key = self.cust * _K + self.due
        self._due_order = np.argsort(due_key, kind="stable")
        self._due_key = due_key[self._due_order]
        cn = credit_notes[(credit_notes["type"] == "sale") & credit_notes["status"].isin(["open", "paid"])]
        cn = cn[cn["customer_id"].isin(self.customers) & cn["issue_date"].notna()]
        cn_cust = pd.Index(self.customers).get_indexer(cn["customer_id"]).astype(np.int64)
        self._credit_notes = _Index.of(cn_cust, _days(cn["issue_date"]), one=np.ones(len(cn)))

    # ---- labels

    def late_known(self, at: int) -> tuple[np.ndarray, np.ndarray]:
        """(known, late) per invoice with what is known before day `at`: settled before it, or still
        unsettled more than 5 days after due."""
        settled_before = self.settled < at
        overdue = ~settled_before & (at - self.due > LATE_AFTER)
        late = np.where(settled_before, self.delay > LATE_AFTER, True)
        return settled_before | overdue, late

    def open_at(self, t: np.ndarray | int) -> np.ndarray:
        return (self.issue < t) & (self.settled >= t)

    # ---- features

    def features(self, idx: np.ndarray, t: np.ndarray) -> pd.DataFrame:
        """Features of invoices `idx` as of days `t` (arrays of equal length), from records dated before t."""
        idx = np.asarray(idx, dtype=np.int64)
        t = np.asarray(t, dtype=np.int64)
        cust = self.cust[idx]
        out: dict[str, np.ndarray] = {}
        # the customer's paid history
        lo, hi = self._paid.positions(cust, t)
        k = (hi - lo).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["n_paid"] = k
            out["share_late"] = np.where(k > 0, self._paid.between("late", lo, hi) / k, np.nan)
            r5 = np.maximum(lo, hi - 5)
            out["recent_share_late"] = np.where(k > 0, self._paid.between("late", r5, hi) / (hi - r5), np.nan)
            mean = np.where(k > 0, self._paid.between("delay", lo, hi) / k, np.nan)
            out["mean_delay"] = mean
            last = np.where(k > 0, hi - 1, 0)
            out["median_delay"] = np.where(
                k > 0, self._paid_median[last] if len(self._paid_median) else 0, np.nan
            )
            r3 = np.maximum(lo, hi - RECENT)
            recent = np.where(k > 0, self._paid.between("delay", r3, hi) / (hi - r3), np.nan)
            out["recent_delay"] = recent
            older_n = (r3 - lo).astype(float)
            older = np.where(older_n > 0, self._paid.between("delay", lo, r3) / older_n, np.nan)
            out["delay_trend"] = recent - older
            var = self._paid.between("delay2", lo, hi) / k - mean**2
            out["delay_sd"] = np.where(k > 1, np.sqrt(np.maximum(var, 0)), np.nan)
            out["days_since_paid"] = np.where(
                k > 0, t - self._paid_day[last] if len(self._paid_day) else 0, np.nan
            )
            counts = self._payday[hi] - self._payday[lo]
            usual = counts.argmax(axis=1)
            out["payday_share"] = np.where(k > 0, counts.max(axis=1) / k, np.nan)
            dom, month_days = self.due_dom[idx], self.due_days_in_month[idx]
            to_payday = np.where(dom <= usual, usual - dom, month_days - dom + usual)
            to_payday = np.where(usual == 0, month_days - dom, to_payday)
            out["days_to_payday"] = np.where(k > 0, to_payday, np.nan)
            # what it was issued before t, and what of it was open or late at t
            ilo, ihi = self._issued.positions(cust, t)
            n_issued = (ihi - ilo).astype(float)
            out["n_invoices"] = n_issued
            first = self._first_issue[cust]
            out["tenure_days"] = np.where(first < t, t - first, 0).astype(float)
            self_open = (self.issue[idx] < t) & (self.settled[idx] >= t)
            out["n_open"] = n_issued - k - self_open
            out["open_amount"] = (
                self._issued.between("total", ilo, ihi)
                - self._paid.between("total", lo, hi)
                - np.where(self_open, self.total[idx], 0.0)
            )
            llo, lhi = self._late_from.positions(cust, t)
            slo, shi = self._late_settled.positions(cust, t)
            self_late = self_open & (self.due[idx] + LATE_AFTER < t)
            out["n_open_late"] = (lhi - llo) - (shi - slo) - self_late
            out["late_amount"] = (
                self._late_from.between("total", llo, lhi)
                - self._late_settled.between("total", slo, shi)
                - np.where(self_late, self.total[idx], 0.0)
            )
            clo, chi = self._credit_notes.positions(cust, t)
            n_cn = (chi - clo).astype(float)
            out["n_credit_notes"] = n_cn
            out["credit_note_share"] = np.where(n_issued > 0, n_cn / n_issued, 0.0)
            # the invoice itself
            out["log_amount"] = self.log_total[idx]
            usual = self._issued.between("log", ilo, ihi) - np.where(
                self.issue[idx] < t, self.log_total[idx], 0
            )
            n_other = n_issued - (self.issue[idx] < t)
            out["amount_vs_usual"] = np.where(n_other > 0, self.log_total[idx] - usual / n_other, np.nan)
            out["terms_days"] = (self.due[idx] - self.issue[idx]).astype(float)
            out["due_day_of_month"] = self.due_dom[idx]
            out["issue_day_of_month"] = self.issue_dom[idx]
            out["due_quarter_end"] = self.due_quarter_end[idx]
            out["foreign_currency"] = self.foreign[idx]
            out["line_count"] = self.line_count[idx]
            out["age_days"] = np.maximum(t - self.issue[idx], 0).astype(float)
            out["days_to_due"] = (self.due[idx] - t).astype(float)
            mlo, mhi = self._money.positions(idx, t)
            total = np.where(self.total[idx] > 0, self.total[idx], 1.0)
            out["paid_share"] = np.clip(self._money.between("amount", mlo, mhi) / total, 0, 1)
            clo2, chi2 = self._credits_on.positions(idx, t)
            out["credited"] = ((chi2 - clo2) > 0).astype(float)
            out.update(self._drift(idx, t, cust))
        return pd.DataFrame({name: out[name] for name in FEATURES})

    def _trend_line(self, lo: np.ndarray, hi: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the paid invoices lo..hi's delay line at issue day x0, its slope in days per year); the mean
        delay when they are too few or too close together for a slope, NaN without any."""
        n = (hi - lo).astype(float)
        sx, sxx = self._trend.between("x", lo, hi), self._trend.between("x2", lo, hi)
        sy, sxy = self._trend.between("y", lo, hi), self._trend.between("xy", lo, hi)
        mx, my = sx / n, sy / n
        var = sxx / n - mx**2
        ok = (n >= TREND_MIN) & (var > TREND_SPAN**2)
        slope = np.where(ok, (sxy / n - mx * my) / np.where(ok, var, 1), 0.0)  # days after due per day
        return np.where(n >= 1, my + slope * (x0 - mx), np.nan), np.where(ok, slope * 365, np.nan)

    def _drift(self, idx: np.ndarray, t: np.ndarray, cust: np.ndarray) -> dict[str, np.ndarray]:
        """The drift features (see `__init__`), from records dated before t."""
        out: dict[str, np.ndarray] = {}
        lo, hi = self._trend.positions(cust, t)
        x0 = self.issue[idx] - TREND_ORIGIN
        out["trend_delay"], out["trend_slope"] = self._trend_line(lo, hi, x0)
        out["trend_delay_10"], _ = self._trend_line(np.maximum(lo, hi - 10), hi, x0)
        lo, hi = self._known.positions(cust, t)
        k = (hi - lo).astype(float)
        for name, last in (("known_share_late", None), ("known_recent_late", 5), ("known_recent3_late", 3)):
            start = lo if last is None else np.maximum(lo, hi - last)
            out[name] = np.where(k > 0, self._known.between("late", start, hi) / (hi - start), np.nan)
        last_late = self._last_late_day[np.where(k > 0, hi - 1, 0)] if len(self._last_late_day) else -1
        out["days_since_known_late"] = np.where((k > 0) & (last_late >= 0), t - last_late, np.nan)
        # its last FALLEN_DUE invoices due before t (never this one): days after due as of t
        lo = np.searchsorted(self._due_key, cust * _K, side="left")
        hi = np.searchsorted(self._due_key, cust * _K + t, side="left")
        days = np.full((len(idx), FALLEN_DUE), np.nan)
        unpaid = np.zeros((len(idx), FALLEN_DUE))
        for j in range(FALLEN_DUE):
            pos = hi - 1 - j
            ok = pos >= lo
            other = self._due_order[np.where(ok, pos, 0)]
            ok &= other != idx
            settled = self.settled[other]
            days[:, j] = np.where(ok, np.minimum(settled, t) - self.due[other], np.nan)
            unpaid[:, j] = np.where(ok, settled >= t, 0)
        seen = ~np.isnan(days).all(axis=1)
        filled = np.where(seen[:, None], days, 0.0)  # no all-NaN row for the reductions; NaN put back below
        out["fallen_due_last"] = days[:, 0]
        out["fallen_due_mean"] = np.where(seen, np.nanmean(filled, axis=1), np.nan)
        out["fallen_due_max"] = np.where(seen, np.nanmax(filled, axis=1), np.nan)
        out["fallen_due_open"] = unpaid.sum(axis=1)
        out["fallen_due_median"] = np.where(seen, np.nanmedian(filled, axis=1), np.nan)
        return out
