"""The demo's online part: the scoring service on the demo's @champion, customers scored over HTTP, the request
log ingested and checked for skew, and the same day's events scored by the stream.

Runs after the closed loop, in the CLI's process (which already has the lakehouse's Spark session); the service
is its own process, as ``make serve`` starts it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import pandas as pd
from pyspark.sql import functions as F

from mlops_assets.lakehouse.catalog import FEATURES, PREDICTIONS
from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.serving.scorer import offline_records

MODEL = "churn_model"
CUSTOMERS = 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, body: Any = None) -> tuple[int, dict, int]:
    """(status, JSON body, Retry-After seconds or 0)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), 0
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), int(error.headers.get("Retry-After") or 0)


def instances_for(rows: list[dict], contract: FeatureSetContract) -> list[dict]:
    """Feature rows as a client sends them, with the entity and the as-of date."""
    features = offline_records(pd.DataFrame(rows), contract.numerical, contract.categorical)
    return [
        {contract.entity_key: str(row["entity"]), contract.as_of: row["as_of"].isoformat(), **values}
        for row, values in zip(rows, features, strict=True)
    ]


def latest_scored(delta, contract: FeatureSetContract) -> tuple[date, list[dict]]:
    """The last day ml/predictions scored, with its features and batch scores (up to CUSTOMERS rows)."""
    predictions = delta.read(PREDICTIONS)
    day = predictions.agg(F.max("as_of")).first()[0]
    features = delta.read(FEATURES).withColumn("entity", F.col(contract.entity_key).cast("string"))
    rows = (
        predictions.where(F.col("as_of") == day)
        .join(features, ["entity", "as_of"])
        .select("entity", "as_of", "score", "model_version", *contract.feature_names)
        .orderBy("entity")
        .limit(CUSTOMERS)
        .collect()
    )
    return day, [r.asDict() for r in rows]


def serve_and_score(delta, contract: FeatureSetContract, log: Callable[[str], None]) -> date:
    """Start the service, score the last scored day's customers over HTTP, compare with ml/predictions, stop."""
    day, rows = latest_scored(delta, contract)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SERVING_LOG_ROTATE_S": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.serving", "--port", str(port)], env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _call(f"{base}/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("[demo] the scoring service did not become ready")
            time.sleep(0.5)
        meta = _call(f"{base}/v2/models/{MODEL}")[1]
        known = {i["name"]: set(i["categories"]) for i in meta["inputs"] if "categories" in i}
        instances = instances_for(rows, contract)
        scorable = [i for i in instances if all(i[n] is None or i[n] in known[n] for n in known)]
        batch = {(r["entity"], r["as_of"].isoformat()): r["score"] for r in rows}
        statuses, worst, answers = Counter(), 0.0, []
        waited = 0
        for instance in scorable:  # one request per customer, as an online caller would, honouring 429s
            status, body, retry_after = _call(f"{base}/v2/models/{MODEL}/score", instance)
            while status == 429:
                waited += 1
                time.sleep(retry_after)
                status, body, retry_after = _call(f"{base}/v2/models/{MODEL}/score", instance)
            statuses[status] += 1
            if status == 200:
                answer = body["predictions"][0]
                answers.append(answer)
                key = (answer[contract.entity_key], answer[contract.as_of])
                worst = max(worst, abs(answer["score"] - batch[key]))
        log(
            f"scoring service on http://127.0.0.1:{port}: {meta['name']} v{meta['versions'][0]} ({meta['platform']})"
        )
        log(f"  first answer: {json.dumps(answers[0])}" if answers else "  no answer")
        log(
            f"  {len(scorable)} customers of {day} scored one request each: statuses {dict(statuses)}; "
            f"max |online - ml/predictions| = {worst:.1e}; {waited} x 429 (200/s per client) waited out"
        )
        unknown = len(instances) - len(scorable)
        bad = dict(instances[0], plan="platinum")
        status, body, _ = _call(f"{base}/v2/models/{MODEL}/score", bad)
        log(
            f"  ({unknown} with a category the champion never saw are not sent; one such request: {status} {body})"
        )
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the service closes its request-log file on the way out
        process.wait(30)
    return day
