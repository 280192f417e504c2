"""Evaluation: the challenger's report on the untouched test split, against the baseline and the champion,
rendered in the UI and logged to MLflow with a model card; and the blocking promotion gate on it."""

import json
import tempfile
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER, png_markdown
from mlops_assets.defs.training import SPLIT, read_training_set
from mlops_assets.ml.audit import append_audit
from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.evaluation import evaluate, model_card
from mlops_assets.ml.explain import global_importance
from mlops_assets.ml.families import model_from_dict
from mlops_assets.ml.mlflow_model import CHALLENGER, CHAMPION
from mlops_assets.ml.promotion import KEEP_CHAMPION, REFUSE, decide_promotion
from mlops_assets.ml.promotion_ledger import GATE_PASSED, NO_MATERIAL_CHANGE, REFUSED, stale_evaluation
from mlops_assets.ml.zoo import CANDIDATE_MODEL, ZOO_ARTIFACT, Selection
from mlops_assets.ml.zoo_report import ZooComparison, compare_zoo
from mlops_assets.resources import (
    FeatureSetResource,
    LakehouseResource,
    MlflowTrackingResource,
    PromotionPolicyResource,
)

EVALUATION_KEY = dg.AssetKey(["ml", "evaluation_report"])
DECISION_INPUTS = "evaluation/decision_inputs.json"


def run_lineage(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """This run's id, then the ids of the runs it re-executes, parent first, up to the root."""
    lineage = [run.run_id]
    parent_id = run.parent_run_id
    while parent_id and parent_id not in lineage:
        lineage.append(parent_id)
        parent = instance.get_run_by_id(parent_id)
        parent_id = parent.parent_run_id if parent else None
    if run.root_run_id and run.root_run_id not in lineage:
        lineage.append(run.root_run_id)
    return lineage


def evaluated_version(instance: dg.DagsterInstance, lineage: list[str]) -> str:
    """The version the evaluation report of this run (or of the run it re-executes) evaluated: the gate
    judges that version, not whatever @challenger points at by the time the gate runs."""
    records = instance.fetch_materializations(EVALUATION_KEY, limit=100).records
    for record in records:  # newest first
        if record.run_id in lineage and record.asset_materialization is not None:
            return str(record.asset_materialization.metadata["model_version"].value)
    raise ValueError(
        f"promotion_gate: no ml/evaluation_report materialization in run {lineage[0]}; the gate judges the "
        "version its run evaluated, so materialize ml/evaluation_report with the check"
    )


def _zoo_comparison(run_id: str, test: pd.DataFrame, contract: FeatureSetContract) -> ZooComparison | None:
    """Every candidate the challenger's training run tried, side by side on the test split (None for a version
    trained before the zoo)."""
    try:
        zoo = mlflow.artifacts.load_dict(f"runs:/{run_id}/{ZOO_ARTIFACT}")
    except (MlflowException, OSError):
        return None
    models = {
        c["family"]: model_from_dict(mlflow.artifacts.load_dict(f"runs:/{c['run_id']}/{CANDIDATE_MODEL}"))
        for c in zoo["candidates"]
    }
    return compare_zoo(
        models,
        {c["family"]: c["valid_auc"] for c in zoo["candidates"]},
        Selection.from_dict(zoo["selection"]),
        test,
        test[contract.label].to_numpy(),
    )


@dg.asset(
    key=EVALUATION_KEY,
    deps=[["ml", "churn_model"]],
    group_name=groups.EVALUATION,
    kinds={"mlflow"},
    owners=[OWNER],
    description="The @challenger on the untouched test split: metrics with bootstrap CIs, calibration, slices, "
    "fairness, robustness, latency, comparison with the baseline and the @champion, global feature importance "
    "and dependence plots, and error analysis (worst rows, worst-calibrated slices). Logged to MLflow with a "
    "model card.",
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    lakehouse: LakehouseResource,
    feature_set: FeatureSetResource,
    mlflow_tracking: MlflowTrackingResource,
) -> dg.MaterializeResult:
    name = mlflow_tracking.model_name
    registry = mlflow_tracking.registry()
    contract = feature_set.contract()
    challenger_version = registry.require_alias(CHALLENGER, "evaluation_report")
    champion_version = registry.alias_version(CHAMPION)
    challenger = registry.load(challenger_version)
    champion = registry.load(champion_version) if champion_version not in (None, challenger_version) else None
    df = read_training_set(lakehouse)
    test, train = df[df[SPLIT] == "test"], df[df[SPLIT] == "train"]
    # The top features by mean |contribution|: the same measure for every model family.
    top = [r.feature for r in global_importance(challenger.contributions(test))[:3]]
    report = evaluate(
        challenger.predict_proba,
        test,
        contract,
        threshold=challenger.threshold,
        champion_predict=champion.predict_proba if champion else None,
        top_features=top,
        baseline_prevalence=float(train[contract.label].mean()),
        explain=challenger.contributions,
    )
    version = registry.version(challenger_version)
    card = model_card(
        report,
        model_name=name,
        version=challenger_version,
        contract=contract,
        training={"mlflow_run_id": version.run_id, **challenger.metadata},
        lineage={"dagster_run_id": context.run.run_id, **version.tags},
    )
    figures = report.figures()
    zoo = _zoo_comparison(version.run_id, test, contract)
    markdown = report.to_markdown() + ("\n" + zoo.to_markdown() if zoo is not None else "")
    decision_inputs = {
        "challenger_version": challenger_version,
        "champion_version": champion_version if champion else None,
        "challenger": report.headline(),
        "champion": report.champion_headline(),
        "baseline": report.baseline_headline(),
    }
    client = mlflow_tracking.client()
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "evaluation/report.md": markdown,
            "evaluation/model_card.md": card,
            "evaluation/report.json": json.dumps(report.to_dict()),
            "evaluation/zoo.json": json.dumps(zoo.to_dict() if zoo is not None else None),
            DECISION_INPUTS: json.dumps(decision_inputs),
        }
        for rel, text in files.items():
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_text(text)
        for fig, png in figures.items():
            (Path(tmp) / "evaluation" / fig).write_bytes(png)
        client.log_artifacts(version.run_id, str(Path(tmp) / "evaluation"), "evaluation")
    for metric, value in report.headline().items():
        if value is not None:
            client.log_metric(version.run_id, f"test_{metric}", float(value))
    headline = report.headline()
    context.log.info(
        f"{name} v{challenger_version}: test ROC-AUC {headline['roc_auc']:.3f} "
        f"[{headline['roc_auc_ci_low']:.3f}, {headline['roc_auc_ci_high']:.3f}]"
    )
    plots = "\n\n".join(png_markdown(fig, png) for fig, png in figures.items())
    return dg.MaterializeResult(
        metadata={
            "model_version": challenger_version,
            "champion_version": champion_version or "none",
            "roc_auc": headline["roc_auc"],
            "report": dg.MetadataValue.md(markdown + "\n\n" + plots),
            "model_card": dg.MetadataValue.md(card),
            "mlflow_run": mlflow_tracking.run_link(version.run_id),
        }
    )


@dg.asset_check(
    asset=EVALUATION_KEY,
    name="promotion_gate",
    blocking=True,
    description="The challenger may become champion only if it is non-inferior to the champion, beats the "
    "baseline, passes calibration and fairness thresholds, and its artifact is valid. Refusals are audited. A "
    "challenger that passes but is not materially different from the champion (paired CI of the difference "
    "inside the equivalence band) passes too, and ml/champion keeps the champion: audited as no_material_change.",
)
def promotion_gate(
    context: dg.AssetCheckExecutionContext,
    lakehouse: LakehouseResource,
    feature_set: FeatureSetResource,
    mlflow_tracking: MlflowTrackingResource,
    promotion_policy: PromotionPolicyResource,
) -> dg.AssetCheckResult:
    name = mlflow_tracking.model_name
    registry = mlflow_tracking.registry()
    challenger_version = evaluated_version(context.instance, run_lineage(context.instance, context.run))
    champion_version = registry.alias_version(CHAMPION)
    run_id = registry.version(challenger_version).run_id
    inputs = json.loads(
        Path(mlflow_tracking.client().download_artifacts(run_id, DECISION_INPUTS)).read_text()
    )
    decision = decide_promotion(
        inputs["challenger"], inputs["champion"], inputs["baseline"], promotion_policy.policy()
    )
    problems = registry.validate_artifact(challenger_version, feature_set.contract())
    reasons = decision.reasons + [f"FAIL artifact: {p}" for p in problems]
    stale = stale_evaluation(challenger_version, inputs.get("champion_version"), champion_version)
    if inputs.get("challenger_version") != challenger_version:
        stale = f"the decision inputs are for v{inputs.get('challenger_version')}, not v{challenger_version}"
    if stale:
        reasons.append(f"FAIL current_evaluation: {stale}")
    passed = decision.outcome != REFUSE and not problems and not stale
    # Not a failure (no alert, the run succeeds): the challenger is fine, just not worth a new champion.
    verdict = GATE_PASSED if passed else REFUSED
    if passed and decision.outcome == KEEP_CHAMPION:
        verdict = NO_MATERIAL_CHANGE
    # The verdict, bound to the exact version and run: ml/champion promotes only what this row passed.
    append_audit(
        lakehouse.delta(),
        name,
        verdict,
        champion_version,
        challenger_version,
        reasons,
        context.run.run_id,
    )
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "challenger_version": challenger_version,
            "champion_version": champion_version or "none",
            "verdict": verdict,
            # The rules' outcome as one serialized type (the artifact and staleness checks come after it).
            "decision": dg.MetadataValue.json(decision.to_dict()),
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in reasons)),
        },
    )


defs = dg.Definitions(assets=[evaluation_report], asset_checks=[promotion_gate])
