"""The Zoho CRM connector as a Dagster resource: one client per connection, built at run time.

Credentials are read from the environment or the connections file when a run asks for a connection
(settings.py), and tokens live in the token store: no secret is a resource field, so neither the
resource's repr nor run config can print one.
"""

from __future__ import annotations

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.zoho.client import ZohoClient


class ZohoResource(dg.ConfigurableResource):
    """Builds a `ZohoClient` for a named connection.

    `trigger` lists the CRM automations our writes may fire ("workflow", "approval", "blueprint");
    empty by default, so write-back never sets off a customer's workflows unless they ask for it.
    """

    timeout: float = 30.0
    trigger: list[str] = []

    def client(self, connection: str, meter: CallMeter | None = None) -> ZohoClient:
        conn = settings.get_connection(connection)
        if conn.zoho is None:
            raise settings.SettingsError(f"connection {connection!r} has no Zoho settings (ZOHO_CLIENT_ID)")
        zs = conn.zoho
        return ZohoClient(
            client_id=zs.client_id,
            client_secret=zs.client_secret,
            refresh_token=zs.refresh_token or None,
            accounts_url=zs.accounts_url,
            token_store=TokenStore(settings.xz_home() / "tokens"),
            connection=connection,
            api_domain=zs.api_domain or None,
            meter=meter,
            timeout=self.timeout,
            trigger=self.trigger,
        )
