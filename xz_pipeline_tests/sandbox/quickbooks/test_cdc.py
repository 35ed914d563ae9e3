"""Change data capture: what changed since a time, deletes as stubs, the 30-day window, the 1,000 cap."""

from __future__ import annotations

from datetime import timedelta

from xz_pipeline.sandbox.quickbooks import cdc
from xz_pipeline.sandbox.quickbooks.wire import iso
from xz_pipeline_tests.sandbox.quickbooks.support import connect


def _cdc(qbo, entities: str, since: str):
    return qbo.http.get(f"{qbo.base}/cdc", params={"entities": entities, "changedSince": since, "minorversion": "75"},
                        headers=qbo.headers())  # fmt: skip


def _by_entity(resp) -> dict[str, list[dict]]:
    assert resp.status_code == 200, resp.text
    out = {}
    for qr in resp.json()["CDCResponse"][0]["QueryResponse"]:
        for key, value in qr.items():
            if isinstance(value, list):
                out[key] = value
    return out


def test_cdc_returns_changes_and_deletes_since_a_time():
    qbo = connect()
    qbo.clock.advance(3600)
    qbo.refresh()  # the hour also ended the access token
    since = iso(qbo.clock.now())
    qbo.clock.advance(5)
    cust = qbo.post("Customer", {"DisplayName": "Changed Lately"}).json()["Customer"]
    line = {
        "Amount": 50,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 50},
    }
    inv = qbo.post("Invoice", {"CustomerRef": {"value": cust["Id"]}, "Line": [line]}).json()["Invoice"]
    qbo.clock.advance(5)
    assert (
        qbo.post("Invoice", {"Id": inv["Id"], "SyncToken": inv["SyncToken"]}, operation="delete").status_code
        == 200
    )
    found = _by_entity(_cdc(qbo, "Customer,Invoice,Payment", since))
    assert [c["Id"] for c in found["Customer"]] == [cust["Id"]]
    [stub] = found["Invoice"]
    assert stub["Id"] == inv["Id"] and stub["status"] == "Deleted" and stub["MetaData"]["LastUpdatedTime"]
    assert "Payment" not in found  # nothing changed: an empty QueryResponse
    assert len(_cdc(qbo, "Customer,Invoice,Payment", since).json()["CDCResponse"][0]["QueryResponse"]) == 3


def test_cdc_refuses_more_than_30_days_back_and_unsupported_entities():
    qbo = connect()
    old = iso(qbo.clock.now() - timedelta(days=31))
    resp = _cdc(qbo, "Invoice", old)
    assert resp.status_code == 400 and "older than fixed days" in resp.json()["Fault"]["Error"][0]["Detail"]
    assert _cdc(qbo, "TaxCode", iso(qbo.clock.now())).status_code == 400
    assert _cdc(qbo, "", iso(qbo.clock.now())).status_code == 400


def test_cdc_caps_each_entity_oldest_change_first(monkeypatch):
    qbo = connect()
    since = iso(qbo.clock.now() - timedelta(days=29))
    everything = _by_entity(_cdc(qbo, "Invoice", since))["Invoice"]
    assert len(everything) > 5  # the world's recent activity
    monkeypatch.setattr(cdc, "MAX_PER_ENTITY", 5)
    capped = _by_entity(_cdc(qbo, "Invoice", since))["Invoice"]
    times = [r["MetaData"]["LastUpdatedTime"] for r in everything]
    assert [r["Id"] for r in capped] == [r["Id"] for r in everything[:5]] and times == sorted(times)
