"""A safe rollout: its declared state (the registered-model tag ``rollout``) and the pure judge of each step.

Why pure, as ``ml/promotion.py``: the Dagster asset ``serving/rollout_step`` only counts the inference table
(``rollout_stats.py``) and moves aliases; the rules live here, each testable alone and explained by a reason
that names the guard and its numbers. The server reads the same state (``Rollout.from_json`` of the tag) and
routes with ``Rollout.weights()`` and ``serving.assignment``.

Modes. ``canary``: the candidate serves its step's share of units (sticky by entity); each step is judged on
the rows logged since it began, and passing the last step below 100 % promotes it (taking 100 % *is* becoming
``@champion``: at 100 % there is no champion traffic left to compare with). ``shadow``: the candidate is scored
on every request beside the champion, logged as arm ``shadow`` and never returned; its steps are consecutive
judged windows, and passing them does not promote (nothing user-facing was measured): run a canary next.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from mlops_assets.ml.promotion_ledger import (
    GATE_DECISIONS,
    REFUSED,
    ROLLOUT_ADVANCED,
    ROLLOUT_HELD,
    ROLLOUT_PROMOTED,
    ROLLOUT_ROLLED_BACK,
    ROLLOUT_SHADOW_PASSED,
    AuditRecord,
)
from mlops_assets.monitoring.drift_stats import chi2_sf, psi

ROLLOUT_TAG = "rollout"
CANARY, SHADOW = "canary", "shadow"
MODES = (CANARY, SHADOW)
RUNNING, COMPLETED, ROLLED_BACK, ABORTED = "running", "completed", "rolled_back", "aborted"
STATUSES = (RUNNING, COMPLETED, ROLLED_BACK, ABORTED)
CHAMPION_ARM, CANDIDATE_ARM, SHADOW_ARM = "champion", "candidate", "shadow"
ADVANCE, HOLD, ROLLBACK = "advance", "hold", "rollback"
OUTCOMES = (ADVANCE, HOLD, ROLLBACK)
DEFAULT_STEPS = {CANARY: (0.05, 0.25, 0.5, 1.0), SHADOW: (1.0,)}
SCORE_BINS = 10  # equal-width score bins over [0, 1] for the PSI guard (few bins: less PSI noise per arm)
SRM = "sample ratio mismatch: the readout is invalid"


class RolloutInvalid(ValueError):
    """A rollout declaration that cannot run; the message names every bad field."""


@dataclass(frozen=True)
class RolloutGuards:
    """Thresholds of the step judge. Defaults: errors may rise by at most 1 point (3 standard errors at 500
    requests per arm and a 0.5 % base rate), p99 at most the service's 100 ms target, score PSI at most 0.2
    (the conventional "significant shift"), SRM flagged at p < 0.001 (checked every few minutes, so a looser
    threshold would raise false alarms on honest splits)."""

    max_error_rate_increase: float = 0.01
    max_p99_latency_ms: float = 100.0
    max_score_psi: float = 0.2
    srm_p_value: float = 0.001

    def problems(self) -> list[str]:
        return [
            f"guards.{name}: {value!r} must be a positive number"
            for name, value in asdict(self).items()
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0)
        ]


@dataclass(frozen=True)
class Rollout:
    """The state on the registered model's ``rollout`` tag (one JSON object, read by the server on its TTL)."""

    id: str
    candidate_version: str
    champion_version: str
    salt: str
    mode: str = CANARY
    steps: tuple[float, ...] = DEFAULT_STEPS[CANARY]
    step: int = 0
    status: str = RUNNING
    guards: RolloutGuards = field(default_factory=RolloutGuards)
    min_requests_per_arm: int = 500
    started_at: str = ""
    step_started_at: str = ""  # rows logged before this (+ settle_seconds) belong to an earlier step
    settle_seconds: float = 30.0  # the server re-reads the tag on a TTL: skip rows routed by the old weights

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise RolloutInvalid("invalid rollout: " + "; ".join(problems))

    def problems(self) -> list[str]:
        out = [
            f"{name}: must not be empty"
            for name in ("id", "candidate_version", "salt")
            if not getattr(self, name)
        ]
        if self.mode not in MODES:
            out.append(f"mode: {self.mode!r} is not one of {MODES}")
        if self.status not in STATUSES:
            out.append(f"status: {self.status!r} is not one of {STATUSES}")
        steps = list(self.steps)
        if not steps or not all(isinstance(s, int | float) and 0 < s <= 1 for s in steps):
            out.append(f"steps: {steps} must be fractions in (0, 1]")
        elif any(b <= a for a, b in pairwise(steps)):
            out.append(f"steps: {steps} must be strictly increasing")
        elif steps[-1] != 1.0:
            out.append(f"steps: the last step must be 1.0, got {steps[-1]}")
        elif self.mode == CANARY and len(steps) < 2:
            out.append("steps: a canary needs at least one step below 1.0 to judge before promoting")
        if steps and not 0 <= self.step < len(steps):
            out.append(f"step: {self.step} is not an index of steps {steps}")
        if self.champion_version == self.candidate_version:
            out.append(f"candidate_version: v{self.candidate_version} already is the champion")
        if not self.champion_version:
            out.append("champion_version: a rollout needs a @champion to compare the candidate with")
        if not (isinstance(self.min_requests_per_arm, int) and self.min_requests_per_arm > 0):
            out.append(f"min_requests_per_arm: {self.min_requests_per_arm!r} must be a positive integer")
        if not self.settle_seconds >= 0:
            out.append(f"settle_seconds: {self.settle_seconds!r} must be >= 0")
        return out + self.guards.problems()

    @classmethod
    def start(
        cls,
        candidate_version: str,
        champion_version: str,
        mode: str = CANARY,
        steps: Sequence[float] | None = None,
        now: datetime | None = None,
        **options: Any,
    ) -> Rollout:
        """A new running rollout with a fresh id, used as the salt: every rollout re-randomizes its units."""
        rollout_id = secrets.token_hex(6)
        stamp = (now or datetime.now(UTC)).isoformat()
        chosen = tuple(float(s) for s in (steps or DEFAULT_STEPS.get(mode, DEFAULT_STEPS[CANARY])))
        return cls(
            rollout_id, str(candidate_version), str(champion_version or ""), rollout_id, mode, chosen,
            started_at=stamp, step_started_at=stamp, **options,
        )  # fmt: skip

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def weight(self) -> float:
        """The candidate's share of units at the current step (0 in shadow mode: it serves no one)."""
        return self.steps[self.step] if self.mode == CANARY else 0.0

    @property
    def arms(self) -> tuple[str, str]:
        """The two arms the judge compares: the champion and the candidate (its shadow in shadow mode)."""
        return CHAMPION_ARM, SHADOW_ARM if self.mode == SHADOW else CANDIDATE_ARM

    def weights(self) -> list[tuple[str, float]]:
        """Serving weights for ``assign_arm``; the champion serves everyone unless a canary is running."""
        w = self.weight if self.running else 0.0
        return [(CHAMPION_ARM, 1.0 - w), (CANDIDATE_ARM, w)]

    def describe(self) -> str:
        where = f"step {self.step + 1}/{len(self.steps)}"
        share = f" ({self.weight:.0%} of units)" if self.mode == CANARY else ""
        return f"rollout {self.id} ({self.mode} v{self.candidate_version} vs v{self.champion_version}) {where}{share}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": list(self.steps)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rollout:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RolloutInvalid(f"invalid rollout: unknown fields {unknown}")
        values = {**d, "steps": tuple(float(s) for s in d.get("steps", ()))}
        try:
            values["guards"] = RolloutGuards(**d.get("guards", {}))
        except TypeError as error:
            raise RolloutInvalid(f"invalid rollout: guards: {error}") from None
        for name in ("candidate_version", "champion_version"):
            if values.get(name) is not None:
                values[name] = str(values[name])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> Rollout:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as error:
            raise RolloutInvalid(f"invalid rollout: the tag is not JSON ({error})") from None
        if not isinstance(d, dict):
            raise RolloutInvalid("invalid rollout: the tag must hold a JSON object")
        return cls.from_dict(d)


@dataclass(frozen=True)
class ArmStats:
    """One arm's rows of the current step (``rollout_stats.arm_stats`` counts them from the inference table)."""

    arm: str
    requests: int  # logged rows (one per request and entity)
    units: int  # distinct entities: what assignment randomizes, hence what the SRM test counts in a canary
    errors: int  # rows with status >= 500
    p99_latency_ms: float | None
    score_counts: tuple[int, ...] = (
        0,
    ) * SCORE_BINS  # scores of successful rows over SCORE_BINS bins of [0, 1]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score_counts": list(self.score_counts)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArmStats:
        return cls(**{**d, "score_counts": tuple(int(c) for c in d["score_counts"])})


@dataclass(frozen=True)
class RolloutDecision:
    outcome: str
    reasons: list[str]

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {OUTCOMES}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RolloutDecision:
        return cls(str(d["outcome"]), list(d["reasons"]))


def srm_test(observed: Sequence[int], expected_shares: Sequence[float]) -> tuple[float, float]:
    """Chi-square goodness of fit of arm counts to the shares they were assigned with: (statistic, p-value).
    An arm with share 0 that received rows is an infinite mismatch (p = 0)."""
    total = sum(observed)
    if total == 0:
        return 0.0, 1.0
    statistic, dof = 0.0, -1
    for count, share in zip(observed, expected_shares, strict=True):
        if share <= 0:
            if count:
                return math.inf, 0.0
            continue
        expected = total * share
        statistic += (count - expected) ** 2 / expected
        dof += 1
    return statistic, chi2_sf(statistic, dof)


def judge_step(state: Rollout, arm_stats: Mapping[str, ArmStats]) -> RolloutDecision:
    """Advance, hold or roll back the current step, in this order of rules:

    1. Minimum traffic: an arm with fewer than ``min_requests_per_arm`` rows -> hold (inconclusive).
    2. Harm guards, candidate vs champion -> roll back if any fails: 5xx share above the champion's by more
       than the margin; p99 latency above the limit; PSI of its score distribution against the champion's
       above the limit (in shadow mode both are scored on the very same requests).
    3. Sample ratio mismatch (chi-square of units per arm against the step's weights; of rows in shadow mode,
       where every request must log both arms) -> hold, never roll back, never advance.

    Why SRM holds instead of rolling back: a mismatch says the rows do not reflect the split that was
    assigned (logs dropped or delayed, a routing bug, a TTL lag), so every number of the readout is biased in
    an unknown direction -- including any "failure". It is usually a pipeline fault, not the candidate's, and
    the candidate has already passed the harm guards on the data we have; rolling back would blame it for
    the pipeline. Holding keeps its share small (it never advances or promotes on an invalid readout) and the
    audit says so loudly; an operator fixes the logging or aborts. Harm is judged *before* SRM on purpose: if
    the biased rows already show harm, rolling back is the safe direction (a needless rollback costs only a
    re-run of the rollout; a harmful candidate costs users).
    """
    if not state.running:
        raise ValueError(f"{state.describe()} is {state.status}: there is no step to judge")
    g = state.guards
    base_arm, test_arm = state.arms
    empty = ArmStats(base_arm, 0, 0, 0, None)
    base = arm_stats.get(base_arm) or replace(empty, arm=base_arm)
    test = arm_stats.get(test_arm) or replace(empty, arm=test_arm)
    where = f"{state.describe()}:"

    low = [a for a in (base, test) if a.requests < state.min_requests_per_arm]
    if low:
        counts = ", ".join(f"{a.arm} {a.requests}" for a in (base, test))
        return RolloutDecision(
            HOLD,
            [
                f"{where} HOLD minimum traffic: {', '.join(a.arm for a in low)} below "
                f"{state.min_requests_per_arm} requests per arm ({counts}); inconclusive, nothing moves"
            ],
        )

    reasons, failed = [], False

    def record(guard: str, ok: bool, text: str) -> None:
        nonlocal failed
        failed = failed or not ok
        reasons.append(f"{'PASS' if ok else 'FAIL'} {guard}: {text}")

    increase = test.error_rate - base.error_rate
    record(
        "error_rate",
        increase <= g.max_error_rate_increase,
        f"{test.arm} 5xx {test.error_rate:.2%} ({test.errors}/{test.requests}) vs {base.arm} "
        f"{base.error_rate:.2%} ({base.errors}/{base.requests}): {increase:+.2%}, max +{g.max_error_rate_increase:.2%}",
    )
    p99 = test.p99_latency_ms
    base_p99 = f"{base.p99_latency_ms:.1f}" if base.p99_latency_ms is not None else "n/a"
    record(
        "p99_latency",
        p99 is not None and p99 <= g.max_p99_latency_ms,
        f"{test.arm} p99 {p99 if p99 is None else round(p99, 1)} ms (champion {base_p99} ms), "
        f"max {g.max_p99_latency_ms:g} ms",
    )
    if sum(test.score_counts) == 0 or sum(base.score_counts) == 0:
        record("score_psi", False, f"no successful scores to compare ({test.arm} or {base.arm})")
    else:
        value = psi(base.score_counts, test.score_counts)
        record(
            "score_psi",
            value <= g.max_score_psi,
            f"PSI of {test.arm} scores vs {base.arm} {value:.3f}, max {g.max_score_psi:g}",
        )
    if failed:
        return RolloutDecision(ROLLBACK, [f"{where} ROLLBACK: a guard failed", *reasons])

    if state.mode == SHADOW:
        observed, shares, unit = [base.requests, test.requests], [0.5, 0.5], "requests"
    else:
        observed, shares, unit = [base.units, test.units], [1.0 - state.weight, state.weight], "units"
    statistic, p = srm_test(observed, shares)
    expected = ", ".join(f"{s:.0%}" for s in shares)
    srm_text = (
        f"{unit} {base.arm} {observed[0]} / {test.arm} {observed[1]} vs expected shares {expected}: "
        f"chi-square {statistic:.1f}, p {p:.2g} (flagged below {g.srm_p_value:g})"
    )
    if p < g.srm_p_value:
        return RolloutDecision(HOLD, [f"{where} HOLD {SRM}", f"FAIL srm: {srm_text}", *reasons])
    return RolloutDecision(
        ADVANCE, [f"{where} ADVANCE: every guard passed", f"PASS srm: {srm_text}", *reasons]
    )


@dataclass(frozen=True)
class Transition:
    """What applying a decision does: the new state, the audit decision, and which aliases move."""

    state: Rollout
    audit: str
    promote: bool = False  # @champion -> the candidate
    remove_candidate: bool = False  # delete @candidate


def plan_transition(state: Rollout, decision: RolloutDecision, now: datetime | None = None) -> Transition:
    """Hold: nothing moves. Rollback: status rolled_back, @candidate removed. Advance: the next step; in a
    canary, reaching 100 % is the promotion (status completed); a shadow's last window completes it unpromoted."""
    stamp = (now or datetime.now(UTC)).isoformat()
    if decision.outcome == HOLD:
        return Transition(state, ROLLOUT_HELD)
    if decision.outcome == ROLLBACK:
        return Transition(replace(state, status=ROLLED_BACK), ROLLOUT_ROLLED_BACK, remove_candidate=True)
    last = state.step == len(state.steps) - 1
    if state.mode == SHADOW and last:
        return Transition(replace(state, status=COMPLETED), ROLLOUT_SHADOW_PASSED, remove_candidate=True)
    nxt = replace(state, step=state.step + 1, step_started_at=stamp)
    if state.mode == CANARY and nxt.steps[nxt.step] >= 1.0:
        return Transition(
            replace(nxt, status=COMPLETED), ROLLOUT_PROMOTED, promote=True, remove_candidate=True
        )
    return Transition(nxt, ROLLOUT_ADVANCED)


def start_refusal(mode: str, version: str, records: Sequence[AuditRecord]) -> str | None:
    """Why ``version`` may not start a canary, or None. A canary serves real users and may end in promotion,
    so it must not bypass the offline gate: the newest promotion_gate verdict on the version must have passed
    its guardrails (gate_passed or no_material_change). A shadow serves no one and needs no verdict."""
    if mode != CANARY:
        return None
    verdicts = [r for r in records if r.decision in GATE_DECISIONS and r.to_version == version]
    if not verdicts:
        return (
            f"v{version} has no promotion_gate verdict: evaluate it first (ml/evaluation_report with "
            f"@challenger = v{version}), or run `make shadow VERSION={version}`, which serves no one"
        )
    latest = max(verdicts, key=lambda r: r.decided_at)
    if latest.decision == REFUSED:
        return f"the promotion_gate refused v{version} in run {latest.dagster_run_id}: it may not serve users"
    return None
