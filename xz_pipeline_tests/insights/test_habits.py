"""The sandbox's payment habits: realistic customers differ and the world is still reproducible; with
habits="constant" a customer's own history says nothing about its next invoice."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from xz_pipeline.sandbox.world import generate


def _days_late(world) -> dict[str, list[int]]:
    """Per books customer, days after due of each fully paid sales invoice, in issue order."""
    paid, last = defaultdict(float), {}
    for p in world.books.payments:
        if p.status == "AUTHORISED" and p.invoice_id:
            paid[p.invoice_id] += float(p.amount)
            last[p.invoice_id] = max(last.get(p.invoice_id, p.date), p.date)
    out: dict[str, list[int]] = defaultdict(list)
    for inv in sorted(world.books.invoices, key=lambda i: i.date):
        if inv.type == "ACCREC" and inv.id in last and paid[inv.id] >= float(inv.total) - 0.005:
            out[inv.contact_id].append((last[inv.id] - inv.due_date).days)
    return out


def _history_signal(world) -> float:
    """Correlation between a customer's late share on its first half of invoices and on its second."""
    first, second = [], []
    for delays in _days_late(world).values():
        if len(delays) >= 8:
            half = len(delays) // 2
            first.append(np.mean(np.array(delays[:half]) > 5))
            second.append(np.mean(np.array(delays[half:]) > 5))
    return float(np.corrcoef(first, second)[0, 1])


def test_realistic_customers_keep_their_habits_constant_ones_do_not():
    realistic, constant = generate(7, "demo"), generate(7, "demo", habits="constant")
    assert _history_signal(realistic) > 0.5
    assert abs(_history_signal(constant)) < 0.2
    for world in (realistic, constant):
        delays = np.concatenate([np.array(d) for d in _days_late(world).values()])
        assert 0.25 < (delays > 5).mean() < 0.75  # both have late and on-time payers
        assert (delays >= -30).all()  # never paid before the invoice was issued (terms <= 30)


def test_habits_are_reproducible_and_checked():
    a, b = generate(3, "tiny", habits="constant"), generate(3, "tiny", habits="constant")
    assert [(p.invoice_id, p.date, p.amount) for p in a.books.payments] == [
        (p.invoice_id, p.date, p.amount) for p in b.books.payments
    ]
    with pytest.raises(ValueError, match="unknown habits"):
        generate(3, "tiny", habits="sometimes")
