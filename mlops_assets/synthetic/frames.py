"""Helpers that build and read the simulation's pandas frames (dates, timestamps, customer ids)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd

from mlops_assets.synthetic.config import CHANNELS, PLANS, REGIONS
from mlops_assets.synthetic.parameters import _EPOCH_ORDINAL, _FEES
from mlops_assets.synthetic.state import _State

# --------------------------------------------------------------------------------------------------------
# Frame helpers
# --------------------------------------------------------------------------------------------------------


def _customer_ids(n: int) -> np.ndarray:
    return np.array([f"C{i + 1:06d}" for i in range(n)], dtype=object)


def _lookup(ords: np.ndarray, fn: Callable[[date], object]) -> np.ndarray:
    """Apply ``fn`` once per distinct day ordinal and broadcast (days repeat thousands of times)."""
    ords = np.asarray(ords, dtype=np.int64)
    if ords.size == 0:
        return np.zeros(0, dtype=object)
    uniq, inverse = np.unique(ords, return_inverse=True)
    table = np.empty(uniq.size, dtype=object)
    table[:] = [fn(date.fromordinal(int(o))) for o in uniq]
    return table[inverse.reshape(-1)]


def _date_objects(ords: np.ndarray) -> np.ndarray:
    return _lookup(ords, lambda d: d)


def _timestamps(ords: np.ndarray, secs: np.ndarray) -> np.ndarray:
    epoch_secs = (np.asarray(ords, dtype=np.int64) - _EPOCH_ORDINAL) * 86400 + np.asarray(
        secs, dtype=np.int64
    )
    return epoch_secs.astype("datetime64[s]").astype("datetime64[ns]")


def _customer_frame(
    state: _State, ids: np.ndarray, cust: np.ndarray, plan: np.ndarray, ords: np.ndarray, secs: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids[cust],
            "signup_date": _date_objects(state.signup_ord[cust]),
            "plan": np.array(PLANS, dtype=object)[plan],
            "region": np.array(REGIONS, dtype=object)[state.region[cust].astype(np.int64)],
            "age": state.age[cust].astype(np.int64),
            "acquisition_channel": np.array(CHANNELS, dtype=object)[state.channel[cust].astype(np.int64)],
            "monthly_fee": _FEES[plan],
            "updated_at": _timestamps(ords, secs),
        }
    )


def _ordinals_of_dates(values: pd.Series) -> np.ndarray:
    codes, uniques = pd.factorize(values)
    return np.array([d.toordinal() for d in uniques], dtype=np.int64)[codes]


def _ordinals_and_secs(ts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    epoch = ts.to_numpy().astype("datetime64[s]").astype(np.int64)
    days, secs = np.divmod(epoch, 86400)
    return days + _EPOCH_ORDINAL, secs


def _iso_timestamps(ords: np.ndarray, secs: np.ndarray) -> np.ndarray:
    days = _lookup(ords, lambda d: d.isoformat())
    clock = np.array(
        [f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in secs.tolist()], dtype=object
    )
    return days + clock if len(days) else days
