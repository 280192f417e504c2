"""The experiment spec: what is tested on whom, how it is judged, and whether it can be judged at all.

Why a spec (YAML, checked before anything starts): an experiment's statistics are only sound when the plan is
fixed up front. The hypothesis, arms and weights, targeting, metric, alpha, power and minimum detectable effect
are written down, the sample size follows from them, and a plan that cannot reach its sample size in its
duration is refused with the numbers instead of ending in an "inconclusive" nobody could have avoided.

The unit's exposure is a *wave*: on each wave day the customers whose monthly renewal falls in the coming
``wave_every_days`` enter the experiment (once: assignment is sticky), and the targeted arms contact the top
of their arm by their model's score. The primary metric is churn within ``horizon_days`` of exposure (the
model's own label), so a wave's outcomes are final ``horizon_days`` after it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from mlops_assets.experiments.stats import required_sample_size

MODELS = ("none", "champion", "challenger")  # what ranks an arm's customers: nobody is contacted with "none"
TARGETING_RULES = ("top_k", "threshold")
_TOP_LEVEL = (
    "name",
    "hypothesis",
    "unit",
    "start",
    "waves",
    "wave_every_days",
    "arms",
    "targeting",
    "primary_metric",
    "comparison",
    "secondary",
    "guardrails",
    "contact_cost",
    "alpha",
    "early_stop_alpha",
    "power",
    "mde",
    "baseline",
    "srm_alpha",
)
AVERAGE_MONTH_DAYS = 30.44


class SpecError(ValueError):
    """The spec is invalid; ``problems`` names every field that is wrong, one per entry."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("experiment spec: " + "; ".join(problems))


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    model: str  # none | champion | challenger


@dataclass(frozen=True)
class Comparison:
    treatment: str
    control: str

    def describe(self) -> str:
        return f"{self.treatment} vs {self.control}"


@dataclass(frozen=True)
class Guardrails:
    """Limits on the treatment arm; breaching one stops the experiment for harm."""

    max_contact_rate: float = 1.0  # contacted / enrolled
    max_cost_per_customer: float = math.inf  # contact_cost x contacted / enrolled


@dataclass(frozen=True)
class SampleSizePlan:
    """The planned sample and whether the planned duration reaches it; the numbers a refusal quotes."""

    required_per_arm: int  # units the primary comparison's control arm needs (its treatment: x weight ratio)
    alpha_at_horizon: float
    population: int  # active customers when the plan was checked
    expected_enrolled: int  # all arms, over the planned waves
    expected_per_arm: dict[str, int]
    needed_per_arm: dict[str, int]  # the primary comparison's two arms

    @property
    def feasible(self) -> bool:
        return all(self.expected_per_arm[arm] >= n for arm, n in self.needed_per_arm.items())

    def needed(self, arm: str) -> int:
        return self.needed_per_arm.get(arm, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "required_per_arm": self.required_per_arm,
            "alpha_at_horizon": self.alpha_at_horizon,
            "population": self.population,
            "expected_enrolled": self.expected_enrolled,
            "expected_per_arm": dict(self.expected_per_arm),
            "needed_per_arm": dict(self.needed_per_arm),
            "feasible": self.feasible,
        }


@dataclass(frozen=True)
class ExperimentSpec:
    name: str  # also the assignment salt: a new name re-randomizes every unit
    hypothesis: str
    unit: str
    start: date  # the first wave's day (an as-of date of the feature table)
    waves: int
    wave_every_days: int
    arms: tuple[Arm, ...]
    targeting_rule: str
    targeting_value: float  # top_k: the fraction of the arm contacted per wave; threshold: the score cut
    horizon_days: int
    comparison: Comparison
    secondary: tuple[Comparison, ...]
    guardrails: Guardrails
    contact_cost: float
    alpha: float
    early_stop_alpha: float
    power: float
    mde: float
    baseline: float
    srm_alpha: float

    # ------------------------------------------------------------------------------------------------
    # The timeline
    # ------------------------------------------------------------------------------------------------

    @property
    def wave_days(self) -> list[date]:
        return [self.start + timedelta(days=i * self.wave_every_days) for i in range(self.waves)]

    @property
    def last_outcome_day(self) -> date:
        """The day the last wave's outcome window closes: the planned horizon."""
        return self.wave_days[-1] + timedelta(days=self.horizon_days)

    def outcome_final(self, wave: date, through: date) -> bool:
        """A wave's outcomes are final once its whole window [wave, wave + horizon) is known."""
        return wave + timedelta(days=self.horizon_days) <= through

    @property
    def weights(self) -> list[tuple[str, float]]:
        return [(a.name, a.weight) for a in self.arms]

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    @property
    def alpha_at_horizon(self) -> float:
        """Alpha is split: ``early_stop_alpha`` for the always-valid early stop, the rest for the fixed-horizon
        test at the planned horizon, so by a union bound the two together never exceed ``alpha``."""
        return self.alpha - self.early_stop_alpha

    # ------------------------------------------------------------------------------------------------
    # The sample-size plan
    # ------------------------------------------------------------------------------------------------

    def renewal_share(self) -> float:
        """The share of customers whose monthly renewal falls inside the waves' windows (each enters once)."""
        return min(1.0, self.waves * self.wave_every_days / AVERAGE_MONTH_DAYS)

    def plan(self, population: int) -> SampleSizePlan:
        """Required units per arm (statsmodels' power for two proportions at the horizon's alpha) against the
        units the planned waves can enroll from ``population`` active customers."""
        control, treatment = self.arm(self.comparison.control), self.arm(self.comparison.treatment)
        ratio = treatment.weight / control.weight
        required = required_sample_size(self.baseline, self.mde, self.alpha_at_horizon, self.power, ratio)
        enrolled = int(population * self.renewal_share())
        per_arm = {a.name: int(enrolled * a.weight) for a in self.arms}
        needed = {control.name: required, treatment.name: math.ceil(required * ratio)}
        return SampleSizePlan(required, self.alpha_at_horizon, population, enrolled, per_arm, needed)

    def refusal(self, population: int) -> str | None:
        """Why the spec cannot start on ``population`` active customers, with the numbers; None when it can."""
        plan = self.plan(population)
        if plan.feasible:
            return None
        short = [
            f"{arm} needs {plan.needed(arm):,} but {self.waves} wave(s) enroll ~{plan.expected_per_arm[arm]:,}"
            for arm in (self.comparison.control, self.comparison.treatment)
            if plan.expected_per_arm[arm] < plan.needed(arm)
        ]
        return (
            f"experiment {self.name!r} cannot reach its sample size: detecting {self.mde:.3f} on a baseline of "
            f"{self.baseline:.3f} at alpha {plan.alpha_at_horizon:.3f} with power {self.power:.2f} needs "
            f"{plan.required_per_arm:,} units per arm; {population:,} active customers x "
            f"{self.renewal_share():.2f} renewing in the waves = ~{plan.expected_enrolled:,} enrolled; "
            + "; ".join(short)
            + ". Raise mde, add waves, or widen the population."
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        d["guardrails"] = {k: (None if v == math.inf else v) for k, v in d["guardrails"].items()}
        return d

    # ------------------------------------------------------------------------------------------------
    # Reading and checking
    # ------------------------------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentSpec:
        import yaml

        try:
            raw = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise SpecError([f"no spec file at {path}"]) from None
        except yaml.YAMLError as error:
            raise SpecError([f"{path} is not valid YAML: {error}"]) from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> ExperimentSpec:
        """The checked spec; SpecError lists every problem, each naming its field."""
        if not isinstance(raw, dict):
            raise SpecError([f"the spec must be a mapping, got {type(raw).__name__}"])
        p: list[str] = []
        unknown = sorted(set(raw) - set(_TOP_LEVEL))
        if unknown:
            p.append(f"unknown field(s) {unknown}; known: {list(_TOP_LEVEL)}")
        get = _Reader(raw, p)
        name = get.text("name")
        if name and not all(c.isalnum() or c in "-_." for c in name):
            p.append(
                f"name: {name!r} may only hold letters, digits, '-', '_' and '.' (it names tables and runs)"
            )
        arms = _arms(raw.get("arms"), p)
        names = {a.name for a in arms}
        spec_kwargs = dict(
            name=name,
            hypothesis=get.text("hypothesis"),
            unit=get.text("unit"),
            start=get.day("start"),
            waves=get.integer("waves", 1, 52),
            wave_every_days=get.integer("wave_every_days", 1, 31),
            arms=tuple(arms),
            targeting_rule="top_k",
            targeting_value=0.0,
            horizon_days=30,
            comparison=_comparison(raw.get("comparison"), "comparison", names, p),
            secondary=tuple(
                _comparison(c, f"secondary[{i}]", names, p) for i, c in enumerate(raw.get("secondary") or [])
            ),
            guardrails=_guardrails(raw.get("guardrails"), p),
            contact_cost=get.number("contact_cost", 0.0, math.inf),
            alpha=get.number("alpha", 1e-6, 0.5),
            early_stop_alpha=get.number("early_stop_alpha", 0.0, 0.5),
            power=get.number("power", 0.5, 0.999),
            mde=get.number("mde", 1e-4, 1.0),
            baseline=get.number("baseline", 1e-4, 1.0 - 1e-4),
            srm_alpha=get.number("srm_alpha", 1e-9, 0.05),
        )
        _targeting(raw.get("targeting"), spec_kwargs, p)
        _primary(raw.get("primary_metric"), spec_kwargs, p)
        if not p and spec_kwargs["early_stop_alpha"] >= spec_kwargs["alpha"]:
            p.append(
                f"early_stop_alpha: {spec_kwargs['early_stop_alpha']} must be below alpha {spec_kwargs['alpha']} "
                "(alpha is split between the early stop and the planned horizon)"
            )
        if not p and spec_kwargs["unit"] != "customer_id":
            p.append(f"unit: only customer_id is supported (the source's unit), got {spec_kwargs['unit']!r}")
        if p:
            raise SpecError(p)
        return cls(**spec_kwargs)


class _Reader:
    """Typed reads of top-level fields, each problem appended with the field's name."""

    def __init__(self, raw: dict, problems: list[str]) -> None:
        self.raw, self.p = raw, problems

    def _value(self, key: str) -> Any:
        if key not in self.raw or self.raw[key] is None:
            self.p.append(f"{key}: required")
            return None
        return self.raw[key]

    def text(self, key: str) -> str:
        v = self._value(key)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            self.p.append(f"{key}: must be a non-empty string, got {v!r}")
        return v if isinstance(v, str) else ""

    def number(self, key: str, low: float, high: float) -> float:
        return _number(self._value(key), key, low, high, self.p)

    def integer(self, key: str, low: int, high: int) -> int:
        v = self._value(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high):
            self.p.append(f"{key}: must be an integer in [{low}, {high}], got {v!r}")
            return low
        return v if isinstance(v, int) else low

    def day(self, key: str) -> date:
        v = self._value(key)
        if isinstance(v, date):
            return v
        try:
            return date.fromisoformat(str(v))
        except ValueError:
            if v is not None:
                self.p.append(f"{key}: must be a date (YYYY-MM-DD), got {v!r}")
            return date.min


def _number(v: Any, key: str, low: float, high: float, p: list[str]) -> float:
    if v is None:
        return low
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not low <= v <= high:
        p.append(f"{key}: must be a number in [{low}, {high}], got {v!r}")
        return low
    return float(v)


def _arms(raw: Any, p: list[str]) -> list[Arm]:
    if not isinstance(raw, list) or len(raw) < 2:
        p.append(f"arms: must list at least two arms, got {raw!r}")
        return []
    arms = []
    for i, a in enumerate(raw):
        where = f"arms[{i}]"
        if not isinstance(a, dict) or set(a) - {"name", "weight", "model"}:
            p.append(f"{where}: must be a mapping of name, weight, model, got {a!r}")
            continue
        name = a.get("name")
        if not isinstance(name, str) or not name:
            p.append(f"{where}.name: must be a non-empty string, got {name!r}")
        weight = _number(a.get("weight"), f"{where}.weight", 0.0, 1.0, p)
        if a.get("weight") is None:
            p.append(f"{where}.weight: required")
        model = a.get("model")
        if model not in MODELS:
            p.append(f"{where}.model: must be one of {list(MODELS)}, got {model!r}")
        arms.append(Arm(str(name), weight, str(model)))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        p.append(f"arms: names must be unique, got {names}")
    total = math.fsum(a.weight for a in arms)
    if arms and abs(total - 1.0) > 1e-9:
        p.append(f"arms: weights sum to {total:g}, not 1")
    return arms


def _comparison(raw: Any, where: str, arms: set[str], p: list[str]) -> Comparison:
    if not isinstance(raw, dict) or set(raw) != {"treatment", "control"}:
        p.append(f"{where}: must be a mapping with treatment and control (arm names), got {raw!r}")
        return Comparison("", "")
    for side in ("treatment", "control"):
        if raw[side] not in arms:
            p.append(f"{where}.{side}: {raw[side]!r} is not an arm; arms: {sorted(arms)}")
    if raw["treatment"] == raw["control"]:
        p.append(f"{where}: treatment and control must be different arms")
    return Comparison(str(raw["treatment"]), str(raw["control"]))


def _guardrails(raw: Any, p: list[str]) -> Guardrails:
    if raw is None:
        return Guardrails()
    known = {"max_contact_rate", "max_cost_per_customer"}
    if not isinstance(raw, dict) or set(raw) - known:
        p.append(f"guardrails: may only set {sorted(known)}, got {raw!r}")
        return Guardrails()
    rate = _number(raw.get("max_contact_rate", 1.0), "guardrails.max_contact_rate", 0.0, 1.0, p)
    cost = _number(
        raw.get("max_cost_per_customer", math.inf), "guardrails.max_cost_per_customer", 0.0, math.inf, p
    )
    return Guardrails(rate, cost)


def _targeting(raw: Any, kwargs: dict[str, Any], p: list[str]) -> None:
    if not isinstance(raw, dict) or set(raw) != {"rule", "value"}:
        p.append(
            f"targeting: must be a mapping with rule ({'|'.join(TARGETING_RULES)}) and value, got {raw!r}"
        )
        return
    if raw["rule"] not in TARGETING_RULES:
        p.append(f"targeting.rule: must be one of {list(TARGETING_RULES)}, got {raw['rule']!r}")
        return
    kwargs["targeting_rule"] = raw["rule"]
    kwargs["targeting_value"] = _number(raw["value"], "targeting.value", 1e-6, 1.0, p)


def _primary(raw: Any, kwargs: dict[str, Any], p: list[str]) -> None:
    known = {"name", "horizon_days"}
    if not isinstance(raw, dict) or set(raw) != known:
        p.append(f"primary_metric: must be a mapping with name and horizon_days, got {raw!r}")
        return
    if raw["name"] != "churn":
        p.append(
            f"primary_metric.name: only 'churn' (churn within horizon_days of exposure), got {raw['name']!r}"
        )
    h = raw["horizon_days"]
    if isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= 365:
        p.append(f"primary_metric.horizon_days: must be an integer in [1, 365], got {h!r}")
        return
    kwargs["horizon_days"] = h
