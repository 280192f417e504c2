"""A seeded synthetic source system for a subscription business, and the daily landing files it emits.

Why it exists: the lakehouse needs a realistic, reproducible upstream. ``SyntheticSource.simulate`` gives the
clean ground truth (customers, daily usage, billing events, churn); ``write_landing`` turns each day of it
into the files a real upstream would drop, with the usual dirt (duplicates, late rows, nulls, malformed
lines, out-of-range values, unknown categories) and optional drift scenarios for the monitor to find.

Design notes:

* Every random draw comes from ``np.random.default_rng([seed, day ordinal, stream])``, so a day's data only
  depends on the config and the days before it: ``simulate(d1)`` is a prefix of ``simulate(d2)`` and the same
  config always writes identical bytes. Streams are separate per concern (usage, billing, churn, dirt, ...)
  so a scenario that changes one of them leaves the others untouched.
* Customers carry latent traits (engagement, price sensitivity). A customer may start to *disengage*: usage
  decays over the following weeks and the daily churn hazard, a logistic model of observed recent behaviour
  (usage trend, payment failures, support tickets, plan, tenure, age), rises with it. So churn is predictable
  from features with a lag of two to three weeks.
* Covariate-shift scenarios change what the source *reports* (minutes, sessions, device), not the latent
  behaviour that drives churn, so every other column is exactly as in ``"none"``. ``null_spike`` is a broken
  export and only touches the landing files. ``concept_shift`` changes the churn hazard itself.
* In ``Simulation`` frames, date columns hold ``datetime.date`` objects and timestamp columns are pandas
  ``datetime64[ns]``.
"""

from __future__ import annotations

import calendar
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

PLANS: tuple[str, ...] = ("basic", "standard", "premium")
PLAN_FEES: dict[str, float] = {"basic": 9.99, "standard": 15.99, "premium": 22.99}
REGIONS: tuple[str, ...] = ("NA", "EU", "APAC", "LATAM")
CHANNELS: tuple[str, ...] = ("organic", "paid_search", "referral", "partner")
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tv", "tablet")
PAYMENT_METHODS: tuple[str, ...] = ("card", "paypal", "bank_transfer")
EVENT_TYPES: tuple[str, ...] = ("charge", "payment_failed", "refund", "cancel")

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "signup_date",
    "plan",
    "region",
    "age",
    "acquisition_channel",
    "monthly_fee",
    "updated_at",
)
USAGE_COLUMNS: tuple[str, ...] = (
    "event_id",
    "customer_id",
    "event_date",
    "sessions",
    "minutes_used",
    "support_tickets",
    "device",
)
BILLING_COLUMNS: tuple[str, ...] = (
    "event_id",
    "customer_id",
    "event_ts",
    "event_type",
    "amount",
    "payment_method",
)
LANDING_FILES: dict[str, str] = {
    "customers": "customers.csv",
    "usage_events": "usage_events.jsonl",
    "billing_events": "billing_events.csv",
}

NULL_SPIKE_RATE = 0.4
DEFAULT_DRIFT_OFFSET_DAYS = 90


# --------------------------------------------------------------------------------------------------------
# Public configuration
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftScenario:
    """A named change in the source, and which columns a drift monitor should see move."""

    name: str
    description: str
    drifted_columns: tuple[str, ...]
    changes_label_relationship: bool


SCENARIOS: dict[str, DriftScenario] = {
    s.name: s
    for s in (
        DriftScenario("none", "Stationary source: no drift.", (), False),
        DriftScenario(
            "gradual_covariate_shift",
            "minutes_used mean rises linearly to +60% over 30 days and the device mix drifts toward tv.",
            ("minutes_used", "device"),
            False,
        ),
        DriftScenario(
            "sudden_covariate_shift",
            "From drift_start minutes_used is x1.8 and sessions +3 on average.",
            ("minutes_used", "sessions"),
            False,
        ),
        DriftScenario(
            "concept_shift",
            "Feature distributions unchanged, but churn is now driven by heavy usage and payment failures; "
            "declining usage and support tickets no longer predict it.",
            (),
            True,
        ),
        DriftScenario(
            "null_spike",
            "A broken upstream export: 40% of minutes_used and support_tickets arrive null in landing files.",
            ("minutes_used", "support_tickets"),
            False,
        ),
    )
}


def _check_rate(owner: str, name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{owner}{name} must be a number in [0, 1], got {value!r}")


@dataclass(frozen=True)
class DirtConfig:
    """Per-record rates of each kind of landing-file dirt (the simulation itself stays clean)."""

    duplicate_rate: float = 0.01
    late_rate: float = 0.02
    null_rate: float = 0.005
    malformed_rate: float = 0.002
    out_of_range_rate: float = 0.003
    unknown_category_rate: float = 0.002

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_rate("", f.name, getattr(self, f.name))

    @classmethod
    def clean(cls) -> DirtConfig:
        """No dirt at all: landing files are exactly the simulated rows."""
        return cls(**{f.name: 0.0 for f in fields(cls)})


@dataclass(frozen=True)
class SourceConfig:
    """Everything that determines the simulated source; equal configs give identical data.

    ``daily_signups`` is the mean of each day's Poisson sign-up count. ``scenario`` must be a key of
    ``SCENARIOS``; it takes effect on ``drift_start`` (default: start_date + 90 days).
    """

    seed: int = 42
    start_date: date = date(2026, 1, 1)
    initial_customers: int = 2000
    daily_signups: int = 12
    scenario: str = "none"
    drift_start: date | None = None
    dirt: DirtConfig = DirtConfig()

    def __post_init__(self) -> None:
        for name in ("seed", "initial_customers", "daily_signups"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {sorted(SCENARIOS)}, got {self.scenario!r}")
        if not isinstance(self.start_date, date):
            raise ValueError(f"start_date must be a datetime.date, got {self.start_date!r}")
        if self.drift_start is not None and (
            not isinstance(self.drift_start, date) or self.drift_start < self.start_date
        ):
            raise ValueError(f"drift_start must be a date on or after start_date, got {self.drift_start!r}")
        if not isinstance(self.dirt, DirtConfig):
            raise ValueError(f"dirt must be a DirtConfig, got {self.dirt!r}")
        for f in fields(self.dirt):
            _check_rate("dirt.", f.name, getattr(self.dirt, f.name))

    @property
    def effective_drift_start(self) -> date:
        """The first day a drift scenario applies (default: 90 days after start_date)."""
        if self.drift_start is not None:
            return self.drift_start
        return self.start_date + timedelta(days=DEFAULT_DRIFT_OFFSET_DAYS)


@dataclass
class Simulation:
    """Clean ground truth of the source from start_date through the simulated end date."""

    customers: pd.DataFrame
    usage: pd.DataFrame
    billing: pd.DataFrame
    churn: pd.DataFrame
    customer_updates: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(CUSTOMER_COLUMNS))
    )
    """Every customers.csv record: sign-ups and plan changes, with the attributes as of ``updated_at``."""


# --------------------------------------------------------------------------------------------------------
# Model parameters (private: tuned so a 30-day churn label is learnable with ~15-20% positives)
# --------------------------------------------------------------------------------------------------------

_STREAM_INIT = 1
_STREAM_SIGNUP = 2
_STREAM_LATENT = 3
_STREAM_USAGE = 4
_STREAM_BILLING = 5
_STREAM_CHURN = 6
_STREAM_PLAN = 7
_STREAM_DRIFT = 8
_STREAM_LATE = 20
_STREAM_DIRT = {"customers": 21, "usage_events": 22, "billing_events": 23}
_STREAM_NULL_SPIKE = 24

_WARMUP_DAYS = 60
_INITIAL_HISTORY_DAYS = 730
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Cut points on log(engagement) + N(0, 0.5) (sd ~0.67) giving a 45/35/20 basic/standard/premium mix.
_PLAN_SCORE_CUTS = np.array([-0.085, 0.566])
_REGION_MIX = np.array([0.40, 0.30, 0.20, 0.10])
_CHANNEL_MIX = np.array([0.40, 0.30, 0.20, 0.10])
_DEVICE_MIX = np.array([0.45, 0.25, 0.20, 0.10])
_PAYMENT_MIX = np.array([0.65, 0.25, 0.10])
_FEES = np.array([PLAN_FEES[p] for p in PLANS])
_TV = DEVICES.index("tv")

_SESSIONS_PER_DAY = 2.0
_DEVICE_LOYALTY = 0.75
_WEEKEND_FACTOR = 1.15
_ALPHA_SHORT = 2.0 / (14 + 1)
_ALPHA_LONG = 2.0 / (60 + 1)
_ALPHA_TICKETS = 2.0 / (14 + 1)
_FAIL_DECAY = 0.95
_RETRY_AFTER_DAYS = 3

_ONSET_BASE = 0.008
_DECAY_WHEN_DISENGAGED = 0.88
_MOMENTUM_FLOOR = 0.03
_RECOVERY_PROB = 0.01
_RECOVERY_SPEED = 0.12

_HAZARD_INTERCEPT = -8.0
_HAZARD_TREND = -4.5
_HAZARD_FAILS = 0.9
_HAZARD_TICKETS = 0.35
_HAZARD_PLAN = np.array([0.25, 0.0, -0.2])
_HAZARD_CHANNEL = np.array([0.0, 0.2, -0.25, 0.0])
_HAZARD_NEW_CUSTOMER = 0.6
_HAZARD_AGE = -0.012

_CONCEPT_INTERCEPT = -5.3
_CONCEPT_LEVEL = 0.5
_CONCEPT_TREND = 2.5
_CONCEPT_FAILS = 0.9
# Under concept shift a dip in usage ends in recovery rather than churn; this rate keeps the share of
# low-usage customer-days (and so the feature distributions) about where churn kept it.
_CONCEPT_RECOVERY_PROB = 0.06

_PLAN_CHANGE_RATE = 0.002
_REFUND_RATE = 0.0008

_GRADUAL_DAYS = 30
_GRADUAL_MINUTES_LIFT = 0.6
_GRADUAL_TV_SHARE = 0.4
_SUDDEN_MINUTES_FACTOR = 1.8
_SUDDEN_EXTRA_SESSIONS = 3.0


def _rng(seed: int, ordinal: int, stream: int) -> np.random.Generator:
    """The generator for one (seed, day, concern): what makes days independent and prefix-stable."""
    return np.random.default_rng([int(seed), int(ordinal), int(stream)])


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


def _usage_multiplier_and_extra(scenario: str, elapsed: int) -> tuple[float, float, float]:
    """(minutes factor, mean extra sessions, tv share) a covariate scenario adds on a day ``elapsed`` >= 0."""
    if scenario == "gradual_covariate_shift":
        frac = min(1.0, (elapsed + 1) / _GRADUAL_DAYS)
        return 1.0 + _GRADUAL_MINUTES_LIFT * frac, 0.0, _GRADUAL_TV_SHARE * frac
    if scenario == "sudden_covariate_shift":
        return _SUDDEN_MINUTES_FACTOR, _SUDDEN_EXTRA_SESSIONS, 0.0
    return 1.0, 0.0, 0.0


class SyntheticSource:
    """Deterministic subscription source system: simulate ground truth and write dirty daily landing files."""

    def __init__(self, config: SourceConfig) -> None:
        if not isinstance(config, SourceConfig):
            raise ValueError(f"config must be a SourceConfig, got {config!r}")
        self.config = config

    # ----------------------------------------------------------------------------------------------------
    # Simulation
    # ----------------------------------------------------------------------------------------------------

    def simulate(self, end_date: date) -> Simulation:
        """Clean ground truth from start_date through end_date inclusive."""
        cfg = self.config
        if not isinstance(end_date, date) or end_date < cfg.start_date:
            raise ValueError(
                f"end_date must be a date on or after start_date {cfg.start_date}, got {end_date!r}"
            )
        start = cfg.start_date.toordinal()
        end = end_date.toordinal()
        state = _State(cfg.initial_customers + cfg.daily_signups * (end - start + 1) + 64)

        init_rng = _rng(cfg.seed, start, _STREAM_INIT)
        signup_ords = start - init_rng.integers(1, _INITIAL_HISTORY_DAYS + 1, size=cfg.initial_customers)
        self._add_customers(state, init_rng, np.sort(signup_ords), start)
        for ordinal in range(start - _WARMUP_DAYS, start):
            self._step(state, ordinal, None)
        state.retry_ord[: state.n] = -1  # warm-up retries belong to nobody's file

        recorder = _Recorder()
        initial_ids = np.arange(state.n)
        secs = init_rng.integers(0, 86400, size=state.n)
        state.updated_ord[: state.n] = start
        state.updated_sec[: state.n] = secs
        recorder.updates.append(
            (initial_ids, np.full(state.n, start), secs, state.plan[: state.n].astype(np.int64))
        )
        for ordinal in range(start, end + 1):
            self._step(state, ordinal, recorder)
        return self._build_simulation(state, recorder)

    def _add_customers(
        self, state: _State, rng: np.random.Generator, signup_ords: np.ndarray, now: int
    ) -> None:
        """Append customers with freshly drawn traits; their usage history starts at its expected level."""
        k = len(signup_ords)
        if k == 0:
            return
        state.reserve(k)
        sl = slice(state.n, state.n + k)
        engagement = rng.lognormal(0.0, 0.45, size=k)
        session_len = rng.lognormal(np.log(16.0), 0.3, size=k)
        price_sens = rng.beta(2.0, 5.0, size=k)
        # Heavier users lean to pricier plans; everyone else follows the base mix.
        plan_score = np.log(engagement) + rng.normal(0.0, 0.5, size=k)
        plan = np.searchsorted(_PLAN_SCORE_CUTS, plan_score)
        region = rng.choice(len(REGIONS), size=k, p=_REGION_MIX)
        channel = rng.choice(len(CHANNELS), size=k, p=_CHANNEL_MIX)
        age = np.clip(np.round(rng.normal(38.0, 12.0, size=k)), 18, 80).astype(np.int64)
        payment = rng.choice(len(PAYMENT_METHODS), size=k, p=_PAYMENT_MIX)
        device_pref = rng.choice(len(DEVICES), size=k, p=_DEVICE_MIX)

        state.signup_ord[sl] = signup_ords
        state.churn_ord[sl] = -1
        state.signup_dom[sl] = [date.fromordinal(int(o)).day for o in signup_ords]
        state.plan[sl] = plan
        state.region[sl] = region
        state.channel[sl] = channel
        state.age[sl] = age
        state.payment[sl] = payment
        state.device_pref[sl] = device_pref
        state.engagement[sl] = engagement
        state.session_len[sl] = session_len
        state.price_sens[sl] = price_sens
        state.fail_p[sl] = np.clip(0.015 + 0.12 * price_sens + 0.03 * (payment == 2), 0.0, 0.5)
        state.momentum[sl] = 1.0
        state.disengaged[sl] = False
        expected = _SESSIONS_PER_DAY * engagement * session_len
        state.ewm_short[sl] = expected
        state.ewm_long[sl] = expected
        state.ewm_tickets[sl] = 0.0
        state.fails[sl] = 0.0
        state.retry_ord[sl] = -1
        state.active[sl] = True
        state.updated_ord[sl] = now
        state.updated_sec[sl] = 0
        state.n += k

    def _hazard(self, state: _State, idx: np.ndarray, ordinal: int, concept: bool) -> np.ndarray:
        """Daily churn probability: a logistic model of each customer's recent observed behaviour."""
        trend = np.log((state.ewm_short[idx] + 3.0) / (state.ewm_long[idx] + 3.0))
        fails = np.minimum(state.fails[idx], 3.0)
        tenure = np.maximum(ordinal - state.signup_ord[idx], 0)
        if concept:
            level = np.log1p(state.ewm_long[idx])
            z = (level - level.mean()) / (level.std() + 1e-9) if idx.size > 1 else level * 0.0
            logit = _CONCEPT_INTERCEPT + _CONCEPT_LEVEL * z + _CONCEPT_TREND * trend + _CONCEPT_FAILS * fails
        else:
            logit = (
                _HAZARD_INTERCEPT
                + _HAZARD_TREND * trend
                + _HAZARD_FAILS * fails
                + _HAZARD_TICKETS * np.minimum(14.0 * state.ewm_tickets[idx], 4.0)
                + _HAZARD_PLAN[state.plan[idx]]
                + _HAZARD_CHANNEL[state.channel[idx]]
                + _HAZARD_NEW_CUSTOMER * np.exp(-tenure / 45.0)
                + _HAZARD_AGE * (state.age[idx] - 38)
            )
        return 1.0 / (1.0 + np.exp(-logit))

    def _step(self, state: _State, ordinal: int, rec: _Recorder | None) -> None:
        """Advance one day. ``rec is None`` is the unrecorded warm-up, where churners are replaced."""
        cfg = self.config
        seed = cfg.seed
        day = date.fromordinal(ordinal)
        warmup = rec is None
        drift_ord = cfg.effective_drift_start.toordinal()
        drifting = cfg.scenario != "none" and ordinal >= drift_ord

        # 1. Sign-ups (active from today; cannot churn today).
        if not warmup:
            s_rng = _rng(seed, ordinal, _STREAM_SIGNUP)
            k = int(s_rng.poisson(cfg.daily_signups)) if cfg.daily_signups > 0 else 0
            first = state.n
            self._add_customers(state, s_rng, np.full(k, ordinal, dtype=np.int64), ordinal)
            new_ids = np.arange(first, state.n)
            secs = s_rng.integers(0, 86400, size=k)
            state.updated_sec[new_ids] = secs
            rec.updates.append((new_ids, np.full(k, ordinal), secs, state.plan[new_ids].astype(np.int64)))
        n = state.n
        active = state.active[:n]
        existing = (
            np.flatnonzero(active & (state.signup_ord[:n] < ordinal))
            if not warmup
            else np.flatnonzero(active)
        )

        # 2. Churn, decided from behaviour up to yesterday.
        c_rng = _rng(seed, ordinal, _STREAM_CHURN)
        concept = cfg.scenario == "concept_shift" and drifting
        p = self._hazard(state, existing, ordinal, concept)
        churned = existing[c_rng.random(existing.size) < p]
        cancel_secs = c_rng.integers(0, 86400, size=churned.size)
        if warmup:
            self._reset_behaviour(state, churned)
        else:
            state.active[churned] = False
            state.churn_ord[churned] = ordinal
            state.retry_ord[churned] = -1

        # 3. Plan changes among the customers who stay (not on the first day: its file is the snapshot).
        if not warmup and ordinal > cfg.start_date.toordinal():
            self._plan_changes(state, ordinal, rec)

        idx = np.flatnonzero(state.active[:n])

        # 4. Latent engagement: onset of disengagement, recovery, momentum.
        l_rng = _rng(seed, ordinal, _STREAM_LATENT)
        onset_q = (
            _ONSET_BASE
            * (0.6 + 1.6 * state.price_sens[idx])
            * (1.0 + 0.8 * np.minimum(state.fails[idx], 3.0))
            * (1.0 + 0.4 * np.minimum(14.0 * state.ewm_tickets[idx], 4.0))
            / np.sqrt(state.engagement[idx])
        )
        u_onset = l_rng.random(idx.size)
        u_recover = l_rng.random(idx.size)
        dis = state.disengaged[idx]
        recovery = _CONCEPT_RECOVERY_PROB if concept else _RECOVERY_PROB
        dis = np.where(dis, u_recover >= recovery, u_onset < onset_q)
        state.disengaged[idx] = dis
        m = state.momentum[idx]
        state.momentum[idx] = np.where(
            dis, np.maximum(m * _DECAY_WHEN_DISENGAGED, _MOMENTUM_FLOOR), m + _RECOVERY_SPEED * (1.0 - m)
        )

        # 5. Usage (base behaviour drives the state; scenarios only change what is reported).
        u_rng = _rng(seed, ordinal, _STREAM_USAGE)
        weekday = _WEEKEND_FACTOR if day.weekday() >= 5 else 1.0
        mom = state.momentum[idx]
        sessions = u_rng.poisson(_SESSIONS_PER_DAY * state.engagement[idx] * mom * weekday)
        minutes = np.round(u_rng.gamma(2.0 * sessions, state.session_len[idx] / 2.0), 1)
        ticket_rate = 0.015 + 0.06 * (1.0 - mom) + 0.05 * np.minimum(state.fails[idx], 2.0)
        tickets = u_rng.poisson(ticket_rate)
        loyal = u_rng.random(idx.size) < _DEVICE_LOYALTY
        other = u_rng.choice(len(DEVICES), size=idx.size, p=_DEVICE_MIX)
        device = np.where(loyal, state.device_pref[idx], other)

        state.ewm_short[idx] += _ALPHA_SHORT * (minutes - state.ewm_short[idx])
        state.ewm_long[idx] += _ALPHA_LONG * (minutes - state.ewm_long[idx])
        state.ewm_tickets[idx] += _ALPHA_TICKETS * (tickets - state.ewm_tickets[idx])
        state.fails[:n] *= _FAIL_DECAY

        if rec is not None:
            rep_sessions, rep_minutes, rep_device = sessions, minutes, device
            if drifting and cfg.scenario in ("gradual_covariate_shift", "sudden_covariate_shift"):
                factor, extra, tv_share = _usage_multiplier_and_extra(cfg.scenario, ordinal - drift_ord)
                d_rng = _rng(seed, ordinal, _STREAM_DRIFT)
                rep_minutes = np.round(minutes * factor, 1)
                if extra > 0:
                    rep_sessions = sessions + d_rng.poisson(extra, size=idx.size)
                if tv_share > 0:
                    rep_device = np.where(d_rng.random(idx.size) < tv_share, _TV, device)
            rec.usage.append(
                (idx, np.full(idx.size, ordinal), rep_sessions, rep_minutes, tickets, rep_device)
            )

        # 6. Billing: monthly charge on the billing day, one retry after a failure, rare refunds, cancels.
        self._billing(state, idx, day, churned, cancel_secs, rec)

    def _reset_behaviour(self, state: _State, ids: np.ndarray) -> None:
        """Warm-up only: a churner is replaced by a fresh customer with the same traits."""
        expected = _SESSIONS_PER_DAY * state.engagement[ids] * state.session_len[ids]
        state.momentum[ids] = 1.0
        state.disengaged[ids] = False
        state.ewm_short[ids] = expected
        state.ewm_long[ids] = expected
        state.ewm_tickets[ids] = 0.0
        state.fails[ids] = 0.0
        state.retry_ord[ids] = -1

    def _plan_changes(self, state: _State, ordinal: int, rec: _Recorder) -> None:
        """A small daily rate of upgrades (engaged customers) and downgrades (price-sensitive ones)."""
        n = state.n
        cand = np.flatnonzero(state.active[:n] & (state.signup_ord[:n] < ordinal))
        p_rng = _rng(self.config.seed, ordinal, _STREAM_PLAN)
        change = cand[p_rng.random(cand.size) < _PLAN_CHANGE_RATE]
        up_p = np.clip(
            0.5 + 0.4 * np.log(state.engagement[change]) - 0.8 * (state.price_sens[change] - 0.29), 0.05, 0.95
        )
        up = p_rng.random(change.size) < up_p
        plan = state.plan[change].astype(np.int64)
        plan = np.where(up, plan + 1, plan - 1)
        plan = np.where(plan > 2, 1, np.where(plan < 0, 1, plan))  # at the edge the only move is inward
        secs = p_rng.integers(0, 86400, size=change.size)
        state.plan[change] = plan
        state.updated_ord[change] = ordinal
        state.updated_sec[change] = secs
        rec.updates.append((change, np.full(change.size, ordinal), secs, plan))

    def _billing(
        self,
        state: _State,
        idx: np.ndarray,
        day: date,
        churned: np.ndarray,
        cancel_secs: np.ndarray,
        rec: _Recorder | None,
    ) -> None:
        ordinal = day.toordinal()
        b_rng = _rng(self.config.seed, ordinal, _STREAM_BILLING)
        days_in_month = calendar.monthrange(day.year, day.month)[1]
        due = np.minimum(state.signup_dom[idx], days_in_month) == day.day
        retry = state.retry_ord[idx] == ordinal
        attempt = idx[due | retry]
        is_retry = (retry & ~due)[due | retry]
        failed = b_rng.random(attempt.size) < state.fail_p[attempt]
        state.fails[attempt[failed]] += 1.0
        state.retry_ord[attempt] = -1
        state.retry_ord[attempt[failed & ~is_retry]] = ordinal + _RETRY_AFTER_DAYS
        refund = idx[b_rng.random(idx.size) < _REFUND_RATE]
        refund_frac = b_rng.uniform(0.2, 1.0, size=refund.size)
        attempt_secs = b_rng.integers(0, 86400, size=attempt.size)
        refund_secs = b_rng.integers(0, 86400, size=refund.size)
        if rec is None:
            return
        ids = np.concatenate([attempt, refund, churned])
        types = np.concatenate(
            [np.where(failed, 1, 0), np.full(refund.size, 2), np.full(churned.size, 3)]
        ).astype(np.int64)
        amounts = np.concatenate(
            [
                _FEES[state.plan[attempt].astype(np.int64)],
                np.round(_FEES[state.plan[refund].astype(np.int64)] * refund_frac, 2),
                np.zeros(churned.size),
            ]
        )
        secs = np.concatenate([attempt_secs, refund_secs, cancel_secs])
        rec.billing.append(
            (ids, np.full(ids.size, ordinal), secs, types, amounts, state.payment[ids].astype(np.int64))
        )

    def _build_simulation(self, state: _State, rec: _Recorder) -> Simulation:
        """Turn the recorded per-day arrays into the public, sorted ground-truth frames."""
        n = state.n
        ids = _customer_ids(n)

        u_cust, u_ord, u_sess, u_min, u_tix, u_dev = _Recorder._stack(rec.usage, 6)
        u_cust, u_ord = u_cust.astype(np.int64), u_ord.astype(np.int64)
        order = np.lexsort((u_cust, u_ord))
        u_cust, u_ord = u_cust[order], u_ord[order]
        usage = pd.DataFrame(
            {
                "event_id": "U" + _lookup(u_ord, lambda d: d.strftime("%Y%m%d")) + "-" + ids[u_cust],
                "customer_id": ids[u_cust],
                "event_date": _date_objects(u_ord),
                "sessions": u_sess[order].astype(np.int64),
                "minutes_used": u_min[order].astype(np.float64),
                "support_tickets": u_tix[order].astype(np.int64),
                "device": np.array(DEVICES, dtype=object)[u_dev[order].astype(np.int64)],
            }
        )

        parts = _Recorder._stack(rec.billing, 6)
        b_cust, b_ord, b_sec, b_type, b_pay = (parts[i].astype(np.int64) for i in (0, 1, 2, 3, 5))
        b_amt = parts[4].astype(np.float64)
        order = np.lexsort((b_type, b_cust, b_sec, b_ord))
        b_cust, b_ord, b_sec, b_type, b_amt, b_pay = (
            a[order] for a in (b_cust, b_ord, b_sec, b_type, b_amt, b_pay)
        )
        seq = np.arange(b_ord.size) - np.searchsorted(b_ord, b_ord, side="left") + 1
        seq_str = np.array([f"{s:06d}" for s in seq.tolist()], dtype=object)
        billing = pd.DataFrame(
            {
                "event_id": "B" + _lookup(b_ord, lambda d: d.strftime("%Y%m%d")) + "-" + seq_str,
                "customer_id": ids[b_cust],
                "event_ts": _timestamps(b_ord, b_sec),
                "event_type": np.array(EVENT_TYPES, dtype=object)[b_type],
                "amount": b_amt,
                "payment_method": np.array(PAYMENT_METHODS, dtype=object)[b_pay],
            }
        )

        c_cust, c_ord, c_sec, c_plan = (a.astype(np.int64) for a in _Recorder._stack(rec.updates, 4))
        order = np.lexsort((c_cust, c_sec, c_ord))
        c_cust, c_ord, c_sec, c_plan = (a[order] for a in (c_cust, c_ord, c_sec, c_plan))
        customer_updates = _customer_frame(state, ids, c_cust, c_plan, c_ord, c_sec)
        customers = _customer_frame(
            state,
            ids,
            np.arange(n),
            state.plan[:n].astype(np.int64),
            state.updated_ord[:n],
            state.updated_sec[:n],
        )

        churned = np.flatnonzero(state.churn_ord[:n] >= 0)
        churned = churned[np.lexsort((churned, state.churn_ord[churned]))]
        churn = pd.DataFrame(
            {"customer_id": ids[churned], "churn_date": _date_objects(state.churn_ord[churned])}
        )
        return Simulation(customers, usage, billing, churn, customer_updates)

    # ----------------------------------------------------------------------------------------------------
    # Landing files
    # ----------------------------------------------------------------------------------------------------

    def write_landing(self, root: Path, days: Iterable[date]) -> dict[date, dict[str, Path]]:
        """Write root/<YYYY-MM-DD>/{customers.csv, usage_events.jsonl, billing_events.csv} for each day.

        Simulates once up to the last day. Each file is written to a temp file and renamed into place, so a
        killed writer never leaves half a file, and re-writing a day yields byte-identical files.
        Returns {day: {"customers" | "usage_events" | "billing_events": path}}.
        """
        wanted = sorted(set(days))
        if not wanted:
            return {}
        for d in wanted:
            if not isinstance(d, date) or d < self.config.start_date:
                raise ValueError(
                    f"days must be dates on or after start_date {self.config.start_date}, got {d!r}"
                )
        renderer = _LandingRenderer(self.config, self.simulate(wanted[-1]), wanted[0].toordinal())
        written: dict[date, dict[str, Path]] = {}
        for d in wanted:
            folder = Path(root) / d.isoformat()
            paths: dict[str, Path] = {}
            for table, filename in LANDING_FILES.items():
                path = folder / filename
                _atomic_write(path, renderer.render(table, d.toordinal()))
                paths[table] = path
            written[d] = paths
        return written


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


# --------------------------------------------------------------------------------------------------------
# Landing rendering and dirt
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TableSpec:
    """How one landing file is typed, formatted and dirtied."""

    columns: tuple[tuple[str, str], ...]  # (name, kind); kind in str | int | f1 | f2
    fmt: str  # csv | jsonl
    nullable: tuple[str, ...]
    out_of_range: tuple[str, ...]
    unknown: tuple[tuple[str, str], ...]  # (column, unknown category)
    numeric_for_malformed: str | None


_SPECS: dict[str, _TableSpec] = {
    "customers": _TableSpec(
        columns=(
            ("customer_id", "str"),
            ("signup_date", "str"),
            ("plan", "str"),
            ("region", "str"),
            ("age", "int"),
            ("acquisition_channel", "str"),
            ("monthly_fee", "f2"),
            ("updated_at", "str"),
        ),
        fmt="csv",
        nullable=("plan", "region", "age", "acquisition_channel", "monthly_fee"),
        out_of_range=("age", "monthly_fee"),
        unknown=(("plan", "platinum"), ("region", "MARS")),
        numeric_for_malformed="monthly_fee",
    ),
    "usage_events": _TableSpec(
        columns=(
            ("event_id", "str"),
            ("customer_id", "str"),
            ("event_date", "str"),
            ("sessions", "int"),
            ("minutes_used", "f1"),
            ("support_tickets", "int"),
            ("device", "str"),
        ),
        fmt="jsonl",
        nullable=("sessions", "minutes_used", "support_tickets", "device"),
        out_of_range=("minutes_used", "sessions"),
        unknown=(("device", "smartwatch"),),
        numeric_for_malformed=None,
    ),
    "billing_events": _TableSpec(
        columns=(
            ("event_id", "str"),
            ("customer_id", "str"),
            ("event_ts", "str"),
            ("event_type", "str"),
            ("amount", "f2"),
            ("payment_method", "str"),
        ),
        fmt="csv",
        nullable=("amount", "payment_method"),
        out_of_range=("amount",),
        unknown=(("payment_method", "crypto"),),
        numeric_for_malformed="amount",
    ),
}


def _out_of_range_value(column: str, value: float, noise: float) -> float:
    """A value no valid record can have: negative minutes/amounts/fees, sessions -3, age 150."""
    if column == "age":
        return 150.0
    if column == "sessions":
        return -3.0
    magnitude = 0.0 if np.isnan(value) else abs(value)
    return -round(magnitude + noise, 1 if column == "minutes_used" else 2)


class _LandingRenderer:
    """Typed columns of the simulation, sliced per landing day, dirtied and formatted."""

    def __init__(self, cfg: SourceConfig, sim: Simulation, first_ord: int) -> None:
        self.cfg = cfg
        self.null_spike_from = cfg.effective_drift_start.toordinal() if cfg.scenario == "null_spike" else None
        cu = sim.customer_updates
        c_ord, c_sec = _ordinals_and_secs(cu["updated_at"])
        self.customers = {
            "customer_id": cu["customer_id"].to_numpy(dtype=object),
            "signup_date": _lookup(_ordinals_of_dates(cu["signup_date"]), lambda d: d.isoformat()),
            "plan": cu["plan"].to_numpy(dtype=object),
            "region": cu["region"].to_numpy(dtype=object),
            "age": cu["age"].to_numpy(dtype=np.float64),
            "acquisition_channel": cu["acquisition_channel"].to_numpy(dtype=object),
            "monthly_fee": cu["monthly_fee"].to_numpy(dtype=np.float64),
            "updated_at": _iso_timestamps(c_ord, c_sec),
        }
        self.customer_ord = c_ord

        us = sim.usage
        u_ord = _ordinals_of_dates(us["event_date"])
        self.usage = {
            "event_id": us["event_id"].to_numpy(dtype=object),
            "customer_id": us["customer_id"].to_numpy(dtype=object),
            "event_date": _lookup(u_ord, lambda d: d.isoformat()),
            "sessions": us["sessions"].to_numpy(dtype=np.float64),
            "minutes_used": us["minutes_used"].to_numpy(dtype=np.float64),
            "support_tickets": us["support_tickets"].to_numpy(dtype=np.float64),
            "device": us["device"].to_numpy(dtype=object),
        }
        self.usage_ord = u_ord
        self.usage_delivery = self._delivery_days(u_ord, first_ord)

        bi = sim.billing
        b_ord, b_sec = _ordinals_and_secs(bi["event_ts"])
        self.billing = {
            "event_id": bi["event_id"].to_numpy(dtype=object),
            "customer_id": bi["customer_id"].to_numpy(dtype=object),
            "event_ts": _iso_timestamps(b_ord, b_sec),
            "event_type": bi["event_type"].to_numpy(dtype=object),
            "amount": bi["amount"].to_numpy(dtype=np.float64),
            "payment_method": bi["payment_method"].to_numpy(dtype=object),
        }
        self.billing_ord = b_ord

    def _delivery_days(self, event_ords: np.ndarray, first_ord: int) -> np.ndarray:
        """The file day each usage row lands in: its event day, or 1-3 days later for late rows."""
        delivery = event_ords.copy()
        rate = self.cfg.dirt.late_rate
        if rate <= 0 or event_ords.size == 0:
            return delivery
        for o in range(max(first_ord - 3, int(event_ords[0])), int(event_ords[-1]) + 1):
            lo, hi = np.searchsorted(event_ords, [o, o + 1])
            rng = _rng(self.cfg.seed, o, _STREAM_LATE)
            late = rng.random(hi - lo) < rate
            delay = rng.integers(1, 4, size=hi - lo)
            delivery[lo:hi] = o + np.where(late, delay, 0)
        return delivery

    def render(self, table: str, ordinal: int) -> bytes:
        """The exact bytes of one table's landing file for one day."""
        if table == "usage_events":
            rows = np.flatnonzero(self.usage_delivery == ordinal)
            on_time = self.usage_ord[rows] == ordinal
            rows = np.concatenate([rows[on_time], rows[~on_time]])
            cols = {k: v[rows] for k, v in self.usage.items()}
            if self.null_spike_from is not None and ordinal >= self.null_spike_from:
                rng = _rng(self.cfg.seed, ordinal, _STREAM_NULL_SPIKE)
                for name in ("minutes_used", "support_tickets"):
                    cols[name][rng.random(rows.size) < NULL_SPIKE_RATE] = np.nan
        else:
            source, ords = (
                (self.customers, self.customer_ord)
                if table == "customers"
                else (self.billing, self.billing_ord)
            )
            lo, hi = np.searchsorted(ords, [ordinal, ordinal + 1])
            cols = {k: v[lo:hi].copy() for k, v in source.items()}
        spec = _SPECS[table]
        rng = _rng(self.cfg.seed, ordinal, _STREAM_DIRT[table])
        _apply_value_dirt(spec, cols, self.cfg.dirt, rng)
        lines = _format_lines(spec, cols)
        lines = _apply_line_dirt(spec, lines, self.cfg.dirt, rng)
        if spec.fmt == "csv":
            lines = [",".join(name for name, _ in spec.columns), *lines]
        return "".join(line + "\n" for line in lines).encode("utf-8")


def _apply_value_dirt(
    spec: _TableSpec, cols: dict[str, np.ndarray], dirt: DirtConfig, rng: np.random.Generator
) -> None:
    """Out-of-range values, unknown categories, nulls and null keys, in place.

    Every draw has the full row count whatever the rates, so one rate never moves another kind's rows.
    """
    n = len(cols["customer_id"])
    u_oor, which_oor, noise = (
        rng.random(n),
        rng.integers(0, len(spec.out_of_range), size=n),
        rng.uniform(1, 60, n),
    )
    u_unk, which_unk = rng.random(n), rng.integers(0, len(spec.unknown), size=n)
    u_null = {name: rng.random(n) for name in spec.nullable}
    u_key = rng.random(n)

    for row in np.flatnonzero(u_oor < dirt.out_of_range_rate).tolist():
        column = spec.out_of_range[which_oor[row]]
        cols[column][row] = _out_of_range_value(column, float(cols[column][row]), float(noise[row]))
    for row in np.flatnonzero(u_unk < dirt.unknown_category_rate).tolist():
        column, category = spec.unknown[which_unk[row]]
        cols[column][row] = category
    for name in spec.nullable:
        mask = u_null[name] < dirt.null_rate
        cols[name][mask] = np.nan if cols[name].dtype.kind == "f" else None
    cols["customer_id"][u_key < dirt.null_rate / 5.0] = None


def _tokens(values: np.ndarray, kind: str, json_mode: bool) -> list[str]:
    """Format one column; nulls become an empty CSV field or JSON null."""
    null = "null" if json_mode else ""
    if kind == "str":
        if json_mode:
            return [null if v is None else f'"{v}"' for v in values.tolist()]
        return [null if v is None else v for v in values.tolist()]
    if kind == "int":
        return [null if v != v else str(int(v)) for v in values.tolist()]
    template = "{:.1f}" if kind == "f1" else "{:.2f}"
    return [null if v != v else template.format(v) for v in values.tolist()]


def _format_lines(spec: _TableSpec, cols: dict[str, np.ndarray]) -> list[str]:
    json_mode = spec.fmt == "jsonl"
    tokens = [_tokens(cols[name], kind, json_mode) for name, kind in spec.columns]
    if json_mode:
        template = "{" + ", ".join(f'"{name}": %s' for name, _ in spec.columns) + "}"
        return [template % row for row in zip(*tokens, strict=True)]
    return [",".join(row) for row in zip(*tokens, strict=True)]


def _malformed(spec: _TableSpec, line: str, variant: int) -> str:
    """A line no reader can take at face value."""
    if spec.fmt == "jsonl":
        if variant == 0:
            return line[: max(1, len(line) // 2)]  # truncated mid-object
        if variant == 1:
            return line[:-1] + ', "'  # unterminated
        return line.replace('": ', "=").replace(", ", ";").strip("{}")  # key=value, not JSON
    names = [name for name, _ in spec.columns]
    if variant == 0:
        return line + ",EXTRA"  # one field too many
    if variant == 1:
        return line.rsplit(",", 1)[0]  # one field short
    fields_ = line.split(",")
    fields_[names.index(spec.numeric_for_malformed or names[-1])] = '"12,x3"'  # non-numeric number
    return ",".join(fields_)


def _apply_line_dirt(
    spec: _TableSpec, lines: list[str], dirt: DirtConfig, rng: np.random.Generator
) -> list[str]:
    """Malformed lines, then exact duplicates inserted at random positions."""
    n = len(lines)
    u_bad, which_bad = rng.random(n), rng.integers(0, 3, size=n)
    u_dup, where_dup = rng.random(n), rng.integers(0, n + 1, size=n)
    for row in np.flatnonzero(u_bad < dirt.malformed_rate).tolist():
        lines[row] = _malformed(spec, lines[row], int(which_bad[row]))
    dup = np.flatnonzero(u_dup < dirt.duplicate_rate)
    if dup.size == 0:
        return lines
    order = np.insert(np.arange(n), where_dup[dup], dup)
    return [lines[i] for i in order.tolist()]


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename: readers see the old file or the new one.

    The temp file's name carries the writer's pid, so a writer killed before its rename (SIGKILL runs no
    cleanup) leaves a file the next write of the same path recognises as orphaned and removes; a live
    concurrent writer's temp file is left alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for orphan in path.parent.glob(f".{path.name}.*.tmp"):
        if not _writer_alive(orphan):
            with contextlib.suppress(FileNotFoundError):
                orphan.unlink()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _writer_alive(temp: Path) -> bool:
    """Whether the process that named this temp file (``.<file>.<pid>.<random>.tmp``) still runs."""
    try:
        pid = int(temp.name.removesuffix(".tmp").rsplit(".", 2)[-2])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
