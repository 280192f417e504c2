"""The model zoo: every family trained on the same temporal splits under the same Optuna budget, and a declared
policy that picks the challenger among them.

Why a zoo: a LightGBM model is only worth its complexity if it beats what a simpler model does on the same rows.
The trivial baseline is the yardstick (never the challenger); the regularized logistic regression is the
simple contender; LightGBM the flexible one. The policy prefers the simpler model unless the more complex one
is better on validation by more than ``margin`` -- on a few hundred validation rows, smaller differences are
mostly noise, and the simpler model is cheaper to serve and easier to explain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
import pandas as pd

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.families import BASELINE, LIGHTGBM, LOGISTIC, AnyChurnModel, fit_constant, fit_logistic
from mlops_assets.ml.metrics import roc_auc
from mlops_assets.ml.training import TrainingResult, labels_of, quiet_optuna, tune_and_train

# MLflow artifacts: the parent run's list of candidates and selection, and each candidate run's model.
ZOO_ARTIFACT = "zoo.json"
CANDIDATE_MODEL = "candidate_model.json"
# Simplest first: the order the policy falls back along.
COMPLEXITY = {BASELINE: 0, LOGISTIC: 1, LIGHTGBM: 2}


@dataclass(frozen=True)
class Candidate:
    """One trained family: its model (threshold still to be set), validation metric and cost."""

    family: str
    model: AnyChurnModel
    valid_auc: float
    n_trials: int
    train_seconds: float
    params: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "valid_auc": self.valid_auc,
            "n_trials": self.n_trials,
            "train_seconds": round(self.train_seconds, 3),
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class SelectionPolicy:
    """Best validation ROC-AUC, unless a simpler eligible family is within ``margin`` of it."""

    margin: float = 0.005
    eligible: tuple[str, ...] = (LOGISTIC, LIGHTGBM)

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        unknown = set(self.eligible) - set(COMPLEXITY)
        if unknown or not self.eligible:
            raise ValueError(
                f"eligible must name families of {sorted(COMPLEXITY)}, got {list(self.eligible)}"
            )


@dataclass(frozen=True)
class Selection:
    """Which family became the challenger, and the sentence that says why."""

    chosen: str
    reason: str
    ranking: tuple[tuple[str, float], ...]  # (family, valid ROC-AUC), best first

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ranking": [list(r) for r in self.ranking]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Selection:
        return cls(str(d["chosen"]), str(d["reason"]), tuple((str(f), float(v)) for f, v in d["ranking"]))


def select_challenger(candidates: Sequence[Candidate], policy: SelectionPolicy | None = None) -> Selection:
    """Apply ``policy`` to the candidates' validation ROC-AUC."""
    policy = policy or SelectionPolicy()
    ranking = tuple(
        sorted(((c.family, c.valid_auc) for c in candidates), key=lambda r: (-r[1], COMPLEXITY[r[0]]))
    )
    eligible = [c for c in candidates if c.family in policy.eligible]
    if not eligible:
        raise ValueError(f"no candidate of an eligible family {list(policy.eligible)}")
    best = max(eligible, key=lambda c: c.valid_auc)
    within = [c for c in eligible if c.valid_auc >= best.valid_auc - policy.margin]
    chosen = min(within, key=lambda c: COMPLEXITY[c.family])
    if chosen is best:
        reason = f"{best.family} has the best validation ROC-AUC ({best.valid_auc:.4f})"
        simpler = [c for c in eligible if COMPLEXITY[c.family] < COMPLEXITY[best.family]]
        if simpler:
            runner = max(simpler, key=lambda c: c.valid_auc)
            reason += f", more than the margin {policy.margin:g} above the simpler {runner.family} ({runner.valid_auc:.4f})"
    else:
        reason = (
            f"{chosen.family} ({chosen.valid_auc:.4f}) is within the margin {policy.margin:g} of the best, "
            f"{best.family} ({best.valid_auc:.4f}): the simpler model wins"
        )
    return Selection(chosen.family, reason, ranking)


def tune_logistic(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    contract: FeatureSetContract,
    *,
    n_trials: int,
    timeout_s: float | None,
    seed: int,
) -> Candidate:
    """The L2 strength searched by Optuna on validation ROC-AUC, with the same trial count and timeout as
    LightGBM's search (the budget rule: no family gets more tries than another)."""
    started = time.perf_counter()
    y_train, y_valid = labels_of(train, contract, "train"), labels_of(valid, contract, "valid")

    def objective(trial: optuna.Trial) -> float:
        model = fit_logistic(train, y_train, contract, trial.suggest_float("C", 1e-3, 1e2, log=True), seed)
        return roc_auc(y_valid, model.predict_proba(valid))

    with quiet_optuna():
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=n_trials, timeout=timeout_s)
    c = float(study.best_params["C"])
    model = fit_logistic(train, y_train, contract, c, seed)
    return Candidate(
        LOGISTIC,
        model,
        roc_auc(y_valid, model.predict_proba(valid)),
        len(study.trials),
        time.perf_counter() - started,
        {"C": c},
    )


def baseline_candidate(train: pd.DataFrame, valid: pd.DataFrame, contract: FeatureSetContract) -> Candidate:
    started = time.perf_counter()
    model = fit_constant(labels_of(train, contract, "train"), contract.feature_names)
    y_valid = labels_of(valid, contract, "valid")
    return Candidate(
        BASELINE, model, roc_auc(y_valid, model.predict_proba(valid)), 0, time.perf_counter() - started
    )


def lightgbm_candidate(result: TrainingResult) -> Candidate:
    return Candidate(
        LIGHTGBM,
        result.to_model(),
        result.best_value,
        len(result.trials),
        result.train_seconds,
        result.best_params,
    )


def train_zoo(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    contract: FeatureSetContract,
    *,
    n_trials: int,
    timeout_s: float | None,
    seed: int,
    num_threads: int,
    on_trial: Callable[..., None] | None = None,
) -> tuple[list[Candidate], TrainingResult]:
    """Baseline, logistic regression and LightGBM on the same splits; LightGBM's full result too (its trials)."""
    result = tune_and_train(
        train,
        valid,
        contract,
        n_trials=n_trials,
        timeout_s=timeout_s,
        seed=seed,
        num_threads=num_threads,
        on_trial=on_trial,
    )
    candidates = [
        baseline_candidate(train, valid, contract),
        tune_logistic(train, valid, contract, n_trials=n_trials, timeout_s=timeout_s, seed=seed),
        lightgbm_candidate(result),
    ]
    return candidates, result


def model_size_bytes(model: AnyChurnModel) -> int:
    """What the registry stores for it: the JSON document's size."""
    return len(json.dumps(model.to_dict()).encode())
