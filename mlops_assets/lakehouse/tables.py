"""One naming scheme for every table in the lakehouse.

Asset code names a table only as ``TableRef(layer, name)``. Where that table lives is decided by a
``TableLocator``: a folder per layer under a root path locally, ``catalog.layer.name`` in a metastore
(Unity Catalog on Databricks). Switching environments never touches asset code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LAYERS = (
    "landing",
    "bronze",
    "silver",
    "quarantine",
    "gold",
    "features",
    "ml",
    "monitoring",
    "serving",
    "stream",
    "experiments",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class TableRef:
    layer: str
    name: str

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise ValueError(f"TableRef.layer: {self.layer!r} is not one of {LAYERS}")
        if not _NAME.match(self.name):
            raise ValueError(f"TableRef.name: {self.name!r} must be lower_snake_case")

    @property
    def asset_key_path(self) -> list[str]:
        """Asset keys mirror table names, so lineage in the UI reads like the lakehouse."""
        return [self.layer, self.name]

    def __str__(self) -> str:
        return f"{self.layer}.{self.name}"


@dataclass(frozen=True)
class TableLocator:
    """Maps a TableRef to a storage path (local) or a catalog identifier (metastore mode)."""

    root: str
    catalog: str | None = None

    def path(self, ref: TableRef) -> str:
        return (
            str(Path(self.root) / ref.layer / ref.name)
            if "://" not in self.root
            else f"{self.root}/{ref.layer}/{ref.name}"
        )

    def identifier(self, ref: TableRef) -> str:
        """A name Spark SQL accepts: ``catalog.layer.name`` or path-based ``delta.`/root/layer/name```."""
        if self.catalog:
            return f"{self.catalog}.{ref.layer}.{ref.name}"
        return f"delta.`{self.path(ref)}`"
