"""The day-by-day simulation of the subscription business: customers, usage, billing and churn."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from datetime import date
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.synthetic.config import (
    CHANNELS,
    DEVICES,
    EVENT_TYPES,
    PAYMENT_METHODS,
    REGIONS,
    Simulation,
    SourceConfig,
)
from mlops_assets.synthetic.frames import _customer_frame, _customer_ids, _date_objects, _lookup, _timestamps
from mlops_assets.synthetic.landing import write_landing_files
from mlops_assets.synthetic.parameters import (
    _ALPHA_LONG,
    _ALPHA_SHORT,
    _ALPHA_TICKETS,
    _CHANNEL_MIX,
    _CONCEPT_FAILS,
    _CONCEPT_INTERCEPT,
    _CONCEPT_LEVEL,
    _CONCEPT_RECOVERY_PROB,
    _CONCEPT_TREND,
    _DECAY_WHEN_DISENGAGED,
    _DEVICE_LOYALTY,
    _DEVICE_MIX,
    _FAIL_DECAY,
    _FEES,
    _HAZARD_AGE,
    _HAZARD_CHANNEL,
    _HAZARD_FAILS,
    _HAZARD_INTERCEPT,
    _HAZARD_NEW_CUSTOMER,
    _HAZARD_PLAN,
    _HAZARD_TICKETS,
    _HAZARD_TREND,
    _INITIAL_HISTORY_DAYS,
    _MOMENTUM_FLOOR,
    _ONSET_BASE,
    _PAYMENT_MIX,
    _PLAN_CHANGE_RATE,
    _PLAN_SCORE_CUTS,
    _RECOVERY_PROB,
    _RECOVERY_SPEED,
    _REFUND_RATE,
    _REGION_MIX,
    _RETRY_AFTER_DAYS,
    _SESSIONS_PER_DAY,
    _STREAM_BILLING,
    _STREAM_CHURN,
    _STREAM_DRIFT,
    _STREAM_INIT,
    _STREAM_LATENT,
    _STREAM_PLAN,
    _STREAM_SIGNUP,
    _STREAM_USAGE,
    _TV,
    _WARMUP_DAYS,
    _WEEKEND_FACTOR,
    _rng,
    _usage_multiplier_and_extra,
)
from mlops_assets.synthetic.state import _Recorder, _State
from mlops_assets.synthetic.treatment import _Treatment


class SyntheticSource:
    """Deterministic subscription source system: simulate ground truth and write dirty daily landing files."""

    def __init__(self, config: SourceConfig) -> None:
        if not isinstance(config, SourceConfig):
            raise ValueError(f"config must be a SourceConfig, got {config!r}")
        self.config = config

    # ----------------------------------------------------------------------------------------------------
    # Simulation
    # ----------------------------------------------------------------------------------------------------

    def simulate(self, end_date: date, contacts: Mapping[date, Iterable[str]] | None = None) -> Simulation:
        """Clean ground truth from start_date through end_date inclusive.

        ``contacts`` maps a day to the ids of customers given a retention contact at its end (see
        ``TreatmentConfig``); ``Simulation.contacts`` records each one's true effect."""
        cfg = self.config
        if not isinstance(end_date, date) or end_date < cfg.start_date:
            raise ValueError(
                f"end_date must be a date on or after start_date {cfg.start_date}, got {end_date!r}"
            )
        treatment = _Treatment(cfg, contacts)
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
            self._step(state, ordinal, recorder, treatment)
            treatment.contact(state, ordinal)
        sim = self._build_simulation(state, recorder)
        sim.contacts = treatment.frame()
        return sim

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
        state.treat_until_ord[sl] = -1
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

    def _step(
        self, state: _State, ordinal: int, rec: _Recorder | None, treatment: _Treatment | None = None
    ) -> None:
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
        if treatment is not None:  # a contacted churner may be kept (their own draw, so others keep theirs)
            churned, cancel_secs = treatment.save(state, ordinal, churned, cancel_secs)
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

    def write_landing(
        self, root: Path, days: Iterable[date], contacts: Mapping[date, Iterable[str]] | None = None
    ) -> dict[date, dict[str, Path]]:
        """Write root/<YYYY-MM-DD>/{customers.csv, usage_events.jsonl, billing_events.csv} for each day.

        Simulates once up to the last day. Each file is written to a temp file and renamed into place, so a
        killed writer never leaves half a file, and re-writing a day yields byte-identical files.
        Returns {day: {"customers" | "usage_events" | "billing_events": path}}. ``contacts`` as in ``simulate``.
        """
        return write_landing_files(self.config, partial(self.simulate, contacts=contacts), root, days)
