"""The models the service holds, and which one answers whom.

The registry is read on a TTL by a background thread, never per request: one ``get_registered_model`` call gives
the aliases and the ``rollout`` tag together (the SQLite registry locks under concurrent writers, and a request
must not wait on it). A new version is loaded and warmed up *before* the state is swapped in one assignment, so
a promotion or ``make rollback`` takes effect within a TTL with no failed request; a failed read keeps the last
good state and is reported on the state endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_assets.ml.families import AnyChurnModel, known_categories
from mlops_assets.ml.mlflow_model import CANDIDATE, CHAMPION
from mlops_assets.serving.assignment import assign_arm
from mlops_assets.serving.rollout import CHAMPION_ARM, ROLLOUT_TAG, SHADOW, SHADOW_ARM, Rollout
from mlops_assets.serving.scorer import RecordScorer, record_scorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: AnyChurnModel
    scorer: RecordScorer

    @classmethod
    def warmed(cls, version: str, model: AnyChurnModel) -> LoadedModel:
        """Loaded and proven to score: a row of all-missing features must give a probability."""
        scorer = record_scorer(model)
        score = scorer.scores([{}])
        if score.shape != (1,) or not np.isfinite(score[0]) or not 0 <= score[0] <= 1:
            raise RuntimeError(f"version {version} failed its warm-up prediction ({score!r})")
        return cls(version, model, scorer)


@dataclass(frozen=True)
class Route:
    """Who answers one entity, and who else scores it without answering."""

    served: str  # arm
    shadow: str | None = None


@dataclass(frozen=True)
class ServingState:
    model_name: str
    champion: LoadedModel
    candidate: LoadedModel | None = None
    rollout: Rollout | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    refreshed_at: float = 0.0

    def route(self, entity: str) -> Route:
        if self.candidate is None or self.rollout is None:
            return Route(CHAMPION_ARM)
        if self.rollout.mode == SHADOW:
            return Route(CHAMPION_ARM, SHADOW_ARM)
        return Route(assign_arm(entity, self.rollout.salt, self.rollout.weights()))

    def model_of(self, arm: str) -> LoadedModel:
        return self.champion if arm == CHAMPION_ARM or self.candidate is None else self.candidate

    def categories(self) -> dict[str, list[str]]:
        return known_categories(self.champion.model)

    def describe(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "aliases": dict(self.aliases),
            "champion_version": self.champion.version,
            "candidate_version": self.candidate.version if self.candidate else None,
            "rollout": None
            if self.rollout is None
            else {
                "id": self.rollout.id,
                "mode": self.rollout.mode,
                "step": self.rollout.step,
                "weights": dict(self.rollout.weights()),
                "status": self.rollout.status,
            },
            "refreshed_at": self.refreshed_at,
        }


RegistryRead = Callable[[], tuple[dict[str, str], dict[str, str]]]  # -> (aliases, tags)
ModelLoad = Callable[[str], AnyChurnModel]


class ModelStore:
    """Holds the current ``ServingState``; ``refresh`` builds the next one, the thread calls it every TTL."""

    def __init__(
        self, model_name: str, read: RegistryRead, load: ModelLoad, ttl_seconds: float = 5.0
    ) -> None:
        self.model_name = model_name
        self._read, self._load = read, load
        self.ttl_seconds = ttl_seconds
        self.state: ServingState | None = None
        self.last_error: str | None = None
        self._loaded: dict[str, LoadedModel] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _model(self, version: str) -> LoadedModel:
        if version not in self._loaded:
            self._loaded[version] = LoadedModel.warmed(version, self._load(version))
        return self._loaded[version]

    def refresh(self) -> ServingState:
        aliases, tags = self._read()
        champion_version = aliases.get(CHAMPION)
        if champion_version is None:
            raise LookupError(f"model {self.model_name!r} has no @{CHAMPION}; train and promote one first")
        rollout = Rollout.from_json(tags[ROLLOUT_TAG]) if ROLLOUT_TAG in tags else None
        candidate_version = aliases.get(CANDIDATE)
        active = (
            rollout is not None
            and rollout.running
            and candidate_version is not None
            and rollout.candidate_version == candidate_version
            and candidate_version != champion_version
        )
        state = ServingState(
            self.model_name,
            self._model(champion_version),
            self._model(candidate_version) if active else None,
            rollout if active else None,
            dict(aliases),
            time.time(),
        )
        keep = {champion_version, candidate_version}
        self._loaded = {v: m for v, m in self._loaded.items() if v in keep}
        self.state = state  # one assignment: a request sees the old state or the new, never a mix
        self.last_error = None
        return state

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl_seconds):
            try:
                self.refresh()
            except Exception as error:  # keep serving the last good state; the state endpoint shows why
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("registry refresh failed, serving the last good state: %s", self.last_error)

    def start(self) -> None:
        """Load once (errors propagate: not ready), then refresh in the background."""
        try:
            self.refresh()
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            log.error("could not load the model: %s", self.last_error)
        self._thread = threading.Thread(target=self._loop, name="registry-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def mlflow_registry(tracking_uri: str, model_name: str) -> tuple[RegistryRead, ModelLoad]:
    """The two registry calls the store makes, bound to one MLflow store (no process-global URI)."""
    from mlops_assets.ml.mlflow_model import ModelRegistry

    registry = ModelRegistry(tracking_uri, model_name)

    def read() -> tuple[dict[str, str], dict[str, str]]:
        model = registry.client.get_registered_model(model_name)
        return {k: str(v) for k, v in model.aliases.items()}, dict(model.tags)

    return read, registry.load
