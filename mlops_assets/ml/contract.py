"""The feature-set contract: which columns a model reads, what kind each one is, and how to check a table.

Why it exists: training, evaluation and serving must agree on the entity key, the as-of date, the label and
the feature list. The contract is that agreement as data (YAML), checked against a table *before* anything is
trained, so a renamed or retyped column fails loudly with a message that names it instead of silently
becoming an all-null feature. ``fingerprint`` ties a trained model to the exact contract it was built from.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

FeatureKind = Literal["numerical", "categorical"]
SourceFormat = Literal["delta", "parquet", "csv"]
FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)
SOURCE_FORMATS: tuple[str, ...] = get_args(SourceFormat)

# Type families a column type name maps to; rules are stated on families, not on spellings.
_INTEGER_NAMES = {"int", "integer", "bigint", "smallint", "tinyint", "long", "short", "byte"}
_FLOAT_NAMES = {"double", "float", "real", "numeric"}
_STRING_NAMES = {"string", "str", "object", "varchar", "char", "text", "large_string", "utf8"}
_NUMERIC = {"integer", "float"}
_CATEGORICAL_OK = {"string", "category", "boolean", "integer"}
_LABEL_OK = {"integer", "boolean", "float"}
_AS_OF_OK = {"date", "timestamp"}
_TOP_LEVEL_FIELDS = (
    "name",
    "version",
    "entity_key",
    "as_of",
    "label",
    "features",
    "slices",
    "protected_attributes",
    "source",
    "labels",
)


class ContractError(ValueError):
    """A table or a contract document does not match; ``problems`` lists every finding, one per line."""

    def __init__(self, problems: list[str] | tuple[str, ...] | str, *, prefix: str = "") -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        body = "; ".join(self.problems)
        super().__init__(f"{prefix}{body}" if prefix else body)


def type_family(type_name: str) -> str:
    """Map a Spark simple type or pandas dtype name to a family: integer, float, string, category, boolean,
    date, timestamp or unknown. Families keep the rules readable across both type systems."""
    t = str(type_name).strip().lower()
    if t.startswith(("datetime64", "timestamp")):
        return "timestamp"
    if t in {"date", "date32", "date64"} or t.startswith(("date32[", "date64[")):
        return "date"
    if t in {"bool", "boolean"}:
        return "boolean"
    if t == "category":
        return "category"
    if t in _STRING_NAMES or t.startswith(("string[", "varchar(", "char(")):
        return "string"
    if t in _INTEGER_NAMES or re.fullmatch(r"u?int(8|16|32|64)", t):
        return "integer"
    if t in _FLOAT_NAMES or re.fullmatch(r"float(16|32|64)", t) or t.startswith("decimal"):
        return "float"
    return "unknown"


def column_types(df: pd.DataFrame) -> dict[str, str]:
    """A pandas frame's columns as ``name -> type name`` for ``validate_columns``.

    Object columns holding ``datetime.date`` values (how the synthetic source and Spark's ``toPandas`` hand
    over dates) are reported as ``date`` so the as-of rule can recognise them.
    """
    out: dict[str, str] = {}
    for name, dtype in df.dtypes.items():
        type_name = str(dtype)
        if type_name == "object":
            non_null = df[name].dropna()
            if len(non_null) and isinstance(non_null.iloc[0], dt.date):
                type_name = "timestamp" if isinstance(non_null.iloc[0], dt.datetime) else "date"
        out[str(name)] = type_name
    return out


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: FeatureKind
    description: str = ""


@dataclass(frozen=True)
class SourceSpec:
    format: SourceFormat
    path: str

    def to_dict(self) -> dict[str, str]:
        return {"format": self.format, "path": self.path}


@dataclass(frozen=True)
class LabelSpec:
    """Where an external table's labels come from, and when each became known: performance drift needs to
    know which days' labels are final. ``available`` names a date column (the day the row's label became
    known); with ``source`` the labels are a separate table (entity key, as-of, label, ``available``) joined
    on entity key and as-of, without it the feature table's own label column is used."""

    available: str
    source: SourceSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"available": self.available}
        if self.source is not None:
            out["source"] = self.source.to_dict()
        return out


@dataclass(frozen=True)
class FeatureSetContract:
    """One versioned feature set: key, as-of date, binary label, features, and the columns to slice by."""

    name: str
    version: str
    entity_key: str
    as_of: str
    label: str
    features: tuple[FeatureSpec, ...]
    slices: tuple[str, ...] = ()
    protected_attributes: tuple[str, ...] = ()
    source: SourceSpec | None = None
    # None: the built-in features' labels (from billing), or, for an external table, no performance drift.
    labels: LabelSpec | None = None

    def __post_init__(self) -> None:
        # Accept lists from hand-written code but store tuples, so the contract stays hashable and frozen.
        for name in ("features", "slices", "protected_attributes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = _semantic_problems(self)
        if problems:
            raise ContractError(problems, prefix=f"invalid feature-set contract {self.name!r}: ")

    # --- views -------------------------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numerical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numerical"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def columns(self) -> list[str]:
        """Every column the contract declares, each once, in a stable order (for selecting from a table)."""
        ordered = [self.entity_key, self.as_of, self.label, *self.feature_names]
        ordered += [*self.slices, *self.protected_attributes]
        return list(dict.fromkeys(ordered))

    # --- (de)serialisation -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSetContract:
        """Parse a contract document; every problem is reported with the path of the field it concerns."""
        if not isinstance(d, Mapping):
            raise ContractError(f"contract document must be a mapping, got {type(d).__name__}")
        problems: list[str] = []
        unknown = sorted(set(d) - set(_TOP_LEVEL_FIELDS))
        if unknown:
            problems.append(f"unknown field(s): {', '.join(map(str, unknown))}")

        def text(key: str, value: Any, *, required: bool = True, allow_number: bool = False) -> str:
            if value is None:
                if required:
                    problems.append(f"{key}: required field is missing")
                return ""
            if allow_number and isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)  # YAML reads `version: 2` as an int
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{key}: must be a non-empty string, got {value!r}")
                return ""
            return value

        scalars = {k: text(k, d.get(k)) for k in ("name", "entity_key", "as_of", "label")}
        version = text("version", d.get("version"), allow_number=True)

        features: list[FeatureSpec] = []
        raw_features = d.get("features")
        if not isinstance(raw_features, list | tuple) or not raw_features:
            problems.append("features: must be a non-empty list")
        else:
            for i, item in enumerate(raw_features):
                path = f"features[{i}]"
                if not isinstance(item, Mapping):
                    problems.append(f"{path}: must be a mapping with name and kind, got {item!r}")
                    continue
                extra = sorted(set(item) - {"name", "kind", "description"})
                if extra:
                    problems.append(f"{path}: unknown field(s): {', '.join(map(str, extra))}")
                fname = text(f"{path}.name", item.get("name"))
                kind = item.get("kind")
                if kind not in FEATURE_KINDS:
                    allowed = ", ".join(repr(k) for k in FEATURE_KINDS)
                    problems.append(f"{path}.kind: {kind!r} is not one of {allowed}")
                desc = item.get("description") or ""
                if not isinstance(desc, str):
                    problems.append(f"{path}.description: must be a string")
                    desc = ""
                if fname and kind in FEATURE_KINDS:
                    features.append(FeatureSpec(fname, kind, desc))

        def names(key: str) -> tuple[str, ...]:
            raw = d.get(key) or []
            if not isinstance(raw, list | tuple):
                problems.append(f"{key}: must be a list of column names")
                return ()
            out = []
            for i, v in enumerate(raw):
                if isinstance(v, str) and v.strip():
                    out.append(v)
                else:
                    problems.append(f"{key}[{i}]: must be a non-empty string, got {v!r}")
            return tuple(out)

        slices, protected = names("slices"), names("protected_attributes")

        def source_spec(key: str, raw: Any) -> SourceSpec | None:
            if not isinstance(raw, Mapping):
                problems.append(f"{key}: must be a mapping with format and path")
                return None
            extra = sorted(set(raw) - {"format", "path"})
            if extra:
                problems.append(f"{key}: unknown field(s): {', '.join(map(str, extra))}")
            fmt = raw.get("format")
            if fmt not in SOURCE_FORMATS:
                allowed = ", ".join(repr(f) for f in SOURCE_FORMATS)
                problems.append(f"{key}.format: {fmt!r} is not one of {allowed}")
            spath = text(f"{key}.path", raw.get("path"))
            return SourceSpec(fmt, spath) if fmt in SOURCE_FORMATS and spath else None

        source = None if d.get("source") is None else source_spec("source", d.get("source"))

        labels = None
        raw_labels = d.get("labels")
        if raw_labels is not None:
            if not isinstance(raw_labels, Mapping):
                problems.append("labels: must be a mapping with available (and optionally source)")
            else:
                extra = sorted(set(raw_labels) - {"available", "source"})
                if extra:
                    problems.append(f"labels: unknown field(s): {', '.join(map(str, extra))}")
                available = text("labels.available", raw_labels.get("available"))
                raw_label_source = raw_labels.get("source")
                label_source = (
                    None if raw_label_source is None else source_spec("labels.source", raw_label_source)
                )
                if available:
                    labels = LabelSpec(available, label_source)

        if problems:
            raise ContractError(problems, prefix="invalid feature-set contract: ")
        return cls(
            name=scalars["name"],
            version=version,
            entity_key=scalars["entity_key"],
            as_of=scalars["as_of"],
            label=scalars["label"],
            features=tuple(features),
            slices=slices,
            protected_attributes=protected,
            source=source,
            labels=labels,
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> FeatureSetContract:
        import yaml  # local: only needed when reading files

        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        try:
            return cls.from_dict(doc)
        except ContractError as exc:
            raise ContractError(exc.problems, prefix=f"{path}: ") from None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "version": self.version,
            "entity_key": self.entity_key,
            "as_of": self.as_of,
            "label": self.label,
            "features": [
                {"name": f.name, "kind": f.kind, "description": f.description} for f in self.features
            ],
            "slices": list(self.slices),
            "protected_attributes": list(self.protected_attributes),
            "source": None if self.source is None else self.source.to_dict(),
        }
        # Only when set: a contract without ``labels`` keeps the fingerprint it had before the field existed.
        if self.labels is not None:
            out["labels"] = self.labels.to_dict()
        return out

    def fingerprint(self) -> str:
        """First 12 hex digits of sha256 over canonical JSON: same contract, same id, on any machine."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    # --- checks against data -----------------------------------------------------------------------------
    def validate_columns(self, columns: Mapping[str, str], *, labelled: bool = False) -> None:
        """Raise ContractError listing every declared column of the feature table that is missing or has an
        unusable type: the label, and its available date, only when they live in this table. ``labelled``:
        a frame the labels were already joined to (a training set), so the label, not its date, is required."""
        in_table = self.labels is None or self.labels.source is None
        checks = [_role("entity_key", self.entity_key), _role("as_of", self.as_of)]
        if labelled or in_table:
            checks.append(_role("label", self.label))
        if not labelled and self.labels is not None and in_table:
            checks.append(_role("labels.available", self.labels.available))
        categorical = "string, category, boolean or integer"
        for f in self.features:
            numerical = f.kind == "numerical"
            allowed, expected = (_NUMERIC, "a numeric type") if numerical else (_CATEGORICAL_OK, categorical)
            checks.append(("feature", f.name, allowed, expected, f.kind))
        for role, cols in (("slice", self.slices), ("protected attribute", self.protected_attributes)):
            checks += [(role, c, _CATEGORICAL_OK, f"categorical ({categorical})", "") for c in cols]
        problems = _column_problems(columns, checks)
        if problems:
            raise ContractError(
                problems, prefix=f"table does not match feature set {self.name!r} v{self.version}: "
            )

    def validate_label_columns(self, columns: Mapping[str, str]) -> None:
        """The separate label table (``labels.source``): entity key, as-of, label and its available date."""
        if self.labels is None or self.labels.source is None:
            raise ValueError(f"feature set {self.name!r} has no separate label table (labels.source)")
        roles = {"entity_key": self.entity_key, "as_of": self.as_of, "label": self.label}
        checks = [
            _role(role, name) for role, name in {**roles, "labels.available": self.labels.available}.items()
        ]
        problems = _column_problems(columns, checks)
        if problems:
            raise ContractError(
                problems,
                prefix=f"label table {self.labels.source.path} does not match feature set {self.name!r} "
                f"v{self.version}: ",
            )

    def validate_label_values(self, values: Any) -> None:
        """Raise ContractError unless every label is 0 or 1 (no nulls): the models here are binary."""
        arr = np.asarray(values)
        if arr.dtype == bool:
            return
        series = pd.Series(arr)
        n_null = int(series.isna().sum())
        problems = []
        if n_null:
            problems.append(f"label '{self.label}' must be binary 0/1 but has {n_null} null value(s)")
        observed = pd.unique(series.dropna())
        try:
            bad = sorted({v for v in observed if float(v) not in (0.0, 1.0)}, key=str)
        except (TypeError, ValueError):
            bad = sorted({v for v in observed if v not in (0, 1)}, key=str)
        if bad:
            shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in bad[:5])
            problems.append(f"label '{self.label}' must be binary 0/1, found other values: {shown}")
        if problems:
            raise ContractError(problems)

    def validate_frame(self, df: pd.DataFrame) -> None:
        """Columns and label values of a labelled pandas frame in one call (what the training set runs first)."""
        self.validate_columns(column_types(df), labelled=True)
        self.validate_label_values(df[self.label].to_numpy())


_Check = tuple[str, str, set[str], str, str]  # role, column, allowed families, expected (in words), kind


# The rule of each non-feature role: the type families it allows, and what it must be (in words).
_ROLE_RULES: dict[str, tuple[set[str], str]] = {
    "entity_key": ({"integer", "string", "category"}, "an integer or string"),
    "as_of": (_AS_OF_OK, "a date or timestamp"),
    "label": (_LABEL_OK, "a binary 0/1 integer or boolean"),
    "labels.available": (_AS_OF_OK, "a date or timestamp"),
}


def _role(role: str, name: str) -> _Check:
    return (role, name, *_ROLE_RULES[role], "")


def _column_problems(columns: Mapping[str, str], checks: list[_Check]) -> list[str]:
    """One line per declared column that is missing from ``columns`` or whose type family is not allowed."""
    problems: list[str] = []
    for role, name, allowed, expected, kind in checks:
        what = f"{role} '{name}'" + (f" ({kind})" if kind else "")
        if name not in columns:
            problems.append(f"{what} is missing from the table")
            continue
        type_name = columns[name]
        if type_family(type_name) in allowed:
            continue
        if role == "feature":
            problems.append(
                f"feature '{name}' is declared {kind} but the column has type {type_name} (expected {expected})"
            )
        else:
            problems.append(f"{role} '{name}' must be {expected} but the column has type {type_name}")
    return problems


def _semantic_problems(c: FeatureSetContract) -> list[str]:
    """Rules that hold however the contract was built: unique features, no label or key among them."""
    problems: list[str] = []
    seen: set[str] = set()
    reserved = {c.entity_key: "entity_key", c.as_of: "as_of", c.label: "label"}
    for i, f in enumerate(c.features):
        if f.kind not in FEATURE_KINDS:
            allowed = ", ".join(repr(k) for k in FEATURE_KINDS)
            problems.append(f"features[{i}].kind: {f.kind!r} is not one of {allowed}")
        if f.name in seen:
            problems.append(f"features[{i}].name: duplicate feature {f.name!r}")
        seen.add(f.name)
        if f.name in reserved:
            problems.append(
                f"features[{i}].name: {f.name!r} is the {reserved[f.name]} and cannot be a feature"
            )
    if len({c.entity_key, c.as_of, c.label}) < 3:
        problems.append("entity_key, as_of and label must be three different columns")
    for key, cols in (("slices", c.slices), ("protected_attributes", c.protected_attributes)):
        if c.label in cols:
            problems.append(f"{key}: the label {c.label!r} cannot be used to group rows")
    if not c.features:
        problems.append("features: must be a non-empty list")
    if c.labels is not None:
        if c.source is None:
            problems.append(
                "labels: only an external table (with a source) names its labels; the built-in features' "
                "labels come from billing"
            )
        taken = {name: f"the {role}" for name, role in reserved.items()}
        role = {**taken, **{f.name: "a feature" for f in c.features}}.get(c.labels.available)
        if role is not None:
            problems.append(f"labels.available: {c.labels.available!r} is {role}, not a label-available date")
    return problems
