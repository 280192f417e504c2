"""A readout as the analyst reads it: Markdown tables (Dagster UI, MLflow) and one plot of the effects."""

from __future__ import annotations

import io
import math

from mlops_assets.experiments.readout import INVALID, EffectReadout, Readout
from mlops_assets.experiments.spec import ExperimentSpec


def _pct(x: float, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x * 100:+.2f} pts" if signed else f"{x:.1%}"


def _p(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.3g}"


def _effect_rows(e: EffectReadout) -> list[str]:
    return [
        f"| {e.comparison} | fixed horizon | {_pct(e.diff, True)} | [{_pct(e.ci_low, True)}, {_pct(e.ci_high, True)}] "
        f"| {_p(e.p_value)} | lift {_pct(e.relative_lift)} [{_pct(e.lift_ci_low)}, {_pct(e.lift_ci_high)}] |",
        f"| {e.comparison} | always-valid (mSPRT) | {_pct(e.diff, True)} | [{_pct(e.seq_low, True)}, "
        f"{_pct(e.seq_high, True)}] | {_p(e.seq_p_value)} | valid at every look |",
        f"| {e.comparison} | CUPED | {_pct(e.cuped_diff, True)} | [{_pct(e.cuped_ci_low, True)}, "
        f"{_pct(e.cuped_ci_high, True)}] | - | variance -{e.variance_reduction:.0%} |",
    ]


def markdown(r: Readout, spec: ExperimentSpec) -> str:
    """The readout: decision first, then validity, arms, effects; every number with its interval."""
    banner = "**READOUT INVALID**: " if r.decision == INVALID else ""
    lines = [
        f"# Experiment `{r.experiment}`: {banner}decision **{r.decision.upper()}**",
        "",
        f"_{spec.hypothesis}_",
        "",
        *[f"- {reason}" for reason in r.reasons],
        "",
        f"Outcomes known through {r.through}; look {r.look} of {r.waves} (waves whose {spec.horizon_days}-day "
        f"churn window has closed){'; the planned horizon' if r.at_horizon else ''}. Models: "
        + ", ".join(f"{arm} v{v}" for arm, v in r.versions.items()),
        "",
        "## Sample ratio",
        "",
        "| arm | planned | enrolled | share |",
        "|---|---|---|---|",
    ]
    total = sum(a.enrolled for a in r.arms) or 1
    for arm, a in zip(spec.arms, r.arms, strict=True):
        lines.append(f"| {a.arm} | {arm.weight:.0%} | {a.enrolled:,} | {a.enrolled / total:.1%} |")
    verdict = (
        "MISMATCH: the readout is invalid" if r.srm_p_value < spec.srm_alpha else "consistent with the plan"
    )
    lines += [
        "",
        f"Chi-square {r.srm_chi2:.2f}, p = {r.srm_p_value:.3g} (alarm below {spec.srm_alpha}): {verdict}.",
        "",
        f"## Churn within {spec.horizon_days} days, per arm",
        "",
        f"| arm | analysed | churned | rate | {1 - spec.alpha:.0%} CI (Wilson) | contacted | cost / customer |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in r.arms:
        lines.append(
            f"| {a.arm} | {a.final:,} | {a.churned:,} | {_pct(a.rate)} | [{_pct(a.ci_low)}, {_pct(a.ci_high)}] "
            f"| {_pct(a.contact_rate)} | {a.cost_per_customer:.2f} |"
        )
    lines += [
        "",
        "## Effects (treatment - control; negative = fewer churners)",
        "",
        "| comparison | readout | difference | interval | p-value | note |",
        "|---|---|---|---|---|---|",
    ]
    for e in ([r.primary] if r.primary else []) + list(r.secondary):
        lines += _effect_rows(e)
    lines += [
        "",
        f"Primary: {spec.comparison.describe()}. Planned: mde {spec.mde:.3f} on a baseline of {spec.baseline:.3f}, "
        f"power {spec.power:.0%}; alpha {spec.alpha} split as {spec.early_stop_alpha} for the always-valid early "
        f"stop and {spec.alpha_at_horizon:.3g} for the fixed-horizon test at the planned horizon.",
    ]
    return "\n".join(lines) + "\n"


def effects_png(r: Readout) -> bytes:
    """Each comparison's difference with its fixed-horizon, always-valid and CUPED intervals."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    effects = ([r.primary] if r.primary else []) + list(r.secondary)
    fig = Figure(figsize=(7, 1.2 + 1.1 * max(1, len(effects))))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, e in enumerate(effects):
        y = len(effects) - i
        for offset, (low, high, diff, label, color) in enumerate(
            [
                (e.ci_low, e.ci_high, e.diff, "fixed horizon", "tab:blue"),
                (e.seq_low, e.seq_high, e.diff, "always-valid", "tab:orange"),
                (e.cuped_ci_low, e.cuped_ci_high, e.cuped_diff, "CUPED", "tab:green"),
            ]
        ):
            yy = y + 0.25 - 0.25 * offset
            if not any(math.isnan(v) for v in (low, high, diff)):
                ax.plot([low * 100, high * 100], [yy, yy], color=color, lw=3, label=label if i == 0 else None)
                ax.plot([diff * 100], [yy], "o", color="black", ms=4)
    ax.axvline(0, color="grey", ls="--")
    ax.set_yticks(range(len(effects), 0, -1), [e.comparison for e in effects])
    ax.set_xlabel("difference in churn (percentage points)")
    ax.set_title(f"{r.experiment}: {r.decision} (look {r.look} of {r.waves})")
    if effects:
        ax.legend(loc="best", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()
