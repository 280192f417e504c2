"""The temporal split of a training set. Rows are customer snapshots at an as-of date, so the split is by
date (train < valid < test): a random split would let the model see the future of the very customers it is
scored on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_assets.ml.contract import ContractError


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    boundaries: dict[str, str]


def _iso(ts: pd.Timestamp) -> str:
    ts = pd.Timestamp(ts)
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def temporal_split(
    df: pd.DataFrame,
    as_of: str,
    valid_fraction: float = 0.15,
    test_fraction: float = 0.15,
    *,
    embargo_days: int = 0,
) -> Split:
    """Split by sorted distinct as-of dates so train dates < valid dates < test dates.

    ``embargo_days`` drops the last days before each later block: with a 30-day label, a training row dated
    the day before validation starts has a label observed *inside* the validation period. An embargo equal
    to the label horizon makes the evaluation mimic deployment exactly (at the cost of data).
    """
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError("valid_fraction and test_fraction must be in (0, 1) and sum to less than 1")
    if as_of not in df.columns:
        raise ContractError(f"as_of '{as_of}' is missing from the table")
    keys = pd.to_datetime(df[as_of])
    if keys.isna().any():
        raise ValueError(f"as_of '{as_of}' has {int(keys.isna().sum())} null value(s)")
    dates = np.sort(keys.unique())
    n = len(dates)
    if n < 3:
        raise ValueError(f"temporal_split needs at least 3 distinct {as_of!r} dates, got {n}")
    n_test = max(1, round(n * test_fraction))
    n_valid = max(1, round(n * valid_fraction))
    n_train = n - n_valid - n_test
    if n_train < 1:
        raise ValueError(f"{n} distinct dates leave no training dates with these fractions")
    valid_start, test_start = dates[n_train], dates[n_train + n_valid]
    embargo = pd.Timedelta(days=embargo_days)
    train_mask = (keys + embargo) < valid_start
    valid_mask = (keys >= valid_start) & ((keys + embargo) < test_start)
    test_mask = keys >= test_start
    parts = {"train": train_mask, "valid": valid_mask, "test": test_mask}
    for part, mask in parts.items():
        if not mask.any():
            raise ValueError(f"the {part} block is empty (embargo_days={embargo_days} over {n} dates)")
    boundaries = {}
    for part, mask in parts.items():
        boundaries[f"{part}_start"] = _iso(keys[mask].min())
        boundaries[f"{part}_end"] = _iso(keys[mask].max())
    return Split(
        train=df.loc[train_mask.to_numpy()],
        valid=df.loc[valid_mask.to_numpy()],
        test=df.loc[test_mask.to_numpy()],
        boundaries=boundaries,
    )
