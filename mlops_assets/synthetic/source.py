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
* Retention contacts are an input (``simulate(end, contacts={day: ids})``) so uplift experiments have a known
  truth. A customer's latent *risk* is ``1 - momentum`` (0 while engaged, near 1 deep into disengagement); a
  contact at the end of day c multiplies their churn hazard by ``1 - effect_scale * risk`` for ``effect_days``
  days (``TreatmentConfig``). It works as a separate *save* draw on its own stream, indexed by customer, after
  the usual churn draw: without contacts no stream draws anything new, so the data stays bit-identical to a
  source without treatment; whether one customer is kept does not depend on who else was contacted; and a
  kept customer is one the very same draws would have lost, so churn with and without a contact are coupled
  (after a save the kept customer's further days shift other customers' positional draws, as any churn
  does, so later days match the no-contact run in distribution, not draw for draw). ``Simulation.contacts``
  records each contact's risk, effect and save day.
* In ``Simulation`` frames, date columns hold ``datetime.date`` objects and timestamp columns are pandas
  ``datetime64[ns]``.
"""

from mlops_assets.synthetic.config import (
    BILLING_COLUMNS,
    CHANNELS,
    CONTACT_COLUMNS,
    CUSTOMER_COLUMNS,
    DEVICES,
    EVENT_TYPES,
    LANDING_FILES,
    PAYMENT_METHODS,
    PLAN_FEES,
    PLANS,
    REGIONS,
    SCENARIOS,
    USAGE_COLUMNS,
    DirtConfig,
    DriftScenario,
    Simulation,
    SourceConfig,
    TreatmentConfig,
)
from mlops_assets.synthetic.simulation import SyntheticSource

__all__ = [
    "BILLING_COLUMNS",
    "CHANNELS",
    "CONTACT_COLUMNS",
    "CUSTOMER_COLUMNS",
    "DEVICES",
    "EVENT_TYPES",
    "LANDING_FILES",
    "PAYMENT_METHODS",
    "PLANS",
    "PLAN_FEES",
    "REGIONS",
    "SCENARIOS",
    "USAGE_COLUMNS",
    "DirtConfig",
    "DriftScenario",
    "Simulation",
    "SourceConfig",
    "SyntheticSource",
    "TreatmentConfig",
]
