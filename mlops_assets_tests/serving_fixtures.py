"""A real registry with two model versions, and the real scoring service as a process on a free loopback port.

The registry lives in its own temporary MLflow store (SQLite + local artifacts), so the serving tests need no
Spark and no lifecycle run; the models are trained on the small synthetic frame of ``test_ml_training`` and
its contract, handed to the service through ``FEATURE_CONTRACT`` as a user's own contract would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlops_assets_tests.servers import free_port, stop_process_group, wait_until
from mlops_assets_tests.test_ml_training import CONTRACT, make_frame

MODEL_NAME = "churn_model"
TEST_KEY, LIMITED_KEY = "test-key-0123456789", "limited-key-0123456789"


@dataclass(frozen=True)
class ServingRegistry:
    tracking_uri: str
    contract_path: str
    champion: str  # a LightGBM version
    other: str  # a logistic version: different scores for the same features
    rows: list[dict[str, Any]]  # feature rows (with entity and as-of) to send


def build_registry(root: Path) -> ServingRegistry:
    """Train two families on the synthetic frame and register them; ``@champion`` is the LightGBM one."""
    import mlflow

    from mlops_assets.ml.families import fit_logistic
    from mlops_assets.ml.mlflow_model import ModelRegistry
    from mlops_assets.ml.splits import temporal_split
    from mlops_assets.ml.training import tune_and_train

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    contract_path = root / "contract.yaml"
    contract_path.write_text(yaml.safe_dump(CONTRACT.to_dict()))
    frame = make_frame(n=2000, seed=3)
    split = temporal_split(frame, "as_of_date")
    models = [
        tune_and_train(split.train, split.valid, CONTRACT, n_trials=2, seed=5).to_model(0.3),
        fit_logistic(split.train, split.train["churned_30d"].to_numpy(), CONTRACT, c=0.5),
    ]
    registry = ModelRegistry(uri, MODEL_NAME)
    experiment = mlflow.MlflowClient(uri).create_experiment("serving-tests", (root / "artifacts").as_uri())
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # register() logs under the fluent run; restored below
    try:
        versions = []
        for model in models:
            with mlflow.start_run(experiment_id=experiment):
                tags = {"training_run_id": "test", "contract_fingerprint": CONTRACT.fingerprint()}
                versions.append(registry.register(model, CONTRACT, split.test.head(20), tags).version)
    finally:
        mlflow.set_tracking_uri(previous)
    registry.set_alias("champion", versions[0])
    rows = make_frame(n=1500, seed=21)
    rows["customer_id"] = "c" + rows["customer_id"].astype(str)
    rows["as_of_date"] = rows["as_of_date"].dt.date.astype(str)
    records = rows[[CONTRACT.entity_key, CONTRACT.as_of, *CONTRACT.feature_names]].to_dict("records")
    return ServingRegistry(uri, str(contract_path), versions[0], versions[1], records)


def server_env(registry: ServingRegistry, lakehouse: Path, **serving: object) -> dict[str, str]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "LAKEHOUSE_ROOT": str(lakehouse),
        "FEATURE_CONTRACT": registry.contract_path,
        "SERVING_API_KEYS": f"tests={TEST_KEY},limited={LIMITED_KEY}",
        "SERVING_ALIAS_TTL_S": "0.5",
        "SERVING_LOG_ROTATE_S": "0.5",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.update({f"SERVING_{k.upper()}": str(v) for k, v in serving.items()})
    return env


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    seconds: float


class ScoringServer:
    def __init__(self, process: subprocess.Popen, port: int, log_path: Path, request_log_dir: Path) -> None:
        self.process, self.port, self.log_path, self.request_log_dir = (
            process,
            port,
            log_path,
            request_log_dir,
        )
        self.url = f"http://127.0.0.1:{port}"

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = TEST_KEY, raw: bytes | None = None
    ) -> Response:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if key is not None:
            request.add_header("Authorization", f"Bearer {key}")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload, headers = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, payload, headers = error.code, error.read(), dict(error.headers)
        return Response(status, json.loads(payload or b"{}"), headers, time.monotonic() - started)

    def score(self, body: Any, key: str | None = TEST_KEY) -> Response:
        return self.call("POST", f"/v2/models/{MODEL_NAME}/score", body, key)

    def state(self) -> dict[str, Any]:
        return self.call("GET", f"/v2/models/{MODEL_NAME}/state").body

    def records(self) -> list[dict[str, Any]]:
        """Every record in the closed request-log files (ingested or not)."""
        return [
            json.loads(line)
            for path in sorted(self.request_log_dir.glob("**/*.jsonl"))
            for line in path.read_text().splitlines()
        ]


@contextmanager
def scoring_server(registry: ServingRegistry, root: Path, **serving: object):
    """The service over ``registry``, with ``SERVING_*`` settings from ``serving`` (``rate_limit_rps=...``)."""
    lakehouse = root / "lakehouse"
    with running_server(lakehouse, server_env(registry, lakehouse, **serving), root) as server:
        yield server


@contextmanager
def running_server(lakehouse: Path, env: dict[str, str], root: Path):
    """The service as users start it (``python -m mlops_assets.serving``), stopped (whole group) afterwards."""
    port = free_port()
    lakehouse.mkdir(parents=True, exist_ok=True)
    log_path = root / f"server-{port}.log"
    with open(log_path, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlops_assets.serving", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ScoringServer(process, port, log_path, lakehouse / "_serving" / "request_log")
    try:
        wait_until(lambda: _ready(server), 90, f"the scoring service on port {port} to be ready ({log_path})")
        yield server
    finally:
        stop_process_group(process)


def _ready(server: ScoringServer) -> bool:
    assert server.process.poll() is None, server.log_path.read_text()[-3000:]
    try:
        return server.call("GET", "/v2/health/ready").status == 200
    except OSError:
        return False
