"""The code location: every lifecycle stage's assets, checks, schedules and sensors, bound to the
resources of the environment chosen in ``mlops_assets.settings``.

Each module under ``mlops_assets/defs/`` exports its own ``defs`` (a ``dg.Definitions``); this module finds
them by walking the package and merges them, so a new stage is wired by writing its module, not by editing a
list here.
"""

import importlib
import pkgutil
import warnings

import dagster as dg

# Deliberate choices that Dagster flags: single-run backfills (beta), partitioned asset checks (preview),
# and freshness *checks* (superseded by FreshnessPolicy, which cannot fail a check or gate a run). Silenced
# here, where the code location is built, before the defs modules (whose decorators raise them) are imported.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.SupersessionWarning)

import mlops_assets.defs as defs_package  # noqa: E402 (after the filters, on purpose)
from mlops_assets.environment import build_resources  # noqa: E402


def stage_definitions() -> list[dg.Definitions]:
    """The ``defs`` of every module under ``mlops_assets/defs/``, in module-name order."""
    found = []
    for info in sorted(
        pkgutil.walk_packages(defs_package.__path__, f"{defs_package.__name__}."), key=lambda i: i.name
    ):
        module = importlib.import_module(info.name)
        stage = getattr(module, "defs", None)
        if isinstance(stage, dg.Definitions):
            found.append(stage)
    return found


def build_defs(resources: dict[str, object] | None = None) -> dg.Definitions:
    """The code location with ``resources`` (the environment's by default; tests pass their own)."""
    return dg.Definitions.merge(
        *stage_definitions(),
        dg.Definitions(
            resources=resources if resources is not None else build_resources(),
            # All steps of a run share one process, hence one Spark session and one JVM start per run.
            executor=dg.in_process_executor,
        ),
    )


defs = build_defs()
