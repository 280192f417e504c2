"""The zoo side by side on the test split: what each family scores (with CIs), how calibrated, how fast, how big.

The selection was made on validation (``zoo.select_challenger``); this table is the evidence a reader checks it
against, on rows no candidate was tuned or chosen on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.ml.bootstrap import MetricCI, bootstrap_ci
from mlops_assets.ml.diagnostics import calibration as reliability
from mlops_assets.ml.diagnostics import measure_latency
from mlops_assets.ml.families import AnyChurnModel
from mlops_assets.ml.zoo import Selection, model_size_bytes


@dataclass(frozen=True)
class ZooRow:
    family: str
    chosen: bool
    valid_auc: float
    roc_auc: MetricCI
    pr_auc: MetricCI
    brier: MetricCI
    ece: float
    single_row_p50_ms: float
    batch_rows_per_s: float
    size_bytes: int


@dataclass(frozen=True)
class ZooComparison:
    rows: tuple[ZooRow, ...]
    selection: Selection

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in self.rows], "selection": self.selection.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ZooComparison:
        rows = tuple(
            ZooRow(
                **{
                    **r,
                    **{m: MetricCI(**r[m]) for m in ("roc_auc", "pr_auc", "brier")},
                }
            )
            for r in d["rows"]
        )
        return cls(rows, Selection.from_dict(d["selection"]))

    def to_markdown(self) -> str:
        def ci(m: MetricCI) -> str:
            return f"{m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]"

        lines = [
            "## Model zoo: every family on the same splits",
            "",
            "| family | challenger | valid ROC-AUC | test ROC-AUC [95% CI] | test PR-AUC [95% CI] | Brier [95% CI] "
            "| ECE | p50 ms (1 row) | rows/s (batch) | size |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.family} | {'**yes**' if r.chosen else ''} | {r.valid_auc:.3f} | {ci(r.roc_auc)} "
                f"| {ci(r.pr_auc)} | {ci(r.brier)} | {r.ece:.3f} | {r.single_row_p50_ms:.2f} "
                f"| {r.batch_rows_per_s:,.0f} | {r.size_bytes / 1024:,.1f} KiB |"
            )
        lines += ["", f"Selection (on validation): {self.selection.reason}."]
        return "\n".join(lines) + "\n"


def compare_zoo(
    models: Mapping[str, AnyChurnModel],
    valid_aucs: Mapping[str, float],
    selection: Selection,
    test: pd.DataFrame,
    y_test: np.ndarray,
    *,
    n_bootstrap: int = 200,
    latency_calls: int = 50,
    seed: int = 0,
) -> ZooComparison:
    """Each family's test metrics with bootstrap CIs, calibration, latency and size."""
    rows = []
    for family, model in models.items():
        scores = model.predict_proba(test)
        cis = bootstrap_ci(y_test, scores, model.threshold, n_bootstrap=n_bootstrap, seed=seed)
        latency = measure_latency(model.predict_proba, test, n_calls=latency_calls, seed=seed)
        rows.append(
            ZooRow(
                family=family,
                chosen=family == selection.chosen,
                valid_auc=float(valid_aucs[family]),
                roc_auc=cis["roc_auc"],
                pr_auc=cis["pr_auc"],
                brier=cis["brier"],
                ece=reliability(y_test, scores).ece,
                single_row_p50_ms=latency.single_row_p50_ms,
                batch_rows_per_s=latency.batch_rows_per_s,
                size_bytes=model_size_bytes(model),
            )
        )
    return ZooComparison(tuple(rows), selection)
