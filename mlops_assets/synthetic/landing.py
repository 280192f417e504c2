"""From the simulation to the daily landing files: one file per table and day, with the dirt real sources
have (duplicates, late rows, nulls, malformed lines, out-of-range values, unknown categories)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from mlops_assets.atomic_files import atomic_write
from mlops_assets.synthetic.config import LANDING_FILES, NULL_SPIKE_RATE, DirtConfig, Simulation, SourceConfig
from mlops_assets.synthetic.frames import _iso_timestamps, _lookup, _ordinals_and_secs, _ordinals_of_dates
from mlops_assets.synthetic.parameters import (
    _STREAM_DIRT,
    _STREAM_LATE,
    _STREAM_NULL_SPIKE,
    _STREAM_RESEND,
    _rng,
)

RESEND_MAX_DAYS = 3  # a re-sent record arrives again 1-3 days after its first file

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
        self.columns = {
            "customers": self.customers,
            "usage_events": self.usage,
            "billing_events": self.billing,
        }
        # The day of each record's first file (sorted for customers and billing: their file day is their event day).
        self.first_file = {"customers": c_ord, "usage_events": self.usage_delivery, "billing_events": b_ord}
        self.resent = {
            table: _ResendSchedule.draw(cfg, table, days, first_ord)
            for table, days in self.first_file.items()
        }

    def _delivery_days(self, event_ords: np.ndarray, first_ord: int) -> np.ndarray:
        """The file day each usage row lands in: its event day, or 1-3 days later for late rows."""
        delivery = event_ords.copy()
        rate = self.cfg.dirt.late_rate
        if rate <= 0 or event_ords.size == 0:
            return delivery
        # From far enough back that every record whose first or re-sent file is on or after first_ord is placed.
        for o in range(max(first_ord - 3 - RESEND_MAX_DAYS, int(event_ords[0])), int(event_ords[-1]) + 1):
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
            lo, hi = np.searchsorted(self.first_file[table], [ordinal, ordinal + 1])
            cols = {k: v[lo:hi].copy() for k, v in self.columns[table].items()}
        spec = _SPECS[table]
        rng = _rng(self.cfg.seed, ordinal, _STREAM_DIRT[table])
        _apply_value_dirt(spec, cols, self.cfg.dirt, rng)
        lines = _format_lines(spec, cols)
        lines = _apply_line_dirt(spec, lines, self.cfg.dirt, rng)
        again = self.resent[table].on(ordinal)
        if again.size:  # after the dirt, so re-sends never move another kind's rows
            lines += _format_lines(spec, {k: v[again] for k, v in self.columns[table].items()})
        if spec.fmt == "csv":
            lines = [",".join(name for name, _ in spec.columns), *lines]
        return "".join(line + "\n" for line in lines).encode("utf-8")


@dataclass(frozen=True)
class _ResendSchedule:
    """Which records a table's file of each day sends a second time (an upstream retry), as sorted arrays."""

    days: np.ndarray  # the day of the second send, sorted
    rows: np.ndarray  # the record each entry re-sends

    @classmethod
    def draw(cls, cfg: SourceConfig, table: str, first_file: np.ndarray, first_ord: int) -> _ResendSchedule:
        """``resend_rate`` of the records, each 1-``RESEND_MAX_DAYS`` days after its first file. Drawn per day of
        the first file over that day's records in simulation order, so a day's draws never depend on later days
        (the simulation of a later end date is a prefix-extension of an earlier one)."""
        rate = cfg.dirt.resend_rate
        if rate <= 0 or first_file.size == 0:
            return cls(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
        order = np.argsort(first_file, kind="stable")
        sorted_days = first_file[order]
        days, rows = [], []
        for o in range(max(first_ord - RESEND_MAX_DAYS, int(sorted_days[0])), int(sorted_days[-1]) + 1):
            lo, hi = np.searchsorted(sorted_days, [o, o + 1])
            rng = _rng(cfg.seed, o, _STREAM_RESEND[table])
            again = rng.random(hi - lo) < rate
            delay = rng.integers(1, RESEND_MAX_DAYS + 1, size=hi - lo)
            days.append(o + delay[again])
            rows.append(order[lo:hi][again])
        all_days, all_rows = np.concatenate(days), np.concatenate(rows)
        by_day = np.argsort(all_days, kind="stable")
        return cls(all_days[by_day], all_rows[by_day])

    def on(self, ordinal: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.days, [ordinal, ordinal + 1])
        return self.rows[lo:hi]


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


def write_landing_files(
    config: SourceConfig, simulate: Callable[[date], Simulation], root: Path | str, days: Iterable[date]
) -> dict[date, dict[str, Path]]:
    """Simulate once up to the last day, then render and atomically write each day's three files."""
    wanted = sorted(set(days))
    if not wanted:
        return {}
    for d in wanted:
        if not isinstance(d, date) or d < config.start_date:
            raise ValueError(f"days must be dates on or after start_date {config.start_date}, got {d!r}")
    renderer = _LandingRenderer(config, simulate(wanted[-1]), wanted[0].toordinal())
    written: dict[date, dict[str, Path]] = {}
    for d in wanted:
        folder = Path(root) / d.isoformat()
        paths: dict[str, Path] = {}
        for table, filename in LANDING_FILES.items():
            path = folder / filename
            atomic_write(path, renderer.render(table, d.toordinal()))
            paths[table] = path
        written[d] = paths
    return written
