"""The backtest's baseline for an invoice scored after its issue day: the customer's share late among its
invoices still unpaid as close to due, else the organisation's, else the base rate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xz_pipeline.insights.backtest import unpaid_share
from xz_pipeline.insights.features import Ledger, to_day

DAY0 = pd.Timestamp("2026-01-01")


def _ledger(invoices: list[tuple[str, str, int, int | None]]) -> Ledger:
    """(invoice_id, customer, issue day, days after due it was paid or None) with 30-day terms."""
    inv, pay = [], []
    for invoice_id, cust, issue, delay in invoices:
        due = DAY0 + pd.Timedelta(days=issue + 30)
        inv.append({"invoice_id": invoice_id, "customer_id": cust, "type": "sale",
                    "status": "open" if delay is None else "paid", "issue_date": DAY0 + pd.Timedelta(days=issue),
                    "due_date": due, "paid_date": None, "total": 100.0, "currency_rate": 1.0})  # fmt: skip
        if delay is not None:
            pay.append({"invoice_id": invoice_id, "date": due + pd.Timedelta(days=delay), "amount": 100.0,
                        "status": "active"})  # fmt: skip
    empty_alloc = pd.DataFrame({"invoice_id": pd.Series(dtype=str), "date": pd.Series(dtype="datetime64[ns]"),
                                "amount": pd.Series(dtype=float)})  # fmt: skip
    notes = pd.DataFrame({"type": [], "status": [], "customer_id": [], "issue_date": []})
    return Ledger(pd.DataFrame(inv), pd.DataFrame(pay), empty_alloc, notes, pd.DataFrame({"invoice_id": []}))


def test_share_late_among_invoices_unpaid_as_close_to_due():
    history = [(f"a{i}", "A", i * 5, d) for i, d in enumerate([-10, -8, 2, 10, 20])]  # 2 of 5 late
    history += [(f"b{i}", "B", i * 5, d) for i, d in enumerate([-6, 9])]
    ledger = _ledger([*history, ("a-open", "A", 100, None), ("c-open", "C", 100, None)])
    ids = list(ledger.invoices["invoice_id"])
    idx = np.array([ids.index("a-open"), ids.index("a-open"), ids.index("c-open"), ids.index("c-open")])
    due = ledger.due[idx]
    t = np.array([due[0] - 3, due[1] - 20, due[2] - 3, due[3] - 20])
    got = unpaid_share(ledger, idx, t, base_rate=0.5)
    # A, 3 days before due: its invoices unpaid 3 days before theirs were paid 2, 10, 20 days after: 2 of 3
    # A, 20 days before due: all five were unpaid then: 2 of 5
    # C has no history: the organisation's, 3 of 4 (A's 2, 10, 20 and B's 9) and 3 of 7
    np.testing.assert_allclose(got, [2 / 3, 2 / 5, 3 / 4, 3 / 7])
    # nothing paid before t: the base rate
    early = unpaid_share(ledger, idx[:1], np.array([to_day(DAY0)]), base_rate=0.5)
    np.testing.assert_allclose(early, [0.5])
