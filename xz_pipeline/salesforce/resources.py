"""The Salesforce connector as a Dagster resource: one client per connection, built at run time.

Credentials come from the environment or the connections file when a run asks for a connection
(settings.py), and the (possibly rotated) refresh token lives in the token store: no secret is a resource
field, so neither the resource's repr nor run config can print one.
"""

from __future__ import annotations

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.salesforce.client import SalesforceClient


def sf_settings(connection: str) -> settings.SalesforceSettings:
    conn = settings.get_connection(connection)
    if conn.salesforce is None:
        raise settings.SettingsError(
            f"connection {connection!r} has no Salesforce settings (SALESFORCE_CLIENT_ID, or "
            f"[connections.{connection}.salesforce])"
        )
    return conn.salesforce


class SalesforceResource(dg.ConfigurableResource):
    """Builds a `SalesforceClient` for a named connection."""

    timeout: float = 30.0

    def client(self, connection: str, meter: CallMeter | None = None) -> SalesforceClient:
        ss = sf_settings(connection)
        return SalesforceClient(
            client_id=ss.client_id,
            client_secret=ss.client_secret,
            refresh_token=ss.refresh_token or None,
            token_store=TokenStore(settings.xz_home() / "tokens"),
            login_url=ss.login_url,
            instance_url=ss.instance_url or None,
            connection=connection,
            meter=meter,
            timeout=self.timeout,
        )
