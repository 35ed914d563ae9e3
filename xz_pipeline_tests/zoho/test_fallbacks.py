"""What the Zoho writer does when the org does not offer an endpoint: the deal's products (one line at the
deal amount later), composite requests (one write a call), a module; and writes carry only its fields."""

from __future__ import annotations

import json

from xz_pipeline.core.store import Store
from xz_pipeline.writeback.ports import not_offered
from xz_pipeline.zoho.writer import ZohoCrmWriter
from xz_pipeline_tests.zoho.support import SentRecorder, ZohoSandbox

CONNECTION = "fallbacks"


class Refuse:
    """ASGI wrapper: a 404 INVALID_URL_PATTERN for paths ending with `suffix`, as an org without them answers."""

    def __init__(self, app, suffix: str) -> None:
        self.app, self.suffix, self.refused = app, suffix, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].endswith(self.suffix):
            self.refused += 1
            body = json.dumps({"code": "INVALID_URL_PATTERN", "details": {}, "message": "Please check if the URL "
                               "trying to access is a correct one", "status": "error"}).encode()  # fmt: skip
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _deal(sb: ZohoSandbox) -> str:
    sb.load("Deals", [{"id": "7000000000000000001", "Deal_Name": "Big", "Stage": "Closed Won", "Amount": 100,
                       "Created_Time": "2026-11-01T00:00:00+00:00", "Modified_Time": "2026-11-01T00:00:00+00:00"}])  # fmt: skip
    return "7000000000000000001"


def test_related_list_404_falls_back_for_the_run_and_is_remembered(tmp_path):
    store = Store(tmp_path / "mirror.duckdb")
    with ZohoSandbox() as sb:
        refuse = Refuse(sb.hooks.app, "/Products")
        sb.hooks.app = refuse
        deal = _deal(sb)
        writer = ZohoCrmWriter(sb.client(tmp_path / "tokens"), CONNECTION, store=store)
        with store.write() as con:
            store.ensure_base(con)
        assert writer.refresh(store, "deal", [deal], run_id="t") == 1  # the deal mirrored, as extracts do
        writer.read_deal_products(store, [deal], run_id="t")
        again = ZohoCrmWriter(sb.client(tmp_path / "tokens"), CONNECTION, store=store)
        assert again.read_deal_products(store, [deal], run_id="t") == 0
        caps = again.capabilities(store)
    assert refuse.refused == 1
    assert "INVALID_URL_PATTERN" in caps.unavailable["deal_products"]
    with store.read() as con:
        assert con.execute("select count(*) from zoho.deals where deal_id = ?", [deal]).fetchone()[0] == 1


def test_composite_404_means_one_write_a_call(tmp_path):
    store = Store(tmp_path / "mirror.duckdb")
    with ZohoSandbox() as sb:
        sb.hooks.app = Refuse(sb.hooks.app, "/__composite_requests")
        deal = _deal(sb)
        writer = ZohoCrmWriter(sb.client(tmp_path / "tokens"), CONNECTION, store=store)
        assert writer.composite_size == 5
        try:
            writer.composite([("update_deals", ([(deal, {"amount_paid": None})],)),
                              ("update_deals", ([(deal, {"payment_status": "paid"})],))])  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the refusal is what is asserted
            refused = exc
        assert not_offered(refused)
        writer.composite_size = 1  # what apply does on such a refusal
        later = ZohoCrmWriter(sb.client(tmp_path / "tokens"), CONNECTION, store=store)
        assert later.composite_size == 1


def test_writes_carry_only_fields_the_org_has(tmp_path):
    store = Store(tmp_path / "mirror.duckdb")
    with ZohoSandbox() as sb:
        deals = sb.org.modules["Deals"]
        deals.fields = [f for f in deals.fields if f.api_name not in ("Currency", "Payment_Status")]
        deal = _deal(sb)
        client = sb.client(tmp_path / "tokens")
        sent = SentRecorder()
        sent.attach(client.http.session)
        writer = ZohoCrmWriter(client, CONNECTION, store=store)
        batch = writer.update_deals(
            [(deal, {"payment_status": "paid", "amount_paid": None, "currency": "NZD"})]
        )
        caps = writer.capabilities()
    assert batch.failed == 0
    (body,) = sent.bodies("PUT", "/Deals")
    assert body["data"] == [{"id": deal, "Amount_Paid": None}]
    assert caps.missing_fields[("deal", "payment_status")] == (
        "Deals.Payment_Status does not exist in this org: run `xz setup zoho` or map it"
    )
    assert caps.missing_fields[("deal", "currency")].startswith("Deals.Currency does not exist in this org")


def test_missing_module_is_reported_not_read(tmp_path):
    store = Store(tmp_path / "mirror.duckdb")
    with ZohoSandbox() as sb:
        del sb.org.modules["Invoices"]
        writer = ZohoCrmWriter(sb.client(tmp_path / "tokens"), CONNECTION, store=store)
        caps = writer.capabilities(store)
        before = len(sb.emulator.received)
        assert writer.refresh(store, "invoice", ["1"], run_id="t") == 0
        assert sb.requests_to("/crm/v8/Invoices", since=before) == []
    assert caps.missing_fields[("invoice", "payment_status")] == "the org has no Invoices module"
