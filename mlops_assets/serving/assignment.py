"""PLACEHOLDER until the rollout branch merges: sticky salted-hash assignment."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

BUCKETS = 10_000


def bucket(unit: str, salt: str) -> int:
    return int(hashlib.sha256(f"{salt}:{unit}".encode()).hexdigest()[:15], 16) % BUCKETS


def assign_arm(unit: str, salt: str, weights: Sequence[tuple[str, float]]) -> str:
    b, edge = bucket(unit, salt), 0.0
    for arm, weight in weights:
        edge += weight * BUCKETS
        if b < round(edge):
            return arm
    return weights[-1][0]
