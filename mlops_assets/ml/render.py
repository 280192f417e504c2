"""The evaluation report as Markdown, as PNG figures, and the model card: presentation only, every number
comes from the ``EvaluationReport``."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_assets.ml.bootstrap import MetricCI
from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.metrics import HIGHER_IS_BETTER, METRIC_LABELS, roc_curve_points

if TYPE_CHECKING:
    from mlops_assets.ml.evaluation import EvaluationReport

SECTIONS: tuple[str, ...] = (
    "Metrics",
    "Comparison",
    "Calibration",
    "Slices",
    "Fairness",
    "Robustness",
    "Latency",
    "Explanations",
    "Error analysis",
)
TOP_IMPORTANCE = 15  # features in the importance table and figure
TOP_SLICES = 10  # slices in the calibration-error table


# --- Markdown rendering --------------------------------------------------------------------------------------
def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float | np.floating):
        return f"{float(x):.{nd}f}"
    return str(x)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return _f(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _ci_text(ci: MetricCI) -> str:
    return f"{_f(ci.value)} [{_f(ci.ci_low)}, {_f(ci.ci_high)}]"


def _md_metrics(r: EvaluationReport) -> str:
    rows = [
        [METRIC_LABELS[m], ci.value, ci.ci_low, ci.ci_high, "higher" if HIGHER_IS_BETTER[m] else "lower"]
        for m, ci in r.metrics.items()
    ]
    return _table(["Metric", "Value", "95% CI low", "95% CI high", "Better"], rows)


def _md_comparison(r: EvaluationReport) -> str:
    headers = ["Metric", "Model", f"Baseline (p={_f(r.baseline_prevalence)})"]
    if r.champion is not None:
        headers.append("Champion")
    rows = []
    for m, ci in r.metrics.items():
        row: list[Any] = [METRIC_LABELS[m], _ci_text(ci), r.baseline[m]]
        if r.champion is not None:
            row.append(_ci_text(r.champion[m]))
        rows.append(row)
    out = _table(headers, rows)
    if r.paired:
        paired_rows = [
            [METRIC_LABELS[m], d.diff, d.ci_low, d.ci_high, d.p_value, d.p_value < 0.05]
            for m, d in r.paired.items()
        ]
        out += "\n\nPaired bootstrap, model minus champion (p = one-sided P(model not better)):\n\n"
        out += _table(["Metric", "Diff", "95% CI low", "95% CI high", "p-value", "Better at 5%"], paired_rows)
    return out


def _md_calibration(r: EvaluationReport) -> str:
    head = f"ECE {_f(r.calibration.ece, 4)}, max bin gap {_f(r.calibration.max_calibration_error, 4)}.\n\n"
    rows = [
        [f"[{b.lower:.1f}, {b.upper:.1f})", b.count, b.mean_predicted, b.observed_rate]
        for b in r.calibration.bins
    ]
    return head + _table(["Bin", "Rows", "Mean predicted", "Observed rate"], rows)


def _md_slices(r: EvaluationReport) -> str:
    if not r.slices:
        return "No slice columns declared in the contract."
    rows = [
        [s.column, s.value, s.n, s.positives, s.prevalence, s.roc_auc, s.f1, s.mean_score]
        for rows_ in r.slices.values()
        for s in rows_
    ]
    return _table(["Column", "Value", "Rows", "Positives", "Prevalence", "ROC-AUC", "F1", "Mean score"], rows)


def _md_fairness(r: EvaluationReport) -> str:
    if not r.fairness:
        return "No protected attributes declared in the contract."
    summary = [
        [
            f.attribute,
            f.demographic_parity_ratio,
            f.equal_opportunity_difference,
            ", ".join(f.excluded_groups),
        ]
        for f in r.fairness.values()
    ]
    out = _table(["Attribute", "Demographic parity ratio", "Equal opportunity diff.", "Too small"], summary)
    groups = [
        [f.attribute, g.group, g.n, g.positives, g.positive_rate, g.tpr]
        for f in r.fairness.values()
        for g in f.groups
    ]
    return out + "\n\n" + _table(["Attribute", "Group", "Rows", "Positives", "Predicted rate", "TPR"], groups)


def _md_robustness(r: EvaluationReport) -> str:
    if not r.robustness:
        return "Not measured."
    head = f"Clean ROC-AUC {_f(r.metrics['roc_auc'].value)}; perturbed features: "
    head += ", ".join(f"`{f}`" for f in r.robustness[0].features) + ".\n\n"
    rows = [[x.perturbation, x.level, x.roc_auc, x.drop] for x in r.robustness]
    return head + _table(["Perturbation", "Level", "ROC-AUC", "Drop"], rows)


def _md_latency(r: EvaluationReport) -> str:
    if r.latency is None:
        return "Not measured."
    lat = r.latency
    rows = [
        ["Single row p50 (ms)", lat.single_row_p50_ms],
        ["Single row p95 (ms)", lat.single_row_p95_ms],
        ["Single row p99 (ms)", lat.single_row_p99_ms],
        [f"Batch throughput (rows/s, {lat.batch_rows} rows)", round(lat.batch_rows_per_s)],
    ]
    return _table(["Measure", "Value"], rows)


def _md_explanations(r: EvaluationReport) -> str:
    if not r.importance:
        return "Not computed: the model provides no per-feature contributions."
    head = (
        f"Global importance: mean |contribution| to the margin (log-odds) over the {r.n_rows} test rows, and "
        "the mean signed contribution (its direction). Per-feature contributions of each row add up to the "
        "model's margin. Figures: `importance.png`, and `dependence.png` for the top "
        f"{len(r.dependence)} features (each row's value against its contribution).\n\n"
    )
    rows = [[i.feature, i.mean_abs, i.mean] for i in r.importance[:TOP_IMPORTANCE]]
    return head + _table(["Feature", "Mean abs. contribution", "Mean contribution"], rows)


def _md_error_analysis(r: EvaluationReport) -> str:
    worst = [[w.entity, w.as_of, w.label, w.score, w.log_loss, "; ".join(w.reasons)] for w in r.worst_rows]
    out = f"### The {len(worst)} worst-predicted test rows (largest log loss)\n\n"
    out += _table(["Entity", "As of", "Label", "Score", "Log loss", "Top reasons (log-odds)"], worst)
    out += "\n\n### Slices with the largest calibration error\n\n"
    if not r.slice_calibration:
        return out + "No slice with enough rows (or no slice columns declared in the contract)."
    cal = [
        [s.column, s.value, s.n, s.mean_predicted, s.observed_rate, s.ece]
        for s in r.slice_calibration[:TOP_SLICES]
    ]
    return out + _table(["Column", "Value", "Rows", "Mean predicted", "Observed rate", "ECE"], cal)


_SECTION_RENDERERS: dict[str, Callable[[EvaluationReport], str]] = {
    "Metrics": _md_metrics,
    "Comparison": _md_comparison,
    "Calibration": _md_calibration,
    "Slices": _md_slices,
    "Fairness": _md_fairness,
    "Robustness": _md_robustness,
    "Latency": _md_latency,
    "Explanations": _md_explanations,
    "Error analysis": _md_error_analysis,
}


def to_markdown(r: EvaluationReport) -> str:
    title = f"# Evaluation: {r.contract_name} v{r.contract_version} (`{r.contract_fingerprint}`)"
    summary = (
        f"{r.n_rows} rows, {r.n_positives} positives (prevalence {_f(r.prevalence)}), "
        f"threshold {_f(r.threshold)}, {r.n_bootstrap} bootstrap resamples, seed {r.seed}."
    )
    parts = [title, summary]
    for section in SECTIONS:
        parts.append(f"## {section}")
        parts.append(_SECTION_RENDERERS[section](r))
    return "\n\n".join(parts) + "\n"


def figures(r: EvaluationReport) -> dict[str, bytes]:
    """ROC curve and reliability diagram as PNG bytes (Agg canvas; pyplot's global state untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def png(fig: Figure) -> bytes:
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()

    roc = Figure(figsize=(5, 5))
    ax = roc.add_subplot()
    fpr, tpr = roc_curve_points(r.y_true, r.scores)
    ax.plot(fpr, tpr, label=f"model (AUC {_f(r.metrics['roc_auc'].value)})", color="tab:blue")
    if r.champion_scores is not None and r.champion is not None:
        cf, ct = roc_curve_points(r.y_true, r.champion_scores)
        ax.plot(cf, ct, label=f"champion (AUC {_f(r.champion['roc_auc'].value)})", color="tab:orange")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="baseline (AUC 0.5)")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve", xlim=(0, 1))
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")

    rel = Figure(figsize=(5, 6))
    top, bottom = rel.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = [b for b in r.calibration.bins if b.count]
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.plot(
        [b.mean_predicted for b in filled],
        [b.observed_rate for b in filled],
        marker="o",
        color="tab:blue",
        label=f"model (ECE {_f(r.calibration.ece)})",
    )
    top.set(ylabel="Observed churn rate", title="Reliability diagram", xlim=(0, 1))
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    width = 1 / max(len(r.calibration.bins), 1)
    bottom.bar(
        [b.lower for b in r.calibration.bins],
        [b.count for b in r.calibration.bins],
        width=width,
        align="edge",
        color="tab:blue",
        alpha=0.6,
    )
    bottom.set(xlabel="Mean predicted probability", ylabel="Rows")
    out = {"roc_curve.png": png(roc), "reliability.png": png(rel)}
    if r.importance:
        out["importance.png"] = png(_importance_figure(r, Figure))
    if r.dependence:
        out["dependence.png"] = png(_dependence_figure(r, Figure))
    return out


def _importance_figure(r: EvaluationReport, figure: Callable[..., Any]) -> Any:
    top = r.importance[:TOP_IMPORTANCE][::-1]  # largest at the top of a horizontal bar chart
    fig = figure(figsize=(6, 0.35 * len(top) + 1.2))
    ax = fig.add_subplot()
    ax.barh([i.feature for i in top], [i.mean_abs for i in top], color="tab:blue")
    ax.set(xlabel="Mean |contribution| (log-odds)", title="Global feature importance")
    return fig


def _dependence_figure(r: EvaluationReport, figure: Callable[..., Any]) -> Any:
    fig = figure(figsize=(4.5 * len(r.dependence), 4))
    axes = np.atleast_1d(fig.subplots(1, len(r.dependence)))
    for ax, d in zip(axes, r.dependence, strict=True):
        if d.categorical:
            levels = sorted(set(d.values.tolist()))
            codes = np.array([levels.index(v) for v in d.values], dtype=float)
            jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(codes))
            ax.scatter(codes + jitter, d.contributions, s=6, alpha=0.4, color="tab:blue")
            ax.set_xticks(range(len(levels)), levels, rotation=45, ha="right")
        else:
            ax.scatter(d.values, d.contributions, s=6, alpha=0.4, color="tab:blue")
        ax.axhline(0, color="grey", linewidth=0.8, linestyle="--")
        ax.set(xlabel=d.feature, title=f"Dependence: {d.feature}")
    axes[0].set_ylabel("Contribution (log-odds)")
    fig.tight_layout()
    return fig


# --- model card ----------------------------------------------------------------------------------------------
def _limitations(r: EvaluationReport) -> list[str]:
    """Findings worth a reader's attention, derived from the numbers rather than written by hand."""
    out = []
    overall = r.metrics["roc_auc"].value
    for rows in r.slices.values():
        for s in rows:
            if s.roc_auc is None:
                out.append(f"ROC-AUC is undefined for {s.column}={s.value} ({s.n} rows, one class only).")
            elif s.n >= 30 and s.roc_auc < overall - 0.05:
                out.append(
                    f"Weaker ranking for {s.column}={s.value}: ROC-AUC {_f(s.roc_auc)} vs {_f(overall)} overall."
                )
    if r.calibration.ece > 0.05:
        out.append(
            f"Probabilities are not well calibrated (ECE {_f(r.calibration.ece)}); "
            "treat scores as a ranking unless recalibrated."
        )
    for f in r.fairness.values():
        if f.demographic_parity_ratio is not None and f.demographic_parity_ratio < 0.8:
            out.append(
                f"Predicted churn rates differ across {f.attribute} "
                f"(demographic parity ratio {_f(f.demographic_parity_ratio)})."
            )
        if f.excluded_groups:
            out.append(
                f"Groups of {f.attribute} too small to assess fairness: {', '.join(f.excluded_groups)}."
            )
    for x in r.robustness:
        if x.drop > 0.05:
            out.append(f"ROC-AUC drops by {_f(x.drop)} under {x.perturbation} at level {x.level:g}.")
    out.append(
        f"Evaluated on {r.n_rows} rows from a single, most recent time window; behaviour and data drift can "
        "degrade performance, so the model must be monitored and re-evaluated."
    )
    out.append("Scores are correlational: they do not say which intervention would prevent a churn.")
    return out


def model_card(
    report: EvaluationReport,
    *,
    model_name: str,
    version: str,
    contract: FeatureSetContract,
    training: Mapping[str, Any],
    lineage: Mapping[str, Any],
) -> str:
    """A Markdown model card built from the evaluation report, the contract and training/lineage facts."""
    m = report.metrics
    intended = (
        f"Scores each customer's probability of `{contract.label}` (churn within the label window after the "
        f"as-of date `{contract.as_of}`) to prioritise retention outreach. Customers with score >= "
        f"{_f(report.threshold)} are flagged. Not intended for pricing, credit or any decision with legal or "
        "similarly significant effect on an individual, nor for populations outside the training data."
    )
    data = _table(
        ["Item", "Value"],
        [
            ["Feature set", f"{contract.name} v{contract.version}"],
            ["Contract fingerprint", contract.fingerprint()],
            ["Entity key", contract.entity_key],
            ["As-of column", contract.as_of],
            ["Label", contract.label],
            ["Source", f"{contract.source.format}: {contract.source.path}" if contract.source else "n/a"],
            ["Test rows", report.n_rows],
            ["Test prevalence", report.prevalence],
        ],
    )
    features = _table(
        ["Feature", "Kind", "Description"], [[f.name, f.kind, f.description or ""] for f in contract.features]
    )
    train_rows = [[k, _short(v)] for k, v in training.items()]
    lineage_rows = [[k, _short(v)] for k, v in lineage.items()]
    headline = (
        f"ROC-AUC **{_ci_text(m['roc_auc'])}**, PR-AUC {_ci_text(m['pr_auc'])}, "
        f"F1@{_f(report.threshold)} {_ci_text(m['f1'])} (95% bootstrap CIs, {report.n_bootstrap} resamples)."
    )
    sections = [
        f"# Model card: {model_name} v{version}",
        "## Intended use",
        intended,
        "## Data",
        data,
        "## Features",
        features,
        "## Training",
        _table(["Item", "Value"], train_rows) if train_rows else "n/a",
        "## Metrics",
        headline + "\n\n" + _md_metrics(report),
        "## Comparison",
        _md_comparison(report),
        "## Slices",
        _md_slices(report),
        "## Fairness",
        _md_fairness(report),
        "## Calibration",
        _md_calibration(report),
        "## Robustness",
        _md_robustness(report),
        "## Limitations",
        "\n".join(f"- {x}" for x in _limitations(report)),
        "## Lineage",
        _table(["Item", "Value"], lineage_rows) if lineage_rows else "n/a",
    ]
    return "\n\n".join(sections) + "\n"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return _f(v, 4)
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_short(x)}" for k, x in v.items())
    return str(v)
