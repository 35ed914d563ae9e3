"""The `where`/`order` language on typed records, and the emulator under concurrent clients."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pytest
import requests

from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline.sandbox.xero import XeroEmulator
from xz_pipeline.sandbox.xero.where import QueryError, apply_order, compile_where

ROWS = [
    {"Name": "Acme", "Status": "AUTHORISED", "AmountDue": Decimal("10.50"), "Date": date(2026, 1, 5), "IsCustomer": True,
     "Contact": {"ContactID": "8a1b7c2e-0000-4000-8000-00000000000a"}, "Reference": ""},
    {"Name": "Bravo", "Status": "DRAFT", "AmountDue": Decimal("0"), "Date": date(2026, 2, 1), "IsCustomer": False,
     "Contact": {"ContactID": "8a1b7c2e-0000-4000-8000-00000000000b"}, "Reference": "PO-1"},
    {"Name": "charlie", "Status": "PAID", "AmountDue": Decimal("99"), "Date": date(2025, 12, 31), "IsCustomer": True,
     "Contact": {"ContactID": "8a1b7c2e-0000-4000-8000-00000000000c"}, "Reference": None},
]  # fmt: skip


def names(where: str) -> list[str]:
    predicate = compile_where(where)
    return [r["Name"] for r in ROWS if predicate(r)]


def test_operators_precedence_and_literals():
    assert names('Status == "DRAFT" OR Status == "PAID" AND AmountDue > 50') == ["Bravo", "charlie"]
    assert names('(Status == "DRAFT" OR Status == "PAID") AND AmountDue > 50') == ["charlie"]
    assert names("AmountDue >= 10.5 && AmountDue <= 99") == ["Acme", "charlie"]
    assert names('Status != "DRAFT"') == ["Acme", "charlie"]
    assert names("IsCustomer") == ["Acme", "charlie"] == names("IsCustomer == true")
    assert names("!IsCustomer") == ["Bravo"] == names("IsCustomer == false")
    assert names("Reference == null") == ["Acme", "charlie"]
    assert names("Reference != null") == ["Bravo"]
    assert names("Date < DateTime(2026, 01, 01)") == ["charlie"]
    assert names('Contact.ContactID == GUID("8A1B7C2E-0000-4000-8000-00000000000B")') == ["Bravo"]
    assert names('Name.StartsWith("A") || Name.EndsWith("lie")') == ["Acme", "charlie"]
    assert names('Name.ToUpper().Contains("HAR")') == ["charlie"]
    assert names('Name == "acme"') == []  # ordinal, as .NET compares strings
    assert names('Name = "Acme"') == ["Acme"]  # Xero's docs also write a single =


@pytest.mark.parametrize(
    "bad",
    [
        'Name == "x',
        "Name ==",
        "Name.Explode()",
        "GUID(1, 2)",
        "Name $ 1",
        "(Name",
        "Date > DateTime(2026, 13, 1)",
    ],
)
def test_bad_expressions_raise(bad):
    with pytest.raises(QueryError):
        compile_where(bad)(ROWS[0])


def test_order_multi_key_nulls_first_and_errors():
    assert [r["Name"] for r in apply_order(ROWS, "IsCustomer DESC, Name DESC")] == [
        "charlie",
        "Acme",
        "Bravo",
    ]
    assert [r["Name"] for r in apply_order(ROWS, "Reference ASC")] == ["Acme", "charlie", "Bravo"]
    assert [r["Name"] for r in apply_order(ROWS, "Name")] == ["Acme", "Bravo", "charlie"]  # folds case
    with pytest.raises(QueryError):
        apply_order(ROWS, "Name SIDEWAYS")


def test_concurrent_writers_get_unique_numbers():
    emu = XeroEmulator()
    tenant = emu.add_tenant("Busy Ltd")
    emu.register_client("C", "S")
    refresh = emu.grant_refresh_token("C", [tenant])
    emu.limits.per_minute = 1000
    emu.limits.concurrent = 50
    with LoopbackServer(emu.app, name="xero-concurrency") as server:
        token = requests.post(f"{server.url}/connect/token", auth=("C", "S"), timeout=5,
                              data={"grant_type": "refresh_token", "refresh_token": refresh}).json()["access_token"]  # fmt: skip
        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant, "Accept": "application/json"}
        contact = requests.put(f"{server.url}/api.xro/2.0/Contacts", json={"Contacts": [{"Name": "Buyer"}]},
                               headers=headers, timeout=5).json()["Contacts"][0]["ContactID"]  # fmt: skip
        statuses: list[int] = []

        def worker() -> None:
            with requests.Session() as s:
                for _ in range(4):
                    body = {"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": contact}, "LineItems": [
                        {"Description": "x", "UnitAmount": 1, "AccountCode": "200"}]}]}  # fmt: skip
                    statuses.append(
                        s.put(
                            f"{server.url}/api.xro/2.0/Invoices", json=body, headers=headers, timeout=10
                        ).status_code
                    )

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert statuses == [200] * 32
    numbers = sorted(i["InvoiceNumber"] for i in emu.dump(tenant, "Invoices"))
    assert numbers == [f"INV-{n:04d}" for n in range(1, 33)]
    assert emu.rate.in_flight(tenant) == 0
    assert sum(1 for r in emu.received if r.path == "/api.xro/2.0/Invoices") == 32
