"""The synthetic source's retention treatment: contacts change nothing they should not, and have the planted,
recorded effect on the churn of the customers they reach (the truth uplift experiments are scored against)."""

from __future__ import annotations

from dataclasses import fields
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.synthetic.source import (
    CONTACT_COLUMNS,
    Simulation,
    SourceConfig,
    SyntheticSource,
    TreatmentConfig,
)
from mlops_assets.synthetic.state import _State
from mlops_assets.synthetic.treatment import _Treatment

START = date(2026, 1, 1)
CONTACT_DAY = START + timedelta(
    days=10
)  # after the warm-up, the population holds every stage of disengagement
SMALL = SourceConfig(seed=7, initial_customers=2000, daily_signups=12)
SMALL_END = CONTACT_DAY + timedelta(days=15)
# Enough at-risk customers (~1,200) for the planted effect to stand ~5 standard errors clear of zero.
LARGE = SourceConfig(seed=1, initial_customers=6000, daily_signups=36)
EFFECT_DAYS = LARGE.treatment.effect_days
LARGE_END = CONTACT_DAY + timedelta(days=EFFECT_DAYS)
FRAMES = tuple(f.name for f in fields(Simulation))
WITHOUT_CONTACTS = tuple(name for name in FRAMES if name != "contacts")


def _risk_on(config: SourceConfig, day: date) -> pd.Series:
    """Every active customer's latent risk at the end of ``day``: contact them all in a run that ends that day
    (a contact changes nothing up to its own day, so this is every run's risk on that day)."""
    source = SyntheticSource(config)
    sim = source.simulate(day)
    active = sim.customers.customer_id[~sim.customers.customer_id.isin(sim.churn.customer_id)]
    recorded = source.simulate(day, contacts={day: active.tolist()}).contacts
    assert recorded.applied.all()
    return recorded.set_index("customer_id").latent_risk


def _assert_same(a: Simulation, b: Simulation, frames: tuple[str, ...] = FRAMES) -> None:
    for name in frames:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)


def _churned_in_window(sim: Simulation, ids: np.ndarray, day: date, days: int) -> np.ndarray:
    """Whether each customer churned on day+1 .. day+days."""
    churn_date = dict(zip(sim.churn.customer_id, sim.churn.churn_date, strict=True))
    last = day + timedelta(days=days)
    return np.array([day < churn_date.get(c, date.max) <= last for c in ids.tolist()])


@pytest.fixture(scope="module")
def small_base() -> Simulation:
    return SyntheticSource(SMALL).simulate(SMALL_END)


@pytest.fixture(scope="module")
def small_risk() -> pd.Series:
    return _risk_on(SMALL, CONTACT_DAY)


# --------------------------------------------------------------------------------------------------------
# Configuration and inputs
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"effect_scale": 1.5}, "effect_scale"),
        ({"effect_scale": -0.1}, "effect_scale"),
        ({"effect_scale": "0.5"}, "effect_scale"),
        ({"effect_scale": True}, "effect_scale"),
        ({"effect_days": 0}, "effect_days"),
        ({"effect_days": 2.5}, "effect_days"),
        ({"effect_days": True}, "effect_days"),
    ],
)
def test_treatment_config_errors_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TreatmentConfig(**kwargs)


def test_source_config_takes_a_treatment_config() -> None:
    assert SourceConfig().treatment == TreatmentConfig(effect_scale=0.6, effect_days=30)
    assert SourceConfig(treatment=TreatmentConfig(0.0, 1)).treatment.effect_scale == 0.0
    with pytest.raises(ValueError, match="treatment"):
        SourceConfig(treatment={"effect_scale": 0.5})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "contacts",
    [["C000001"], {"2026-01-05": ["C000001"]}, {START: "C000001"}, {START: [1]}],
    ids=["not-a-mapping", "string-day", "one-string", "non-string-id"],
)
def test_malformed_contacts_are_rejected(contacts: object) -> None:
    with pytest.raises(ValueError, match="contacts"):
        SyntheticSource(SMALL).simulate(START, contacts=contacts)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------
# What contacts must not change
# --------------------------------------------------------------------------------------------------------


def test_no_contacts_is_the_source_without_treatment(small_base: Simulation, tmp_path: Path) -> None:
    source = SyntheticSource(SMALL)
    for contacts in (None, {}, {CONTACT_DAY: []}):
        _assert_same(source.simulate(SMALL_END, contacts=contacts), small_base)
    assert tuple(small_base.contacts.columns) == CONTACT_COLUMNS
    assert small_base.contacts.empty

    days = [SMALL_END - timedelta(days=1), SMALL_END]
    plain = source.write_landing(tmp_path / "plain", days)
    for name, contacts in (("none", None), ("empty", {})):
        written = source.write_landing(tmp_path / name, days, contacts=contacts)
        for day in days:
            for table, path in written[day].items():
                assert path.read_bytes() == plain[day][table].read_bytes(), (name, day, table)


def test_contacts_change_nothing_up_to_their_day(small_base: Simulation, small_risk: pd.Series) -> None:
    source = SyntheticSource(SMALL)
    contacts = {CONTACT_DAY: small_risk.index[small_risk > 0.3].tolist()}

    # A run that ends on the contact day is the run without contacts, frame for frame.
    _assert_same(
        source.simulate(CONTACT_DAY, contacts=contacts), source.simulate(CONTACT_DAY), WITHOUT_CONTACTS
    )

    # A longer run: every record dated up to the contact day is unchanged; later ones do change.
    treated = source.simulate(SMALL_END, contacts=contacts)
    next_day = pd.Timestamp(CONTACT_DAY + timedelta(days=1))
    cuts = {
        "usage": lambda s: s.usage[s.usage.event_date <= CONTACT_DAY],
        "billing": lambda s: s.billing[s.billing.event_ts < next_day],
        "churn": lambda s: s.churn[s.churn.churn_date <= CONTACT_DAY],
        "customer_updates": lambda s: s.customer_updates[s.customer_updates.updated_at < next_day],
    }
    for name, cut in cuts.items():
        pd.testing.assert_frame_equal(cut(treated), cut(small_base), obj=name)
    assert not treated.churn.equals(small_base.churn)
    assert treated.contacts.saved_on.notna().any()


def test_contacting_engaged_customers_changes_nothing(small_base: Simulation, small_risk: pd.Series) -> None:
    engaged = small_risk.index[small_risk == 0.0].tolist()
    assert len(engaged) > 1000
    sim = SyntheticSource(SMALL).simulate(SMALL_END, contacts={CONTACT_DAY: engaged})
    _assert_same(sim, small_base, WITHOUT_CONTACTS)
    assert len(sim.contacts) == len(engaged)
    assert sim.contacts.applied.all()
    assert (sim.contacts.latent_risk == 0.0).all() and (sim.contacts.effect == 0.0).all()
    assert sim.contacts.saved_on.isna().all()


def test_ids_that_are_no_active_customer_are_recorded_as_not_applied(
    small_base: Simulation, small_risk: pd.Series
) -> None:
    churned_before = small_base.churn.customer_id[small_base.churn.churn_date < CONTACT_DAY].iloc[0]
    signs_up_later = small_base.customers.customer_id[small_base.customers.signup_date > CONTACT_DAY].iloc[0]
    at_risk = small_risk.index[small_risk > 0.5][0]
    unknown = ["C999999", "nobody", "C0000001", "c000001", "C000000", "", churned_before, signs_up_later]
    contacts = {
        START - timedelta(days=3): [at_risk],  # a warm-up day: takes no contacts
        CONTACT_DAY: [*unknown, at_risk],
        SMALL_END + timedelta(days=1): [at_risk],  # not simulated
    }
    recorded = SyntheticSource(SMALL).simulate(SMALL_END, contacts=contacts).contacts

    assert tuple(recorded.columns) == CONTACT_COLUMNS
    assert recorded.customer_id.tolist() == [at_risk, *unknown, at_risk, at_risk]
    assert recorded.contact_date.tolist() == [d for d in sorted(contacts) for _ in contacts[d]]
    assert recorded.applied.tolist() == [False] * (1 + len(unknown)) + [True, False]
    missed = recorded[~recorded.applied]
    assert missed.latent_risk.isna().all() and (missed.effect == 0.0).all() and missed.saved_on.isna().all()
    hit = recorded[recorded.applied].iloc[0]
    assert hit.latent_risk == pytest.approx(small_risk[at_risk])
    assert hit.effect == pytest.approx(SMALL.treatment.effect_scale * small_risk[at_risk])


def test_same_contacts_are_deterministic(small_risk: pd.Series) -> None:
    contacts = {CONTACT_DAY: small_risk.index[small_risk > 0.3].tolist()[::2]}
    first = SyntheticSource(SMALL).simulate(SMALL_END, contacts=contacts)
    _assert_same(first, SyntheticSource(SMALL).simulate(SMALL_END, contacts=contacts))


# --------------------------------------------------------------------------------------------------------
# The planted effect
# --------------------------------------------------------------------------------------------------------


def test_contacting_at_risk_customers_lowers_their_churn_by_the_recorded_effect() -> None:
    risk = _risk_on(LARGE, CONTACT_DAY)
    at_risk = np.array(sorted(risk.index[risk > 0.3]))
    treated_mask = np.zeros(at_risk.size, dtype=bool)
    treated_mask[np.random.default_rng(0).permutation(at_risk.size)[: at_risk.size // 2]] = True
    treated, control = at_risk[treated_mask], at_risk[~treated_mask]
    sim = SyntheticSource(LARGE).simulate(LARGE_END, contacts={CONTACT_DAY: treated.tolist()})
    recorded = sim.contacts.set_index("customer_id").loc[treated]
    assert recorded.applied.all()
    effect = recorded.effect.to_numpy()
    assert effect == pytest.approx(LARGE.treatment.effect_scale * risk[treated].to_numpy())

    churned_t = _churned_in_window(sim, treated, CONTACT_DAY, EFFECT_DAYS)
    churned_c = _churned_in_window(sim, control, CONTACT_DAY, EFFECT_DAYS)
    rate_t, rate_c = churned_t.mean(), churned_c.mean()
    se = np.sqrt(rate_t * (1 - rate_t) / treated.size + rate_c * (1 - rate_c) / control.size)
    # Clearly lower: the planted difference is ~5 standard errors, so 3 holds for this seed with room to spare.
    assert rate_c - rate_t > 3 * se, (at_risk.size, rate_t, rate_c, se)

    # Consistent with the recorded effect. Each day the hazard is p * (1 - effect); the window's churn probability
    # 1 - prod(1 - p_t * x) is concave in the multiplier x, so it falls by at most the factor (1 - effect), whatever
    # the hazard path: the relative reduction cannot exceed the mean effect (up to sampling noise, 3 standard
    # errors by the delta method). It falls by less when the hazard is high: ~60% of these customers churn within
    # the window, and one kept today, still disengaged, is often lost a few days later (and high-hazard customers
    # leave the control arm first). Across seeds 1-12 the reduction was 0.3-0.6 of the mean effect, a constant
    # hazard at this churn level gives ~0.75; a quarter of the mean effect is the floor no working treatment falls
    # below (an effect applied on a single day would give ~1/30 of it).
    reduction, mean_effect = 1 - rate_t / rate_c, effect.mean()
    se_reduction = (rate_t / rate_c) * np.sqrt(
        (1 - rate_t) / (rate_t * treated.size) + (1 - rate_c) / (rate_c * control.size)
    )
    assert 0.25 * mean_effect < reduction < mean_effect + 3 * se_reduction, (reduction, mean_effect)

    # The mechanism, exactly: a treated customer's first would-be churn in the window is averted with probability
    # equal to their effect (their own save draw, independent of everything before). Those averted carry a
    # saved_on; those not churned that day. So the count saved is a sum of Bernoulli(effect) over both groups.
    saved = recorded.saved_on.notna().to_numpy()
    first_event = saved | churned_t
    expected = effect[first_event].sum()
    sd = np.sqrt((effect[first_event] * (1 - effect[first_event])).sum())
    assert abs(saved.sum() - expected) < 4 * sd, (saved.sum(), expected, sd)
    saved_on = recorded.saved_on[saved]
    assert all(CONTACT_DAY < d <= LARGE_END for d in saved_on)


# --------------------------------------------------------------------------------------------------------
# The window, directly on the state
# --------------------------------------------------------------------------------------------------------


def _state(momentum: list[float]) -> _State:
    state = _State(len(momentum))
    state.n = len(momentum)
    state.active[: state.n] = True
    state.momentum[: state.n] = momentum
    state.treat_until_ord[: state.n] = -1
    return state


def test_the_window_runs_from_the_next_day_and_a_later_contact_replaces_it() -> None:
    config = SourceConfig(treatment=TreatmentConfig(effect_scale=1.0, effect_days=3))
    day = START + timedelta(days=5)
    state = _state([0.0, 0.2, 1.0])  # risk 1, 0.8, 0
    treatment = _Treatment(config, {day: ["C000001", "C000002"], day + timedelta(days=2): ["C000002"]})
    everyone = np.arange(3)
    secs = np.array([10, 20, 30])

    def kept(offset: int) -> list[int]:
        """Who of three would-be churners on day + offset a contact keeps."""
        left, left_secs = treatment.save(state, (day + timedelta(days=offset)).toordinal(), everyone, secs)
        assert left_secs.tolist() == [secs[i] for i in left.tolist()]
        return sorted(set(range(3)) - set(left.tolist()))

    assert kept(0) == []  # the contact is at the end of its day
    treatment.contact(state, day.toordinal())
    assert state.treat_until_ord[:3].tolist() == [day.toordinal() + 3, day.toordinal() + 3, -1]
    assert state.treat_effect[:3] == pytest.approx([1.0, 0.8, 0.0])
    assert 0 in kept(1) and 0 in kept(3)  # effect 1: kept every day of the window
    assert 0 not in kept(4)  # and not after it

    state.momentum[1] = 0.75
    treatment.contact(state, (day + timedelta(days=2)).toordinal())
    assert state.treat_until_ord[1] == day.toordinal() + 5
    assert state.treat_effect[1] == pytest.approx(0.25)
    assert 2 not in kept(4)
    frame = treatment.frame()
    assert frame.applied.tolist() == [True, True, True]
    assert frame.effect.tolist() == pytest.approx([1.0, 0.8, 0.25])
    assert frame.saved_on.iloc[0] == day + timedelta(days=1)
