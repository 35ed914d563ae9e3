"""The pairs without Xero end to end: `xz demo --books quickbooks --crm C` on the tiny world, for Zoho and for
Salesforce, finds exactly the disagreements the world's one manifest planted (its ids mapped to the pair's
vendors' through `id_maps`), raises nothing of the kinds the pair cannot show (the Xero Projects kinds; with
Salesforce, which has no CRM invoices, the kinds that need them too), and writes nothing in its second cycle.

One demo run per pair (about a minute each on a quiet machine): everything is asserted on it.
"""

from __future__ import annotations

import json
import os
import re
from types import SimpleNamespace

import duckdb
import pytest

from xz_pipeline_tests.reconcile.world_frames import score

# Real processes end to end (signals, kills, daemons, whole pairs): `make test-integration` runs these.
pytestmark = pytest.mark.end_to_end

PROJECT_KINDS = {"time_not_invoiced", "project_over_budget"}


def _qbo_id(world_id: str, ids: dict[str, str]) -> str:
    """A world id as the QuickBooks pipeline names the record (a draft is an Estimate: `estimate-<Id>`)."""
    value = ids.get(world_id, world_id)
    return "estimate-" + value.removeprefix("Estimate/") if value.startswith("Estimate/") else value


def _write_calls(stdout: str) -> list[tuple[int, int]]:
    """(books, CRM) write calls per cycle, from the demo report's Write-back table."""
    section = stdout.split("\nWrite-back\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [tuple(int(n) for n in re.split(r"\s{2,}", row.strip())[-2:]) for row in section]


@pytest.mark.parametrize("crm", ["zoho", "salesforce"])
def test_the_quickbooks_pairs_find_what_was_planted_and_settle_in_one_cycle(crm, xz_home, capsys):
    from xz_pipeline import cli

    pair = f"quickbooks+{crm}"
    before = dict(os.environ)
    try:
        assert cli.main(["demo", "--books", "quickbooks", "--crm", crm, "--size", "tiny"]) == 0
    finally:  # the demo points this process at its sandbox: leave no QBO_*/ZOHO_*/SALESFORCE_* behind
        os.environ.clear()
        os.environ.update(before)
    out = capsys.readouterr().out
    assert "QuickBooks calls" in out and "QuickBooks write calls" in out and "Xero calls" not in out
    state = xz_home / "demo"
    doc = json.loads((state / "manifest.json").read_text())
    [mirror] = (state / "mirror").glob("*.duckdb")  # the demo's one connection
    con = duckdb.connect(str(mirror), read_only=True)
    try:
        found = con.execute(
            "select kind, books_id, crm_id, field from recon.discrepancies "
            "where first_seen = (select min(first_seen) from recon.discrepancies)"
        ).df()
        drafts = con.execute(
            "select count(*) from canonical.books_invoices where status = 'draft'"
        ).fetchone()[0]
        estimates = con.execute("select count(*) from quickbooks.estimates").fetchone()[0]
    finally:
        con.close()

    ids, crm_ids = doc["id_maps"]["quickbooks"], doc["id_maps"].get(crm, {})
    truth = [
        SimpleNamespace(kind=m["kind"], books_id=_qbo_id(m["books_id"], ids), field=m["field"],
                        crm_id=crm_ids.get(m["crm_id"], m["crm_id"]))
        for m in doc["manifest"]
    ]  # fmt: skip
    scores = score(found.fillna(""), truth)
    elsewhere = {k for k, pairs in doc["pairs_undetectable"].items() if pair in pairs}
    assert elsewhere >= PROJECT_KINDS and (elsewhere == PROJECT_KINDS) == (crm == "zoho")
    for kind in doc["pairs"]:
        s = scores.get(kind, {"found": 0, "expected": 0, "precision": 1.0, "recall": 1.0})
        if kind in elsewhere:
            assert s["found"] == 0, kind  # no false alarm where the pair cannot show the kind
        else:
            assert (s["precision"], s["recall"]) == (1.0, 1.0), (kind, s)
    assert sum(s["expected"] for k, s in scores.items() if k not in elsewhere) >= 30

    # the world's drafts are Estimates, read as draft sales invoices (plus the write-back's own for won deals)
    assert estimates == drafts > 0
    first, second = _write_calls(out)
    assert first[0] > 0 and first[1] > 0 and second == (0, 0)
