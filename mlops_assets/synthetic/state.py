"""The simulation's mutable state: every customer ever seen as a struct of arrays, and the day-by-day output
collected for one concatenation at the end."""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------------------------------------
# Simulation state
# --------------------------------------------------------------------------------------------------------

_STATE_ARRAYS: dict[str, type] = {
    "signup_ord": np.int64,
    "churn_ord": np.int64,
    "signup_dom": np.int64,
    "plan": np.int8,
    "region": np.int8,
    "age": np.int64,
    "channel": np.int8,
    "payment": np.int8,
    "device_pref": np.int8,
    "engagement": np.float64,
    "session_len": np.float64,
    "price_sens": np.float64,
    "fail_p": np.float64,
    "momentum": np.float64,
    "disengaged": np.bool_,
    "ewm_short": np.float64,
    "ewm_long": np.float64,
    "ewm_tickets": np.float64,
    "fails": np.float64,
    "retry_ord": np.int64,
    "active": np.bool_,
    "updated_ord": np.int64,
    "updated_sec": np.int64,
    # Retention treatment: the last day of the customer's contact window (-1: none) and its hazard reduction.
    "treat_until_ord": np.int64,
    "treat_effect": np.float64,
}


class _State:
    """Struct-of-arrays for all customers ever seen; grows geometrically as customers sign up."""

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.capacity = max(capacity, 16)
        for name, dtype in _STATE_ARRAYS.items():
            setattr(self, name, np.zeros(self.capacity, dtype=dtype))

    def reserve(self, extra: int) -> None:
        if self.n + extra <= self.capacity:
            return
        new_capacity = max(2 * self.capacity, self.n + extra)
        for name, dtype in _STATE_ARRAYS.items():
            grown = np.zeros(new_capacity, dtype=dtype)
            grown[: self.n] = getattr(self, name)[: self.n]
            setattr(self, name, grown)
        self.capacity = new_capacity


class _Recorder:
    """Collects per-day output arrays; concatenated once at the end (no per-row Python work)."""

    def __init__(self) -> None:
        self.usage: list[tuple[np.ndarray, ...]] = []
        self.billing: list[tuple[np.ndarray, ...]] = []
        self.updates: list[tuple[np.ndarray, ...]] = []

    @staticmethod
    def _stack(parts: list[tuple[np.ndarray, ...]], width: int) -> list[np.ndarray]:
        if not parts:
            return [np.zeros(0) for _ in range(width)]
        return [np.concatenate([p[i] for p in parts]) for i in range(width)]
