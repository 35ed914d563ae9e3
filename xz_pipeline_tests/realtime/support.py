"""Shared arrangements for the realtime tests: a sandbox, its environment, and a receiver in a thread."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from xz_pipeline import settings
from xz_pipeline.realtime.inbox import Inbox
from xz_pipeline.realtime.receiver import serve_in_thread
from xz_pipeline_tests.sandbox_env import export_sandbox

CONNECTION = "sandbox"


def use_sandbox_env(monkeypatch, sb) -> settings.Connection:
    export_sandbox(monkeypatch, sb, CONNECTION)
    (conn,) = settings.load_connections()
    return conn


@contextlib.contextmanager
def receiver(inbox: Inbox | None = None, port: int = 0) -> Iterator[str]:
    url, stop = serve_in_thread("127.0.0.1", port, inbox=inbox)
    try:
        yield url
    finally:
        stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zoho_client(sb, clock):
    """A Zoho client on the sandbox's manual clock, so channel expiries agree with the emulator's time."""
    from xz_pipeline.core.oauth import TokenStore
    from xz_pipeline.zoho.client import ZohoClient

    env = sb.env(0)
    return ZohoClient(
        client_id=env["ZOHO_CLIENT_ID"], client_secret=env["ZOHO_CLIENT_SECRET"],
        refresh_token=env["ZOHO_REFRESH_TOKEN"], accounts_url=env["ZOHO_ACCOUNTS_URL"],
        token_store=TokenStore(settings.xz_home() / "tokens"), connection=CONNECTION,
        api_domain=env["ZOHO_API_DOMAIN"], clock=clock,
    )  # fmt: skip


def pay_some_invoice(sb, client, amount: str = "1.00", skip: int = 0) -> tuple[str, str]:
    """Pay part of an open sales invoice through the API; returns (invoice id, payment id)."""
    from datetime import date
    from decimal import Decimal

    open_invoices = [
        i for i in sb.xero.dump(sb.tenant_ids[0], "Invoices")
        if i["Type"] == "ACCREC" and i["Status"] == "AUTHORISED" and Decimal(str(i["AmountDue"])) > Decimal(amount)
    ]  # fmt: skip
    invoice = open_invoices[skip]
    bank = next(a for a in sb.xero.dump(sb.tenant_ids[0], "Accounts") if a["Type"] == "BANK")
    (result,) = client.create_payments(
        [{"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Account": {"AccountID": bank["AccountID"]},
          "Date": date.today(), "Amount": Decimal(amount)}]
    )  # fmt: skip
    assert result.ok, result
    return invoice["InvoiceID"], result.record_id


# Where a queued targeted run's code lives, as the daemon's workspace names it (workspace.yaml): Dagster
# requires one of a run created in the QUEUED state.
ORIGIN = RemoteJobOrigin(
    RemoteRepositoryOrigin(
        InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name="xz_pipeline.definitions"), "xz_pipeline"
        ),
        "__repository__",
    ),
    "realtime",
)
