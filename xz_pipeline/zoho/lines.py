"""Line items (`Invoiced_Items`) for the invoices a listing returned: Zoho lists no subforms, so each new or
changed invoice needs its lines read separately, and how decides what a first sync costs.

Two routes. COQL over the subform module reads the lines of 50 invoices a call (`ZohoClient.subform_rows`);
a GET by id reads one invoice (with everything) a call. At 200 tiny orgs the GET route spent 24,366 of the
first sync's 26,964 Zoho calls. By call count: k invoices cost ceil(k/50) COQL calls (one credit while
k <= 2, LIMIT being sized to 100 rows an invoice) against k GETs, so from 2 invoices COQL is never worse in
calls and 1 invoice stays a GET (the same one call and credit, without the COQL scope). An incremental
run with a handful of changed invoices in a page therefore spends one call, not a handful.

An org that refuses the COQL route (no `ZohoCRM.coql.READ` grant, an edition without COQL, a line field it
lacks) is read by GET, as before, with the reason in the run's note; the refusal is kept with the org's
schema (`OrgSchema.unavailable`) so later runs go straight to GET until the schema is read again. Either way
the landed invoice carries `Invoiced_Items` as a GET nests them (lookups as `{"id", "name"}`), which is
what `tables.py` and the canonical mapping read.
"""

from __future__ import annotations

from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.sync import ReadPlan
from xz_pipeline.zoho import tables

SUBFORM = "Invoiced_Items"
# The line fields a GET by id returns (zoho-api.md §12), Product_Name's display name joined in.
LINE_FIELDS = ("Product_Name", "Quantity", "List_Price", "Discount", "Total", "Tax", "Net_Total", "Description",
               "Line_Tax")  # fmt: skip
NAMES = {"Product_Name": "Product_Name"}
ENDPOINT = f"coql {SUBFORM}"  # as remembered in meta.vendor_schema when refused
BULK_FROM = 2  # invoices needing lines in one page: from here one COQL call beats a GET each


class InvoiceLines:
    """Attaches `Invoiced_Items` to each invoice of a page that needs them, by the cheaper route."""

    def __init__(self, client, plan: ReadPlan) -> None:
        self.client, self.plan = client, plan
        self.note = ""
        schema = client.schema
        self.refused: str = (schema.endpoints.get(ENDPOINT, "") if schema is not None else "") or ""
        if self.refused:
            self.note = (
                f"; line items read one invoice a call (COQL over {SUBFORM} refused earlier: {self.refused})"
            )

    def attach(self, page: list[dict]) -> list[dict]:
        wanted = [str(p["id"]) for p in page if self._needs_lines(p)]
        if not wanted:
            return page
        lines = self._bulk(wanted) if len(wanted) >= BULK_FROM and not self.refused else None
        if lines is not None:
            return [{**p, SUBFORM: lines[str(p["id"])]} if str(p["id"]) in lines else p for p in page]
        asked = set(wanted)
        return [
            (self.client.get("Invoices", str(p["id"])) or p) if str(p["id"]) in asked else p for p in page
        ]

    def _needs_lines(self, payload: dict) -> bool:
        """Asked for by id, or modified since the cursor's second began. An invoice of the cursor's own
        second may have changed after the read that set the cursor (Zoho's times are whole seconds), so
        its lines are read again too: the listing re-reads that second only until it has settled
        (`core.sync.SETTLED`), and in bulk that costs at most the one call the page's others cost."""
        if self.plan.ids or self.plan.cursor is None:
            return True
        modified = tables.instant("Modified_Time")(payload)
        return modified is None or modified >= self.plan.cursor.replace(microsecond=0)

    def _bulk(self, ids: list[str]) -> dict[str, list[dict]] | None:
        try:
            return self.client.subform_rows(SUBFORM, ids, LINE_FIELDS, NAMES)
        except ApiError as exc:
            if exc.transient:
                raise
            self.refused = f"{exc.code}: {exc.message}"[:300]
            self.note = f"; line items read one invoice a call (COQL over {SUBFORM} refused: {self.refused})"
            if self.client.schema is not None:
                self.client.schema.unavailable(ENDPOINT, self.refused)
            return None
