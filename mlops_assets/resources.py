"""Resources: thin, configurable handles on Spark, the lakehouse, the synthetic source and thresholds."""

from datetime import date

import dagster as dg
from pydantic import Field, field_validator
from pyspark.sql import SparkSession

from mlops_assets.lakehouse.delta_io import DeltaLakehouse
from mlops_assets.lakehouse.spark import build_local_session
from mlops_assets.lakehouse.tables import TableLocator
from mlops_assets.synthetic.source import SCENARIOS, DirtConfig, SourceConfig, SyntheticSource


class SparkResource(dg.ConfigurableResource):
    """The run's Spark session. Created on first use and shared by every Spark step of the run (the
    code location runs steps in-process), so the JVM starts once per run."""

    master: str = "local[2]"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(default=2, ge=1)
    conf: dict[str, str] = Field(default_factory=dict)

    def session(self) -> SparkSession:
        return build_local_session(
            master=self.master,
            driver_memory=self.driver_memory,
            shuffle_partitions=self.shuffle_partitions,
            extra_conf=self.conf,
        )


class LakehouseResource(dg.ConfigurableResource):
    """Where tables live: a root folder locally, a Unity Catalog catalog in production."""

    root: str
    catalog: str | None = None
    spark: dg.ResourceDependency[SparkResource]

    @property
    def locator(self) -> TableLocator:
        return TableLocator(root=self.root, catalog=self.catalog)

    @property
    def landing_root(self) -> str:
        return f"{self.root}/landing"

    def delta(self) -> DeltaLakehouse:
        return DeltaLakehouse(self.spark.session(), self.locator)


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


class QualityThresholds(dg.ConfigurableResource):
    """Quality-gate thresholds: above ``quarantine_warn_rate`` warns, above ``quarantine_error_rate``
    blocks everything downstream in the run."""

    quarantine_warn_rate: float = Field(default=0.03, ge=0, le=1)
    quarantine_error_rate: float = Field(default=0.15, ge=0, le=1)
    freshness_deadline_cron: str = "0 9 * * *"
