"""Online scoring throughput and tail latency: this project's service against ``mlflow models serve``, on the same
registered model, side by side in one run.

The model is shaped like the churn model (the built-in contract's 17 features, 300 trees, one thread) and
registered once in a temporary MLflow store; both servers load that version (ours through the registry alias,
MLflow's through ``models:/churn_model/1``). Debian's ``hey`` drives each at concurrency 1, 16 and 64 for a fixed
duration -- a Python load loop would saturate the two cores itself. One line per concurrency: requests per second
and p99 of each, the throughput ratio, and every status code seen (at 64 ours may shed with 503 by design).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.settings import DEFAULT_CONTRACT
from mlops_assets_tests.servers import free_port, stop_process_group, wait_until

CONCURRENCY = (1, 16, 64)
TREES = 300


def _frame(contract: FeatureSetContract, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({name: rng.gamma(2.0, 20.0, n) for name in contract.numerical})
    for name in contract.categorical:
        df[name] = rng.choice([f"{name}_{i}" for i in range(5)], n)
    logit = (
        0.02 * df[contract.numerical[0]]
        - 0.03 * df[contract.numerical[1]]
        + (df[contract.categorical[0]] == f"{contract.categorical[0]}_1")
    )
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-(logit - 1)))).astype(int)
    return df


def register_model(root: Path) -> tuple[str, dict]:
    """A 300-tree LightGBM churn-shaped model registered as version 1 with @champion; returns (uri, one row)."""
    import lightgbm as lgb
    import mlflow

    from mlops_assets.ml.mlflow_model import ModelRegistry
    from mlops_assets.ml.training import CategoryEncoder, ChurnModel, prepare_matrix

    contract = FeatureSetContract.from_yaml(DEFAULT_CONTRACT)
    frame = _frame(contract, 5000, 1)
    encoder = CategoryEncoder.fit(frame, contract.categorical)
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05, "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(prepare_matrix(frame, contract, encoder), frame["label"]), TREES)
    model = ChurnModel(booster.model_to_string(), encoder, tuple(contract.feature_names))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    registry = ModelRegistry(uri, "churn_model")
    experiment = mlflow.MlflowClient(uri).create_experiment("serve-bench", (root / "artifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment):
        version = registry.register(model, contract, frame.head(20), {"training_run_id": "bench"}).version
    registry.set_alias("champion", version)
    row = frame.iloc[7]
    features = {n: float(row[n]) for n in contract.numerical} | {n: str(row[n]) for n in contract.categorical}
    return uri, features


@contextmanager
def _server(args: list[str], env: dict[str, str], ready_url: str, log: Path):
    with open(log, "w") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        import urllib.request

        def ready() -> bool:
            assert process.poll() is None, log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until(ready, 180, f"{args[0]} at {ready_url}", interval_s=0.5)
        yield
    finally:
        stop_process_group(process)


def hey(url: str, body: Path, concurrency: int, seconds: int) -> tuple[float, float, Counter]:
    """(requests/s, p99 ms, status counts) of one hey run."""
    done = subprocess.run(
        ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json",
         "-D", str(body), "-t", "20", "-o", "csv", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    latencies = np.array([float(r["response-time"]) for r in rows]) * 1000
    statuses = Counter(r["status-code"] for r in rows)
    return len(rows) / seconds, float(np.percentile(latencies, 99)) if len(rows) else float("nan"), statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench serve")
    parser.add_argument("--seconds", type=int, default=10, help="load duration per server and concurrency")
    args = parser.parse_args(argv)
    if shutil.which("hey") is None:
        print("serve-bench needs Debian's hey (make hey installs it)", file=sys.stderr)
        return 2
    print(
        f"# serve-bench: {TREES}-tree LightGBM, 17 features, hey -z {args.seconds}s per server and concurrency",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="serve_bench_") as tmp, ExitStack() as stack:
        root = Path(tmp)
        uri, features = register_model(root)
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
               "LAKEHOUSE_ROOT": str(root / "lakehouse"), "MLFLOW_DISABLE_TELEMETRY": "true",
               "SERVING_RATE_LIMIT_RPS": "1000000", "SERVING_RATE_LIMIT_BURST": "1000000", "OMP_WAIT_POLICY": "PASSIVE"}  # fmt: skip
        env.pop("SERVING_API_KEYS", None)
        env.pop("FEATURE_CONTRACT", None)
        ours_port, mlflow_port = free_port(), free_port()
        stack.enter_context(
            _server([sys.executable, "-m", "mlops_assets.serving", "--port", str(ours_port)], env,
                    f"http://127.0.0.1:{ours_port}/v2/health/ready", root / "ours.log")
        )  # fmt: skip
        stack.enter_context(
            _server([f"{bin_dir}/mlflow", "models", "serve", "-m", "models:/churn_model/1", "--env-manager", "local",
                     "-w", "1", "-h", "127.0.0.1", "-p", str(mlflow_port)], env,
                    f"http://127.0.0.1:{mlflow_port}/ping", root / "mlflow.log")
        )  # fmt: skip
        ours_body, mlflow_body = root / "ours.json", root / "mlflow.json"
        ours_body.write_text(json.dumps({"customer_id": "C1", **features}))
        mlflow_body.write_text(
            json.dumps({"dataframe_split": {"columns": list(features), "data": [list(features.values())]}})
        )
        ours_url = f"http://127.0.0.1:{ours_port}/v2/models/churn_model/score"
        mlflow_url = f"http://127.0.0.1:{mlflow_port}/invocations"
        for url, body in ((ours_url, ours_body), (mlflow_url, mlflow_body)):  # warm both up
            hey(url, body, 1, 1)
        for c in CONCURRENCY:
            ours = hey(ours_url, ours_body, c, args.seconds)
            theirs = hey(mlflow_url, mlflow_body, c, args.seconds)
            codes = lambda s: ",".join(f"{k}:{v}" for k, v in sorted(s.items()))  # noqa: E731
            print(
                f"serve-bench concurrency={c} ours_rps={ours[0]:.0f} ours_p99_ms={ours[1]:.1f} "
                f"mlflow_rps={theirs[0]:.0f} mlflow_p99_ms={theirs[1]:.1f} ratio={ours[0] / max(theirs[0], 1e-9):.1f}x "
                f"ours_status={codes(ours[2])} mlflow_status={codes(theirs[2])}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
