"""Materialise the pipeline in process, per connection: what `xz sync` and `xz demo` run."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.resources import connections_partitions
from xz_pipeline.definitions import ASSETS, CHECKS, defs

# The instance settings of the repository (pool `duckdb` limited to 1, telemetry off).
INSTANCE_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


@dataclass
class RunOutcome:
    connection: str
    success: bool
    metadata: dict[str, dict] = field(default_factory=dict)  # asset name -> its materialization metadata
    failed_checks: list[str] = field(default_factory=list)  # "asset:check (SEVERITY)"
    error: str = ""


def instance(home: Path | None = None) -> dg.DagsterInstance:
    """A persistent Dagster instance under $XZ_HOME/dagster (so `dagster dev` shows these runs)."""
    dagster_home = (home or settings.xz_home()) / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists() and INSTANCE_YAML.exists():
        shutil.copy(INSTANCE_YAML, dagster_home / "dagster.yaml")
    return dg.DagsterInstance.local_temp(str(dagster_home))


STAGES = {
    "mirror": ("xero", "zoho", "canonical", "analytics"),
    "reconcile": ("reconcile", "analytics"),
    "writeback": ("writeback",),
}


def selected_assets(only: str | None) -> list[dg.AssetsDefinition]:
    """The assets of one stage (`--only mirror|reconcile|writeback`), or all of them."""
    if only is None:
        return list(ASSETS)
    if only not in STAGES:
        raise settings.SettingsError(f"unknown stage {only!r}: choose from {', '.join(STAGES)}")
    groups = STAGES[only]
    return [a for a in ASSETS if any(a.group_names_by_key[k] in groups for k in a.keys)]


def sync(
    connections: list[str] | None = None,
    *,
    inst: dg.DagsterInstance | None = None,
    only: str | None = None,
    apply: bool = False,
    approve: bool = False,
) -> list[RunOutcome]:
    """Materialise every asset (or one stage's) once for each connection (all configured ones by default).

    Write-back writes to Xero and Zoho only with `apply` (or a connection configured to auto-apply);
    otherwise its apply step reports what it would do. `approve` lets a plan past the mass-change guard.
    """
    names = connections or [c.name for c in settings.load_connections()]
    if not names:
        raise settings.SettingsError(
            "no connection configured: set XERO_*/ZOHO_* variables (DESIGN.md §4) or write $XZ_HOME/connections.toml"
        )
    inst = inst or instance()
    inst.add_dynamic_partitions(connections_partitions.name, names)
    resources = defs.resources
    outcomes = []
    for name in names:
        assets = selected_assets(only)
        keys = {k for a in assets for k in a.keys}
        checks = [c for c in CHECKS if all(spec.asset_key in keys for spec in c.check_specs)]
        names_in_run = {a.op.name for a in assets}
        run_config = (
            {"ops": {"writeback_apply": {"config": {"apply": apply, "approve": approve}}}}
            if "writeback_apply" in names_in_run
            else {}
        )
        result = dg.materialize(
            [*assets, *checks],
            partition_key=name,
            instance=inst,
            resources=resources,
            raise_on_error=False,
            run_config=run_config,
        )
        outcome = RunOutcome(connection=name, success=result.success)
        for evaluation in result.get_asset_check_evaluations():
            if not evaluation.passed:
                outcome.failed_checks.append(
                    f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name} ({evaluation.severity.value})"
                )
        for event in result.get_asset_materialization_events():
            mat = event.step_materialization_data.materialization
            outcome.metadata[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
        if not result.success:
            failures = [e for e in result.all_events if e.is_step_failure]
            outcome.error = "; ".join(
                f"{e.step_key}: {e.step_failure_data.error.message.strip()}"
                for e in failures
                if e.step_failure_data
            )
        outcomes.append(outcome)
    return outcomes
