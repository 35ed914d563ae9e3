"""What a targeted near-real-time run includes besides the changed assets."""

from __future__ import annotations

import dagster as dg


def blocking_checks(asset_graph, selection) -> list[dg.AssetCheckKey]:
    """Only the checks that gate later stages run in targeted runs, and those read only the announced
    records (core.checks.announced_ids); the WARN ones (whole-table and missed-event checks) run with the
    scheduled reads, where they have something to say."""
    return sorted(
        (
            k
            for k in asset_graph.asset_check_keys
            if k.asset_key in selection and asset_graph.get_check_spec(k).blocking
        ),
        key=lambda k: (k.asset_key.to_user_string(), k.name),
    )
