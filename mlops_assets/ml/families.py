"""The model families besides LightGBM: a regularized logistic regression and a constant baseline.

Each is plain data (coefficients, category lists, means) serialized to JSON like ``ChurnModel``, scores
without scikit-learn at serving time, and explains itself (``explain.Explainable``): a linear model's
contribution of a feature is its coefficient times the feature's value centred on the training mean, summed
over the feature's one-hot columns, so the contributions plus the base (the margin at the training means)
add up to the margin exactly -- the linear model's SHAP values under feature independence.

``model_from_dict`` reads any family back, including LightGBM models registered before families existed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.explain import Contributions
from mlops_assets.ml.training import CategoryEncoder, ChurnModel, as_text

LIGHTGBM, LOGISTIC, BASELINE = "lightgbm", "logistic", "baseline"


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-margin))


@dataclass
class LinearChurnModel:
    """Logistic regression over standardized numericals (missing -> training median) and one-hot categoricals
    (unseen or missing -> all zeros)."""

    feature_names: tuple[str, ...]
    numerical: dict[str, tuple[float, float, float]]  # name -> (fill, mean, std) of the training values
    categories: dict[str, list[str]]
    coefficients: dict[str, list[float]]  # feature -> one coefficient per design column (1 for numericals)
    column_means: dict[str, list[float]]  # feature -> training mean of each design column
    intercept: float
    threshold: float = 0.5
    metadata: dict[str, Any] = field(default_factory=dict)
    family: str = LOGISTIC

    def _design(self, df: pd.DataFrame, name: str) -> np.ndarray:
        """The design columns of one feature: (rows, 1) standardized, or (rows, categories) one-hot."""
        if name in self.numerical:
            fill, mean, std = self.numerical[name]
            values = pd.to_numeric(df[name], errors="coerce").astype("float64").fillna(fill).to_numpy()
            return ((values - mean) / std).reshape(-1, 1)
        text = as_text(df[name]).to_numpy()
        return (text.reshape(-1, 1) == np.asarray(self.categories[name], dtype=object)).astype("float64")

    def contributions(self, df: pd.DataFrame) -> Contributions:
        values = np.column_stack(
            [
                (self._design(df, n) - np.asarray(self.column_means[n])) @ np.asarray(self.coefficients[n])
                for n in self.feature_names
            ]
        )
        base = self.intercept + sum(
            float(np.dot(self.column_means[n], self.coefficients[n])) for n in self.feature_names
        )
        return Contributions(self.feature_names, values, np.full(len(df), base))

    def margin(self, df: pd.DataFrame) -> np.ndarray:
        return self.contributions(df).margin()

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        return _sigmoid(self.margin(df))

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(df) >= self.threshold).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "feature_names": list(self.feature_names),
            "numerical": {k: list(v) for k, v in self.numerical.items()},
            "categories": {k: list(v) for k, v in self.categories.items()},
            "coefficients": {k: list(v) for k, v in self.coefficients.items()},
            "column_means": {k: list(v) for k, v in self.column_means.items()},
            "intercept": self.intercept,
            "threshold": self.threshold,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LinearChurnModel:
        return cls(
            feature_names=tuple(d["feature_names"]),
            numerical={k: tuple(v) for k, v in d["numerical"].items()},
            categories={k: list(v) for k, v in d["categories"].items()},
            coefficients={k: list(v) for k, v in d["coefficients"].items()},
            column_means={k: list(v) for k, v in d["column_means"].items()},
            intercept=float(d["intercept"]),
            threshold=float(d.get("threshold", 0.5)),
            metadata=dict(d.get("metadata", {})),
        )


def fit_logistic(
    train: pd.DataFrame, y: np.ndarray, contract: FeatureSetContract, c: float = 1.0, seed: int = 0
) -> LinearChurnModel:
    """L2-regularized logistic regression (inverse strength ``c``) on the contract's features."""
    from sklearn.linear_model import LogisticRegression

    numerical: dict[str, tuple[float, float, float]] = {}
    for name in contract.numerical:
        values = pd.to_numeric(train[name], errors="coerce").astype("float64")
        fill = float(values.median()) if values.notna().any() else 0.0
        filled = values.fillna(fill)
        std = float(filled.std())
        numerical[name] = (fill, float(filled.mean()), std if std > 0 and math.isfinite(std) else 1.0)
    categories = CategoryEncoder.fit(train, contract.categorical).categories
    shell = LinearChurnModel(tuple(contract.feature_names), numerical, categories, {}, {}, 0.0)
    blocks = {n: shell._design(train, n) for n in contract.feature_names}
    fitted = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(
        np.column_stack(list(blocks.values())), y
    )
    coefficients, start = {}, 0
    for name, block in blocks.items():
        coefficients[name] = fitted.coef_[0][start : start + block.shape[1]].tolist()
        start += block.shape[1]
    column_means = {n: block.mean(axis=0).tolist() for n, block in blocks.items()}
    return LinearChurnModel(
        shell.feature_names, numerical, categories, coefficients, column_means, float(fitted.intercept_[0])
    )


@dataclass
class ConstantChurnModel:
    """The trivial baseline: every row scored at the training churn rate. Explains nothing, by design."""

    feature_names: tuple[str, ...]
    rate: float
    threshold: float = 0.5
    metadata: dict[str, Any] = field(default_factory=dict)
    family: str = BASELINE

    def margin(self, df: pd.DataFrame) -> np.ndarray:
        return np.full(len(df), math.log(self.rate / (1 - self.rate)))

    def contributions(self, df: pd.DataFrame) -> Contributions:
        return Contributions(
            self.feature_names, np.zeros((len(df), len(self.feature_names))), self.margin(df)
        )

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        return np.full(len(df), self.rate)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(df) >= self.threshold).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "feature_names": list(self.feature_names),
            "rate": self.rate,
            "threshold": self.threshold,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConstantChurnModel:
        return cls(
            tuple(d["feature_names"]),
            float(d["rate"]),
            float(d.get("threshold", 0.5)),
            dict(d.get("metadata", {})),
        )


def fit_constant(y: np.ndarray, feature_names: Sequence[str]) -> ConstantChurnModel:
    """The training churn rate, kept inside (0, 1) so its margin stays finite."""
    n = len(y)
    return ConstantChurnModel(tuple(feature_names), float((np.sum(y) + 0.5) / (n + 1)))


AnyChurnModel = ChurnModel | LinearChurnModel | ConstantChurnModel


def known_categories(model: AnyChurnModel) -> dict[str, list[str]]:
    """The categories a model was trained on, per categorical feature (what online scoring and the stream
    accept); none for the baseline, which ignores its inputs."""
    if isinstance(model, ChurnModel):
        return model.encoder.to_dict()
    if isinstance(model, LinearChurnModel):
        return {k: list(v) for k, v in model.categories.items()}
    return {}


def model_from_dict(d: Mapping[str, Any]) -> AnyChurnModel:
    """Any registered model from its JSON; no ``family`` means LightGBM (versions registered before the zoo)."""
    family = d.get("family", LIGHTGBM)
    if family == LOGISTIC:
        return LinearChurnModel.from_dict(d)
    if family == BASELINE:
        return ConstantChurnModel.from_dict(d)
    if family == LIGHTGBM:
        return ChurnModel.from_dict(dict(d))
    raise ValueError(f"unknown model family {family!r}; expected one of {LIGHTGBM}, {LOGISTIC}, {BASELINE}")
