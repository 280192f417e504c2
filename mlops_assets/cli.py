"""Command line: ``python -m mlops_assets.cli demo`` runs the lifecycle end to end on the local instance.

Runs go through the Dagster instance at ``$DAGSTER_HOME``, so everything the demo does shows in
``dagster dev`` afterwards: runs, materializations, check results.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta

import dagster as dg

DEMO_START = date(2026, 1, 1)
DEMO_DAYS = 120
SCORING_DAYS = 7


def _range_tags(start: date, end: date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": end.isoformat(),
    }


def _run(
    job_name: str, instance: dg.DagsterInstance, tags: dict[str, str] | None = None
) -> dg.ExecuteInProcessResult:
    from mlops_assets.definitions import defs

    started = time.monotonic()
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, tags=tags or {}, raise_on_error=False
    )
    status = "succeeded" if result.success else "FAILED"
    print(f"[demo] {job_name}: run {result.run_id} {status} in {time.monotonic() - started:.0f}s", flush=True)
    if not result.success:
        for event in result.all_events:
            if event.is_failure:
                print(f"[demo]   {event.step_key}: {event.message}", file=sys.stderr)
        raise SystemExit(1)
    return result


def _summary() -> None:
    """What the demo left behind: the Delta tables, and the champion with its test metrics."""
    from mlflow import MlflowClient

    from mlops_assets.environment import build_resources
    from mlops_assets.lakehouse.entities import ENTITIES
    from mlops_assets.lakehouse.tables import TableRef
    from mlops_assets.ml.mlflow_model import CHAMPION, alias_version

    resources = build_resources()
    lakehouse, tracking = resources["lakehouse"], resources["mlflow_tracking"]
    delta = lakehouse.delta()
    refs = [TableRef(layer, name) for layer in ("bronze", "silver", "quarantine") for name in ENTITIES]
    refs += [
        TableRef("gold", n)
        for n in ("customer_history", "dim_customers", "fct_usage_daily", "fct_billing_events")
    ]
    refs += [
        TableRef("features", "churn_features"),
        TableRef("ml", "training_set"),
        TableRef("ml", "predictions"),
    ]
    refs += [TableRef("ml", "promotion_audit"), TableRef("monitoring", "reference_profiles")]
    refs += [TableRef("monitoring", "drift_reports")]
    print(f"[demo] Delta tables under {lakehouse.root}:")
    for ref in (r for r in refs if delta.exists(r)):
        print(f"[demo]   {ref!s:32} rows={delta.read(ref).count():>9,}  version={delta.version(ref)}")
    tracking.configure()
    version = alias_version(tracking.model_name, CHAMPION)
    if version is None:
        return
    client = MlflowClient()
    run_id = client.get_model_version(tracking.model_name, version).run_id
    metrics = client.get_run(run_id).data.metrics
    print(
        f"[demo] MLflow ({tracking.tracking_uri}): {tracking.model_name}@{CHAMPION} = v{version}, run {run_id}"
    )
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "f1"):
        if f"test_{name}" in metrics:
            low, high = metrics.get(f"test_{name}_ci_low"), metrics.get(f"test_{name}_ci_high")
            print(f"[demo]   test {name:8} {metrics[f'test_{name}']:.3f}  95% CI [{low:.3f}, {high:.3f}]")


def demo(days: int) -> None:
    instance = dg.DagsterInstance.get()
    start, end = DEMO_START, DEMO_START + timedelta(days=days - 1)
    print(f"[demo] DAGSTER_HOME instance: {instance.root_directory}")
    print(f"[demo] 1/3 landing -> bronze -> silver -> gold -> features for {start}..{end}, one backfill run")
    _run("daily_lakehouse", instance, _range_tags(start, end))
    print("[demo] 2/3 training set -> LightGBM + Optuna (MLflow) -> evaluation report -> promotion gate")
    _run("train_evaluate_promote", instance)
    score_start = end - timedelta(days=SCORING_DAYS - 1)
    print(f"[demo] 3/3 batch scoring with @champion for {score_start}..{end}")
    _run("daily_scoring", instance, _range_tags(score_start, end))
    _summary()
    print("[demo] done: `make dev` and open http://127.0.0.1:3000 to browse the runs and assets")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlops_assets")
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="run the lifecycle end to end on the local instance")
    demo_parser.add_argument("--days", type=int, default=DEMO_DAYS, help="days of data to backfill")
    sub.add_parser("rollback", help="restore the previous @champion (audited)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.days)
    elif args.command == "rollback":
        _run("rollback_champion", dg.DagsterInstance.get())


if __name__ == "__main__":
    main()
