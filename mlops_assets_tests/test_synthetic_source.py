"""Properties of the synthetic source that downstream layers (ingest, features, churn model, drift monitor) rely on."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlops_assets.atomic_files as atomic_files
from mlops_assets.synthetic.landing import RESEND_MAX_DAYS
from mlops_assets.synthetic.source import (
    BILLING_COLUMNS,
    CUSTOMER_COLUMNS,
    SCENARIOS,
    USAGE_COLUMNS,
    DirtConfig,
    Simulation,
    SourceConfig,
    SyntheticSource,
)

START = date(2026, 1, 1)
DRIFT = START + timedelta(days=60)
DRIFT_END = START + timedelta(days=119)
TS_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _day(offset: int) -> date:
    return START + timedelta(days=offset)


def _days(first: int, last: int) -> list[date]:
    return [_day(i) for i in range(first, last + 1)]


@pytest.fixture(scope="module")
def base_sim() -> Simulation:
    return SyntheticSource(SourceConfig(seed=42)).simulate(_day(149))


@pytest.fixture(scope="module")
def scenario_sims() -> dict[str, Simulation]:
    """Every scenario with the same seed and an early drift start, so 60 days of drift fit in 120 days."""
    return {
        name: SyntheticSource(SourceConfig(seed=11, scenario=name, drift_start=DRIFT)).simulate(DRIFT_END)
        for name in SCENARIOS
    }


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


def _churn_rate(sim: Simulation, t: date, days: int = 30) -> float:
    """Share of customers active at the start of ``t`` who cancel within [t, t + days)."""
    churn = dict(zip(sim.churn.customer_id, sim.churn.churn_date, strict=True))
    active = [
        cid
        for cid, signup in zip(sim.customers.customer_id, sim.customers.signup_date, strict=True)
        if signup <= t and churn.get(cid, date.max) >= t
    ]
    churned = sum(1 for cid in active if churn.get(cid, date.max) < t + timedelta(days=days))
    return churned / len(active)


def _snapshot(sim: Simulation, t: date) -> pd.DataFrame:
    """Per customer active at t: 14-day mean minutes, tickets, trend, and the 30-day churn label."""
    churn = dict(zip(sim.churn.customer_id, sim.churn.churn_date, strict=True))
    u = sim.usage
    recent = u[(u.event_date > t - timedelta(days=7)) & (u.event_date <= t)]
    window = u[(u.event_date > t - timedelta(days=14)) & (u.event_date <= t)]
    before = u[(u.event_date > t - timedelta(days=28)) & (u.event_date <= t - timedelta(days=7))]
    snap = window.groupby("customer_id").agg(
        minutes=("minutes_used", "mean"), tickets=("support_tickets", "sum"), days=("event_date", "size")
    )
    snap["m7"] = recent.groupby("customer_id").minutes_used.mean()
    snap["m28"] = before.groupby("customer_id").minutes_used.mean()
    snap = snap[[churn.get(c, date.max) > t for c in snap.index]].dropna()
    snap["label"] = [churn.get(c, date.max) <= t + timedelta(days=30) for c in snap.index]
    return snap


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    """ROC-AUC via the rank-sum identity (ties get average ranks)."""
    ranks = pd.Series(score).rank().to_numpy()
    pos = label.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _usage_between(sim: Simulation, first: date, last: date) -> pd.DataFrame:
    u = sim.usage
    return u[(u.event_date >= first) & (u.event_date <= last)]


def _read_csv_lines(path: Path) -> tuple[list[str], list[str]]:
    lines = path.read_text().splitlines()
    return lines[0].split(","), lines[1:]


def _csv_field_ok(value: str, kind: str) -> bool:
    if value == "" or kind == "str":
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True


CSV_KINDS = {
    "customers": {"age": "num", "monthly_fee": "num"},
    "billing_events": {"amount": "num"},
}


def _parse_csv_file(path: Path, table: str) -> tuple[list[dict[str, str]], int, int]:
    """(well-formed rows as dicts, malformed line count, total data lines) for a landing CSV."""
    header, lines = _read_csv_lines(path)
    good, bad = [], 0
    for fields in csv.reader(lines):
        row = dict(zip(header, fields, strict=False))
        kinds = CSV_KINDS[table]
        if len(fields) != len(header) or not all(_csv_field_ok(row[c], kinds.get(c, "str")) for c in header):
            bad += 1
        else:
            good.append(row)
    return good, bad, len(lines)


def _parse_jsonl_file(path: Path) -> tuple[list[dict], int, int]:
    lines = path.read_text().splitlines()
    good, bad = [], 0
    for line in lines:
        try:
            good.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    return good, bad, len(lines)


# --------------------------------------------------------------------------------------------------------
# Config and API
# --------------------------------------------------------------------------------------------------------


def test_scenarios_registry_matches_contract() -> None:
    assert set(SCENARIOS) == {
        "none",
        "gradual_covariate_shift",
        "sudden_covariate_shift",
        "concept_shift",
        "null_spike",
    }
    assert SCENARIOS["none"].drifted_columns == ()
    assert SCENARIOS["concept_shift"].drifted_columns == ()
    assert SCENARIOS["gradual_covariate_shift"].drifted_columns == ("minutes_used", "device")
    assert SCENARIOS["sudden_covariate_shift"].drifted_columns == ("minutes_used", "sessions")
    assert SCENARIOS["null_spike"].drifted_columns == ("minutes_used", "support_tickets")
    assert [n for n, s in SCENARIOS.items() if s.changes_label_relationship] == ["concept_shift"]
    assert all(s.name == n and s.description for n, s in SCENARIOS.items())


def test_dirt_clean_zeroes_every_rate() -> None:
    clean = DirtConfig.clean()
    assert all(v == 0 for v in vars(clean).values())
    assert DirtConfig().duplicate_rate == 0.01


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"scenario": "solar_flare"}, "scenario"),
        ({"initial_customers": -1}, "initial_customers"),
        ({"daily_signups": -5}, "daily_signups"),
        ({"seed": -1}, "seed"),
        ({"drift_start": date(2025, 12, 1)}, "drift_start"),
        ({"dirt": "dirty"}, "dirt"),
    ],
)
def test_invalid_source_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SourceConfig(**kwargs)


def test_unknown_scenario_error_lists_allowed_values() -> None:
    with pytest.raises(ValueError, match="gradual_covariate_shift"):
        SourceConfig(scenario="nope")


@pytest.mark.parametrize("field", ["duplicate_rate", "late_rate", "null_rate", "malformed_rate"])
@pytest.mark.parametrize("value", [-0.01, 1.5])
def test_rates_outside_unit_interval_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        DirtConfig(**{field: value})


def test_simulate_rejects_end_before_start() -> None:
    with pytest.raises(ValueError, match="end_date"):
        SyntheticSource(SourceConfig()).simulate(START - timedelta(days=1))


# --------------------------------------------------------------------------------------------------------
# Ground truth: shape, determinism, behaviour
# --------------------------------------------------------------------------------------------------------


def test_frames_have_contract_columns_and_valid_values(base_sim: Simulation) -> None:
    sim = base_sim
    assert tuple(sim.customers.columns) == CUSTOMER_COLUMNS
    assert tuple(sim.customer_updates.columns) == CUSTOMER_COLUMNS
    assert tuple(sim.usage.columns) == USAGE_COLUMNS
    assert tuple(sim.billing.columns) == BILLING_COLUMNS
    assert tuple(sim.churn.columns) == ("customer_id", "churn_date")

    c = sim.customers
    assert c.customer_id.is_unique and c.customer_id.str.fullmatch(r"C\d{6}").all()
    assert set(c.plan) == {"basic", "standard", "premium"}
    assert set(c.region) == {"NA", "EU", "APAC", "LATAM"}
    assert set(c.acquisition_channel) == {"organic", "paid_search", "referral", "partner"}
    assert c.age.between(18, 80).all()
    fees = c.plan.map({"basic": 9.99, "standard": 15.99, "premium": 22.99})
    assert (c.monthly_fee == fees).all()
    initial = c[c.signup_date < START]
    assert len(initial) == 2000
    assert initial.signup_date.min() >= START - timedelta(days=731)

    u = sim.usage
    assert u.event_id.is_unique
    assert (u.sessions >= 0).all() and (u.minutes_used >= 0).all() and (u.support_tickets >= 0).all()
    assert ((u.minutes_used * 10).round() == u.minutes_used * 10).all()
    assert set(u.device) == {"mobile", "desktop", "tv", "tablet"}
    assert not u.duplicated(["customer_id", "event_date"]).any()

    b = sim.billing
    assert b.event_id.is_unique
    assert set(b.event_type) == {"charge", "payment_failed", "refund", "cancel"}
    assert (b.amount >= 0).all() and (b.amount[b.event_type == "cancel"] == 0).all()
    assert set(b.payment_method) <= {"card", "paypal", "bank_transfer"}
    cancels = b[b.event_type == "cancel"]
    assert sorted(cancels.customer_id) == sorted(sim.churn.customer_id)


def test_no_activity_outside_customer_lifetime(base_sim: Simulation) -> None:
    sim = base_sim
    signup = dict(zip(sim.customers.customer_id, sim.customers.signup_date, strict=True))
    churn = dict(zip(sim.churn.customer_id, sim.churn.churn_date, strict=True))
    u = sim.usage
    assert all(d >= signup[c] for c, d in zip(u.customer_id, u.event_date, strict=True))
    assert all(d < churn.get(c, date.max) for c, d in zip(u.customer_id, u.event_date, strict=True))
    billing_days = sim.billing.event_ts.dt.date
    assert all(
        d <= churn.get(c, date.max) for c, d in zip(sim.billing.customer_id, billing_days, strict=True)
    )
    # One usage row per active customer per day.
    day = _day(100)
    active = sum(1 for c, s in signup.items() if s <= day and churn.get(c, date.max) > day)
    assert (u.event_date == day).sum() == active


def test_monthly_charges_fall_on_the_signup_day_of_month(base_sim: Simulation) -> None:
    sim = base_sim
    signup_dom = dict(zip(sim.customers.customer_id, [d.day for d in sim.customers.signup_date], strict=True))
    charges = sim.billing[sim.billing.event_type == "charge"]
    days = charges.event_ts.dt.date
    ok = [
        dom == d.day
        or (dom > d.day and (d + timedelta(days=1)).day == 1)  # short months bill on the last day
        for dom, d in zip(charges.customer_id.map(signup_dom), days, strict=True)
    ]
    retries = (~pd.Series(ok)).sum()
    assert retries < 0.1 * len(charges)  # the rest are successful retries of a failed charge
    per_customer = charges.groupby("customer_id").size()
    assert per_customer.max() <= 7  # about one a month over 150 days (plus retries)


def test_same_config_is_deterministic(base_sim: Simulation) -> None:
    again = SyntheticSource(SourceConfig(seed=42)).simulate(_day(149))
    for name in ("customers", "usage", "billing", "churn", "customer_updates"):
        pd.testing.assert_frame_equal(getattr(base_sim, name), getattr(again, name))


def test_simulation_is_prefix_consistent(base_sim: Simulation) -> None:
    cut = _day(70)
    short = SyntheticSource(SourceConfig(seed=42)).simulate(cut)
    pd.testing.assert_frame_equal(short.usage, base_sim.usage[base_sim.usage.event_date <= cut])
    pd.testing.assert_frame_equal(
        short.billing, base_sim.billing[base_sim.billing.event_ts.dt.date <= cut].reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(
        short.churn, base_sim.churn[base_sim.churn.churn_date <= cut].reset_index(drop=True)
    )
    updates = base_sim.customer_updates
    pd.testing.assert_frame_equal(
        short.customer_updates, updates[updates.updated_at.dt.date <= cut].reset_index(drop=True)
    )


def test_different_seeds_differ(base_sim: Simulation) -> None:
    other = SyntheticSource(SourceConfig(seed=43)).simulate(_day(149))
    assert not base_sim.usage.minutes_used.head(5000).equals(other.usage.minutes_used.head(5000))
    assert not base_sim.churn.equals(other.churn)
    assert not base_sim.customers.age.equals(other.customers.age)


def test_churn_rate_per_30_day_window_is_calibrated(base_sim: Simulation) -> None:
    rates = [_churn_rate(base_sim, _day(k)) for k in (0, 30, 60, 90, 119)]
    assert all(0.12 <= r <= 0.25 for r in rates), rates


def test_population_stays_roughly_stable(base_sim: Simulation) -> None:
    per_day = base_sim.usage.groupby("event_date").size()
    assert per_day.min() >= 1500 and per_day.max() <= 2600
    assert len(base_sim.customers) == pytest.approx(2000 + 12 * 150, rel=0.05)


def test_usage_declines_in_the_weeks_before_churn(base_sim: Simulation) -> None:
    churn = base_sim.churn[base_sim.churn.churn_date >= _day(45)]
    churn_date = dict(zip(churn.customer_id, churn.churn_date, strict=True))
    u = base_sim.usage[base_sim.usage.customer_id.isin(churn_date)]
    lead = np.array([(churn_date[c] - d).days for c, d in zip(u.customer_id, u.event_date, strict=True)])
    by_week = pd.Series(u.minutes_used.to_numpy()).groupby(np.minimum(lead - 1, 41) // 7).mean()
    # Week 0 = last 7 days before churn, week 5 = 36-42 days before.
    assert by_week[0] < 0.5 * by_week[5]
    assert by_week[1] < 0.75 * by_week[5]
    assert by_week[2] < 0.9 * by_week[5]
    assert list(by_week.loc[0:4]) == sorted(by_week.loc[0:4])  # monotone decline into churn


def test_recent_behaviour_predicts_30_day_churn(base_sim: Simulation) -> None:
    snaps = [_snapshot(base_sim, _day(k)) for k in (60, 90)]
    snap = pd.concat(snaps)
    trend_score = -np.log((snap.m7 + 1) / (snap.m28 + 1))
    auc_trend = _auc(trend_score.to_numpy(), snap.label.to_numpy())
    auc_tickets = _auc(snap.tickets.to_numpy(), snap.label.to_numpy())
    assert 0.65 <= auc_trend <= 0.9
    assert auc_tickets > 0.52
    assert snap[snap.label].minutes.mean() < 0.8 * snap[~snap.label].minutes.mean()


def test_simulate_120_days_is_fast() -> None:
    started = time.perf_counter()
    sim = SyntheticSource(SourceConfig(seed=5, initial_customers=2000, daily_signups=12)).simulate(_day(119))
    elapsed = time.perf_counter() - started
    assert len(sim.customers) > 3300
    assert elapsed < 5.0


# --------------------------------------------------------------------------------------------------------
# Landing files
# --------------------------------------------------------------------------------------------------------


def _expected_customers(sim: Simulation, day: date) -> pd.DataFrame:
    rows = sim.customer_updates[sim.customer_updates.updated_at.dt.date == day].copy()
    rows["signup_date"] = [d.isoformat() for d in rows.signup_date]
    rows["updated_at"] = rows.updated_at.dt.strftime(TS_FORMAT)
    return rows.reset_index(drop=True)


def _expected_usage(sim: Simulation, day: date) -> pd.DataFrame:
    rows = sim.usage[sim.usage.event_date == day].copy()
    rows["event_date"] = [d.isoformat() for d in rows.event_date]
    return rows.reset_index(drop=True)


def _expected_billing(sim: Simulation, day: date) -> pd.DataFrame:
    rows = sim.billing[sim.billing.event_ts.dt.date == day].copy()
    rows["event_ts"] = rows.event_ts.dt.strftime(TS_FORMAT)
    return rows.reset_index(drop=True)


def test_clean_landing_files_are_exactly_the_simulated_rows(tmp_path: Path) -> None:
    config = SourceConfig(seed=3, initial_customers=600, dirt=DirtConfig.clean())
    source = SyntheticSource(config)
    days = [*_days(0, 3), _day(40)]
    written = source.write_landing(tmp_path, days)
    sim = source.simulate(days[-1])

    assert set(written) == set(days)
    for day in days:
        paths = written[day]
        assert paths == {
            "customers": tmp_path / day.isoformat() / "customers.csv",
            "usage_events": tmp_path / day.isoformat() / "usage_events.jsonl",
            "billing_events": tmp_path / day.isoformat() / "billing_events.csv",
        }
        customers = pd.read_csv(paths["customers"], keep_default_na=False)  # region "NA" is not a null
        assert list(customers.columns) == list(CUSTOMER_COLUMNS)
        pd.testing.assert_frame_equal(customers, _expected_customers(sim, day), check_dtype=False)

        lines = paths["usage_events"].read_text().splitlines()
        usage = pd.DataFrame([json.loads(line) for line in lines])
        assert list(usage.columns) == list(USAGE_COLUMNS)
        pd.testing.assert_frame_equal(usage, _expected_usage(sim, day), check_dtype=False)

        billing = pd.read_csv(paths["billing_events"], keep_default_na=False)
        assert list(billing.columns) == list(BILLING_COLUMNS)
        pd.testing.assert_frame_equal(billing, _expected_billing(sim, day), check_dtype=False)

    first_day = pd.read_csv(written[START]["customers"], keep_default_na=False)
    assert len(first_day) == 600 + (sim.customers.signup_date == START).sum()


def test_landing_files_are_byte_identical_across_writers_and_rewrites(tmp_path: Path) -> None:
    days = _days(0, 6)
    config = SourceConfig(seed=8, initial_customers=500)
    first = SyntheticSource(config).write_landing(tmp_path / "a", days)
    second = SyntheticSource(config).write_landing(tmp_path / "b", reversed(days))
    snapshot = {(d, t): p.read_bytes() for d, paths in first.items() for t, p in paths.items()}
    for (day, table), data in snapshot.items():
        assert second[day][table].read_bytes() == data
    # Rewriting a single day in place (simulating only up to it) reproduces the same bytes.
    rewritten = SyntheticSource(config).write_landing(tmp_path / "a", [days[4]])
    for table, path in rewritten[days[4]].items():
        assert path.read_bytes() == snapshot[(days[4], table)]
    assert not list((tmp_path / "a").rglob("*.tmp"))
    other = SyntheticSource(replace(config, seed=9)).write_landing(tmp_path / "c", days[:1])
    assert other[days[0]]["usage_events"].read_bytes() != snapshot[(days[0], "usage_events")]


def test_a_failed_write_leaves_the_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = SyntheticSource(SourceConfig(seed=1, initial_customers=200))
    paths = source.write_landing(tmp_path, [START])[START]
    before = {table: path.read_bytes() for table, path in paths.items()}

    def crash(*_args: object) -> None:
        raise OSError("killed mid-write")

    monkeypatch.setattr(atomic_files.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        SyntheticSource(SourceConfig(seed=2, initial_customers=200)).write_landing(tmp_path, [START])
    assert {table: path.read_bytes() for table, path in paths.items()} == before
    folder = tmp_path / START.isoformat()
    assert sorted(p.name for p in folder.iterdir()) == [
        "billing_events.csv",
        "customers.csv",
        "usage_events.jsonl",
    ]


DIRTY = DirtConfig(
    duplicate_rate=0.03,
    late_rate=0.05,
    null_rate=0.05,
    malformed_rate=0.02,
    out_of_range_rate=0.02,
    unknown_category_rate=0.02,
)


@pytest.fixture(scope="module")
def dirty_landing(tmp_path_factory: pytest.TempPathFactory) -> dict[date, dict[str, Path]]:
    root = tmp_path_factory.mktemp("dirty")
    config = SourceConfig(seed=21, initial_customers=1500, daily_signups=30, dirt=DIRTY)
    return SyntheticSource(config).write_landing(root, _days(0, 24))


def _all_lines(written: dict[date, dict[str, Path]], table: str) -> list[tuple[date, list[str]]]:
    out = []
    for day, paths in sorted(written.items()):
        lines = paths[table].read_text().splitlines()
        out.append((day, lines[1:] if table != "usage_events" else lines))
    return out


@pytest.mark.parametrize("table", ["customers", "usage_events", "billing_events"])
def test_dirty_files_contain_exact_duplicates_at_rate(dirty_landing: dict, table: str) -> None:
    extra = total = 0
    for _, lines in _all_lines(dirty_landing, table):
        extra += len(lines) - len(set(lines))
        total += len(set(lines))
    assert extra / total == pytest.approx(DIRTY.duplicate_rate, rel=0.35)


def test_dirty_files_contain_malformed_lines_at_rate(dirty_landing: dict) -> None:
    bad = total = 0
    for paths in dirty_landing.values():
        _, n_bad, n = _parse_jsonl_file(paths["usage_events"])
        bad, total = bad + n_bad, total + n
    assert bad / total == pytest.approx(DIRTY.malformed_rate, rel=0.3)
    with pytest.raises(json.JSONDecodeError):
        for line in dirty_landing[_day(5)]["usage_events"].read_text().splitlines():
            json.loads(line)

    for table in ("customers", "billing_events"):
        bad = total = 0
        for paths in dirty_landing.values():
            _, n_bad, n = _parse_csv_file(paths[table], table)
            bad, total = bad + n_bad, total + n
        assert bad / total == pytest.approx(DIRTY.malformed_rate, rel=0.4), table
    # pandas' strict reader refuses a file with a wrong field count somewhere in it
    with pytest.raises(pd.errors.ParserError):
        pd.read_csv(dirty_landing[START]["customers"])


def test_late_usage_rows_land_in_a_later_file(dirty_landing: dict) -> None:
    late = total = 0
    for day, paths in sorted(dirty_landing.items()):
        rows, _, _ = _parse_jsonl_file(paths["usage_events"])
        dates = [date.fromisoformat(r["event_date"]) for r in rows]
        assert all(d <= day for d in dates)
        assert all((day - d).days <= 3 + RESEND_MAX_DAYS for d in dates)  # late, then perhaps re-sent
        if day >= _day(6):
            late += sum(d < day for d in dates)
            total += len(dates)
    assert late / total == pytest.approx(DIRTY.late_rate + DIRTY.resend_rate, rel=0.2)


@pytest.mark.parametrize("table", ["customers", "usage_events", "billing_events"])
def test_resent_records_arrive_again_unchanged_one_to_three_days_later(
    dirty_landing: dict, table: str
) -> None:
    key = "updated_at" if table == "customers" else "event_id"
    first_seen: dict[tuple, tuple[date, dict]] = {}
    resent = unchanged = total = 0
    for day, lines in _all_lines(dirty_landing, table):
        rows = (
            _parse_jsonl_file(dirty_landing[day][table])[0]
            if table == "usage_events"
            else _parse_csv_file(dirty_landing[day][table], table)[0]
        )
        distinct_rows = {json.dumps(r, sort_keys=True): r for r in rows}  # in-file copies are the other dirt
        for row in distinct_rows.values():
            ident = (row["customer_id"], row[key])
            if ident in first_seen:
                first_day, first_row = first_seen[ident]
                assert 1 <= (day - first_day).days <= RESEND_MAX_DAYS, ident
                resent += 1
                unchanged += row == first_row
            else:
                first_seen[ident] = (day, row)
        total += len(lines)
    if table == "usage_events":  # the table with enough rows for a rate (a few thousand a day)
        assert resent / total == pytest.approx(DIRTY.resend_rate, rel=0.3)
    assert resent > 0
    # the copy is the record as simulated; its first file may have dirtied a value (here 5 % nulls per column)
    assert unchanged / resent > 0.7


def test_out_of_range_unknown_and_null_values_appear_at_rate(dirty_landing: dict) -> None:
    usage = pd.DataFrame(
        [r for paths in dirty_landing.values() for r in _parse_jsonl_file(paths["usage_events"])[0]]
    )
    billing = pd.DataFrame(
        [
            r
            for paths in dirty_landing.values()
            for r in _parse_csv_file(paths["billing_events"], "billing_events")[0]
        ]
    )
    customers = pd.DataFrame(
        [r for paths in dirty_landing.values() for r in _parse_csv_file(paths["customers"], "customers")[0]]
    )

    oor_usage = (usage.minutes_used < 0) | (usage.sessions < 0)
    assert oor_usage.mean() == pytest.approx(DIRTY.out_of_range_rate, rel=0.3)
    assert (usage.sessions == -3).any() and (usage.minutes_used < 0).any()
    amount = pd.to_numeric(billing.amount.replace("", np.nan))
    assert (amount < 0).mean() == pytest.approx(DIRTY.out_of_range_rate, rel=0.5)
    age = pd.to_numeric(customers.age.replace("", np.nan))
    fee = pd.to_numeric(customers.monthly_fee.replace("", np.nan))
    assert ((age == 150) | (fee < 0)).mean() == pytest.approx(DIRTY.out_of_range_rate, rel=0.4)

    assert (usage.device == "smartwatch").mean() == pytest.approx(DIRTY.unknown_category_rate, rel=0.3)
    assert (billing.payment_method == "crypto").mean() == pytest.approx(DIRTY.unknown_category_rate, rel=0.5)
    unknown_customers = (customers.plan == "platinum") | (customers.region == "MARS")
    assert unknown_customers.mean() == pytest.approx(DIRTY.unknown_category_rate, rel=0.4)

    assert usage.device.isna().mean() == pytest.approx(DIRTY.null_rate, rel=0.2)
    assert usage.minutes_used.isna().mean() == pytest.approx(DIRTY.null_rate, rel=0.2)
    assert (billing.payment_method == "").mean() == pytest.approx(DIRTY.null_rate, rel=0.3)
    assert (customers.region == "").mean() == pytest.approx(DIRTY.null_rate, rel=0.4)
    null_keys = pd.concat([usage.customer_id.isna(), billing.customer_id == "", customers.customer_id == ""])
    assert null_keys.mean() == pytest.approx(DIRTY.null_rate / 5, rel=0.35)
    assert usage.event_id.notna().all() and usage.event_date.notna().all()


def test_default_dirt_shows_every_kind_at_roughly_its_rate(tmp_path: Path) -> None:
    dirt = DirtConfig()
    written = SyntheticSource(SourceConfig(seed=4, dirt=dirt)).write_landing(tmp_path, _days(0, 29))
    rows, bad, total, late, dup = [], 0, 0, 0, 0
    for day, paths in written.items():
        good, n_bad, n = _parse_jsonl_file(paths["usage_events"])
        lines = paths["usage_events"].read_text().splitlines()
        rows.extend(good)
        bad, total, dup = bad + n_bad, total + n, dup + len(lines) - len(set(lines))
        late += sum(r["event_date"] < day.isoformat() for r in good)
    usage = pd.DataFrame(rows)
    assert dup / total == pytest.approx(dirt.duplicate_rate, rel=0.25)
    assert late / total == pytest.approx((dirt.late_rate + dirt.resend_rate) * 29 / 30, rel=0.25)
    assert bad / total == pytest.approx(dirt.malformed_rate, rel=0.5)
    assert usage.sessions.isna().mean() == pytest.approx(dirt.null_rate, rel=0.35)
    assert ((usage.minutes_used < 0) | (usage.sessions < 0)).mean() == pytest.approx(
        dirt.out_of_range_rate, rel=0.4
    )
    assert (usage.device == "smartwatch").mean() == pytest.approx(dirt.unknown_category_rate, rel=0.5)
    assert usage.customer_id.isna().sum() > 0


# --------------------------------------------------------------------------------------------------------
# Drift scenarios
# --------------------------------------------------------------------------------------------------------


def test_default_drift_start_is_90_days_after_start() -> None:
    assert SourceConfig().effective_drift_start == START + timedelta(days=90)
    assert SourceConfig(drift_start=DRIFT).effective_drift_start == DRIFT


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "none"])
def test_data_before_drift_start_is_identical_to_none(scenario_sims: dict, scenario: str) -> None:
    none, drifted = scenario_sims["none"], scenario_sims[scenario]
    before = DRIFT - timedelta(days=1)
    pd.testing.assert_frame_equal(
        none.usage[none.usage.event_date <= before], drifted.usage[drifted.usage.event_date <= before]
    )
    pd.testing.assert_frame_equal(
        none.churn[none.churn.churn_date <= before], drifted.churn[drifted.churn.churn_date <= before]
    )


def _window(sim: Simulation, first: int, last: int) -> pd.DataFrame:
    return _usage_between(sim, DRIFT + timedelta(days=first), DRIFT + timedelta(days=last))


def test_gradual_covariate_shift_moves_minutes_and_device_only(scenario_sims: dict) -> None:
    none, drifted = scenario_sims["none"], scenario_sims["gradual_covariate_shift"]
    early_n, early_d = _window(none, 0, 4), _window(drifted, 0, 4)
    late_n, late_d = _window(none, 30, 59), _window(drifted, 30, 59)
    assert early_d.minutes_used.mean() / early_n.minutes_used.mean() < 1.15  # gradual, not sudden
    assert late_d.minutes_used.mean() / late_n.minutes_used.mean() == pytest.approx(1.6, abs=0.05)
    mid = _window(drifted, 14, 14).minutes_used.mean() / _window(none, 14, 14).minutes_used.mean()
    assert 1.2 < mid < 1.45
    assert (late_d.device == "tv").mean() > (late_n.device == "tv").mean() + 0.2
    # Everything else is exactly what the stationary source produced.
    assert drifted.usage.sessions.equals(none.usage.sessions)
    assert drifted.usage.support_tickets.equals(none.usage.support_tickets)
    pd.testing.assert_frame_equal(drifted.churn, none.churn)
    pd.testing.assert_frame_equal(drifted.billing, none.billing)
    pd.testing.assert_frame_equal(drifted.customers, none.customers)


def test_sudden_covariate_shift_moves_minutes_and_sessions_from_day_one(scenario_sims: dict) -> None:
    none, drifted = scenario_sims["none"], scenario_sims["sudden_covariate_shift"]
    day_n, day_d = _window(none, 0, 2), _window(drifted, 0, 2)
    assert day_d.minutes_used.mean() / day_n.minutes_used.mean() == pytest.approx(1.8, abs=0.03)
    assert day_d.sessions.mean() - day_n.sessions.mean() == pytest.approx(3.0, abs=0.2)
    assert drifted.usage.device.equals(none.usage.device)
    assert drifted.usage.support_tickets.equals(none.usage.support_tickets)
    pd.testing.assert_frame_equal(drifted.churn, none.churn)
    pd.testing.assert_frame_equal(drifted.customers, none.customers)


def test_null_spike_only_breaks_the_landing_files(scenario_sims: dict, tmp_path: Path) -> None:
    none, drifted = scenario_sims["none"], scenario_sims["null_spike"]
    for name in ("customers", "usage", "billing", "churn"):
        pd.testing.assert_frame_equal(getattr(drifted, name), getattr(none, name))
    config = SourceConfig(seed=11, scenario="null_spike", drift_start=DRIFT, dirt=DirtConfig.clean())
    written = SyntheticSource(config).write_landing(
        tmp_path, [DRIFT - timedelta(days=1), DRIFT, DRIFT + timedelta(1)]
    )
    for day, paths in written.items():
        usage = pd.DataFrame(_parse_jsonl_file(paths["usage_events"])[0])
        if day < DRIFT:
            assert usage.notna().all().all()
        else:
            assert usage.minutes_used.isna().mean() == pytest.approx(0.4, abs=0.05)
            assert usage.support_tickets.isna().mean() == pytest.approx(0.4, abs=0.05)
            assert usage.drop(columns=["minutes_used", "support_tickets"]).notna().all().all()


def test_concept_shift_keeps_features_but_changes_who_churns(scenario_sims: dict) -> None:
    none, drifted = scenario_sims["none"], scenario_sims["concept_shift"]
    window_n, window_d = _window(none, 0, 29), _window(drifted, 0, 29)
    assert window_d.minutes_used.mean() / window_n.minutes_used.mean() == pytest.approx(1.0, abs=0.05)
    assert window_d.sessions.mean() / window_n.sessions.mean() == pytest.approx(1.0, abs=0.05)
    assert window_d.support_tickets.mean() == pytest.approx(window_n.support_tickets.mean(), rel=0.2)
    assert (window_d.device == "tv").mean() == pytest.approx((window_n.device == "tv").mean(), abs=0.01)
    assert _churn_rate(drifted, DRIFT + timedelta(days=5)) == pytest.approx(
        _churn_rate(none, DRIFT + timedelta(days=5)), abs=0.05
    )

    def relationship(sim: Simulation, t: date) -> tuple[float, float]:
        snap = _snapshot(sim, t)
        churners, stayers = snap[snap.label], snap[~snap.label]
        return (
            churners.minutes.mean() / stayers.minutes.mean(),
            churners.tickets.mean() - stayers.tickets.mean(),
        )

    pre_minutes, pre_tickets = relationship(drifted, DRIFT - timedelta(days=31))
    post_minutes, post_tickets = relationship(drifted, DRIFT + timedelta(days=14))
    none_minutes, none_tickets = relationship(none, DRIFT + timedelta(days=14))
    assert pre_minutes < 0.75 and none_minutes < 0.75  # churners had been using the product less
    assert post_minutes > 1.1  # now the heavy users leave
    assert pre_tickets > 0.15 and none_tickets > 0.15
    assert abs(post_tickets) < 0.5 * pre_tickets  # tickets no longer mark churners
