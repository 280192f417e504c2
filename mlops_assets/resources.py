"""Every resource of the code location: thin, configurable handles on Spark, the lakehouse, the synthetic source,
MLflow, alerts and dbt, and the thresholds of the quality gates, the promotion gate and drift monitoring.

The one direction: settings -> resources -> environment (binds them) -> definitions; ``defs/`` imports its
resource classes from here, never from another ``defs/`` module."""

import contextlib
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import mlflow
from dagster_dbt import DbtProject
from pydantic import Field, field_validator, model_validator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mlops_assets.alerting import Alert, post_alert
from mlops_assets.lakehouse.catalog import BILLING, FEATURES
from mlops_assets.lakehouse.delta_io import DeltaLakehouse
from mlops_assets.lakehouse.features import USAGE_WINDOW_DAYS
from mlops_assets.lakehouse.spark import build_session, unreadable_on_executors
from mlops_assets.lakehouse.tables import TableLocator
from mlops_assets.ml.contract import FeatureSetContract, SourceSpec
from mlops_assets.ml.labels import LabelSource
from mlops_assets.ml.mlflow_model import ModelRegistry
from mlops_assets.ml.mlflow_runs import dagster_parent_run, end_open_runs
from mlops_assets.ml.promotion import PromotionPolicy
from mlops_assets.monitoring.severity import DriftThresholds, PerformanceThresholds
from mlops_assets.settings import (
    DBT_PROJECT_DIR,
    DEFAULT_CONTRACT,
    DEFAULT_EXPERIMENT_SPEC,
    DEFAULT_START_DATE,
    START_DATE_VARIABLE,
    SettingsError,
    check_spark_engine,
)
from mlops_assets.synthetic.source import SCENARIOS, DirtConfig, SourceConfig, SyntheticSource

if TYPE_CHECKING:
    from mlops_assets.experiments.spec import ExperimentSpec


class SparkResource(dg.ConfigurableResource):
    """The run's Spark session on the engine the settings chose (``MLOPS_SPARK``): created on first use and
    shared by every Spark step of the run (the code location runs steps in-process), so the JVM starts (or the
    Connect client connects) once per run. Assets never ask which engine it is."""

    engine: str = "local"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(default=2, ge=1)
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        return check_spark_engine(value)

    @property
    def is_cluster(self) -> bool:
        return self.engine.startswith("spark://")

    def session(self) -> SparkSession:
        return build_session(
            self.engine,
            driver_memory=self.driver_memory,
            shuffle_partitions=self.shuffle_partitions,
            extra_conf=self.conf,
        )


class LakehouseResource(dg.ConfigurableResource):
    """Where tables live: a root folder locally, a Unity Catalog catalog in production."""

    root: str
    catalog: str | None = None
    # A daily export is a few MB; a file far over that is a wrong export, and is refused before Spark reads it.
    max_landing_file_mb: float = Field(default=256, gt=0)
    spark: dg.ResourceDependency[SparkResource]

    @property
    def locator(self) -> TableLocator:
        return TableLocator(root=self.root, catalog=self.catalog)

    @property
    def landing_root(self) -> str:
        return f"{self.root}/landing"

    @property
    def outbound_root(self) -> str:
        """What the lakehouse hands back to the source system (the experiments' contact lists)."""
        return f"{self.root}/outbound"

    @property
    def max_landing_file_bytes(self) -> int:
        return int(self.max_landing_file_mb * 1024 * 1024)

    def delta(self) -> DeltaLakehouse:
        session = self.spark.session()
        if self.spark.is_cluster and not self.catalog:
            _check_root_on_workers(session, self.root)
        return DeltaLakehouse(session, self.locator)


_ROOTS_SEEN_BY_WORKERS: set[tuple[str, str]] = set()


def _check_root_on_workers(session: SparkSession, root: str) -> None:
    """On a cluster, executors write the Delta files: the root must be storage every worker sees (a shared
    mount or object store), or writes land on one worker's disk. Checked once per session and root."""
    key = (session.conf.get("spark.app.id"), root)
    if key in _ROOTS_SEEN_BY_WORKERS:
        return
    if "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)
    blind = unreadable_on_executors(session, root)
    if blind:
        raise ValueError(
            f"LAKEHOUSE_ROOT={root!r} is not visible on the cluster's workers {blind}: on a standalone cluster "
            "the lakehouse must be storage every worker mounts (NFS, object storage), not the driver's disk"
        )
    _ROOTS_SEEN_BY_WORKERS.add(key)


class SyntheticSourceResource(dg.ConfigurableResource):
    """The built-in, seeded source system; ``scenario`` injects drift from ``drift_start`` on."""

    seed: int = 42
    initial_customers: int = Field(default=2000, ge=1)
    daily_signups: int = Field(default=12, ge=0)
    scenario: str = "none"
    drift_start: str | None = None
    dirty: bool = True

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, value: str) -> str:
        if value not in SCENARIOS:
            raise ValueError(f"scenario {value!r} is not one of {sorted(SCENARIOS)}")
        return value

    @field_validator("drift_start")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is not None:
            date.fromisoformat(value)
        return value

    def source(self) -> SyntheticSource:
        return SyntheticSource(
            SourceConfig(
                seed=self.seed,
                initial_customers=self.initial_customers,
                daily_signups=self.daily_signups,
                scenario=self.scenario,
                drift_start=date.fromisoformat(self.drift_start) if self.drift_start else None,
                dirt=DirtConfig() if self.dirty else DirtConfig.clean(),
            )
        )


class ExperimentResource(dg.ConfigurableResource):
    """The experiment the experiments/* assets run: a YAML spec (``mlops_assets.experiments.spec``), checked
    when read; errors name the field."""

    spec_path: str = str(DEFAULT_EXPERIMENT_SPEC)

    def spec(self) -> "ExperimentSpec":
        from mlops_assets.experiments.spec import ExperimentSpec

        return ExperimentSpec.from_yaml(self.spec_path)


class QualityThresholds(dg.ConfigurableResource):
    """Quality-gate thresholds: above ``quarantine_warn_rate`` warns, above ``quarantine_error_rate``
    blocks everything downstream in the run."""

    quarantine_warn_rate: float = Field(default=0.03, ge=0, le=1)
    quarantine_error_rate: float = Field(default=0.15, ge=0, le=1)

    @model_validator(mode="after")
    def _warn_before_error(self) -> "QualityThresholds":
        if self.quarantine_warn_rate > self.quarantine_error_rate:
            raise ValueError(
                f"quarantine_warn_rate ({self.quarantine_warn_rate}) must not exceed quarantine_error_rate "
                f"({self.quarantine_error_rate}): a rate would block before it ever warned"
            )
        return self


class FeatureSetResource(dg.ConfigurableResource):
    """Which feature set the ML stages use: the built-in churn features, or any table whose contract has a
    ``source`` (Delta, Parquet or CSV path) — switched by configuration alone."""

    contract_path: str = str(DEFAULT_CONTRACT)
    as_of_every_days: int = Field(default=7, ge=1)
    # As-of dates this close to the start of the data have truncated usage windows: not training material.
    warmup_days: int = Field(default=USAGE_WINDOW_DAYS, ge=0)
    start_date: str = Field(
        default=DEFAULT_START_DATE.isoformat(),
        description=f"the partitions' first day ({START_DATE_VARIABLE}); an external table must not start earlier",
    )

    @field_validator("start_date")
    @classmethod
    def _iso_start(cls, value: str) -> str:
        date.fromisoformat(value)
        return value

    def contract(self) -> FeatureSetContract:
        return FeatureSetContract.from_yaml(self.contract_path)

    def read(self, lakehouse: "LakehouseResource") -> DataFrame:
        """The feature table. An external table is checked against its contract here (errors name the column
        and the mismatch); the built-in one gets its label at training time and is checked there."""
        contract = self.contract()
        delta = lakehouse.delta()
        if contract.source is None:
            return delta.read(FEATURES)
        df = load_source(delta.spark, contract.source)
        contract.validate_columns(spark_column_types(df))
        self._check_history(df, contract.as_of, contract.source.path)
        return df

    def _check_history(self, df: DataFrame, as_of: str, path: str) -> None:
        """An external table's rows before the partitions' start could be trained on but never scored or
        monitored: refused, naming the setting, rather than a silent gap (one min() over the as-of column)."""
        first = df.agg(F.min(F.to_date(F.col(as_of)))).first()[0]
        start = date.fromisoformat(self.start_date)
        if first is not None and first < start:
            raise SettingsError(
                f"feature table {path} has rows from {first}, before "
                f"the partitions' start {start} ({START_DATE_VARIABLE}): set {START_DATE_VARIABLE}={first} "
                "(or earlier), or drop the older rows from the table"
            )

    def label_source(self, lakehouse: "LakehouseResource", today: date) -> LabelSource | None:
        """Where the feature set's labels come from: billing for the built-in features (known through its newest
        available date), the contract's ``labels`` for an external table (known through ``today``, the run's
        date). None when nothing is known: no billing yet, or an external contract that names no labels."""
        contract = self.contract()
        delta = lakehouse.delta()
        if contract.source is None:
            billing = delta.read(BILLING)
            through = billing.agg(F.max("available_date")).first()[0]
            return None if through is None else LabelSource(contract, through, billing=billing)
        if contract.labels is None:
            return None
        table = None
        if contract.labels.source is not None:
            table = load_source(delta.spark, contract.labels.source)
            contract.validate_label_columns(spark_column_types(table))
        return LabelSource(contract, today, table=table)


def load_source(spark: SparkSession, source: SourceSpec) -> DataFrame:
    """A contract's external table (Delta, Parquet, or CSV with a header row and inferred types)."""
    reader = spark.read.format(source.format)
    if source.format == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    return reader.load(source.path)


def spark_column_types(df: DataFrame) -> dict[str, str]:
    """A Spark frame's columns as ``name -> type name`` for the contract's column checks."""
    return {f.name: f.dataType.simpleString() for f in df.schema.fields}


class MlflowTrackingResource(dg.ConfigurableResource):
    """MLflow tracking: one parent MLflow run per Dagster run, shared by every step of that run (found again by
    its ``dagster_run_id`` tag, the tag dagster-mlflow uses), in an experiment whose artifacts sit beside the
    local store. ``client()`` hands out an ``MlflowClient`` bound to this store."""

    tracking_uri: str
    experiment_name: str = "churn"
    model_name: str = "churn_model"
    # The MLflow UI users open on this store (`make mlflow`): run ids in Dagster metadata link to it.
    ui_url: str = "http://127.0.0.1:5000"

    def run_link(self, run_id: str) -> dg.MetadataValue:
        """The MLflow run as a link Dagster renders (a bare id is text a user has to copy and search for)."""
        experiment_id = self.client().get_run(run_id).info.experiment_id
        return dg.MetadataValue.url(f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}")

    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(self.tracking_uri)

    def registry(self) -> ModelRegistry:
        """The project's registered model in this store (aliases, versions, artifacts)."""
        return ModelRegistry(self.tracking_uri, self.model_name)

    def artifact_root(self) -> str | None:
        if self.tracking_uri.startswith("sqlite:///"):
            return (Path(self.tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        return None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Once per run, before any step uses the mlflow client."""
        self.configure()

    def configure(self) -> None:
        """Point MLflow's fluent API (``start_run``, ``log_*``, ``log_model``: process-global by MLflow's design)
        at this store, and create the experiment where artifacts belong. Registry reads and writes do not
        depend on it: they go through ``client()`` / ``registry()``."""
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        if mlflow.get_experiment_by_name(self.experiment_name) is None:
            # Another run may create it at the same moment: that is fine.
            with contextlib.suppress(mlflow.exceptions.MlflowException):
                mlflow.create_experiment(self.experiment_name, artifact_location=self.artifact_root())

    @contextlib.contextmanager
    def parent_run(self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> Iterator[str]:
        """The Dagster run's MLflow run, active for the block (yields its id): created by the first step that
        logs, resumed by the later ones; it ends FINISHED when the block does, FAILED when the block raises."""
        self.configure()
        client = self.client()
        experiment = client.get_experiment_by_name(self.experiment_name)
        name, note = describe_mlflow_run(context.run.job_name, context.run.run_id, context.run.tags)
        run_id = dagster_parent_run(
            client,
            experiment.experiment_id,
            context.run.run_id,
            {"mlflow.runName": name, "mlflow.note.content": note},
        )
        with mlflow.start_run(run_id=run_id):
            yield run_id

    def end_open_runs(self, dagster_run_id: str) -> list[str]:
        """End as KILLED the MLflow runs a dead Dagster run left RUNNING (its worker never got to end them)."""
        return end_open_runs(self.client(), dagster_run_id)


def describe_mlflow_run(job_name: str, run_id: str, tags: Mapping[str, str]) -> tuple[str, str]:
    """An MLflow run name that tells runs of one job apart, and a description linking back to Dagster."""
    partition = tags.get("dagster/partition")
    start, end = (
        tags.get("dagster/asset_partition_range_start"),
        tags.get("dagster/asset_partition_range_end"),
    )
    if partition is None and start and end:
        partition = start if start == end else f"{start}..{end}"
    name = " ".join(part for part in (job_name, partition, run_id[:8]) if part)
    scope = f" for partition(s) {partition}" if partition else ""
    note = f"Dagster run `{run_id}` of job `{job_name}`{scope}: its logs, lineage and checks are in the Dagster UI."
    return name, note


class AlertWebhookResource(dg.ConfigurableResource):
    """Where operator alerts go: a webhook that takes JSON. Bind ``url`` with ``dg.EnvVar`` (it may carry a
    token: Dagster then hides it in the UI, and no message or log line here contains it). No URL, no alerts."""

    url: str | None = None
    ui_base_url: str = Field(default="http://127.0.0.1:3000", description="links in alerts point here")
    timeout_s: float = Field(default=10, gt=0)
    first_tick_lookback_hours: float = Field(
        default=24,
        ge=0,
        description="failed checks this old are still alerted on the check sensor's first tick",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def send(self, alert: Alert) -> bool:
        """Deliver one alert; False when alerts are off, AlertDeliveryError when the webhook refuses it."""
        if not self.url:
            return False
        post_alert(self.url, alert, self.timeout_s)
        return True


# The dbt project of the gold models: the ``dbt`` resource runs it and the gold assets are read from its manifest.
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()  # `dagster dev` re-parses the project; elsewhere `make` builds the manifest


class PromotionPolicyResource(dg.ConfigurableResource):
    """Thresholds the challenger must meet to become champion. Bounded: a margin of 5 would let any model
    replace any champion, a negative ECE bound would refuse every model."""

    non_inferiority_margin: float = Field(
        default=0.01, ge=0, le=0.2, description="ROC-AUC points the challenger may trail the champion by"
    )
    min_lift_over_baseline: float = Field(default=0.02, ge=0, le=0.5, description="ROC-AUC over the baseline")
    max_ece: float = Field(default=0.1, gt=0, le=1, description="expected calibration error")
    min_demographic_parity_ratio: float = Field(default=0.6, ge=0, le=1)
    max_equal_opportunity_difference: float = Field(default=0.25, ge=0, le=1)
    equivalence_band: float = Field(
        default=0.005,
        ge=0,
        le=0.1,
        description="ROC-AUC band: a paired 95% CI of the difference inside ±band is no material change, so "
        "@champion stays (0 turns the rule off)",
    )

    def policy(self) -> PromotionPolicy:
        return PromotionPolicy(
            non_inferiority_margin=self.non_inferiority_margin,
            min_lift_over_baseline=self.min_lift_over_baseline,
            max_ece=self.max_ece,
            min_demographic_parity_ratio=self.min_demographic_parity_ratio,
            max_equal_opportunity_difference=self.max_equal_opportunity_difference,
            equivalence_band=self.equivalence_band,
        )


class MonitoringResource(dg.ConfigurableResource):
    """Drift thresholds (PSI 0.1 warn / 0.25 critical by default) and performance-drop margins."""

    psi_warn: float = Field(default=0.1, gt=0, le=10)
    psi_critical: float = Field(default=0.25, gt=0, le=10)
    null_rate_change_warn: float = Field(default=0.02, gt=0, le=1)
    null_rate_change_critical: float = Field(default=0.10, gt=0, le=1)
    noise_quantile: float | None = Field(
        default=0.999,
        ge=0.5,
        lt=1,
        description="Raise each threshold to the statistic's no-drift quantile at the day's sample size "
        "(its noise floor) where that is higher; null grades against the fixed thresholds only",
    )
    performance_moderate_drop: float = Field(
        default=0.03, gt=0, le=0.5, description="ROC-AUC points below the baseline"
    )
    performance_significant_drop: float = Field(default=0.08, gt=0, le=0.5)
    # Columns that move with the calendar by construction (every customer's tenure grows a day a day):
    # their drift is expected, not a signal, so they are not monitored.
    exclude_columns: list[str] = Field(default_factory=lambda: ["tenure_days"])

    @model_validator(mode="after")
    def _warn_below_critical(self) -> "MonitoringResource":
        pairs = (
            ("psi_warn", "psi_critical"),
            ("null_rate_change_warn", "null_rate_change_critical"),
            ("performance_moderate_drop", "performance_significant_drop"),
        )
        problems = [
            f"{low} ({getattr(self, low)}) must not exceed {high} ({getattr(self, high)})"
            for low, high in pairs
            if getattr(self, low) > getattr(self, high)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def drift_thresholds(self) -> DriftThresholds:
        return DriftThresholds(
            psi_warn=self.psi_warn,
            psi_critical=self.psi_critical,
            null_rate_change_warn=self.null_rate_change_warn,
            null_rate_change_critical=self.null_rate_change_critical,
            noise_quantile=self.noise_quantile,
        )

    def performance_thresholds(self) -> PerformanceThresholds:
        return PerformanceThresholds(
            moderate_margin=self.performance_moderate_drop,
            significant_margin=self.performance_significant_drop,
        )


class RetrainGuardrails(dg.ConfigurableResource):
    """Limits on drift-triggered retraining."""

    cooldown_hours: float = Field(default=6, ge=0, le=24 * 366)  # finite: timedelta(hours=inf) overflows
    max_retrains: int = Field(default=3, ge=1, le=1000)
    window_days: int = Field(default=7, ge=1, le=366)
