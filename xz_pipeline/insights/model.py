"""The payment-risk model of one connection: trained on its own paid history, scoring its open invoices.

Two scikit-learn gradient-boosted tree models (`HistGradientBoostingClassifier` for "paid more than 5
days after due", `HistGradientBoostingRegressor` with absolute error for the days after due). Chosen by
the time-split backtest (`backtest.py`, `make bench-insights`) over a logistic regression on the same
features: the trees take the features as they are (missing history stays missing, no scaling), find
the non-linear parts the ledger has (monthly payment runs make the day of month matter in steps; a
customer's recent delays matter more than its old ones only when they differ) and gave the better AUC
and Brier on the medium organisation; the logistic model is kept as `kind="logistic"` for that
comparison. A survival model (lifelines) was not needed: open invoices are handled by training on
landmark snapshots (each invoice as it stood at issue and at later ages while still open), so the
classifier learns the risk of an invoice that is already some days old and unpaid.

Training rows come only from before the cut-off (`training_rows`), at most `MAX_ROWS` of them (a
sample of whole invoices by a hash of their ids past that), and every row is one connection's:
the caller passes one `Ledger`, which holds one connection. With too few labelled rows (a young
organisation) the model falls back to the base rate, and says so (`fallback`).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from xz_pipeline.insights.features import FEATURES, LATE_AFTER, Ledger

VERSION = "pr2"  # pr2: the drift features (trend, known outcomes, invoices fallen due)
LANDMARKS = (0, 10, 20, 30, 45, 60)  # ages (days since issue) at which an open invoice is a training row
MIN_ROWS, MIN_CLASS = 200, 20  # below these the base rate is all the history supports
# Training rows kept at most (a hash sample of whole invoices beyond it). The medium organisation has
# 254,194 landmark rows and took minutes to fit on a shared machine; the boosted trees' cost grows with
# the rows while the backtest hardly moves past a few tens of thousands (`make bench-insights`).
MAX_ROWS = 60_000
REASONS = 3
REASON_MIN = 0.02  # a feature must move p by at least this much to be named
# One thread: the machine is shared with the pipeline's other steps, and OpenMP spinning on a busy
# machine made a demo backtest 20 times slower than on one thread.
THREADS = 1


def training_rows(ledger: Ledger, cutoff: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(invoice, t, late, delay) for every landmark of every invoice whose outcome is known before
    `cutoff`, while the invoice was open and not yet late. `delay` is NaN when it was not settled."""
    known, late = ledger.late_known(cutoff)
    idx, ts = [], []
    for age in LANDMARKS:
        t = ledger.issue + age
        ok = known & (t < cutoff) & (ledger.settled >= t) & (t - ledger.due <= LATE_AFTER)
        if age == 0:
            ok = known & (ledger.issue < cutoff)
        idx.append(np.flatnonzero(ok))
        ts.append(t[ok])
    inv = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
    t = np.concatenate(ts) if ts else np.zeros(0, dtype=np.int64)
    if len(inv) > MAX_ROWS:
        keep = _sample(ledger, inv, MAX_ROWS)
        inv, t = inv[keep], t[keep]
    settled = ledger.settled[inv] < cutoff
    delay = np.where(settled, ledger.delay[inv], np.nan)
    return inv, t, late[inv].astype(int), delay


def _sample(ledger: Ledger, inv: np.ndarray, limit: int) -> np.ndarray:
    """Rows of a sample of whole invoices (every landmark of a kept invoice), at most `limit` rows: an
    invoice is kept by a hash of its id, so the sample is the same on every run and machine, an invoice
    kept once stays kept as the history grows, and which invoices are kept depends on nothing dated
    (the features stay as of the cut-off)."""
    key = pd.util.hash_pandas_object(ledger.invoices["invoice_id"].astype(str), index=False).to_numpy()
    u = key[inv]
    threshold = np.partition(u, limit)[limit]  # the (limit+1)-th smallest: strictly below it is <= limit
    return np.flatnonzero(u < threshold)


def _classifier(kind: str):
    # scikit-learn loads in the steps that train (about 2 s of import): a targeted run imports this module
    # with the definitions and never trains.
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True),
            StandardScaler(),
            LogisticRegression(max_iter=500),
        )
    return HistGradientBoostingClassifier(
        max_iter=400, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=80, l2_regularization=2.0,
        early_stopping=True, n_iter_no_change=20, random_state=0,
    )  # fmt: skip


def _regressor():
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        loss="absolute_error", max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=80,
        early_stopping=True, n_iter_no_change=20, random_state=0,
    )  # fmt: skip


def _fit(estimator, x: pd.DataFrame, y: np.ndarray, t: np.ndarray):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    """Boosted trees stop where the most recent fifth of the rows (by cut-off day) stops improving, then
    refit on every row with that many iterations. A random validation split would hold other landmarks
    of the same invoices and let the trees learn noise: on the constant-habits ledger they did."""
    if not isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        return estimator.fit(x, y)
    val = t >= np.quantile(t, 0.8)
    if (
        val.all()
        or not val.any()
        or len(np.unique(y[val])) < 2
        and isinstance(estimator, HistGradientBoostingClassifier)
    ):
        return estimator.set_params(early_stopping=False, max_iter=100).fit(x, y)
    estimator.fit(x[~val], y[~val], X_val=x[val], y_val=y[val])
    rounds = max(1, estimator.n_iter_ - estimator.n_iter_no_change)
    return estimator.set_params(early_stopping=False, max_iter=rounds).fit(x, y)


@dataclass
class PaymentModel:
    """What one connection's training produced: the models (or the base rate) and where they came from."""

    version: str
    cutoff: int  # the day training stopped looking (exclusive)
    n_rows: int
    n_late: int
    base_rate: float
    base_delay: float
    fallback: bool
    kind: str = "hgb"
    classifier: object = None
    regressor: object = None
    reference: dict[str, float] = field(default_factory=dict)  # the typical value of each feature
    features: tuple[str, ...] = tuple(FEATURES)  # what it was trained on

    def predict(self, x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(probability of late, days after due) per row."""
        if self.fallback or self.classifier is None:
            return np.full(len(x), self.base_rate), np.full(len(x), self.base_delay)
        with threadpool_limits(THREADS):
            p = self.classifier.predict_proba(x[list(FEATURES)])[:, 1]
            d = (
                self.regressor.predict(x[list(FEATURES)])
                if self.regressor is not None
                else np.full(len(x), self.base_delay)
            )
        return p, d

    def reasons(self, x: pd.DataFrame, p: np.ndarray) -> list[list[str]]:
        """The features that moved each row's probability most (set to their typical value, how far p
        moves), in words."""
        if self.fallback or self.classifier is None or len(x) == 0:
            return [["too little paid history: the organisation's base rate"] for _ in range(len(x))]
        effects = {}
        for name in FEATURES:
            ref = self.reference.get(name, np.nan)
            same = (x[name].to_numpy() == ref) | (np.isnan(x[name].to_numpy()) & np.isnan(ref))
            if same.all():
                continue
            moved = x.copy()
            moved[name] = ref
            effects[name] = np.where(same, 0.0, p - self.predict(moved)[0])
        out = []
        for i in range(len(x)):
            ranked = sorted(effects, key=lambda n: -abs(effects[n][i]))
            words = [
                describe(n, x[n].iat[i], effects[n][i])
                for n in ranked[:REASONS]
                if abs(effects[n][i]) >= REASON_MIN
            ]
            out.append(words or ["nothing stands out: close to this organisation's usual"])
        return out

    def dumps(self) -> bytes:
        buffer = io.BytesIO()
        pickle.dump(self, buffer, protocol=pickle.HIGHEST_PROTOCOL)
        return buffer.getvalue()

    @staticmethod
    def loads(blob: bytes) -> PaymentModel | None:
        """The stored model, or None when it was written by code with other features (retrain it)."""
        try:
            model = pickle.loads(blob)  # our own table in the user's own mirror
        except Exception:  # a class that moved or changed since it was stored
            return None
        if not isinstance(model, PaymentModel) or vars(model).get("features") != tuple(FEATURES):
            return None
        return model


def describe(name: str, value: float, effect: float) -> str:
    """'share of its paid invoices paid late 62% raises risk (+18 pts)'."""
    if value != value:  # NaN
        shown = "none yet"
    elif name.startswith("known_") or name in (
        "share_late",
        "recent_share_late",
        "paid_share",
        "credit_note_share",
    ):
        shown = f"{value:.0%}"
    elif name in ("due_quarter_end", "foreign_currency", "credited"):
        shown = "yes" if value else "no"
    elif name in ("log_amount",):
        shown = f"{np.expm1(value):,.0f}"
    elif name == "amount_vs_usual":
        shown = f"x{np.exp(value):.1f}"
    elif name in ("open_amount", "late_amount"):
        shown = f"{value:,.0f}"
    else:
        shown = f"{value:.0f}"
    verb = "raises" if effect > 0 else "lowers"
    return f"{FEATURES[name]} {shown} {verb} risk ({effect * 100:+.0f} pts)"


def train(ledger: Ledger, cutoff: int, *, kind: str = "hgb", trained_on: str = "") -> PaymentModel:
    """Fit on `ledger` (one connection) with what was known before day `cutoff`."""
    inv, t, y, delay = training_rows(ledger, cutoff)
    n_late = int(y.sum())
    base_rate = float(y.mean()) if len(y) else 0.5
    settled = ~np.isnan(delay)
    base_delay = float(np.median(delay[settled])) if settled.any() else 0.0
    digest = hashlib.sha256()
    digest.update(f"{VERSION}:{kind}:{cutoff}:{trained_on}:{','.join(FEATURES)}".encode())
    digest.update(np.ascontiguousarray(ledger.issue[inv]).tobytes())
    digest.update(np.ascontiguousarray(ledger.settled[inv]).tobytes())
    digest.update(np.ascontiguousarray(t).tobytes())
    version = f"{VERSION}-{str(np.datetime64(cutoff, 'D'))}-{digest.hexdigest()[:10]}"
    fallback = len(y) < MIN_ROWS or n_late < MIN_CLASS or len(y) - n_late < MIN_CLASS
    model = PaymentModel(version, cutoff, len(y), n_late, base_rate, base_delay, fallback, kind)
    if fallback:
        return model
    x = ledger.features(inv, t)
    with threadpool_limits(THREADS):
        model.classifier = _fit(_classifier(kind), x, y, t)
        if settled.sum() >= MIN_ROWS:
            model.regressor = _fit(_regressor(), x[settled], delay[settled], t[settled])
    model.reference = {n: float(v) for n, v in x.median(numeric_only=True).items()}
    return model


def score(model: PaymentModel, ledger: Ledger, idx: np.ndarray, t: np.ndarray) -> pd.DataFrame:
    """p_late and days after due for invoices `idx` as of days `t`; an invoice already more than 5 days
    past due (and unsettled) is late for certain, and its delay is at least what it already is."""
    x = ledger.features(idx, t)
    p, d = model.predict(x)
    past_due = t - ledger.due[idx]
    already = past_due > LATE_AFTER
    p = np.where(already, 1.0, np.clip(p, 0.0, 1.0))
    d = np.where(already, np.maximum(d, past_due + 1), d)
    return pd.DataFrame({"p_late": p, "delay": d, "past_due": past_due, "already_late": already}).join(x)
