"""payment_risk's training rows past the cap: a sample of whole invoices, at most the cap, the same on
every run and whatever the row order, and chosen from nothing dated on or after the cut-off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xz_pipeline.insights import model
from xz_pipeline.insights.features import Ledger, to_day
from xz_pipeline.sandbox.world import generate
from xz_pipeline_tests.insights.world_frames import frames

CAP = 1_500


def _ledger(f: dict[str, pd.DataFrame]) -> Ledger:
    return Ledger(f["books_invoices"], f["books_payments"], f["books_credit_allocations"],
                  f["books_credit_notes"], f["books_invoice_lines"])  # fmt: skip


@pytest.fixture(scope="module")
def world_frames():
    world = generate(7, "demo")
    return frames(world), to_day(world.as_of) - 120


def _rows(ledger: Ledger, cutoff: int) -> pd.DataFrame:
    inv, t, late, delay = model.training_rows(ledger, cutoff)
    ids = ledger.invoices["invoice_id"].to_numpy()[inv]
    return (
        pd.DataFrame({"invoice_id": ids, "age": t - ledger.issue[inv], "late": late, "delay": delay})
        .sort_values(["invoice_id", "age"])
        .reset_index(drop=True)
    )


def test_rows_past_the_cap_are_whole_invoices_of_a_stable_sample(world_frames, monkeypatch):
    f, cutoff = world_frames
    ledger = _ledger(f)
    full = _rows(ledger, cutoff)
    assert len(full) > 2 * CAP  # the cap bites
    monkeypatch.setattr(model, "MAX_ROWS", CAP)
    capped = _rows(ledger, cutoff)
    assert CAP - 10 <= len(capped) <= CAP
    # every landmark of a kept invoice, with the same labels
    kept = full[full["invoice_id"].isin(set(capped["invoice_id"]))].reset_index(drop=True)
    pd.testing.assert_frame_equal(capped, kept)
    # the same sample from the rows in another order (a mirror returns them as it likes)
    shuffled = {k: v.sample(frac=1.0, random_state=1) if len(v) else v for k, v in f.items()}
    pd.testing.assert_frame_equal(_rows(_ledger(shuffled), cutoff), capped)
    # and from a ledger holding nothing issued on or after the cut-off
    inv = f["books_invoices"]
    early = {
        **f,
        "books_invoices": inv[pd.to_datetime(inv["issue_date"]) < pd.Timestamp(np.datetime64(cutoff, "D"))],
    }
    assert len(early["books_invoices"]) < len(inv)
    pd.testing.assert_frame_equal(_rows(_ledger(early), cutoff), capped)


def test_a_capped_model_still_learns(world_frames, monkeypatch):
    """The sample is training data, not a fallback: the model is fitted on it, not the base rate."""
    f, cutoff = world_frames
    monkeypatch.setattr(model, "MAX_ROWS", CAP)
    trained = model.train(_ledger(f), cutoff)
    assert trained.n_rows <= CAP and not trained.fallback and trained.classifier is not None
