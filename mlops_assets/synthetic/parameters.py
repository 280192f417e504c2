"""The behavioural model's tuned parameters and its random streams (private to the synthetic package)."""

from __future__ import annotations

from datetime import date

import numpy as np

from mlops_assets.synthetic.config import DEVICES, PLAN_FEES, PLANS

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
# Retention contacts' save draws: a stream of their own so a run without contacts draws exactly as before.
_STREAM_TREATMENT = 9
_STREAM_LATE = 20
_STREAM_DIRT = {"customers": 21, "usage_events": 22, "billing_events": 23}
_STREAM_NULL_SPIKE = 24
_STREAM_RESEND = {"customers": 25, "usage_events": 26, "billing_events": 27}

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


def _usage_multiplier_and_extra(scenario: str, elapsed: int) -> tuple[float, float, float]:
    """(minutes factor, mean extra sessions, tv share) a covariate scenario adds on a day ``elapsed`` >= 0."""
    if scenario == "gradual_covariate_shift":
        frac = min(1.0, (elapsed + 1) / _GRADUAL_DAYS)
        return 1.0 + _GRADUAL_MINUTES_LIFT * frac, 0.0, _GRADUAL_TV_SHARE * frac
    if scenario == "sudden_covariate_shift":
        return _SUDDEN_MINUTES_FACTOR, _SUDDEN_EXTRA_SESSIONS, 0.0
    return 1.0, 0.0, 0.0
