"""The churn model in the MLflow registry: pyfunc packaging, registration with lineage, aliases, loading.

Promotion uses registry aliases (``@challenger``, ``@champion``), not the deprecated stages. No Dagster here.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.training import ChurnModel

MODEL_FILE = "churn_model.json"
CHALLENGER, CHAMPION = "challenger", "champion"
REQUIRED_TAGS = ("dagster_run_id", "feature_set", "feature_set_fingerprint", "dataset_fingerprint")
# Explicit requirements: MLflow's inference of them costs ~10 s per log_model (../shared/notes/stack.md).
PIP_REQUIREMENTS = ["lightgbm==4.7.0", "pandas>=2.3,<3", "numpy", "mlflow>=3.17,<3.18"]


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: any MLflow consumer can score the model without this project's training code."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["model"]) as f:
            self.model = ChurnModel.from_dict(json.load(f))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.model.predict_proba(model_input)


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str


def log_and_register(
    model: ChurnModel,
    contract: FeatureSetContract,
    example: pd.DataFrame,
    model_name: str,
    tags: dict[str, str],
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
            registered_model_name=model_name,
        )
    client = MlflowClient()
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, str(value))
    run_id = mlflow.active_run().info.run_id
    return RegisteredVersion(model_name, version, run_id)


def alias_version(model_name: str, alias: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(model_name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def require_alias(model_name: str, alias: str, needed_by: str) -> str:
    """The version behind an alias, or an error saying which step needs it and what to run first."""
    version = alias_version(model_name, alias)
    if version is None:
        raise ValueError(f"{needed_by}: model {model_name!r} has no @{alias}; run the training job first")
    return version


def set_alias(model_name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(model_name, alias, version)


def load_churn_model(model_name: str, version: str) -> ChurnModel:
    """The version's ChurnModel, read from its registered artifact (no pyfunc env needed)."""
    uri = f"models:/{model_name}/{version}"
    local = mlflow.artifacts.download_artifacts(f"{uri}/artifacts/{MODEL_FILE}")
    with open(local) as f:
        return ChurnModel.from_dict(json.load(f))


def validate_artifact(model_name: str, version: str, contract: FeatureSetContract) -> list[str]:
    """Problems that make a version unfit to promote: it must load, match the contract, carry its lineage."""
    problems = []
    client = MlflowClient()
    mv = client.get_model_version(model_name, version)
    missing = [t for t in REQUIRED_TAGS if not mv.tags.get(t)]
    if missing:
        problems.append(f"model version {version} lacks lineage tags {missing}")
    try:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    except Exception as error:  # a broken artifact is exactly what this guards against
        return [*problems, f"model version {version} does not load: {error}"]
    signature = pyfunc.metadata.get_input_schema()
    inputs = signature.input_names() if signature else []
    if list(inputs) != contract.feature_names:
        problems.append(
            f"signature inputs {list(inputs)} differ from the contract's features {contract.feature_names}"
        )
    return problems
