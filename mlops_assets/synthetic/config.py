"""The source's public vocabulary and configuration: plans, regions, devices, the landing file names, drift
scenarios, dirt rates, the retention treatment, ``SourceConfig`` and the ``Simulation`` it produces."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, timedelta

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
CONTACT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "contact_date",
    "applied",
    "latent_risk",
    "effect",
    "saved_on",
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
    # A record sent again, unchanged, in a file 1-3 days after its first one (an upstream retry): the lakehouse
    # must keep it once, under its first arrival.
    resend_rate: float = 0.003

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_rate("", f.name, getattr(self, f.name))

    @classmethod
    def clean(cls) -> DirtConfig:
        """No dirt at all: landing files are exactly the simulated rows."""
        return cls(**{f.name: 0.0 for f in fields(cls)})


@dataclass(frozen=True)
class TreatmentConfig:
    """How strongly a retention contact works: the truth an uplift experiment should recover.

    A contact of a customer with latent risk r (``1 - momentum``, clipped to [0, 1]) on day c multiplies their
    daily churn probability by ``1 - effect_scale * r`` on days c+1 .. c+``effect_days``: contacting an engaged
    customer does nothing, contacting a disengaging one sometimes keeps them.
    """

    effect_scale: float = 0.6
    effect_days: int = 30

    def __post_init__(self) -> None:
        _check_rate("", "effect_scale", self.effect_scale)
        _check_effect_days("", self.effect_days)


def _check_effect_days(owner: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{owner}effect_days must be an integer >= 1, got {value!r}")


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
    treatment: TreatmentConfig = TreatmentConfig()

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
        if not isinstance(self.treatment, TreatmentConfig):
            raise ValueError(f"treatment must be a TreatmentConfig, got {self.treatment!r}")
        _check_rate("treatment.", "effect_scale", self.treatment.effect_scale)
        _check_effect_days("treatment.", self.treatment.effect_days)

    @property
    def effective_drift_start(self) -> date:
        """The first day a drift scenario applies (default: 90 days after start_date)."""
        if self.drift_start is not None:
            return self.drift_start
        return self.start_date + timedelta(days=DEFAULT_DRIFT_OFFSET_DAYS)


def empty_contacts() -> pd.DataFrame:
    """The contacts frame of a simulation given no contacts, typed like a non-empty one."""
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=object),
            "contact_date": pd.Series(dtype=object),
            "applied": pd.Series(dtype=bool),
            "latent_risk": pd.Series(dtype=np.float64),
            "effect": pd.Series(dtype=np.float64),
            "saved_on": pd.Series(dtype=object),
        }
    )


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
    contacts: pd.DataFrame = field(default_factory=empty_contacts)
    """One row per retention contact given to ``simulate``, with its true effect (see ``CONTACT_COLUMNS``):
    ``applied`` (the day was simulated and the customer active at its end), ``latent_risk`` (NaN if not
    applied), ``effect`` (the hazard reduction, 0 if not applied) and ``saved_on`` (the first day the contact
    kept them from churning, else None)."""
