"""The QuickBooks Online connector as a Dagster resource: one client per connection, built at run time.

Credentials come from the environment or the connections file when a run asks for a connection
(settings.py), and the rotated refresh token lives in the token store: no secret is a resource field, so
neither the resource's repr nor run config can print one.
"""

from __future__ import annotations

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.quickbooks.client import QuickBooksClient


def qbo_settings(connection: str) -> settings.QuickBooksSettings:
    conn = settings.get_connection(connection)
    if conn.quickbooks is None:
        raise settings.SettingsError(
            f"connection {connection!r} has no QuickBooks settings (QBO_CLIENT_ID, or [connections.{connection}.quickbooks])"
        )
    return conn.quickbooks


class QuickBooksResource(dg.ConfigurableResource):
    """Builds a `QuickBooksClient` for a named connection."""

    timeout: float = 30.0

    def client(self, connection: str, meter: CallMeter | None = None) -> QuickBooksClient:
        qs = qbo_settings(connection)
        return QuickBooksClient(
            client_id=qs.client_id,
            client_secret=qs.client_secret,
            refresh_token=qs.refresh_token or None,
            api_url=qs.api_url,
            token_url=qs.token_url,
            token_store=TokenStore(settings.xz_home() / "tokens"),
            connection=connection,
            realm_id=qs.realm_id or None,
            meter=meter,
            timeout=self.timeout,
        )
