"""What a final readout does to the registry: ship moves @champion to the treatment's model, everything else
keeps it, and a champion that moved during the experiment makes its ship stale (the comparison was with a
model that is no longer serving). Pure: the asset audits the action, then applies it."""

from __future__ import annotations

from dataclasses import dataclass

from mlops_assets.experiments.readout import SHIP, STOP_HARM, Readout
from mlops_assets.experiments.spec import ExperimentSpec
from mlops_assets.ml.promotion_ledger import (
    EXPERIMENT_KEPT,
    EXPERIMENT_SHIPPED,
    EXPERIMENT_STALE,
    EXPERIMENT_STOPPED,
)


@dataclass(frozen=True)
class RegistryAction:
    audit: str  # the ledger decision
    from_version: str | None  # the control arm's model (the champion the experiment compared with)
    to_version: str | None  # the treatment arm's model
    reasons: tuple[str, ...]  # the first names the experiment: the ledger is searched by it
    move: bool  # @champion moves to to_version

    def to_dict(self) -> dict:
        return {**self.__dict__, "reasons": list(self.reasons)}


def experiment_reason(spec: ExperimentSpec) -> str:
    return f"experiment={spec.name}"


def registry_action(spec: ExperimentSpec, readout: Readout, current_champion: str | None) -> RegistryAction:
    """The action for a final readout (ship, keep or stop for harm)."""
    if not readout.final:
        raise ValueError(f"readout {readout.decision!r} is not final: nothing to act on")
    c = spec.comparison
    treated = readout.versions.get(c.treatment)  # None for a holdout arm (no model)
    control = readout.versions.get(c.control)
    reasons = (experiment_reason(spec), *readout.reasons)
    if readout.decision == STOP_HARM:
        return RegistryAction(EXPERIMENT_STOPPED, control, treated, reasons, move=False)
    if readout.decision != SHIP:
        return RegistryAction(EXPERIMENT_KEPT, control, treated, reasons, move=False)
    if treated is None or treated == current_champion:
        why = "the treatment arm has no model" if treated is None else f"v{treated} already is @champion"
        return RegistryAction(EXPERIMENT_KEPT, control, treated, (*reasons, f"ship: {why}"), move=False)
    if control is not None and current_champion != control:
        stale = (
            f"@champion moved to v{current_champion} during the experiment (it compared v{treated} with "
            f"v{control}): the ship is not applied; run a new experiment against the current champion"
        )
        return RegistryAction(EXPERIMENT_STALE, current_champion, treated, (*reasons, stale), move=False)
    return RegistryAction(EXPERIMENT_SHIPPED, current_champion, treated, reasons, move=True)
