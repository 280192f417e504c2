"""Configuration errors, exhaustively: each bad value is rejected with a message naming the field or the
environment variable, before any work. No Spark."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import yaml

from mlops_assets.compute import DatabricksJob, SparkStepRunner
from mlops_assets.defs.training import TRAINING_OP, TrainingConfig
from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.resources import (
    DEFAULT_CONTRACT,
    LakehouseResource,
    MonitoringResource,
    PromotionPolicyResource,
    QualityThresholds,
    RetrainGuardrails,
    SparkResource,
    SyntheticSourceResource,
)
from mlops_assets.settings import SettingsError, load_settings

CONTRACT = yaml.safe_load(DEFAULT_CONTRACT.read_text())
A_FILE = os.path.abspath(__file__)


def contract(**changes) -> Callable[[], object]:
    return lambda: FeatureSetContract.from_dict({**CONTRACT, **changes})


def settings(**environ: str) -> Callable[[], object]:
    return lambda: load_settings(environ)


# Everything MLOPS_ENV=databricks needs, on an existing cluster; each case below takes one thing away or breaks it.
DATABRICKS = {
    "MLOPS_ENV": "databricks",
    "DATABRICKS_HOST": "https://example.cloud.databricks.com",
    "DATABRICKS_TOKEN": "not-a-real-token",
    "DATABRICKS_CATALOG": "main",
    "DATABRICKS_HTTP_PATH": "/sql/1.0/warehouses/abc",
    "MLOPS_DATABRICKS_WHEEL": "/Volumes/main/mlops/wheels/mlops_assets-0.1.0-py3-none-any.whl",
    "DATABRICKS_CLUSTER_ID": "0101-000000-abc",
}


def databricks(**changes: str | None) -> Callable[[], object]:
    environ = {k: v for k, v in {**DATABRICKS, **changes}.items() if v is not None}
    return lambda: load_settings(environ)


CASES: list[tuple[str, Callable[[], object], list[str]]] = [
    ("bad scenario name", lambda: SyntheticSourceResource(scenario="tsunami"), ["scenario", "tsunami"]),
    ("bad drift_start", lambda: SyntheticSourceResource(drift_start="May 1st"), ["drift_start"]),
    ("margin of 5", lambda: PromotionPolicyResource(non_inferiority_margin=5), ["non_inferiority_margin"]),
    (
        "negative margin",
        lambda: PromotionPolicyResource(non_inferiority_margin=-0.1),
        ["non_inferiority_margin"],
    ),
    ("negative max_ece", lambda: PromotionPolicyResource(max_ece=-1), ["max_ece"]),
    (
        "negative lift",
        lambda: PromotionPolicyResource(min_lift_over_baseline=-0.2),
        ["min_lift_over_baseline"],
    ),
    (
        "parity ratio > 1",
        lambda: PromotionPolicyResource(min_demographic_parity_ratio=1.5),
        ["min_demographic"],
    ),
    (
        "opportunity < 0",
        lambda: PromotionPolicyResource(max_equal_opportunity_difference=-0.1),
        ["max_equal"],
    ),
    ("negative psi_warn", lambda: MonitoringResource(psi_warn=-0.5), ["psi_warn"]),
    ("psi warn above critical", lambda: MonitoringResource(psi_warn=0.3), ["psi_warn", "psi_critical"]),
    (
        "null-rate warn above critical",
        lambda: MonitoringResource(null_rate_change_warn=0.5),
        ["null_rate_change_warn", "null_rate_change_critical"],
    ),
    (
        "moderate drop above significant",
        lambda: MonitoringResource(performance_moderate_drop=0.1),
        ["performance_moderate_drop", "performance_significant_drop"],
    ),
    (
        "negative performance drop",
        lambda: MonitoringResource(performance_moderate_drop=-0.03),
        ["performance"],
    ),
    ("infinite cooldown", lambda: RetrainGuardrails(cooldown_hours=float("inf")), ["cooldown_hours"]),
    (
        "negative quarantine rate",
        lambda: QualityThresholds(quarantine_warn_rate=-0.1),
        ["quarantine_warn_rate"],
    ),
    (
        "warn rate above error rate",
        lambda: QualityThresholds(quarantine_warn_rate=0.2, quarantine_error_rate=0.1),
        ["quarantine_warn_rate", "quarantine_error_rate"],
    ),
    ("zero trials", lambda: TrainingConfig(n_trials=0), ["n_trials"]),
    ("negative timeout", lambda: TrainingConfig(timeout_s=-1), ["timeout_s"]),
    ("unknown contract key", contract(owner="me"), ["unknown field", "owner"]),
    (
        "unknown feature key",
        contract(features=[{"name": "minutes_7d", "kind": "numerical", "unit": "min"}]),
        ["features[0]", "unit"],
    ),
    (
        "unknown source key",
        contract(source={"format": "parquet", "path": "/x.parquet", "partitioned": True}),
        ["source", "partitioned"],
    ),
    (
        "wrong feature kind",
        contract(features=[{"name": "minutes_7d", "kind": "numeric"}]),
        ["features[0].kind"],
    ),
    ("unknown source format", contract(source={"format": "xlsx", "path": "/x"}), ["source.format"]),
    ("non-numeric cooldown", settings(MLOPS_RETRAIN_COOLDOWN_HOURS="six"), ["MLOPS_RETRAIN_COOLDOWN_HOURS"]),
    ("infinite cooldown env", settings(MLOPS_RETRAIN_COOLDOWN_HOURS="inf"), ["MLOPS_RETRAIN_COOLDOWN_HOURS"]),
    ("NaN cooldown env", settings(MLOPS_RETRAIN_COOLDOWN_HOURS="nan"), ["MLOPS_RETRAIN_COOLDOWN_HOURS"]),
    ("absurd cooldown env", settings(MLOPS_RETRAIN_COOLDOWN_HOURS="1e300"), ["MLOPS_RETRAIN_COOLDOWN_HOURS"]),
    ("non-numeric max retrains", settings(MLOPS_MAX_RETRAINS="three"), ["MLOPS_MAX_RETRAINS"]),
    ("fractional max retrains", settings(MLOPS_MAX_RETRAINS="2.5"), ["MLOPS_MAX_RETRAINS"]),
    ("bad MLOPS_ENV", settings(MLOPS_ENV="staging"), ["MLOPS_ENV"]),
    ("start date not ISO", settings(MLOPS_START_DATE="01/02/2026"), ["MLOPS_START_DATE", "YYYY-MM-DD"]),
    ("start date in the future", settings(MLOPS_START_DATE="2999-01-01"), ["MLOPS_START_DATE", "future"]),
    (
        "databricks with nothing set",
        settings(MLOPS_ENV="databricks"),
        [
            "DATABRICKS_HOST",
            "DATABRICKS_TOKEN",
            "DATABRICKS_CATALOG",
            "DATABRICKS_HTTP_PATH",
            "MLOPS_DATABRICKS_WHEEL",
        ],
    ),
    ("databricks without a host", databricks(DATABRICKS_HOST=None), ["DATABRICKS_HOST"]),
    ("databricks without a token", databricks(DATABRICKS_TOKEN=None), ["DATABRICKS_TOKEN"]),
    ("databricks without a catalog", databricks(DATABRICKS_CATALOG=None), ["DATABRICKS_CATALOG"]),
    ("databricks without a warehouse", databricks(DATABRICKS_HTTP_PATH=None), ["DATABRICKS_HTTP_PATH"]),
    ("databricks without the wheel", databricks(MLOPS_DATABRICKS_WHEEL=None), ["MLOPS_DATABRICKS_WHEEL"]),
    (
        "databricks without compute",
        databricks(DATABRICKS_CLUSTER_ID=None),
        ["DATABRICKS_CLUSTER_ID", "MLOPS_DATABRICKS_NEW_CLUSTER", "MLOPS_DATABRICKS_SERVERLESS_VOLUME"],
    ),
    (
        "databricks with two computes",
        databricks(MLOPS_DATABRICKS_SERVERLESS_VOLUME="/Volumes/main/mlops/pipes"),
        ["exactly one", "DATABRICKS_CLUSTER_ID", "MLOPS_DATABRICKS_SERVERLESS_VOLUME"],
    ),
    (
        "databricks host over http",
        databricks(DATABRICKS_HOST="http://example.cloud.databricks.com"),
        ["DATABRICKS_HOST", "https"],
    ),
    (
        "new cluster spec that is not JSON",
        databricks(DATABRICKS_CLUSTER_ID=None, MLOPS_DATABRICKS_NEW_CLUSTER=A_FILE),
        ["MLOPS_DATABRICKS_NEW_CLUSTER", "JSON"],
    ),
    (
        "serverless volume that is not a volume",
        databricks(DATABRICKS_CLUSTER_ID=None, MLOPS_DATABRICKS_SERVERLESS_VOLUME="/tmp/pipes"),
        ["MLOPS_DATABRICKS_SERVERLESS_VOLUME", "/Volumes/"],
    ),
    (
        "databricks compute without a job",
        lambda: SparkStepRunner(
            mode="databricks", lakehouse=LakehouseResource(root="/tmp/x", spark=SparkResource())
        ),
        ["databricks", "job"],
    ),
    (
        "databricks job with no compute",
        lambda: DatabricksJob(wheel="/Volumes/a/b/c/w.whl"),
        ["existing_cluster_id", "new_cluster_json", "serverless_volume"],
    ),
    (
        "unknown compute mode",
        lambda: SparkStepRunner(mode="cloud", lakehouse=LakehouseResource(root="/x", spark=SparkResource())),
        ["mode"],
    ),
    (
        "MLflow UI URL without a scheme",
        settings(MLOPS_MLFLOW_UI_URL="127.0.0.1:5000"),
        ["MLOPS_MLFLOW_UI_URL"],
    ),
    (
        "landing file limit of zero",
        lambda: LakehouseResource(root="/tmp/x", spark=SparkResource(), max_landing_file_mb=0),
        ["max_landing_file_mb"],
    ),
    ("relative LAKEHOUSE_ROOT", settings(LAKEHOUSE_ROOT="var/lake"), ["LAKEHOUSE_ROOT", "absolute"]),
    (
        "LAKEHOUSE_ROOT under a file",
        settings(LAKEHOUSE_ROOT=f"{A_FILE}/lake"),
        ["LAKEHOUSE_ROOT", "not a directory"],
    ),
    ("LAKEHOUSE_ROOT on /proc", settings(LAKEHOUSE_ROOT="/proc/lake"), ["LAKEHOUSE_ROOT", "not writable"]),
    (
        "FEATURE_CONTRACT that is not there",
        settings(FEATURE_CONTRACT="/nonexistent/contract.yaml"),
        ["FEATURE_CONTRACT", "/nonexistent/contract.yaml", "not a file"],
    ),
    (
        "FEATURE_CONTRACT that is not a contract",
        settings(FEATURE_CONTRACT=A_FILE),
        ["FEATURE_CONTRACT", "not a valid feature-set contract"],
    ),
]


@pytest.mark.parametrize(("case", "build", "named"), CASES, ids=[c[0] for c in CASES])
def test_a_configuration_error_names_the_field(
    case: str, build: Callable[[], object], named: list[str]
) -> None:
    with pytest.raises(ValueError) as error:  # pydantic's ValidationError, ContractError, SettingsError
        build()
    for word in named:
        assert word in str(error.value), f"{case}: {word!r} not in {error.value}"


def test_the_defaults_are_within_their_bounds(tmp_path) -> None:
    for resource in (
        PromotionPolicyResource,
        MonitoringResource,
        RetrainGuardrails,
        QualityThresholds,
        TrainingConfig,
    ):
        resource()
    assert load_settings({"LAKEHOUSE_ROOT": str(tmp_path / "not" / "yet" / "there")}).lakehouse_root
    assert not (tmp_path / "not").exists()  # validated, not created


def test_feature_contract_names_the_contract_the_feature_set_resource_uses(tmp_path) -> None:
    from mlops_assets.environment import build_resources

    mine = tmp_path / "my_contract.yaml"
    mine.write_text(yaml.safe_dump({**CONTRACT, "name": "my_features"}))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    root = {"LAKEHOUSE_ROOT": str(tmp_path / "lake")}
    chosen = load_settings({**root, "FEATURE_CONTRACT": str(mine)})
    assert chosen.feature_contract == str(mine)
    assert build_resources(chosen)["feature_set"].contract().name == "my_features"
    # Unset: the built-in contract.
    default = build_resources(load_settings(root))["feature_set"]
    assert default.contract_path == str(DEFAULT_CONTRACT) and default.contract().name == "churn_features"
    with pytest.raises(SettingsError, match=r"FEATURE_CONTRACT=.*broken\.yaml.*not a valid"):
        load_settings({**root, "FEATURE_CONTRACT": str(broken)})


def test_zero_trials_fail_the_run_at_its_first_step_with_the_field_named() -> None:
    import dagster as dg

    from mlops_assets.definitions import build_defs

    result = (
        build_defs()
        .resolve_job_def("train_evaluate_promote")
        .execute_in_process(
            run_config={"ops": {TRAINING_OP: {"config": {"n_trials": 0}}}}, raise_on_error=False
        )
    )
    assert not result.success
    started = [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
    assert started == ["ml__training_set"]  # the first step checks it, and nothing after it starts
    assert not result.get_asset_materialization_events()  # before any work: the training set is untouched
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_key == "ml__training_set"
    error = str(failure.event_specific_data.error)
    assert f"ops.{TRAINING_OP}.config" in error and "n_trials" in error


def test_each_environment_chooses_where_spark_steps_run(tmp_path) -> None:
    from mlops_assets.environment import build_resources

    root = {"LAKEHOUSE_ROOT": str(tmp_path / "lake")}
    assert build_resources(load_settings(root))["compute"].mode == "in_process"
    assert (
        build_resources(load_settings({**root, "MLOPS_ENV": "pipes"}))["compute"].mode == "pipes_subprocess"
    )
    spec = tmp_path / "cluster.json"
    spec.write_text('{"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 1}')
    for compute, expected in (
        ({}, {"existing_cluster_id": "0101-000000-abc"}),
        (
            {"DATABRICKS_CLUSTER_ID": None, "MLOPS_DATABRICKS_NEW_CLUSTER": str(spec)},
            {"new_cluster": {"num_workers": 1}},
        ),
    ):
        runner = build_resources(databricks(**compute)())["compute"]
        task = runner.job.task("silver", "k").as_dict()
        assert runner.mode == "databricks" and task["libraries"] == [
            {"whl": DATABRICKS["MLOPS_DATABRICKS_WHEEL"]}
        ]
        for key, value in expected.items():
            assert task[key] == value or value.items() <= task[key].items()
    serverless = build_resources(
        databricks(
            DATABRICKS_CLUSTER_ID=None, MLOPS_DATABRICKS_SERVERLESS_VOLUME="/Volumes/main/mlops/pipes"
        )()
    )["compute"]
    task = serverless.job.task("silver", "k").as_dict()
    assert task["environment_key"] == "mlops_assets" and "libraries" not in task
    assert task["python_wheel_task"]["parameters"] == ["silver", "--pipes-io", "volumes"]
    [environment] = serverless.job.submit_args("r")["environments"]
    assert environment.spec.dependencies == [DATABRICKS["MLOPS_DATABRICKS_WHEEL"]]


def test_the_start_date_from_the_environment_moves_every_daily_partition(tmp_path) -> None:
    """In a fresh interpreter: the partitions are built once, when the code location is imported."""
    probe = (
        "from mlops_assets.definitions import defs\n"
        "starts = {s.partitions_def.start.date().isoformat() for s in defs.resolve_all_asset_specs()"
        " if s.partitions_def is not None}\n"
        "print(sorted(starts), defs.resources['feature_set'].start_date)\n"
    )
    environ = {**os.environ, "LAKEHOUSE_ROOT": str(tmp_path / "lake"), "MLOPS_START_DATE": "2026-03-01"}
    moved = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=environ, timeout=300
    )
    assert moved.returncode == 0, moved.stderr[-2000:]
    # Every daily asset, and the check on external tables' history, start on the configured day.
    assert moved.stdout.split() == ["['2026-03-01']", "2026-03-01"]
    environ["MLOPS_START_DATE"] = "2026-02-30"
    refused = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=environ, timeout=300
    )
    assert refused.returncode != 0 and "MLOPS_START_DATE='2026-02-30' is not a date" in refused.stderr
