"""Train-serving skew: do the features callers send online match the offline ones, and does the online path
score them as batch does?

Two comparisons, both on (entity, as-of) pairs present on both sides:
- **features**: what a request carried against ``features/churn_features`` for the same pair -- exact for
  categoricals and integral values, within ``FLOAT_TOLERANCE`` (relative) for floats. A feature whose mismatch
  share passes ``max_mismatch_share`` fails the check by name. The PSI of each numerical feature's logged
  values against the offline ones shows a shift that pair-wise checks miss (other entities, other days).
- **scores**: offline rows replayed through the service's own scorer against ``ml/predictions``' batch score of
  the same version, within ``SCORE_TOLERANCE``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_assets.monitoring.drift_stats import psi

FLOAT_TOLERANCE = 1e-6
SCORE_TOLERANCE = 1e-9
PSI_BINS = 10


def _same(online: Any, offline: Any, numerical: bool) -> bool:
    missing_on, missing_off = _missing(online), _missing(offline)
    if missing_on or missing_off:
        return missing_on and missing_off
    if not numerical:
        return str(online) == str(offline)
    a, b = float(online), float(offline)
    if a.is_integer() and b.is_integer():
        return a == b
    return math.isclose(a, b, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class FeatureSkew:
    feature: str
    compared: int
    mismatched: int
    psi: float | None
    example: str | None  # one mismatching pair, for the report

    @property
    def share(self) -> float:
        return self.mismatched / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class SkewReport:
    features: tuple[FeatureSkew, ...]
    pairs: int
    replayed: int = 0
    max_score_difference: float = 0.0
    max_mismatch_share: float = 0.0
    problems: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.problems

    def markdown(self) -> str:
        lines = [
            f"{self.pairs} logged (entity, as-of) pairs compared with the offline features; {self.replayed} offline "
            f"rows replayed through the online scorer (max |online - batch| = {self.max_score_difference:.2e}).",
            "",
            "| feature | compared | mismatched | share | PSI online vs offline | example |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for f in self.features:
            psi_text = "" if f.psi is None else f"{f.psi:.3f}"
            lines.append(
                f"| {f.feature} | {f.compared} | {f.mismatched} | {f.share:.1%} | {psi_text} | {f.example or ''} |"
            )
        return "\n".join(lines)


def _psi(online: Sequence[float], offline: Sequence[float]) -> float | None:
    on = np.asarray([v for v in online if not _missing(v)], dtype=np.float64)
    off = np.asarray([v for v in offline if not _missing(v)], dtype=np.float64)
    if len(on) < 2 or len(off) < 2:
        return None
    edges = np.unique(np.quantile(off, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    return float(psi(np.histogram(off, bins)[0], np.histogram(on, bins)[0]))


def compare_features(
    online: Sequence[Mapping[str, Any]],
    offline: Sequence[Mapping[str, Any]],
    numerical: Sequence[str],
    categorical: Sequence[str],
    max_mismatch_share: float = 0.0,
) -> SkewReport:
    """``online[i]`` and ``offline[i]`` are the same (entity, as-of) pair's features."""
    features = []
    problems = []
    for name in (*numerical, *categorical):
        is_number = name in numerical
        mismatched, example = 0, None
        for on, off in zip(online, offline, strict=True):
            if not _same(on.get(name), off.get(name), is_number):
                mismatched += 1
                example = example or f"online {on.get(name)!r} vs offline {off.get(name)!r}"
        drift = _psi([r.get(name) for r in online], [r.get(name) for r in offline]) if is_number else None
        skew = FeatureSkew(name, len(online), mismatched, drift, example)
        features.append(skew)
        if skew.share > max_mismatch_share:
            problems.append(
                f"{name}: {mismatched} of {len(online)} logged requests differ from the offline feature "
                f"(e.g. {example})"
            )
    return SkewReport(
        tuple(features), len(online), max_mismatch_share=max_mismatch_share, problems=tuple(problems)
    )


def with_replay(report: SkewReport, online_scores: np.ndarray, batch_scores: np.ndarray) -> SkewReport:
    """The report plus the replay of offline rows through the online scorer."""
    difference = float(np.max(np.abs(online_scores - batch_scores))) if len(batch_scores) else 0.0
    problems = list(report.problems)
    if difference > SCORE_TOLERANCE:
        problems.append(
            f"score: the online scorer differs from ml/predictions by up to {difference:.2e} "
            f"(tolerance {SCORE_TOLERANCE:g}) on {len(batch_scores)} replayed rows"
        )
    return SkewReport(
        report.features,
        report.pairs,
        len(batch_scores),
        difference,
        report.max_mismatch_share,
        tuple(problems),
    )
