"""Where reference profiles are kept: one row per model version in ``monitoring/reference_profiles``.

A profile is computed once per champion version (kilobytes of JSON) and read by every drift report after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mlops_assets.lakehouse.catalog import REFERENCE_PROFILES
from mlops_assets.monitoring.profile import ReferenceProfile

if TYPE_CHECKING:
    from mlops_assets.lakehouse.delta_io import DeltaLakehouse

PROFILE_ROW_SCHEMA = "model_name string, model_version string, profile_json string, created_at timestamp"


class MissingProfileError(ValueError):
    """No reference profile for a model version: its drift cannot be measured yet."""


def stored_profile_json(delta: DeltaLakehouse, model_name: str, version: str) -> str | None:
    """The version's profile as stored, or None before it was computed."""
    if not delta.exists(REFERENCE_PROFILES):
        return None
    table = delta.read(REFERENCE_PROFILES)
    row = (
        table.where((table["model_name"] == model_name) & (table["model_version"] == version))
        .select("profile_json")
        .first()
    )
    return None if row is None else row[0]


def store_profile(delta: DeltaLakehouse, model_name: str, version: str, profile_json: str) -> None:
    """Append the version's profile (profiles are never rewritten: one per version)."""
    row = [(model_name, version, profile_json, datetime.now(UTC))]
    delta.append(delta.spark.createDataFrame(row, PROFILE_ROW_SCHEMA), REFERENCE_PROFILES)


def load_profile(delta: DeltaLakehouse, model_name: str, version: str, fix: str) -> ReferenceProfile:
    """The version's profile; ``MissingProfileError`` saying ``fix`` (what to materialize) when absent."""
    stored = stored_profile_json(delta, model_name, version)
    if stored is None:
        raise MissingProfileError(f"drift_report: no reference profile for {model_name} v{version}; {fix}")
    return ReferenceProfile.from_json(stored)
