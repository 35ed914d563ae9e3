"""The drift features on a ledger small enough to reason about: a customer paying later and later has a
rising trend, and an invoice left unpaid past its due date counts (as late so far) before it is paid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xz_pipeline.insights.features import Ledger, to_day

START = pd.Timestamp("2025-01-01")


def _ledger(invoices: list[tuple[str, str, int, int | None]]) -> Ledger:
    """(invoice id, customer, issue day offset, paid days after due or None): 30-day terms, 100.00 each."""
    inv, pay = [], []
    for invoice_id, customer, issued, paid_after in invoices:
        issue = START + pd.Timedelta(days=issued)
        due = issue + pd.Timedelta(days=30)
        paid = None if paid_after is None else due + pd.Timedelta(days=paid_after)
        inv.append({"invoice_id": invoice_id, "type": "sale", "status": "open" if paid is None else "paid",
                    "issue_date": issue, "due_date": due, "customer_id": customer, "total": 100.0,
                    "currency_rate": 1.0, "paid_date": paid})  # fmt: skip
        if paid is not None:
            pay.append({"invoice_id": invoice_id, "status": "authorised", "date": paid, "amount": 100.0})
    no_allocations = pd.DataFrame(columns=["invoice_id", "date", "amount"])
    no_notes = pd.DataFrame(columns=["type", "status", "customer_id", "issue_date"])
    return Ledger(
        pd.DataFrame(inv), pd.DataFrame(pay), no_allocations, no_notes, pd.DataFrame(columns=["invoice_id"])
    )


def _features(ledger: Ledger, invoice_id: str, day: pd.Timestamp) -> pd.Series:
    pos = int(np.flatnonzero(ledger.invoices["invoice_id"].to_numpy() == invoice_id)[0])
    return ledger.features(np.array([pos]), np.array([to_day(day)])).iloc[0]


def test_a_customer_paying_later_and_later_has_a_rising_trend():
    # monthly invoices, each paid 5 days later than the one before; a steady payer beside it
    history = [(f"d{i}", "drifting", 30 * i, 5 * i) for i in range(8)]
    history += [(f"s{i}", "steady", 30 * i, 2) for i in range(8)]
    history += [("d-next", "drifting", 300, None), ("s-next", "steady", 300, None)]
    ledger = _ledger(history)
    day = START + pd.Timedelta(days=300)
    drifting, steady = _features(ledger, "d-next", day), _features(ledger, "s-next", day)
    assert drifting["trend_slope"] == pytest.approx(5 * 365 / 30, rel=0.01)  # 5 days later a month
    # extrapolated to the next invoice: later than any it has paid, while its mean lags behind
    assert drifting["trend_delay"] > 35 > drifting["mean_delay"]
    assert steady["trend_slope"] == pytest.approx(0, abs=1e-9)
    assert steady["trend_delay"] == pytest.approx(2)


def test_an_invoice_unpaid_past_due_counts_before_it_is_paid():
    ledger = _ledger([("a", "c", 0, 2), ("b", "c", 30, None), ("next", "c", 60, None)])
    # b falls due on day 60 and is unpaid: 10 days later it is late so far, known late from day 66
    at = START + pd.Timedelta(days=70)
    f = _features(ledger, "next", at)
    assert f["fallen_due_last"] == 10 and f["fallen_due_open"] == 1
    assert f["fallen_due_max"] == 10 and f["fallen_due_mean"] == pytest.approx(6)  # (2 + 10) / 2
    assert f["known_share_late"] == pytest.approx(0.5) and f["days_since_known_late"] == 4
    assert f["n_open_late"] == 1 and f["share_late"] == 0  # its paid history alone says it pays on time
    # before b was due, nothing of it is known: only a, paid 2 days after due
    early = _features(ledger, "next", START + pd.Timedelta(days=59))
    assert early["fallen_due_last"] == 2 and early["fallen_due_open"] == 0
    assert early["known_share_late"] == 0 and np.isnan(early["days_since_known_late"])
