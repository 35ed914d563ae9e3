"""The one Definitions: assets, checks, resources, sensors, schedules and jobs of xz-pipeline."""

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.dagster_storage import tune_sqlite_storage
from xz_pipeline.first_run import first_mirror_sensor
from xz_pipeline.insights.assets import INSIGHTS_ASSETS
from xz_pipeline.publish import build_snapshot_asset
from xz_pipeline.quickbooks.assets import QUICKBOOKS_ASSETS
from xz_pipeline.quickbooks.checks import QUICKBOOKS_CHECKS
from xz_pipeline.quickbooks.mapping import BOOKS_VIEWS as QUICKBOOKS_BOOKS_VIEWS
from xz_pipeline.quickbooks.resources import QuickBooksResource
from xz_pipeline.quickbooks.writer import QuickBooksWriterResource
from xz_pipeline.realtime.polling import salesforce_polling_sensor
from xz_pipeline.realtime.sensors import REALTIME_CHECKS, REALTIME_JOBS, REALTIME_SENSORS
from xz_pipeline.reconcile.assets import RECONCILE_ASSETS, RECONCILE_CHECKS
from xz_pipeline.runs import runs_sensor
from xz_pipeline.salesforce.assets import SALESFORCE_ASSETS
from xz_pipeline.salesforce.checks import SALESFORCE_CHECKS
from xz_pipeline.salesforce.mapping import CRM_VIEWS as SALESFORCE_CRM_VIEWS
from xz_pipeline.salesforce.resources import SalesforceResource
from xz_pipeline.salesforce.writer import SalesforceWriterResource
from xz_pipeline.schedules import build_schedules, connections_sensor
from xz_pipeline.views import build_canonical_views_asset
from xz_pipeline.writeback.assets import WRITEBACK_ASSETS, WRITEBACK_CHECKS
from xz_pipeline.xero.assets import XERO_ASSETS
from xz_pipeline.xero.checks import XERO_CHECKS
from xz_pipeline.xero.mapping import BOOKS_VIEWS
from xz_pipeline.xero.projects_assets import PROJECTS_ASSETS
from xz_pipeline.xero.projects_mapping import PROJECT_VIEWS
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline.xero.writer import XeroWriterResource
from xz_pipeline.zoho.assets import ZOHO_ASSETS
from xz_pipeline.zoho.checks import ZOHO_CHECKS
from xz_pipeline.zoho.mapping import CRM_VIEWS
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline.zoho.writer import ZohoWriterResource

tune_sqlite_storage()  # every process that loads the code: webserver, daemon, run workers, `xz`


class BooksWriterResource(dg.ConfigurableResource):
    """Write-back's books writer: the connection's own books vendor (`books = "xero" | "quickbooks"`)."""

    timeout: float = 30.0

    def writer(self, connection: str, meter: CallMeter | None = None):
        if settings.get_connection(connection).books == "quickbooks":
            return QuickBooksWriterResource(timeout=self.timeout).writer(connection, meter=meter)
        return XeroWriterResource(timeout=self.timeout).writer(connection, meter=meter)


class CrmWriterResource(dg.ConfigurableResource):
    """Write-back's CRM writer: the connection's own CRM vendor (`crm = "zoho" | "salesforce"`)."""

    timeout: float = 30.0

    def writer(self, connection: str, meter: CallMeter | None = None, trigger=()):
        if settings.get_connection(connection).crm == "salesforce":
            return SalesforceWriterResource(timeout=self.timeout).writer(connection, meter=meter)
        return ZohoWriterResource(timeout=self.timeout).writer(connection, meter=meter, trigger=trigger)


EXTRACT_ASSETS = [*XERO_ASSETS, *PROJECTS_ASSETS, *QUICKBOOKS_ASSETS, *ZOHO_ASSETS, *SALESFORCE_ASSETS]
# Books views: the union of the Xero and QuickBooks renderings (each holds only its own connections' rows).
VENDOR_VIEWS = [BOOKS_VIEWS, PROJECT_VIEWS, QUICKBOOKS_BOOKS_VIEWS, CRM_VIEWS, SALESFORCE_CRM_VIEWS]
canonical_views = build_canonical_views_asset(EXTRACT_ASSETS, VENDOR_VIEWS)
analytics_snapshot = build_snapshot_asset(
    [canonical_views, *RECONCILE_ASSETS, *WRITEBACK_ASSETS, *INSIGHTS_ASSETS], VENDOR_VIEWS
)
ASSETS = [
    *EXTRACT_ASSETS,
    canonical_views,
    *RECONCILE_ASSETS,
    *WRITEBACK_ASSETS,
    *INSIGHTS_ASSETS,
    analytics_snapshot,
]
CHECKS = [
    *XERO_CHECKS,
    *QUICKBOOKS_CHECKS,
    *ZOHO_CHECKS,
    *SALESFORCE_CHECKS,
    *RECONCILE_CHECKS,
    *WRITEBACK_CHECKS,
    *REALTIME_CHECKS,
]

# `mirror` extracts, reconciles, plans write-back (applied only when configured) and publishes; the asset
# checks of the selection run with it.
mirror_job = dg.define_asset_job(
    "mirror",
    selection=dg.AssetSelection.assets(
        *EXTRACT_ASSETS,
        canonical_views,
        *RECONCILE_ASSETS,
        *WRITEBACK_ASSETS,
        *INSIGHTS_ASSETS,
        analytics_snapshot,
    ),
)

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[mirror_job, *REALTIME_JOBS],
    schedules=build_schedules(mirror_job, EXTRACT_ASSETS),
    sensors=[
        connections_sensor,
        *REALTIME_SENSORS,
        salesforce_polling_sensor,
        runs_sensor,
        first_mirror_sensor,
    ],
    resources={
        "xero": XeroResource(),
        "quickbooks": QuickBooksResource(),
        "zoho": ZohoResource(),
        "salesforce": SalesforceResource(),
        "mirror": MirrorResource(),
        "books_writer": BooksWriterResource(),
        "crm_writer": CrmWriterResource(),
    },
    # Writers run one at a time anyway (pool `duckdb`), so a subprocess per step would only add ~2 s each.
    executor=dg.in_process_executor,
)
