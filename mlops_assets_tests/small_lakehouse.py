"""The suite's small lakehouse: the project's resources with a small synthetic source. In a module of its own
(importing nothing at import time), so child processes of fault tests build exactly the suite's resources."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_assets.resources import PromotionPolicyResource
    from mlops_assets.settings import Settings


def small_resources(settings: Settings | None = None) -> dict[str, object]:
    """The project's resources (of ``settings``, else of the environment) with a small synthetic source (fast,
    still dirty). A plain function, so child processes of fault tests build exactly the suite's resources."""
    from mlops_assets.environment import build_resources
    from mlops_assets.resources import FeatureSetResource, SyntheticSourceResource

    return {
        **build_resources(settings),
        "source": SyntheticSourceResource(initial_customers=300, daily_signups=3),
        "feature_set": FeatureSetResource(as_of_every_days=2, warmup_days=7),
        "promotion_policy": suite_promotion_policy(),
    }


def suite_promotion_policy(**overrides: float) -> PromotionPolicyResource:
    """The suite's gate thresholds, with ``overrides`` (a new resource: Dagster builds a resource from the
    arguments it was constructed with, so a pydantic ``model_copy(update=...)`` would be silently ignored)."""
    from mlops_assets.resources import PromotionPolicyResource

    # ~150 test rows per region: group rates are noisy, so the fairness bounds are wider than the default.
    settings = {"min_demographic_parity_ratio": 0.2, "max_equal_opportunity_difference": 0.5, **overrides}
    return PromotionPolicyResource(**settings)


def project_experiment(resources: dict) -> str:
    """The id of the project's MLflow experiment (its artifacts under the suite's temporary store), for a test
    that logs a run itself: MLflow's Default experiment would write artifacts to ``./mlruns`` in the checkout."""
    import mlflow

    tracking = resources["mlflow_tracking"]
    tracking.configure()
    return mlflow.get_experiment_by_name(tracking.experiment_name).experiment_id
