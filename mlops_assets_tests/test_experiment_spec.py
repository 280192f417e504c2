"""The experiment spec, readout rules, registry action, targeting and outbound files: pure, on small frames."""

from __future__ import annotations

import copy
import json
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets.experiments.decision import registry_action
from mlops_assets.experiments.exposure import choose_contacts
from mlops_assets.experiments.outbound import read_contact_exports, write_contact_export
from mlops_assets.experiments.readout import (
    INCONCLUSIVE,
    INVALID,
    KEEP,
    SHIP,
    STOP_HARM,
    Readout,
    analyze,
)
from mlops_assets.experiments.render import effects_png, markdown
from mlops_assets.experiments.spec import ExperimentSpec, SpecError
from mlops_assets.ml.promotion_ledger import EXPERIMENT_KEPT, EXPERIMENT_SHIPPED, EXPERIMENT_STALE
from mlops_assets.serving.assignment import assign_arm, bucket, bucket_bounds
from mlops_assets.settings import DEFAULT_EXPERIMENT_SPEC

RAW = yaml.safe_load(DEFAULT_EXPERIMENT_SPEC.read_text())


def _spec(**changes) -> ExperimentSpec:
    raw = copy.deepcopy(RAW)
    raw.update(changes)
    return ExperimentSpec.from_dict(raw)


def _problems(**changes) -> str:
    with pytest.raises(SpecError) as error:
        _spec(**changes)
    return str(error.value)


def test_the_shipped_spec_is_valid_and_its_plan_has_the_numbers():
    spec = ExperimentSpec.from_yaml(DEFAULT_EXPERIMENT_SPEC)
    assert spec.wave_days == [date(2026, 5, 1) + timedelta(days=7 * i) for i in range(4)]
    assert spec.alpha_at_horizon == pytest.approx(0.04)
    plan = spec.plan(4100)
    assert plan.feasible and plan.required_per_arm > 1000
    refusal = spec.refusal(2000)
    assert refusal is not None
    for number in (f"{plan.required_per_arm:,}", "2,000", "0.040"):
        assert number in refusal, refusal
    assert spec.refusal(4100) is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {
                "arms": [
                    {"name": "a", "weight": 0.5, "model": "none"},
                    {"name": "b", "weight": 0.6, "model": "champion"},
                ]
            },
            "arms: weights sum",
        ),
        (
            {
                "arms": [
                    {"name": "a", "weight": "x", "model": "none"},
                    {"name": "b", "weight": 1.0, "model": "x"},
                ]
            },
            "arms[0].weight",
        ),
        ({"comparison": {"treatment": "nobody", "control": "champion"}}, "comparison.treatment"),
        ({"targeting": {"rule": "everyone", "value": 1}}, "targeting.rule"),
        ({"alpha": 0.9}, "alpha"),
        ({"early_stop_alpha": 0.05}, "early_stop_alpha"),
        ({"start": "April"}, "start"),
        ({"colour": "blue"}, "unknown field(s) ['colour']"),
        ({"name": "has space"}, "name:"),
        ({"primary_metric": {"name": "revenue", "horizon_days": 30}}, "primary_metric.name"),
    ],
)
def test_spec_errors_name_the_field(changes, field):
    assert field in _problems(**changes)


def test_every_problem_is_reported_at_once():
    message = _problems(alpha=2, power=3, waves=0)
    assert "alpha" in message and "power" in message and "waves" in message


# --------------------------------------------------------------------------------------------------------
# Readouts on planted data
# --------------------------------------------------------------------------------------------------------


def _units(spec: ExperimentSpec, n: int, rates: dict[str, float], seed: int = 0) -> pd.DataFrame:
    """``n`` units assigned by the real hash, spread over the waves, churning at ``rates[arm]``."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:07d}" for i in range(n)]
    bounds = bucket_bounds(spec.weights)  # the real hash and ranges, vectorized over the units
    buckets = np.array([bucket(u, spec.name) for u in ids])
    names = np.array([name for name, _ in bounds])
    arms = names[np.searchsorted([end for _, end in bounds], buckets, side="right")]
    assert [assign_arm(u, spec.name, spec.weights) for u in ids[:50]] == list(arms[:50])
    frame = pd.DataFrame({"unit": ids, "arm": arms})
    frame["wave"] = np.array(spec.wave_days, dtype=object)[np.arange(n) % spec.waves]
    risk = rng.uniform(0, 1, n)
    frame["covariate"] = risk
    p = np.array([rates[a] for a in arms]) * (0.4 + 1.2 * risk)
    frame["churned"] = (rng.uniform(size=n) < p).astype(float)
    frame["contacted"] = frame["arm"] != "holdout"
    frame.loc[frame["contacted"], "contacted"] = rng.uniform(size=int(frame["contacted"].sum())) < 0.25
    return frame


VERSIONS = {"champion": "1", "challenger": "2"}


def test_a_clear_win_ships_early_and_round_trips():
    spec = _spec()
    units = _units(spec, 40_000, {"holdout": 0.2, "champion": 0.17, "challenger": 0.12})
    first_look = spec.wave_days[0] + timedelta(days=spec.horizon_days)
    r = analyze(units, spec, first_look, VERSIONS)
    assert r.look == 1 and not r.at_horizon
    assert r.decision == SHIP and "early stop" in r.reasons[0]
    assert r.primary.seq_high < 0 and r.primary.ci_high < 0
    assert r.primary.cuped_ci_high - r.primary.cuped_ci_low < r.primary.ci_high - r.primary.ci_low
    again = Readout.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r


def test_no_difference_keeps_the_champion_at_the_horizon_and_is_inconclusive_before():
    spec = _spec()
    units = _units(spec, 6_000, {"holdout": 0.17, "champion": 0.17, "challenger": 0.17}, seed=3)
    early = analyze(units, spec, spec.wave_days[1] + timedelta(days=spec.horizon_days), VERSIONS)
    assert early.decision == INCONCLUSIVE and early.look == 2
    final = analyze(units, spec, spec.last_outcome_day, VERSIONS)
    assert final.at_horizon and final.decision == KEEP, final.reasons


def test_harm_stops_and_a_guardrail_breach_stops():
    spec = _spec()
    harmful = _units(spec, 40_000, {"holdout": 0.17, "champion": 0.12, "challenger": 0.2}, seed=4)
    r = analyze(harmful, spec, spec.last_outcome_day, VERSIONS)
    assert r.decision == STOP_HARM and r.primary.diff > 0
    greedy = _units(spec, 4_000, {"holdout": 0.17, "champion": 0.17, "challenger": 0.17}, seed=5)
    greedy.loc[greedy["arm"] == "challenger", "contacted"] = True
    r = analyze(greedy, spec, spec.last_outcome_day, VERSIONS)
    assert r.decision == STOP_HARM and "guardrail" in r.reasons[0]


def test_a_two_percent_exposure_loss_invalidates_the_readout_loudly():
    # 600k units: the size at which a 2% loss of one arm's exposures is reliably beyond chi-square p < 0.001.
    spec = _spec()
    units = _units(spec, 600_000, {"holdout": 0.17, "champion": 0.17, "challenger": 0.12}, seed=6)
    assert analyze(units, spec, spec.last_outcome_day, VERSIONS).srm_p_value >= spec.srm_alpha
    challenger = units.index[units["arm"] == "challenger"]
    lost = units.drop(np.random.default_rng(7).choice(challenger, int(0.02 * len(challenger)), replace=False))
    r = analyze(lost, spec, spec.last_outcome_day, VERSIONS)
    assert r.decision == INVALID and r.srm_p_value < spec.srm_alpha
    assert "SAMPLE RATIO MISMATCH" in r.reasons[0]
    assert "READOUT INVALID" in markdown(r, spec)


def test_the_readout_renders_every_number_and_a_plot():
    spec = _spec()
    r = analyze(
        _units(spec, 6_000, {"holdout": 0.2, "champion": 0.17, "challenger": 0.16}),
        spec,
        spec.last_outcome_day,
        VERSIONS,
    )
    text = markdown(r, spec)
    assert f"decision **{r.decision.upper()}**" in text
    for label in (
        "Sample ratio",
        "always-valid (mSPRT)",
        "CUPED",
        "challenger vs champion",
        "champion vs holdout",
    ):
        assert label in text
    assert effects_png(r)[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------------
# The registry action
# --------------------------------------------------------------------------------------------------------


def _final(decision: str) -> Readout:
    spec = _spec()
    r = analyze(
        _units(spec, 2_000, {"holdout": 0.17, "champion": 0.17, "challenger": 0.17}),
        spec,
        spec.last_outcome_day,
        VERSIONS,
    )
    return Readout.from_dict({**r.to_dict(), "decision": decision})


def test_ship_moves_the_champion_keep_does_not_and_a_moved_champion_makes_it_stale():
    spec = _spec()
    ship = registry_action(spec, _final(SHIP), current_champion="1")
    assert (ship.audit, ship.from_version, ship.to_version, ship.move) == (EXPERIMENT_SHIPPED, "1", "2", True)
    assert ship.reasons[0] == f"experiment={spec.name}"
    keep = registry_action(spec, _final(KEEP), current_champion="1")
    assert (keep.audit, keep.move) == (EXPERIMENT_KEPT, False)
    stale = registry_action(spec, _final(SHIP), current_champion="3")
    assert (stale.audit, stale.move) == (EXPERIMENT_STALE, False)
    with pytest.raises(ValueError, match="not final"):
        registry_action(spec, _final(INCONCLUSIVE), current_champion="1")


# --------------------------------------------------------------------------------------------------------
# Targeting and the outbound list
# --------------------------------------------------------------------------------------------------------


def test_top_k_contacts_the_top_of_each_targeted_arm_and_never_the_holdout():
    spec = _spec()
    rng = np.random.default_rng(1)
    units = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(300)],
            "arm": rng.choice(["holdout", "champion", "challenger"], 300),
            "score": np.round(rng.uniform(size=300), 2),  # ties: broken by customer id
        }
    )
    chosen = choose_contacts(units, spec)
    assert not chosen.loc[chosen["arm"] == "holdout", "contacted"].any()
    for arm in ("champion", "challenger"):
        mine = chosen[chosen["arm"] == arm]
        picked = mine[mine["contacted"]]
        assert len(picked) == math.ceil(0.25 * len(mine))
        assert picked["score"].min() >= mine.loc[~mine["contacted"], "score"].max()
        assert sorted(mine["contact_rank"]) == list(range(1, len(mine) + 1))
    assert chosen.equals(choose_contacts(units.sample(frac=1, random_state=2), spec).loc[chosen.index])
    threshold = choose_contacts(units, _spec(targeting={"rule": "threshold", "value": 0.9}))
    assert (threshold.loc[threshold["contacted"], "score"] >= 0.9).all()
    assert threshold.loc[threshold["arm"] != "holdout"].query("score >= 0.9")["contacted"].all()


def test_the_outbound_list_round_trips_and_replaces_itself(tmp_path):
    day = date(2026, 4, 1)
    write_contact_export(tmp_path, day, "exp-1", [("C2", "champion"), ("C1", "challenger")])
    write_contact_export(tmp_path, day, "exp-1", [("C2", "champion"), ("C1", "challenger")])
    write_contact_export(tmp_path, day + timedelta(days=7), "exp-1", [("C3", "champion")])
    assert read_contact_exports(tmp_path) == {day: ["C1", "C2"], day + timedelta(days=7): ["C3"]}
    assert not list((tmp_path / "contacts").glob(".*"))  # no temp file left
    assert read_contact_exports(tmp_path / "nowhere") == {}
