"""Planted inference-table rows for rollout tests: each arm's behaviour (errors, latency, scores) is chosen,
and rows are routed exactly as the server routes them (``Rollout.weights()`` + ``assign_arm``)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from mlops_assets.serving.assignment import assign_arm
from mlops_assets.serving.rollout import CHAMPION_ARM, SHADOW, SHADOW_ARM, Rollout


@dataclass(frozen=True)
class Behaviour:
    error_rate: float = 0.003
    latency_ms: float = 6.0  # median; lognormal with sigma 0.4 -> p99 ~ 2.5x the median
    score_shift: float = 0.0  # added to Beta(2, 5) scores, then clipped to [0, 1]


GOOD = Behaviour()
ERRORS = Behaviour(error_rate=0.08)
SLOW = Behaviour(latency_ms=120.0)
SHIFTED = Behaviour(score_shift=0.35)


def inference_rows(
    state: Rollout,
    units: int,
    candidate: Behaviour = GOOD,
    champion: Behaviour = GOOD,
    model_name: str = "churn_model",
    drop: tuple[str, float] | None = None,
    seed: int = 0,
    entity_prefix: str = "cust",
    spread_s: float = 600.0,
) -> list[tuple]:
    """One request per unit, logged within ``spread_s`` after the step's settle time; ``drop=(arm, share)``
    loses that share of the arm's rows (a broken log shipper)."""
    rng = np.random.default_rng(seed)
    start = datetime.fromisoformat(state.step_started_at) + timedelta(seconds=state.settle_seconds + 1)
    rows = []
    for i in range(units):
        entity = f"{entity_prefix}-{seed}-{i:06d}"
        if state.mode == SHADOW:
            arms = [(CHAMPION_ARM, True), (SHADOW_ARM, False)]
        else:
            arms = [(assign_arm(entity, state.salt, state.weights()), True)]
        request_id = uuid.UUID(int=int(rng.integers(2**63)) << 64 | i).hex
        logged_at = start + timedelta(seconds=float(rng.uniform(0, spread_s)))
        for arm, served in arms:
            if drop and arm == drop[0] and rng.random() < drop[1]:
                continue
            b = champion if arm == CHAMPION_ARM else candidate
            version = state.champion_version if arm == CHAMPION_ARM else state.candidate_version
            failed = rng.random() < b.error_rate
            score = None if failed else float(np.clip(rng.beta(2, 5) + b.score_shift, 0, 1))
            latency = float(b.latency_ms * np.exp(rng.normal(0, 0.4)))
            rows.append(
                (
                    request_id, logged_at, entity, logged_at.date(), arm, served, model_name, version,
                    state.id, score, None if score is None else int(score >= 0.5), latency,
                    500 if failed else 200, "model error" if failed else None, json.dumps({}),
                    "test.jsonl", logged_at.date(),
                )
            )  # fmt: skip
    return rows
