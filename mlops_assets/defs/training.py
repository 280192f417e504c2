"""Training: the labelled, temporally split training set, and the LightGBM model tuned by Optuna, tracked
and registered in MLflow as ``@challenger``."""

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import mlflow
import pandas as pd
from pydantic import Field, ValidationError
from pyspark.sql import functions as F

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER, git_revision
from mlops_assets.lakehouse.catalog import BILLING, FEATURES, TRAINING_SET
from mlops_assets.lakehouse.features import churn_labels, labelled_as_of_dates
from mlops_assets.ml.calibration import CALIBRATION_ARTIFACT, fit_calibration
from mlops_assets.ml.leakage import SUSPICIOUS_AUC, single_feature_auc, suspicious_features
from mlops_assets.ml.metrics import choose_threshold
from mlops_assets.ml.mlflow_model import CHALLENGER
from mlops_assets.ml.splits import temporal_split
from mlops_assets.ml.training import TrialResult
from mlops_assets.ml.zoo import (
    CANDIDATE_MODEL,
    ZOO_ARTIFACT,
    Candidate,
    SelectionPolicy,
    model_size_bytes,
    select_challenger,
    train_zoo,
)
from mlops_assets.resources import FeatureSetResource, LakehouseResource, MlflowTrackingResource

SPLIT = "split"
TRAINING_OP = "ml__churn_model"  # the op name of the asset ml/churn_model, which takes TrainingConfig


class TrainingConfig(dg.Config):
    """Search budget and reproducibility of a training run."""

    n_trials: int = Field(default=20, ge=1, le=10_000)
    timeout_s: float | None = Field(default=600, gt=0, le=7 * 24 * 3600)
    seed: int = 42
    num_threads: int = Field(
        default=1, ge=1, le=256, description="LightGBM threads; 1 when Spark shares 2 cores"
    )
    selection_margin: float = Field(
        default=0.005,
        ge=0,
        lt=1,
        description="The zoo's policy: the simpler family wins unless a more complex one is better on "
        "validation ROC-AUC by more than this",
    )

    @classmethod
    def check_run_config(cls, run_config: Mapping[str, Any], op_name: str = TRAINING_OP) -> None:
        """Fail a run at its start when its training config breaks a bound.

        Why: Dagster checks run config against the config *schema* (types) at launch, but builds this pydantic
        model (and so checks ``ge``/``le``) only when the training step starts, after the training set has
        been rebuilt. So the first step of a training run checks it before doing any work.
        """
        raw = ((run_config.get("ops") or {}).get(op_name) or {}).get("config")
        if not raw:
            return
        try:
            cls(**raw)
        except ValidationError as error:
            raise ValueError(f"run config ops.{op_name}.config is invalid: {error}") from None


def read_training_set(lakehouse: LakehouseResource) -> pd.DataFrame:
    """The training set as pandas: model training runs on the driver (laptop-sized, thousands of rows)."""
    return lakehouse.delta().read(TRAINING_SET).toPandas()


@dg.asset(
    key=TRAINING_SET.asset_key_path,
    deps=[dg.AssetKey(FEATURES.asset_key_path), dg.AssetKey(BILLING.asset_key_path)],
    group_name=groups.TRAINING,
    kinds={"spark", "delta"},
    owners=[OWNER],
    description="Labelled feature rows for as-of dates whose 30-day label window has closed, split by time "
    "into train < valid < test. Driven by the feature-set contract.",
)
def training_set(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, feature_set: FeatureSetResource
) -> dg.MaterializeResult:
    TrainingConfig.check_run_config(context.run.run_config)
    contract = feature_set.contract()
    delta = lakehouse.delta()
    features = feature_set.read(lakehouse)
    if contract.source is None:
        # Built-in features: label from billing, only where the whole label window is already known.
        billing = delta.read(BILLING)
        first_known, last_known = billing.agg(F.min("available_date"), F.max("available_date")).first()
        sampled = labelled_as_of_dates(
            [r[0] for r in features.select("as_of").distinct().collect()],
            first_known,
            last_known,
            feature_set.warmup_days,
            feature_set.as_of_every_days,
        )
        features = churn_labels(features.where(F.col("as_of").isin(sampled)), billing)
    elif contract.labels is not None:
        # External labels the contract names: only rows whose label is already known (recent rows' are not).
        labels = feature_set.label_source(lakehouse, today=datetime.now(UTC).date())
        assert labels is not None  # an external contract with labels always has a label source
        features = labels.attach(features).where(labels.known())
    pdf = features.select(*contract.columns).toPandas()
    contract.validate_frame(pdf)
    split = temporal_split(pdf, contract.as_of)
    frames = [
        part.assign(**{SPLIT: name})
        for name, part in (("train", split.train), ("valid", split.valid), ("test", split.test))
    ]
    labelled = pd.concat(frames, ignore_index=True)
    commit = delta.overwrite(delta.spark.createDataFrame(labelled), TRAINING_SET)
    counts = labelled.groupby(SPLIT)[contract.label].agg(["count", "mean"])
    context.log.info(f"training set: {len(labelled)} rows, boundaries {split.boundaries}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(labelled),
            "delta_version": commit.version,
            "feature_set": f"{contract.name} v{contract.version} ({contract.fingerprint()})",
            "split_boundaries": split.boundaries,
            "splits": dg.MetadataValue.md(counts.rename(columns={"mean": "positive_rate"}).to_markdown()),
            "external_source": contract.source.path if contract.source else "built-in churn features",
        }
    )


@dg.asset_check(
    asset=TRAINING_SET.asset_key_path,
    name="no_single_feature_leak",
    blocking=True,
    description=f"No feature predicts the label on its own with ROC-AUC >= {SUSPICIOUS_AUC}: such a feature "
    "almost always carries the label or the future.",
)
def no_single_feature_leak(
    lakehouse: LakehouseResource, feature_set: FeatureSetResource
) -> dg.AssetCheckResult:
    contract = feature_set.contract()
    df = read_training_set(lakehouse)
    scores = single_feature_auc(df[df[SPLIT] == "train"], contract)
    leaky = suspicious_features(scores)
    table = "\n".join(
        ["| feature | single-feature AUC |", "|---|---|"]
        + [f"| {f} | {a:.3f} |" for f, a in sorted(scores.items(), key=lambda x: -x[1])]
    )
    return dg.AssetCheckResult(
        passed=not leaky,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"suspicious_features": leaky, "single_feature_auc": dg.MetadataValue.md(table)},
    )


def _log_candidate(candidate: Candidate, threshold: float) -> dict[str, Any]:
    """One zoo member as a nested MLflow run (its model JSON as an artifact, for the evaluation's comparison);
    returns the entry ``zoo.json`` lists it by."""
    parent = mlflow.active_run()
    model = replace(candidate.model, threshold=threshold)
    with mlflow.start_run(
        run_name=f"candidate-{candidate.family}", nested=True, experiment_id=parent.info.experiment_id
    ) as run:
        mlflow.set_tags({"zoo_candidate": candidate.family})
        mlflow.log_params({f"{candidate.family}_{k}": v for k, v in candidate.params.items()})
        mlflow.log_metrics(
            {
                "valid_auc": candidate.valid_auc,
                "train_seconds": candidate.train_seconds,
                "n_trials": candidate.n_trials,
                "threshold": threshold,
                "size_bytes": model_size_bytes(model),
            }
        )
        mlflow.log_dict(model.to_dict(), CANDIDATE_MODEL)
    return {**candidate.summary(), "threshold": threshold, "run_id": run.info.run_id}


def _log_trial(trial: TrialResult) -> None:
    """Each Optuna trial as a nested MLflow run under the Dagster run's parent run, in the parent's experiment
    (a nested run otherwise goes to MLflow's active experiment, which nothing here sets globally)."""
    parent = mlflow.active_run()
    with mlflow.start_run(
        run_name=f"trial-{trial.number:03d}", nested=True, experiment_id=parent.info.experiment_id
    ):
        mlflow.log_params(trial.params)
        mlflow.set_tags({"optuna_state": trial.state, "trial_number": trial.number})
        metrics = {"duration_s": trial.duration_s}
        if trial.value is not None:
            metrics["valid_auc"] = trial.value
        if trial.best_iteration is not None:
            metrics["best_iteration"] = trial.best_iteration
        mlflow.log_metrics(metrics)


@dg.asset(
    key=["ml", "churn_model"],
    deps=[TRAINING_SET.asset_key_path],
    group_name=groups.TRAINING,
    kinds={"lightgbm", "scikitlearn", "optuna", "mlflow"},
    owners=[OWNER],
    description="The model zoo on the same temporal splits and Optuna budget: a constant baseline, an L2 "
    "logistic regression and LightGBM (TPE, pruning on the validation metric); the challenger chosen by a "
    "declared policy (the simpler family unless a more complex one is better on validation by more than "
    "selection_margin), calibrated on validation, registered as a new version with alias @challenger. One "
    "MLflow parent run per Dagster run; every candidate and every trial a child run.",
)
def churn_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    lakehouse: LakehouseResource,
    feature_set: FeatureSetResource,
    mlflow_tracking: MlflowTrackingResource,
) -> dg.MaterializeResult:
    contract = feature_set.contract()
    df = read_training_set(lakehouse)
    train, valid = df[df[SPLIT] == "train"], df[df[SPLIT] == "valid"]
    dataset_fingerprint = f"{TRAINING_SET}@v{lakehouse.delta().version(TRAINING_SET)}"
    with mlflow_tracking.parent_run(context):
        mlflow.log_params(
            {
                "n_trials": config.n_trials,
                "timeout_s": config.timeout_s,
                "seed": config.seed,
                "num_threads": config.num_threads,
            }
        )
        mlflow.set_tags(
            {
                "feature_set": contract.name,
                "feature_set_fingerprint": contract.fingerprint(),
                "dataset_fingerprint": dataset_fingerprint,
                "code_version": git_revision(),
            }
        )
        # The exact rows (train, valid and test splits) this run learnt from, as an MLflow dataset: its name
        # carries the Delta version, its digest the content, its source the table.
        mlflow.log_input(
            mlflow.data.from_pandas(
                df,
                source=str(lakehouse.locator.path(TRAINING_SET)),
                name=dataset_fingerprint,
                targets=contract.label,
            ),
            context="training",
        )

        def on_trial(trial: TrialResult) -> None:
            context.log.info(f"trial {trial.number}: {trial.state} valid_auc={trial.value}")
            _log_trial(trial)

        # The zoo: baseline, logistic regression and LightGBM on the same splits, under the same Optuna budget.
        candidates, result = train_zoo(
            train,
            valid,
            contract,
            n_trials=config.n_trials,
            timeout_s=config.timeout_s,
            seed=config.seed,
            num_threads=config.num_threads,
            on_trial=on_trial,
        )
        y_valid = valid[contract.label].to_numpy()
        valid_scores = {c.family: c.model.predict_proba(valid) for c in candidates}
        thresholds = {family: choose_threshold(y_valid, scores) for family, scores in valid_scores.items()}
        zoo = [_log_candidate(c, thresholds[c.family]) for c in candidates]
        selection = select_challenger(candidates, SelectionPolicy(margin=config.selection_margin))
        context.log.info(f"challenger: {selection.reason}")
        chosen = next(c for c in candidates if c.family == selection.chosen)
        threshold = thresholds[chosen.family]
        model = replace(
            chosen.model,
            threshold=threshold,
            metadata={
                **chosen.model.metadata,
                "family": chosen.family,
                "params": dict(chosen.params),
                "contract_fingerprint": contract.fingerprint(),
                "seed": config.seed,
            },
        )
        mlflow.log_dict({"selection": selection.to_dict(), "candidates": zoo}, ZOO_ARTIFACT)
        mlflow.set_tags({"model_family": chosen.family})
        # Recorded with the version's run: the drift report's label-free performance estimate reads it.
        calibration = fit_calibration(y_valid, valid_scores[chosen.family])
        mlflow.log_dict(calibration.to_dict(), CALIBRATION_ARTIFACT)
        mlflow.log_metrics(
            {"valid_ece_raw": calibration.ece_before, "valid_ece_calibrated": calibration.ece_after}
        )
        summary = result.summary()
        mlflow.log_params({f"best_{k}": v for k, v in result.best_params.items()})
        mlflow.log_metrics(
            {
                "best_valid_auc": chosen.valid_auc,
                "threshold": threshold,
                "n_pruned": summary["n_pruned"],
                **{f"valid_auc_{c.family}": c.valid_auc for c in candidates},
            }
        )
        registry = mlflow_tracking.registry()
        registered = registry.register(
            model,
            contract,
            train,
            tags={
                "dagster_run_id": context.run.run_id,
                "asset_partition": context.partition_key if context.has_partition_key else "unpartitioned",
                "feature_set": f"{contract.name} v{contract.version}",
                "feature_set_fingerprint": contract.fingerprint(),
                "dataset_fingerprint": dataset_fingerprint,
                "code_version": git_revision(),
                "seed": str(config.seed),
            },
        )
        registry.set_alias(CHALLENGER, registered.version)
    context.log.info(f"registered {registered.name} v{registered.version} as @{CHALLENGER}")
    return dg.MaterializeResult(
        metadata={
            "model_name": registered.name,
            "model_version": registered.version,
            "mlflow_run": mlflow_tracking.run_link(registered.run_id),
            "model_family": chosen.family,
            "selection": selection.reason,
            "best_valid_auc": chosen.valid_auc,
            "threshold": threshold,
            "trials": summary["n_trials"],
            "pruned_trials": summary["n_pruned"],
            "train_seconds": summary["train_seconds"],
            "best_params": dg.MetadataValue.json(result.best_params),
        }
    )


defs = dg.Definitions(assets=[training_set, churn_model], asset_checks=[no_single_feature_leak])
