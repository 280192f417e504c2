"""A drift report for people: the Markdown table the UI shows, and the reference-vs-current histogram PNGs."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from functools import partial

from mlops_assets.monitoring.cbpe import LIMITATION
from mlops_assets.monitoring.drift_stats import CurrentCounts, DriftResult, proportions
from mlops_assets.monitoring.profile import ColumnProfile
from mlops_assets.monitoring.severity import DriftReport, Level

# --- rendering -------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _cell(text: str) -> str:
    """Table-safe text: a pipe in a column name would split the Markdown row."""
    return text.replace("|", "\\|")


def _floor_suffix(result: DriftResult, statistic: str, fmt: Callable[[float | None], str] = _fmt) -> str:
    """ " (floor)" after a statistic in the table; nothing when the result carries no noise floor for it."""
    value = getattr(result.noise_floor, statistic) if result.noise_floor is not None else None
    return "" if value is None else f" ({fmt(value)})"


def _estimate_lines(report: DriftReport) -> list[str]:
    """The label-free estimate, beside the realized metric once the labels are in."""
    e = report.estimate
    if e is None:
        return []
    realized = ""
    if report.current_metric is not None:
        inside = "inside" if e.contains(report.current_metric) else "outside"
        realized = f"; realized {report.current_metric:.3f}, {inside} the interval"
    return [
        f"- estimated {report.metric_name} without labels (CBPE): **{e.estimate:.3f}** "
        f"[{e.lower:.3f}, {e.upper:.3f}] (95 % of label draws), estimated drop **{report.estimated_level}**"
        f"{realized}; {LIMITATION}",
    ]


def render_markdown(report: DriftReport) -> str:
    """The report as Markdown: the decision first, then one row per column, most severe first."""
    s = report.summary
    metric = ""
    if report.baseline_metric is not None or report.current_metric is not None:
        metric = f" ({report.metric_name} {_fmt(report.baseline_metric)} -> {_fmt(report.current_metric)})"
    if report.performance_level is Level.PENDING:
        metric += " -- the day's labels have not arrived; the action rests on data drift" + (
            " and the label-free estimate below" if report.estimate is not None else " alone"
        )
    lines = [
        f"## Drift report: {report.action}",
        "",
        f"- data drift: **{s.level}** -- {len(s.drifted_columns)}/{s.n_columns} columns drifted "
        f"({_pct(s.drift_share)}), {len(s.critical_columns)} critical",
        f"- performance drop: **{report.performance_level}**{metric}",
        *_estimate_lines(report),
        f"- rows: reference {s.reference_rows:,}, current {s.current_rows:,}",
        "",
        "| column | kind | severity | n | PSI (floor) | JS (floor) | KS (floor) | chi2 p "
        "| null rate ref -> cur (floor) | out of range (floor) | reasons |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for a in s.columns:  # already sorted by severity, then PSI
        r = a.result
        floor = partial(_floor_suffix, r)
        p_value = "-" if r.chi2_p_value is None else f"{r.chi2_p_value:.2g}"
        n = f"{r.current_rows - r.current_null_count:,}"
        lines.append(
            f"| {_cell(r.column)} | {r.kind} | {a.severity} | {n} | {_fmt(r.psi)}{floor('psi')} "
            f"| {_fmt(r.js_distance)}{floor('js_distance')} | {_fmt(r.ks_statistic)}{floor('ks_statistic')} "
            f"| {p_value} | {_pct(r.reference_null_rate)} -> {_pct(r.current_null_rate)}"
            f"{floor('null_rate_change', _pct)} | {_pct(r.out_of_range_rate)}{floor('out_of_range_rate', _pct)} "
            f"| {'; '.join(a.reasons) or '-'} |"
        )
    if any(a.result.noise_floor is not None for a in s.columns):
        q = next(a.result.noise_floor.quantile for a in s.columns if a.result.noise_floor is not None)
        lines += [
            "",
            f"n: the day's non-null values. (floor): the statistic's {q:.1%} quantile with no drift at these "
            "sample sizes; a threshold below it is raised to it, so a small day does not warn on chance alone.",
        ]
    return "\n".join(lines) + "\n"


def histogram_png(profile_col: ColumnProfile, current_counts: CurrentCounts | Sequence[int]) -> bytes:
    """Reference vs current bin proportions of one column as a PNG (for the most drifted columns).

    Draws on an Agg canvas created here (no pyplot, no global backend switch), so it works in headless
    workers and threads and leaves the process' matplotlib state alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = current_counts.counts if isinstance(current_counts, CurrentCounts) else tuple(current_counts)
    if len(counts) != profile_col.n_bins:
        raise ValueError(f"{profile_col.name}: {len(counts)} counts for {profile_col.n_bins} bins")
    ref, cur = proportions(profile_col.counts), proportions(counts)
    labels = profile_col.bin_labels()
    xs = range(len(labels))
    fig = Figure(figsize=(max(6.0, 0.45 * len(labels)), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.4
    ax.bar([x - width / 2 for x in xs], ref, width, label="reference", color="#4c72b0")
    ax.bar([x + width / 2 for x in xs], cur, width, label="current", color="#dd8452")
    ax.set_xticks(list(xs), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of non-null values")
    ax.set_title(f"{profile_col.name} ({profile_col.kind})")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
