"""Retention contacts in the simulation: which customer each contact reaches, the window and hazard reduction
it starts at the end of its day, and the separate save draws that turn the reduction into churners kept."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

import numpy as np
import pandas as pd

from mlops_assets.synthetic.config import SourceConfig, empty_contacts
from mlops_assets.synthetic.parameters import _STREAM_TREATMENT, _rng
from mlops_assets.synthetic.state import _State

Contacts = Mapping[date, Iterable[str]]


def _customer_index(customer_id: str) -> int:
    """The state index behind a simulation id (``C000001`` is 0, as ``frames._customer_ids`` names them), or -1
    for a string no simulation gives a customer."""
    digits = customer_id[1:]
    if customer_id[:1] != "C" or not (digits.isascii() and digits.isdigit()):
        return -1
    number = int(digits)
    return number - 1 if number >= 1 and f"C{number:06d}" == customer_id else -1


def _contact_list(contacts: Contacts | None) -> tuple[np.ndarray, np.ndarray]:
    """(day ordinals, customer ids) of every contact given, sorted by day and otherwise in the order given."""
    if contacts is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
    if not isinstance(contacts, Mapping):
        raise ValueError(f"contacts must be a mapping of datetime.date to customer ids, got {contacts!r}")
    ords: list[int] = []
    ids: list[str] = []
    for day, customer_ids in contacts.items():
        if not isinstance(day, date):
            raise ValueError(f"contacts keys must be datetime.date, got {day!r}")
        if isinstance(customer_ids, str) or not isinstance(customer_ids, Iterable):
            raise ValueError(
                f"contacts[{day}] must be an iterable of customer id strings, got {customer_ids!r}"
            )
        for customer_id in customer_ids:
            if not isinstance(customer_id, str):
                raise ValueError(f"contacts[{day}] holds a customer id that is not a string: {customer_id!r}")
            ords.append(day.toordinal())
            ids.append(str(customer_id))
    order = np.argsort(np.array(ords, dtype=np.int64), kind="stable")
    return np.array(ords, dtype=np.int64)[order], np.array(ids, dtype=object)[order]


class _Treatment:
    """The contacts of one ``simulate`` call, mapped to customer indices once, and the truth they produced.

    The simulation calls ``contact`` at the end of each recorded day and ``save`` right after each day's churn
    draw; both touch only the customers inside a contact window, so without contacts nothing changes."""

    def __init__(self, config: SourceConfig, contacts: Contacts | None) -> None:
        self.seed = config.seed
        self.scale = float(config.treatment.effect_scale)
        self.days = int(config.treatment.effect_days)
        self.ords, self.ids = _contact_list(contacts)
        k = self.ords.size
        self.index = np.array([_customer_index(c) for c in self.ids.tolist()], dtype=np.int64)
        self.applied = np.zeros(k, dtype=bool)
        self.risk = np.full(k, np.nan)
        self.effect = np.zeros(k)
        self.saved_ord = np.full(k, -1, dtype=np.int64)
        days, starts = np.unique(self.ords, return_index=True)
        groups = np.split(np.arange(k), starts[1:]) if k else []
        self.by_day = dict(zip(days.tolist(), groups, strict=True))
        self.row_of: dict[int, int] = {}  # customer index -> the contact whose window they are in
        self.last_until = -1  # no window reaches past this day

    def contact(self, state: _State, ordinal: int) -> None:
        """End of day ``ordinal``: each contacted active customer gets a window of ``effect_days`` from tomorrow
        and a hazard reduction of ``effect_scale`` times their latent risk now (replacing any earlier one)."""
        rows = self.by_day.get(ordinal)
        if rows is None:
            return
        idx = self.index[rows]
        ok = (idx >= 0) & (idx < state.n)
        ok[ok] = state.active[idx[ok]]
        rows, idx = rows[ok], idx[ok]
        risk = np.clip(1.0 - state.momentum[idx], 0.0, 1.0)
        effect = self.scale * risk
        state.treat_until_ord[idx] = ordinal + self.days
        state.treat_effect[idx] = effect
        self.applied[rows], self.risk[rows], self.effect[rows] = True, risk, effect
        self.row_of.update(zip(idx.tolist(), rows.tolist(), strict=True))
        if rows.size:
            self.last_until = ordinal + self.days

    def save(
        self, state: _State, ordinal: int, churned: np.ndarray, cancel_secs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Today's churners and their cancel times, less those a contact keeps.

        A churner inside a window stays when their own save draw ``u[index] < effect``: churn needs the usual
        draw below p and this one above ``effect``, so the hazard is exactly ``p * (1 - effect)``. The draw is over
        all customers by index, so whether one customer is kept never depends on who else was contacted; the
        other churners keep their churn and cancel times. The stream is drawn only when a window is open."""
        if ordinal > self.last_until or churned.size == 0:
            return churned, cancel_secs
        in_window = state.treat_until_ord[churned] >= ordinal
        if not in_window.any():
            return churned, cancel_secs
        u = _rng(self.seed, ordinal, _STREAM_TREATMENT).random(state.n)
        saved = in_window & (u[churned] < state.treat_effect[churned])
        for customer in churned[saved].tolist():
            row = self.row_of[customer]
            if self.saved_ord[row] < 0:
                self.saved_ord[row] = ordinal
        return churned[~saved], cancel_secs[~saved]

    def frame(self) -> pd.DataFrame:
        """``Simulation.contacts``: one row per contact given, with its true risk, effect and save day."""
        if self.ords.size == 0:
            return empty_contacts()
        return pd.DataFrame(
            {
                "customer_id": self.ids,
                "contact_date": np.array([date.fromordinal(o) for o in self.ords.tolist()], dtype=object),
                "applied": self.applied,
                "latent_risk": self.risk,
                "effect": self.effect,
                "saved_on": np.array(
                    [date.fromordinal(o) if o >= 0 else None for o in self.saved_ord.tolist()], dtype=object
                ),
            }
        )
