"""LightGBM churn model tuned by Optuna, and a small serialisable model wrapper.

Why it is shaped like this:

* Categoricals go to LightGBM as pandas ``category`` columns with the category list fixed on the training
  frame (``CategoryEncoder``); the codes then mean the same thing at training and serving time, and unseen
  values become missing instead of silently shifting every code.
* Optuna's LightGBM integration lives in a separate package that is not installed, so the pruning callback
  is written here: it reports validation AUC every boosting round and stops hopeless trials early.
* Early stopping watches validation log loss, while trials are ranked (and pruned) by validation AUC. AUC is
  rank-based and plateaus after a handful of rounds on a few hundred validation rows, so stopping on it keeps
  barely-fitted models with probabilities squeezed around the prevalence; log loss keeps improving while the
  probabilities do, which gave better test AUC and calibration on the synthetic churn data.
* Everything is returned (params, per-trial results, timings); MLflow logging happens in the asset layer.
* Determinism: a seeded TPE sampler plus LightGBM's ``deterministic``/``force_row_wise``/``seed`` with a fixed
  thread count give identical results for identical inputs (not when ``timeout_s`` cuts the search short).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd

from mlops_assets.ml.contract import ContractError, FeatureSetContract
from mlops_assets.ml.explain import Contributions

VALID_NAME = "valid"
METRIC = "auc"  # what trials are ranked and pruned by
STOPPING_METRIC = "binary_logloss"  # what early stopping watches (listed first in LightGBM's `metric`)


# --- categorical encoding ------------------------------------------------------------------------------------
def as_text(series: pd.Series) -> pd.Series:
    """Values as strings (integral floats without '.0', so an int column that gained NaNs still matches)."""

    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
            return np.nan
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return series.astype(object).map(one)


@dataclass
class CategoryEncoder:
    """Fixed category lists per column, learned on the training frame; unseen values map to NaN."""

    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, df: pd.DataFrame, columns: Sequence[str]) -> CategoryEncoder:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ContractError([f"feature '{c}' (categorical) is missing from the table" for c in missing])
        return cls({c: sorted(as_text(df[c]).dropna().unique().tolist()) for c in columns})

    def transform_column(self, name: str, series: pd.Series) -> pd.Series:
        dtype = pd.CategoricalDtype(self.categories[name], ordered=False)
        return pd.Series(pd.Categorical(as_text(series), dtype=dtype), index=series.index, name=name)

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        for name in self.categories:
            out[name] = self.transform_column(name, df[name])
        return out

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.categories.items()}

    @classmethod
    def from_dict(cls, d: dict[str, list[str]]) -> CategoryEncoder:
        return cls({k: list(v) for k, v in d.items()})


def _matrix(df: pd.DataFrame, feature_names: Sequence[str], encoder: CategoryEncoder) -> pd.DataFrame:
    missing = [c for c in feature_names if c not in df.columns]
    if missing:
        raise ContractError([f"feature '{c}' is missing from the table" for c in missing])
    cols: dict[str, pd.Series] = {}
    for name in feature_names:
        if name in encoder.categories:
            cols[name] = encoder.transform_column(name, df[name])
        else:
            try:
                cols[name] = pd.to_numeric(df[name]).astype("float64")
            except (TypeError, ValueError) as exc:
                raise ContractError(
                    f"feature '{name}' is declared numerical but holds non-numeric values ({exc})"
                ) from None
    return pd.DataFrame(cols, index=df.index)


def prepare_matrix(df: pd.DataFrame, contract: FeatureSetContract, encoder: CategoryEncoder) -> pd.DataFrame:
    """The model's input: contract feature order, numericals as float64, categoricals with fixed categories.

    ``encoder`` must come from ``CategoryEncoder.fit(train, contract.categorical)``; it is a required argument
    so a validation or serving frame can never learn its own (different) category codes by accident.
    """
    if sorted(encoder.categories) != sorted(contract.categorical):
        raise ValueError(
            f"encoder columns {sorted(encoder.categories)} do not match the contract's categorical "
            f"features {sorted(contract.categorical)}"
        )
    return _matrix(df, contract.feature_names, encoder)


# --- tuning --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialResult:
    """One Optuna trial, flattened for logging (e.g. as a nested MLflow run)."""

    number: int
    state: str  # "COMPLETE", "PRUNED" or "FAIL"
    params: dict[str, Any]
    value: float | None  # best validation AUC; None unless COMPLETE
    best_iteration: int | None
    duration_s: float
    intermediate_values: dict[int, float] = field(default_factory=dict)  # boosting round -> valid AUC


@dataclass
class TrainingResult:
    booster: lgb.Booster
    best_params: dict[str, Any]  # the tuned hyper-parameters only
    best_value: float  # validation AUC of the best trial
    trials: list[TrialResult]
    feature_names: list[str]
    encoder: CategoryEncoder
    seed: int
    n_train: int
    n_valid: int
    train_seconds: float
    best_iteration: int = 0
    params: dict[str, Any] = field(default_factory=dict)  # full LightGBM params of the final fit
    contract_fingerprint: str = ""

    def summary(self) -> dict[str, Any]:
        """Flat facts for run params/tags and the model card's training section."""
        states = [t.state for t in self.trials]
        return {
            "best_value": self.best_value,
            "best_iteration": self.best_iteration,
            "n_trials": len(states),
            "n_complete": states.count("COMPLETE"),
            "n_pruned": states.count("PRUNED"),
            "n_train": self.n_train,
            "n_valid": self.n_valid,
            "seed": self.seed,
            "train_seconds": round(self.train_seconds, 3),
            "contract_fingerprint": self.contract_fingerprint,
            **{f"param_{k}": v for k, v in self.best_params.items()},
        }

    def to_model(self, threshold: float = 0.5, metadata: dict[str, Any] | None = None) -> ChurnModel:
        """The registrable wrapper; metadata defaults record where the model came from."""
        base = {
            "contract_fingerprint": self.contract_fingerprint,
            "best_params": dict(self.best_params),
            "best_iteration": self.best_iteration,
            "seed": self.seed,
        }
        return ChurnModel(
            model_str=self.booster.model_to_string(num_iteration=self.best_iteration),
            encoder=CategoryEncoder.from_dict(self.encoder.to_dict()),
            feature_names=tuple(self.feature_names),
            threshold=float(threshold),
            metadata={**base, **(metadata or {})},
            num_threads=int(self.params.get("num_threads", 1)),
        )


class _PruningCallback:
    """Report validation AUC to Optuna after every boosting round and stop the trial when told to prune."""

    order = 25  # LightGBM runs callbacks by `order`; early stopping is 30
    before_iteration = False

    def __init__(self, trial: optuna.Trial, valid_name: str = VALID_NAME, metric: str = METRIC) -> None:
        self.trial = trial
        self.valid_name = valid_name
        self.metric = metric

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        for item in env.evaluation_result_list:
            if item[0] == self.valid_name and item[1] == self.metric:
                value = float(item[2])
                break
        else:
            raise ValueError(f"no {self.metric!r} on {self.valid_name!r} in LightGBM's evaluation results")
        step = env.iteration + 1  # rounds trained so far
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after {step} rounds with valid {self.metric} {value:.4f}")


def _suggest(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "bagging_freq": trial.suggest_int("bagging_freq", 0, 7),
        "lambda_l1": trial.suggest_float("lambda_l1", 1e-8, 10.0, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-8, 10.0, log=True),
    }


def _fixed_params(seed: int, num_threads: int) -> dict[str, Any]:
    return {
        "objective": "binary",
        "metric": [STOPPING_METRIC, METRIC],
        "verbosity": -1,
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
        "num_threads": num_threads,
        "feature_pre_filter": False,  # lets trials vary min_child_samples on one constructed Dataset
    }


def _trial_result(t: optuna.trial.FrozenTrial) -> TrialResult:
    duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else 0.0
    complete = t.state == optuna.trial.TrialState.COMPLETE
    return TrialResult(
        number=t.number,
        state=t.state.name,
        params=dict(t.params),
        value=float(t.value) if complete and t.value is not None else None,
        best_iteration=t.user_attrs.get("best_iteration"),
        duration_s=float(duration),
        intermediate_values={int(k): float(v) for k, v in t.intermediate_values.items()},
    )


def labels_of(df: pd.DataFrame, contract: FeatureSetContract, part: str) -> np.ndarray:
    if contract.label not in df.columns:
        raise ContractError(f"label '{contract.label}' is missing from the {part} frame")
    y = df[contract.label].to_numpy()
    contract.validate_label_values(y)
    y = y.astype(np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError(f"the {part} frame needs both classes of '{contract.label}' (AUC is undefined)")
    return y


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna at WARNING for the block (one INFO line per trial is noise in asset logs), restored after."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def tune_and_train(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    contract: FeatureSetContract,
    *,
    n_trials: int = 20,
    timeout_s: float | None = None,
    seed: int = 42,
    num_threads: int = 1,
    on_trial: Callable[[TrialResult], None] | None = None,
    max_rounds: int = 1000,
    early_stopping_rounds: int = 50,
    pruner_startup_trials: int = 5,
    pruner_warmup_steps: int = 10,
) -> TrainingResult:
    """Search LightGBM hyper-parameters on ``valid`` (AUC, TPE + median pruning), then refit the best."""
    started = time.perf_counter()
    encoder = CategoryEncoder.fit(train, contract.categorical)
    x_train, x_valid = prepare_matrix(train, contract, encoder), prepare_matrix(valid, contract, encoder)
    y_train, y_valid = labels_of(train, contract, "train"), labels_of(valid, contract, "valid")
    fixed = _fixed_params(seed, num_threads)
    # One binned Dataset for all trials: the search space holds no Dataset-level parameters.
    dtrain = lgb.Dataset(x_train, y_train, params=fixed, free_raw_data=False).construct()
    dvalid = lgb.Dataset(x_valid, y_valid, params=fixed, reference=dtrain, free_raw_data=False).construct()

    def fit(params: dict[str, Any], callbacks: list[Any]) -> lgb.Booster:
        stop = lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)
        return lgb.train(
            params,
            dtrain,
            num_boost_round=max_rounds,
            valid_sets=[dvalid],
            valid_names=[VALID_NAME],
            callbacks=[stop, *callbacks],
        )

    def objective(trial: optuna.Trial) -> float:
        booster = fit({**fixed, **_suggest(trial)}, [_PruningCallback(trial)])
        trial.set_user_attr("best_iteration", int(booster.best_iteration))
        return float(booster.best_score[VALID_NAME][METRIC])

    callbacks = []
    if on_trial is not None:
        callbacks.append(lambda _study, frozen: on_trial(_trial_result(frozen)))
    with quiet_optuna():
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, n_trials // 3))),
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=pruner_startup_trials, n_warmup_steps=pruner_warmup_steps
            ),
        )
        study.optimize(objective, n_trials=n_trials, timeout=timeout_s, callbacks=callbacks)

    trials = [_trial_result(t) for t in study.trials]
    if not any(t.state == "COMPLETE" for t in trials):
        raise RuntimeError(f"no Optuna trial completed ({len(trials)} trials); raise n_trials or timeout_s")
    best = study.best_trial
    params = {**fixed, **best.params}
    booster = fit(params, [])
    return TrainingResult(
        booster=booster,
        best_params=dict(best.params),
        best_value=float(best.value),
        trials=trials,
        feature_names=list(contract.feature_names),
        encoder=encoder,
        seed=seed,
        n_train=len(train),
        n_valid=len(valid),
        train_seconds=time.perf_counter() - started,
        best_iteration=int(booster.best_iteration),
        params=params,
        contract_fingerprint=contract.fingerprint(),
    )


# --- serving wrapper -----------------------------------------------------------------------------------------
@dataclass
class ChurnModel:
    """What gets registered: the booster as LightGBM's text format, the encoder, feature order, threshold.

    Plain data (JSON via ``to_dict``, or pickle): no training objects, no LightGBM handle in the state.
    """

    model_str: str
    encoder: CategoryEncoder
    feature_names: tuple[str, ...]
    threshold: float = 0.5
    metadata: dict[str, Any] = field(default_factory=dict)
    num_threads: int = 1
    _booster: lgb.Booster | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def booster(self) -> lgb.Booster:
        if self._booster is None:
            self._booster = lgb.Booster(model_str=self.model_str)
        return self._booster

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        x = _matrix(df, self.feature_names, self.encoder)
        return np.asarray(self.booster.predict(x, num_threads=self.num_threads), dtype=np.float64)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(df) >= self.threshold).astype(np.int64)

    def margin(self, df: pd.DataFrame) -> np.ndarray:
        """The raw score (log-odds) the probabilities are the sigmoid of."""
        x = _matrix(df, self.feature_names, self.encoder)
        raw = self.booster.predict(x, raw_score=True, num_threads=self.num_threads)
        return np.asarray(raw, dtype=np.float64)

    def contributions(self, df: pd.DataFrame) -> Contributions:
        """Exact TreeSHAP values (``explain.Explainable``): the last column LightGBM returns is the base."""
        x = _matrix(df, self.feature_names, self.encoder)
        raw = np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=self.num_threads), np.float64)
        return Contributions(self.feature_names, raw[:, :-1], raw[:, -1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": "lightgbm",  # families.model_from_dict dispatches on it
            "model_str": self.model_str,
            "encoder": self.encoder.to_dict(),
            "feature_names": list(self.feature_names),
            "threshold": float(self.threshold),
            "metadata": dict(self.metadata),
            "num_threads": int(self.num_threads),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChurnModel:
        return cls(
            model_str=d["model_str"],
            encoder=CategoryEncoder.from_dict(d["encoder"]),
            feature_names=tuple(d["feature_names"]),
            threshold=float(d.get("threshold", 0.5)),
            metadata=dict(d.get("metadata", {})),
            num_threads=int(d.get("num_threads", 1)),
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_booster"] = None  # rebuilt lazily from model_str
        return state


def predict_proba(result_or_model: TrainingResult | ChurnModel, df: pd.DataFrame) -> np.ndarray:
    """Churn probabilities for ``df`` from either a fresh training result or a registered model."""
    if isinstance(result_or_model, ChurnModel):
        return result_or_model.predict_proba(df)
    if isinstance(result_or_model, TrainingResult):
        x = _matrix(df, result_or_model.feature_names, result_or_model.encoder)
        num_threads = int(result_or_model.params.get("num_threads", 1))
        raw = result_or_model.booster.predict(
            x, num_iteration=result_or_model.best_iteration, num_threads=num_threads
        )
        return np.asarray(raw, dtype=np.float64)
    raise TypeError(f"expected TrainingResult or ChurnModel, got {type(result_or_model).__name__}")
