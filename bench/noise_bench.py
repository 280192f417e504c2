"""Drift noise benchmark: how often small clean days warn, with the noise floor and with fixed thresholds, and
whether every injected scenario is still caught (``mlops_assets.synthetic.drift_study``; no Spark, ~1 min).

Both gradings run side by side on the same days: the synthetic source's stationary scenario over ``--seeds``
seeds, every day after the reference window cut to ``--rows-per-day`` rows, then each drift scenario at the
source's full daily size. ``detection`` counts (scenario, seed) pairs where exactly the scenario's drifted
columns were flagged and at least one went critical.
"""

from __future__ import annotations

import argparse

from mlops_assets.monitoring.severity import DriftThresholds
from mlops_assets.synthetic.drift_study import run_noise_study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench noise", description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-day", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args(argv)
    seeds = range(1, args.seeds + 1)
    print(
        f"# drift-noise-bench: synthetic source, {args.seeds} seeds, clean days at {args.rows_per_day} rows; "
        "noise floor (quantile 0.999) vs fixed thresholds on the same days",
        flush=True,
    )
    floor = run_noise_study(args.rows_per_day, seeds)
    fixed = run_noise_study(args.rows_per_day, seeds, DriftThresholds(noise_quantile=None))
    total = len(floor.detected) * len(floor.seeds)
    print(
        f"drift-noise-bench rows_per_day={args.rows_per_day} seeds={len(floor.seeds)} clean_days={floor.clean_days} "
        f"clean_warn_rate={floor.clean_warn_rate:.3f} clean_critical_days={floor.clean_critical_days} "
        f"fixed_threshold_warn_rate={fixed.clean_warn_rate:.3f} "
        f"detection={sum(floor.detected.values())}/{total} fixed_threshold_detection={sum(fixed.detected.values())}/{total}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
