"""How customers pay: each invoice's payment delay in days after its due date.

The ledger decides *whether* and *how much* a customer pays (its habit: prompt, late, partial, bad);
this module decides *when*, so that a payment-risk model meets the structure real ledgers show and
the honest failure case (no structure at all). Figures come from the insights fact sheet, not from
what any model scores well on:

- Mean lateness over all invoices about 8 days (Xero Small Business Insights: 8 days late on average
  in Aug 2018, 7.3 in Q2 2024); "late" is more than 5 days after due (Appel et al., KDD 2020).
- Customer bands by average days beyond terms (Tesorio's customer score): 0-15, 16-45, 46-90, > 90;
  the habits' base delays sit in those bands (prompt pays a few days early).
- Invoice amount and payment terms drive delay (Zeng et al. 2008's first features; Business Central's
  model uses amount and terms), and so do disputes (Zeng's "Category: under dispute"); a credited
  invoice was more often disputed.
- Behaviour changes over time (Business Central and the public feature lists weigh recent against
  older invoices): every customer drifts slowly, some change abruptly once.
- Month-end effects: many businesses pay suppliers in a monthly run (the 20th, or the last day of
  the month: the run nearest the day they meant to pay), and cash is held at quarter end.
- Foreign-currency customers pay through international transfers, a few days slower.
- Noise, with a heavy tail.

The effect sizes (days per unit) are assumptions stated here, not measured figures: the fact sheet
gives none. `mode="constant"` makes every invoice's behaviour an independent draw from the same
mixture, whatever its customer, size, terms or date: nothing before payment predicts it, so a model
should gain nothing over the base rate there.
"""

from __future__ import annotations

from datetime import date

import numpy as np

MODES = ("realistic", "constant")
HABIT_WEIGHTS = (55, 25, 13, 7)  # prompt, late, partial, bad: as customers.HABIT_WEIGHTS

# Base delay after due per habit: (mean, spread between customers), days.
BASE = ((-6.0, 3.0), (15.0, 6.0), (5.0, 5.0), (50.0, 15.0))
SLOPE_SD = 8.0  # slow drift: days per year, per customer
SWITCH_SHARE, SWITCH_DAYS, SWITCH_WORSE = 0.25, (10.0, 35.0), 0.6  # abrupt change once
RUN_SHARE = 0.4  # customers paying in a monthly run (half on the 20th, half on the last day)
SIZE_DAYS = 4.0  # per e-fold of the invoice above the customer's median amount (clipped to +-2 e-folds)
TERMS_DAYS = 0.2  # per day of terms shorter than 30
QUARTER_END_DAYS = 6.0  # mean extra delay when due in the last 10 days of a quarter
FOREIGN_DAYS = 3.0
DISPUTE = (0.03, 0.05, 0.05, 0.12)  # per habit; 0.5 for an invoice that was credited
DISPUTE_DAYS = (20, 76)
NOISE_SD, NOISE_SCALE, TAIL_SHARE, TAIL_DAYS = 3.0, 0.15, 0.05, 20.0


def invoice_habits(rng: np.random.Generator, mode: str, habit: np.ndarray) -> np.ndarray:
    """The habit each invoice is paid by: its customer's, or in `constant` mode an independent draw."""
    if mode not in MODES:
        raise ValueError(f"unknown habits {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "realistic":
        return habit
    w = np.array(HABIT_WEIGHTS, dtype=float)
    return rng.choice(len(w), size=len(habit), p=w / w.sum())


def _noise(rng: np.random.Generator, mu: np.ndarray) -> np.ndarray:
    n = len(mu)
    tail = np.where(rng.random(n) < TAIL_SHARE, rng.exponential(TAIL_DAYS, n), 0.0)
    return rng.normal(0.0, NOISE_SD + NOISE_SCALE * np.abs(mu)) + tail


def _nearest_run(origin: date, days: np.ndarray, after: np.ndarray, run_day: np.ndarray) -> np.ndarray:
    """The payment-run day nearest each day and later than `after` (the issue day): the 20th (run_day
    20) or the month's last day (0)."""
    base = np.datetime64(origin, "D")
    when = base + days.astype("timedelta64[D]")
    floor = base + after.astype("timedelta64[D]")
    month = when.astype("datetime64[M]")
    candidates = []
    for shift in (-1, 0, 1, 2):
        m = month + shift
        last = (m + 1).astype("datetime64[D]") - 1
        twentieth = m.astype("datetime64[D]") + 19
        candidates.append(np.where(run_day == 20, twentieth, last))
    stack = np.stack(candidates)
    gap = np.abs((stack - when).astype(np.int64))
    gap[stack <= floor] = 1 << 30
    target = stack[np.argmin(gap, axis=0), np.arange(len(days))]
    return (target - base).astype(np.int64)


def payment_delays(
    rng: np.random.Generator,
    mode: str,
    *,
    origin: date,
    habit: np.ndarray,
    cust: np.ndarray,
    day: np.ndarray,
    due_day: np.ndarray,
    total: np.ndarray,
    foreign: np.ndarray,
    credited: np.ndarray,
) -> np.ndarray:
    """Days after the due date each invoice is (first) paid, as integers: negative when early, never
    before the invoice date.

    habit: the invoice's habit code (see `invoice_habits`); cust: its customer's index; day, due_day:
    issue and due day offsets from `origin`; total: cents; foreign: billed in a foreign currency;
    credited: a credit note was raised against it.
    """
    n = len(habit)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    mean = np.array([b[0] for b in BASE])
    spread = np.array([b[1] for b in BASE])
    if mode == "constant":
        mu = rng.normal(mean[habit], spread[habit])
        return np.maximum(np.rint(mu + _noise(rng, mu)).astype(np.int64), day - due_day)

    n_cust = int(cust.max()) + 1
    # A customer's base delay is drawn once per habit code (its invoices share one habit in this mode).
    cust_z = rng.normal(0.0, 1.0, n_cust)
    mu = mean[habit] + spread[habit] * cust_z[cust]
    # drift: a slow slope over the window and, for some, one abrupt change
    lo, hi = int(day.min()), int(day.max())
    mid = (lo + hi) / 2
    slope = rng.normal(0.0, SLOPE_SD, n_cust)
    switch = rng.random(n_cust) < SWITCH_SHARE
    change_day = rng.integers(lo, hi + 1, n_cust)
    size = rng.uniform(*SWITCH_DAYS, n_cust) * np.where(rng.random(n_cust) < SWITCH_WORSE, 1.0, -1.0)
    mu = (
        mu
        + slope[cust] * (day - mid) / 365.0
        + np.where(switch[cust] & (day >= change_day[cust]), size[cust], 0.0)
    )
    # size against the customer's own usual, and short terms
    log_total = np.log(np.maximum(total, 1).astype(float))
    order = np.argsort(cust, kind="stable")
    bounds = np.searchsorted(cust[order], np.arange(n_cust + 1))
    median = np.zeros(n_cust)
    for c in range(n_cust):
        seg = log_total[order[bounds[c] : bounds[c + 1]]]
        median[c] = np.median(seg) if len(seg) else 0.0
    mu = mu + SIZE_DAYS * np.clip(log_total - median[cust], -2.0, 2.0)
    mu = mu + TERMS_DAYS * np.maximum(0, 30 - (due_day - day))
    mu = mu + FOREIGN_DAYS * foreign
    # quarter end: due in the last 10 days of March, June, September or December
    due_date = np.datetime64(origin, "D") + due_day.astype("timedelta64[D]")
    month = due_date.astype("datetime64[M]")
    days_left = ((month + 1).astype("datetime64[D]") - due_date).astype(np.int64)
    month_no = month.astype(np.int64) % 12 + 1
    quarter_end = (month_no % 3 == 0) & (days_left <= 10)
    mu = mu + np.where(quarter_end, rng.exponential(QUARTER_END_DAYS, n), 0.0)
    # disputes
    p_dispute = np.where(credited, 0.5, np.array(DISPUTE)[habit])
    disputed = rng.random(n) < p_dispute
    mu = mu + np.where(disputed, rng.integers(*DISPUTE_DAYS, n), 0)
    delay = np.rint(mu + _noise(rng, mu)).astype(np.int64)
    # monthly payment runs move the payment to the next run day
    runs = rng.random(n_cust) < RUN_SHARE
    run_day = np.where(rng.random(n_cust) < 0.5, 20, 0)
    in_run = runs[cust]
    if in_run.any():
        paid_on = _nearest_run(origin, (due_day + delay)[in_run], day[in_run], run_day[cust][in_run])
        delay[in_run] = paid_on - due_day[in_run]
    return np.maximum(delay, day - due_day)  # never paid before it was issued
