"""PLACEHOLDER until the rollout branch merges: the rollout state on the registered model's ``rollout`` tag."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rollout:
    id: str
    candidate_version: str
    champion_version: str
    salt: str
    mode: str = "canary"
    steps: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    step: int = 0
    status: str = "running"
    guards: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: str) -> Rollout:
        d = json.loads(raw)
        return cls(
            d["id"],
            str(d["candidate_version"]),
            str(d["champion_version"]),
            d["salt"],
            d.get("mode", "canary"),
            tuple(d.get("steps", (0.05, 0.25, 0.5, 1.0))),
            int(d.get("step", 0)),
            d.get("status", "running"),
        )

    def weights(self) -> list[tuple[str, float]]:
        if self.mode == "shadow":
            return [("champion", 1.0), ("candidate", 0.0)]
        w = self.steps[self.step]
        return [("champion", 1 - w), ("candidate", w)]
