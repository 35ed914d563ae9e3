"""The one Definitions: assets, checks, resources, sensors, schedules and jobs of xz-pipeline."""

from __future__ import annotations

import dagster as dg

from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.xero.assets import XERO_ASSETS
from xz_pipeline.xero.resources import XeroResource

ASSETS = [*XERO_ASSETS]

mirror_job = dg.define_asset_job("mirror", selection=dg.AssetSelection.groups("xero"))

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[mirror_job],
    resources={"xero": XeroResource(), "mirror": MirrorResource()},
)
