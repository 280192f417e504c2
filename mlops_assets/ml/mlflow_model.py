"""The churn model in the MLflow registry: pyfunc packaging, registration with lineage, aliases, loading.

Promotion uses registry aliases (``@challenger``, ``@champion``), not the deprecated stages. No Dagster here.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.families import AnyChurnModel, model_from_dict

MODEL_FILE = "churn_model.json"
CHALLENGER, CHAMPION = "challenger", "champion"
CANDIDATE = (
    "candidate"  # the version a running rollout serves beside @champion (mlops_assets.serving.rollout)
)
REQUIRED_TAGS = ("dagster_run_id", "feature_set", "feature_set_fingerprint", "dataset_fingerprint")
# Explicit requirements: MLflow's inference of them costs ~10 s per log_model (../shared/notes/stack.md).
PIP_REQUIREMENTS = ["lightgbm==4.7.0", "pandas>=2.3,<3", "numpy", "mlflow>=3.17,<3.18"]
LOCK_RETRIES = 6
LOCK_BACKOFF_S = 0.5
T = TypeVar("T")


def is_locked(error: BaseException) -> bool:
    """SQLite's answer to a second concurrent writer; the transaction was rolled back, nothing was written."""
    return "database is locked" in str(error)


def retry_when_locked(
    what: str, call: Callable[[], T], attempts: int = LOCK_RETRIES, backoff_s: float = LOCK_BACKOFF_S
) -> T:
    """Run one registry write, retrying only on "database is locked".

    Safe only for calls that are a single store transaction: SQLite reports the lock before or at COMMIT,
    when nothing has been written, so a retry cannot duplicate a version. Any other error fails at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as error:
            if not is_locked(error):
                raise
            if attempt == attempts:
                raise RuntimeError(
                    f"MLflow store still locked after {attempts} attempts at {what}; another writer holds the "
                    "SQLite registry: retry the run"
                ) from error
            time.sleep(backoff_s * attempt)
    raise AssertionError("unreachable")


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: any MLflow consumer can score the model without this project's training code."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["model"]) as f:
            self.model = model_from_dict(json.load(f))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.model.predict_proba(model_input)


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str


@dataclass(frozen=True)
class ModelRegistry:
    """One registered model in one MLflow store. Every registry read and write goes through a client bound to
    that store, never through MLflow's process-global tracking URI; only ``register`` logs under the active
    (fluent) run, which the caller opened on the same store."""

    tracking_uri: str
    model_name: str

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    def register(
        self, model: AnyChurnModel, contract: FeatureSetContract, example: pd.DataFrame, tags: dict[str, str]
    ) -> RegisteredVersion:
        """Log the model under the active MLflow run and register it as a new version with lineage tags."""
        features = example[contract.feature_names]
        signature = infer_signature(features, model.predict_proba(features))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / MODEL_FILE
            path.write_text(json.dumps(model.to_dict()))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=ChurnPyfunc(),
                artifacts={"model": str(path)},
                signature=signature,
                input_example=features.head(5),
                pip_requirements=PIP_REQUIREMENTS,
            )
        client = self.client
        run_id = mlflow.active_run().info.run_id
        name = self.model_name
        retry_when_locked(f"registering {name!r}", lambda: _ensure_registered_model(client, name))
        # One transaction creates the version with its lineage tags: retried, it cannot leave a duplicate.
        mv = retry_when_locked(
            f"creating a version of {name!r}",
            lambda: client.create_model_version(
                name,
                source=info.model_uri,
                run_id=run_id,
                tags={key: str(value) for key, value in tags.items()},
                model_id=info.model_id,
            ),
        )
        return RegisteredVersion(name, str(mv.version), run_id)

    def alias_version(self, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except mlflow.exceptions.MlflowException:
            return None

    def require_alias(self, alias: str, needed_by: str) -> str:
        """The version behind an alias, or an error saying which step needs it and what to run first."""
        version = self.alias_version(alias)
        if version is None:
            raise ValueError(
                f"{needed_by}: model {self.model_name!r} has no @{alias}; run the training job first"
            )
        return version

    def set_alias(self, alias: str, version: str) -> None:
        """Point an alias at a version (an idempotent upsert: safe to retry)."""
        client = self.client
        retry_when_locked(
            f"setting @{alias} of {self.model_name!r}",
            lambda: client.set_registered_model_alias(self.model_name, alias, version),
        )

    def delete_alias(self, alias: str) -> None:
        client = self.client
        retry_when_locked(
            f"removing @{alias} of {self.model_name!r}",
            lambda: client.delete_registered_model_alias(self.model_name, alias),
        )

    def model_tags(self) -> dict[str, str]:
        """The registered model's tags (e.g. the ``rollout`` state); empty when the model is not registered."""
        try:
            return dict(self.client.get_registered_model(self.model_name).tags)
        except mlflow.exceptions.MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise

    def set_model_tag(self, key: str, value: str) -> None:
        """Set a registered-model tag (an idempotent upsert: safe to retry)."""
        client = self.client
        retry_when_locked(
            f"setting tag {key!r} of {self.model_name!r}",
            lambda: client.set_registered_model_tag(self.model_name, key, value),
        )

    def version(self, version: str) -> ModelVersion:
        return self.client.get_model_version(self.model_name, version)

    def download(self, version: str, path: str = "", dst: str | None = None) -> str:
        """A local copy of (part of) a version's artifact, fetched from this store."""
        uri = f"models:/{self.model_name}/{version}" + (f"/{path}" if path else "")
        return mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=dst, tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
        )

    def load(self, version: str) -> AnyChurnModel:
        """The version's model (any family), read from its registered artifact (no pyfunc env needed)."""
        with open(self.download(version, f"artifacts/{MODEL_FILE}")) as f:
            return model_from_dict(json.load(f))

    def validate_artifact(self, version: str, contract: FeatureSetContract) -> list[str]:
        """Problems that make a version unfit to promote: it must load, match the contract, carry its lineage."""
        problems = []
        mv = self.version(version)
        missing = [t for t in REQUIRED_TAGS if not mv.tags.get(t)]
        if missing:
            problems.append(f"model version {version} lacks lineage tags {missing}")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                pyfunc = mlflow.pyfunc.load_model(self.download(version, dst=tmp))
        except Exception as error:  # a broken artifact is exactly what this guards against
            return [*problems, f"model version {version} does not load: {error}"]
        signature = pyfunc.metadata.get_input_schema()
        inputs = signature.input_names() if signature else []
        if list(inputs) != contract.feature_names:
            problems.append(
                f"signature inputs {list(inputs)} differ from the contract's features {contract.feature_names}"
            )
        return problems


def _ensure_registered_model(client: MlflowClient, model_name: str) -> None:
    try:
        client.create_registered_model(model_name)
    except mlflow.exceptions.MlflowException as error:
        if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
