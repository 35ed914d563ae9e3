"""The Xero connector as a Dagster resource: one client per connection, built at run time.

Credentials are read from the environment or the connections file when a run asks for a
connection (settings.py), and the rotated refresh token lives in the token store: no secret is a
resource field, so neither the resource's repr nor run config can print one.
"""

from __future__ import annotations

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.xero.client import XeroClient


class XeroResource(dg.ConfigurableResource):
    """Builds a `XeroClient` for a named connection."""

    timeout: float = 30.0

    def client(self, connection: str, meter: CallMeter | None = None) -> XeroClient:
        conn = settings.get_connection(connection)
        if conn.xero is None:
            raise settings.SettingsError(f"connection {connection!r} has no Xero settings (XERO_CLIENT_ID)")
        xs = conn.xero
        return XeroClient(
            client_id=xs.client_id,
            client_secret=xs.client_secret,
            refresh_token=xs.refresh_token or None,
            api_url=xs.api_url,
            identity_url=xs.identity_url,
            token_store=TokenStore(settings.xz_home() / "tokens"),
            connection=connection,
            tenant_id=xs.tenant_id or None,
            meter=meter,
            timeout=self.timeout,
        )
