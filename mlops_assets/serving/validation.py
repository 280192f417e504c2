"""Scoring requests checked against the feature-set contract before any model sees them.

Every problem names its field (``instances[3].plan``) so a client can fix its request; all problems of a
request are reported at once. The rules follow what the batch path accepts, with two deliberate exceptions
that an online caller can act on and a table cannot: a category the champion never saw is refused (batch
scores it as missing), and so is NaN or infinity (JSON has ``null`` for a missing value).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from mlops_assets.ml.contract import FeatureSetContract

MAX_LISTED_CATEGORIES = 12


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class RequestInvalid(ValueError):
    """A request the service refuses (HTTP 422), with every problem found."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


@dataclass(frozen=True)
class ScoringInstance:
    entity: str
    as_of: date | None
    features: dict[str, float | str | None]


@dataclass(frozen=True)
class InputSchema:
    """What a request must carry: the contract's entity key, optional as-of, and each feature by kind."""

    entity_key: str
    as_of: str
    numerical: tuple[str, ...]
    categories: Mapping[str, frozenset[str]]  # categorical feature -> the values the champion knows

    @classmethod
    def from_contract(
        cls, contract: FeatureSetContract, categories: Mapping[str, Sequence[str]]
    ) -> InputSchema:
        """Categories come from the model (a contract does not list them); a categorical feature the model
        has no list for accepts any string."""
        return cls(
            contract.entity_key,
            contract.as_of,
            tuple(contract.numerical),
            {name: frozenset(categories.get(name, ())) for name in contract.categorical},
        )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return (*self.numerical, *self.categories)

    def describe(self) -> list[dict[str, Any]]:
        """The inputs, for the model metadata endpoint."""
        inputs: list[dict[str, Any]] = [{"name": self.entity_key, "datatype": "BYTES", "required": True}]
        inputs.append({"name": self.as_of, "datatype": "BYTES", "required": False, "format": "YYYY-MM-DD"})
        inputs += [{"name": n, "datatype": "FP64", "nullable": True} for n in self.numerical]
        inputs += [
            {"name": n, "datatype": "BYTES", "nullable": True, "categories": sorted(v)}
            for n, v in self.categories.items()
        ]
        return inputs


def _number(value: Any, where: str, problems: list[FieldProblem]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(
            FieldProblem(where, f"expected a number or null, got {type(value).__name__} {value!r}")
        )
        return None
    number = float(value)
    if not math.isfinite(number):
        problems.append(FieldProblem(where, f"{value} is not allowed; send null for a missing value"))
        return None
    return number


def _category(value: Any, known: frozenset[str], where: str, problems: list[FieldProblem]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(
            FieldProblem(where, f"expected a string or null, got {type(value).__name__} {value!r}")
        )
        return None
    if known and value not in known:
        listed = sorted(known)[:MAX_LISTED_CATEGORIES]
        more = ", ..." if len(known) > MAX_LISTED_CATEGORIES else ""
        problems.append(
            FieldProblem(where, f"unknown category {value!r}; the model knows {', '.join(listed)}{more}")
        )
        return None
    return value


def parse_instance(
    raw: Any, schema: InputSchema, where: str, problems: list[FieldProblem]
) -> ScoringInstance:
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem(where, f"expected an object of features, got {type(raw).__name__}"))
        return ScoringInstance("", None, {})
    prefix = f"{where}." if where else ""
    entity = raw.get(schema.entity_key)
    if isinstance(entity, bool) or not isinstance(entity, str | int) or entity == "":
        problems.append(
            FieldProblem(prefix + schema.entity_key, "required: the entity id (string or integer)")
        )
    as_of = None
    if (raw_as_of := raw.get(schema.as_of)) is not None:
        with contextlib.suppress(ValueError):
            as_of = date.fromisoformat(raw_as_of) if isinstance(raw_as_of, str) else None
        if as_of is None:
            problems.append(
                FieldProblem(prefix + schema.as_of, f"expected an ISO date YYYY-MM-DD, got {raw_as_of!r}")
            )
    features: dict[str, float | str | None] = {}
    for name in schema.numerical:
        if name not in raw:
            problems.append(FieldProblem(prefix + name, "required feature is missing (send null if unknown)"))
        features[name] = _number(raw.get(name), prefix + name, problems)
    for name, known in schema.categories.items():
        if name not in raw:
            problems.append(FieldProblem(prefix + name, "required feature is missing (send null if unknown)"))
        features[name] = _category(raw.get(name), known, prefix + name, problems)
    allowed = {schema.entity_key, schema.as_of, *schema.feature_names}
    problems += [FieldProblem(prefix + k, "unknown field") for k in raw if k not in allowed]
    return ScoringInstance(str(entity) if entity is not None else "", as_of, features)


def parse_request(body: Any, schema: InputSchema, max_instances: int) -> list[ScoringInstance]:
    """One instance (an object of features) or many (``{"instances": [...]}``), validated."""
    problems: list[FieldProblem] = []
    if isinstance(body, Mapping) and "instances" in body:
        raw = body["instances"]
        if not isinstance(raw, list) or not raw:
            raise RequestInvalid([FieldProblem("instances", "expected a non-empty list of objects")])
        if len(raw) > max_instances:
            raise RequestInvalid(
                [FieldProblem("instances", f"{len(raw)} instances; at most {max_instances} per request")]
            )
        extra = [FieldProblem(k, "unknown field") for k in body if k != "instances"]
        instances = [parse_instance(r, schema, f"instances[{i}]", problems) for i, r in enumerate(raw)]
        problems = extra + problems
    else:
        instances = [parse_instance(body, schema, "", problems)]
    if problems:
        raise RequestInvalid(problems)
    return instances
