"""The environment, chosen once and validated: where the instance, the lakehouse and MLflow live.

Every default sits inside the checkout under the git-ignored ``var/`` folder; the environment variables
``DAGSTER_HOME``, ``LAKEHOUSE_ROOT`` and ``MLFLOW_TRACKING_URI`` override them. ``MLOPS_ENV`` picks the
deployment: ``local`` (embedded Spark, Delta by path), ``pipes`` (the same, but Spark steps that can run remotely
run in a local Dagster Pipes subprocess, as they would on Databricks) or ``databricks`` (Unity Catalog names,
remote steps as Databricks job runs; it needs the variables in ``DATABRICKS_VARIABLES``, each checked here
before any job is submitted).
``MLOPS_RETRAIN_COOLDOWN_HOURS`` and ``MLOPS_MAX_RETRAINS`` set the drift-retraining guardrails (the demo,
which plays a week of data in minutes, runs its daemon with the wall-clock cooldown off).
``MLOPS_MLFLOW_UI_URL`` is where users open the MLflow UI (``make mlflow``); run ids in Dagster link there.
``FEATURE_CONTRACT`` names the feature-set contract (YAML) the ML stages use instead of the built-in one.
``MLOPS_SPARK`` picks the Spark engine: ``local`` (an embedded ``local[2]`` session, the default),
``spark://HOST:PORT`` (a standalone cluster; the driver stays in the run process) or ``sc://HOST:PORT`` (Spark
Connect, the protocol Databricks Connect speaks too).
``MLOPS_START_DATE`` (ISO ``YYYY-MM-DD``) is the first day of every daily partition; an external feature table
with rows before it is refused, naming the variable.
``DAGSTER_HOME`` is read by Dagster itself, not here.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
# The built-in feature-set contract (FEATURE_CONTRACT names another).
DEFAULT_CONTRACT = Path(__file__).parent / "contracts" / "churn_features.yaml"
DEFAULT_EXPERIMENT_SPEC = Path(__file__).parent / "experiments" / "specs" / "retention_offer.yaml"
ENVIRONMENTS = ("local", "pipes", "databricks")
# What MLOPS_ENV=databricks needs; the token is checked for presence only (it is read through dg.EnvVar).
DATABRICKS_VARIABLES = {
    "DATABRICKS_HOST": "the workspace URL, https://<workspace>.cloud.databricks.com",
    "DATABRICKS_TOKEN": "a personal access token or service principal token",
    "DATABRICKS_CATALOG": "the Unity Catalog catalog of the tables",
    "DATABRICKS_HTTP_PATH": "the SQL warehouse dbt builds gold on, /sql/1.0/warehouses/<id>",
    "MLOPS_DATABRICKS_WHEEL": "the project wheel remote steps run from (/Volumes/..., /Workspace/... or dbfs:/...)",
}
# Where remote steps run: exactly one of these.
DATABRICKS_COMPUTE_VARIABLES = {
    "DATABRICKS_CLUSTER_ID": "an existing all-purpose cluster",
    "MLOPS_DATABRICKS_NEW_CLUSTER": "a JSON file with a new job cluster's spec (spark_version, node_type_id, ...)",
    "MLOPS_DATABRICKS_SERVERLESS_VOLUME": "serverless compute; the /Volumes/<catalog>/<schema>/<volume> Pipes uses",
}

START_DATE_VARIABLE = "MLOPS_START_DATE"
DEFAULT_START_DATE = date(2026, 1, 1)  # the synthetic source's first day


class SettingsError(ValueError):
    """A setting from the environment is invalid; the message names the variable."""


@dataclass(frozen=True)
class DatabricksSettings:
    """Where remote steps run on Databricks (host and token are bound through ``dg.EnvVar``, not kept here)."""

    wheel: str
    cluster_id: str | None = None
    new_cluster_json: str | None = None
    serverless_volume: str | None = None


@dataclass(frozen=True)
class Settings:
    env: str
    lakehouse_root: str
    mlflow_tracking_uri: str
    catalog: str | None = None
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    # Overrides of the RetrainGuardrails resource; None keeps the resource's own default.
    retrain_cooldown_hours: float | None = None
    max_retrains: int | None = None
    # The feature-set contract of the ``feature_set`` resource; None keeps the built-in churn features.
    feature_contract: str | None = None
    databricks: DatabricksSettings | None = None
    # The Spark engine: "local", "spark://host:port" (standalone cluster) or "sc://host:port" (Spark Connect).
    spark_engine: str = "local"
    # The first day of the daily partitions (MLOPS_START_DATE).
    start_date: date = DEFAULT_START_DATE

    def retrain_guardrail_overrides(self) -> dict[str, float]:
        overrides = {"cooldown_hours": self.retrain_cooldown_hours, "max_retrains": self.max_retrains}
        return {field: value for field, value in overrides.items() if value is not None}


# Upper bounds that keep every date computation finite: a cooldown longer than a year, or thousands of
# retrains a week, is a typo, and `timedelta(hours=inf)` fails every sensor tick with OverflowError.
MAX_COOLDOWN_HOURS = 24 * 366
MAX_RETRAINS = 1000


def number_setting(
    environ: Mapping[str, str], name: str, kind: type, minimum: float, maximum: float
) -> float | None:
    """The variable as a ``kind`` (int or float) within bounds, None when unset; errors name the variable."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r} must be a finite number")
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={raw!r} must be between {minimum} and {maximum}")
    return value


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_lakehouse_root(root: str) -> None:
    """A local LAKEHOUSE_ROOT must be absolute and creatable: its nearest existing ancestor a writable
    directory on a real filesystem. Checked without creating anything (settings load at import time)."""
    path = Path(root)
    if not path.is_absolute():
        raise SettingsError(f"LAKEHOUSE_ROOT={root!r} must be an absolute path")
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise SettingsError(
            f"LAKEHOUSE_ROOT={root!r} cannot be created: {str(existing)!r} exists and is not a directory"
        )
    # A pseudo filesystem (/proc, /sys) has no blocks: creating a directory there fails even for root.
    if not os.access(existing, os.W_OK | os.X_OK) or os.statvfs(existing).f_blocks == 0:
        raise SettingsError(
            f"LAKEHOUSE_ROOT={root!r} is not writable: {str(existing)!r} does not allow creating it"
        )


def check_feature_contract(raw: str) -> str:
    """``FEATURE_CONTRACT`` must name a readable contract file that parses; returns its absolute path (code
    servers and run workers may start in another directory)."""
    import yaml

    from mlops_assets.ml.contract import ContractError, FeatureSetContract

    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        raise SettingsError(f"FEATURE_CONTRACT={raw!r} is not a file")
    try:
        FeatureSetContract.from_yaml(path)
    except (ContractError, OSError, yaml.YAMLError) as error:
        raise SettingsError(
            f"FEATURE_CONTRACT={raw!r} is not a valid feature-set contract: {error}"
        ) from None
    return str(path)


def check_databricks(environ: Mapping[str, str]) -> DatabricksSettings:
    """Every variable ``MLOPS_ENV=databricks`` needs, or an error naming each missing one."""
    missing = [f"{name} ({what})" for name, what in DATABRICKS_VARIABLES.items() if not environ.get(name)]
    if missing:
        raise SettingsError("MLOPS_ENV=databricks needs " + "; ".join(missing))
    compute = {name: environ[name] for name in DATABRICKS_COMPUTE_VARIABLES if environ.get(name)}
    if len(compute) != 1:
        options = "; ".join(f"{name} ({what})" for name, what in DATABRICKS_COMPUTE_VARIABLES.items())
        found = f", not {len(compute)} ({', '.join(compute)})" if compute else ""
        raise SettingsError(f"MLOPS_ENV=databricks needs exactly one of: {options}{found}")
    host = environ["DATABRICKS_HOST"]
    if not host.startswith("https://"):
        raise SettingsError(f"DATABRICKS_HOST={host!r} must be an https:// URL")
    new_cluster = None
    if raw := compute.get("MLOPS_DATABRICKS_NEW_CLUSTER"):
        try:
            new_cluster = Path(raw).read_text()
            if not isinstance(json.loads(new_cluster), dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            raise SettingsError(
                f"MLOPS_DATABRICKS_NEW_CLUSTER={raw!r} is not a cluster spec (JSON): {error}"
            ) from None
    volume = compute.get("MLOPS_DATABRICKS_SERVERLESS_VOLUME")
    if volume is not None and (not volume.startswith("/Volumes/") or len(Path(volume).parts) < 5):
        raise SettingsError(
            f"MLOPS_DATABRICKS_SERVERLESS_VOLUME={volume!r} must be /Volumes/<catalog>/<schema>/<volume>"
        )
    return DatabricksSettings(
        wheel=environ["MLOPS_DATABRICKS_WHEEL"],
        cluster_id=compute.get("DATABRICKS_CLUSTER_ID"),
        new_cluster_json=new_cluster,
        serverless_volume=volume,
    )


SPARK_ENGINE = re.compile(r"^(spark|sc)://[A-Za-z0-9.\-]+:\d{1,5}(/.*)?$")


def check_spark_engine(raw: str) -> str:
    """``local``, a standalone master URL or a Spark Connect URL; anything else names the variable."""
    engine = raw.strip()
    if engine == "local" or SPARK_ENGINE.match(engine):
        return engine
    raise SettingsError(
        f"MLOPS_SPARK={raw!r} is not an engine: use local, spark://HOST:PORT (a standalone cluster) or "
        "sc://HOST:PORT (Spark Connect)"
    )


def check_start_date(raw: str | None) -> date:
    """``MLOPS_START_DATE``: an ISO date, not in the future (a start after today leaves no day to run).
    Unset or empty keeps ``DEFAULT_START_DATE``."""
    if raw is None or not raw.strip():
        return DEFAULT_START_DATE
    try:
        start = date.fromisoformat(raw.strip())
    except ValueError:
        raise SettingsError(f"{START_DATE_VARIABLE}={raw!r} is not a date: use YYYY-MM-DD") from None
    if start > datetime.now(UTC).date():
        raise SettingsError(f"{START_DATE_VARIABLE}={raw!r} is in the future: no day would have a partition")
    return start


def load_start_date(environ: Mapping[str, str] | None = None) -> date:
    """Just the partitions' start, for ``mlops_assets.partitions`` (built when the code location is imported,
    before the rest of the settings are)."""
    return check_start_date((os.environ if environ is None else environ).get(START_DATE_VARIABLE))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    env = environ.get("MLOPS_ENV", "local")
    if env not in ENVIRONMENTS:
        raise SettingsError(f"MLOPS_ENV={env!r} is not one of {ENVIRONMENTS}")
    lakehouse_root = environ.get("LAKEHOUSE_ROOT") or str(VAR_DIR / "lakehouse")
    if env != "databricks" and "://" not in lakehouse_root:
        check_lakehouse_root(lakehouse_root)
    databricks = check_databricks(environ) if env == "databricks" else None
    catalog = environ.get("DATABRICKS_CATALOG") if env == "databricks" else None
    mlflow_uri = environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{VAR_DIR / 'mlflow' / 'mlflow.db'}"
    mlflow_ui_url = environ.get("MLOPS_MLFLOW_UI_URL") or Settings.mlflow_ui_url
    if not mlflow_ui_url.startswith(("http://", "https://")):
        raise SettingsError(f"MLOPS_MLFLOW_UI_URL={mlflow_ui_url!r} must be an http(s) URL")
    return Settings(
        env=env,
        lakehouse_root=lakehouse_root,
        mlflow_tracking_uri=mlflow_uri,
        catalog=catalog,
        mlflow_ui_url=mlflow_ui_url.rstrip("/"),
        retrain_cooldown_hours=number_setting(
            environ, "MLOPS_RETRAIN_COOLDOWN_HOURS", float, minimum=0, maximum=MAX_COOLDOWN_HOURS
        ),
        max_retrains=number_setting(environ, "MLOPS_MAX_RETRAINS", int, minimum=1, maximum=MAX_RETRAINS),
        feature_contract=check_feature_contract(raw) if (raw := environ.get("FEATURE_CONTRACT")) else None,
        databricks=databricks,
        spark_engine=check_spark_engine(environ.get("MLOPS_SPARK") or "local"),
        start_date=load_start_date(environ),
    )
