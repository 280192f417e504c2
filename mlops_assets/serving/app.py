"""The scoring service: FastAPI over the models in memory, no JVM in the path.

Health and model metadata follow the Open Inference Protocol (KServe V2) paths -- ``/v2/health/live``,
``/v2/health/ready``, ``/v2/models/{name}`` and ``/v2/models/{name}/ready`` -- so a KServe-style probe or load
balancer needs no configuration. Scoring is ``POST /v2/models/{name}/score`` with the contract's features by
name, not V2's ``/infer`` tensors: a tensor request carries no entity id per row (which sticky assignment and
the request log need) and cannot say which field of which row is wrong.

A request passes, in order: API key (401), the client's rate limit (429 + Retry-After), the body limit (413),
the in-flight bound (a fast 503 instead of queueing), validation (422 naming each field), then scoring in a
worker thread under a deadline that stops the work between chunks (503 when it passes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mlops_assets.serving.config import ServingSettings
from mlops_assets.serving.guard import InFlight, RateLimiter
from mlops_assets.serving.model_store import ModelStore, ServingState
from mlops_assets.serving.request_log import LogRecord, RequestLogWriter
from mlops_assets.serving.rollout import CANDIDATE_ARM, CHAMPION_ARM
from mlops_assets.serving.validation import InputSchema, RequestInvalid, ScoringInstance, parse_request

log = logging.getLogger(__name__)

CHUNK_ROWS = 256
DRAIN_FACTOR = 16
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class DeadlineExceeded(Exception):
    pass


def _problem(status: int, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["problems"] = [{"field": field, "message": message}]
    return JSONResponse(body, status_code=status, headers=headers or None)


class ScoringService:
    """Everything a request needs, built once per process."""

    def __init__(self, settings: ServingSettings, store: ModelStore, request_log: RequestLogWriter) -> None:
        self.settings = settings
        self.store = store
        self.request_log = request_log
        self.limiter = RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst)
        self.in_flight = InFlight(settings.max_in_flight)
        self.executor = ThreadPoolExecutor(settings.max_in_flight, thread_name_prefix="score")
        self._schemas: dict[str, InputSchema] = {}

    def schema(self, state: ServingState) -> InputSchema:
        """The input rules of the champion the state holds (its categories), built once per version."""
        version = state.champion.version
        if version not in self._schemas:
            self._schemas = {version: InputSchema.from_contract(self.settings.contract, state.categories())}
        return self._schemas[version]

    def score(
        self, state: ServingState, instances: list[ScoringInstance], request_id: str, started: float
    ) -> tuple[list[dict[str, Any]], list[LogRecord]]:
        """Route each instance to its arm, score per arm in chunks (checking the deadline between them),
        and build the answers and the log records. A failing candidate falls back to the champion; its
        failure is logged against the candidate arm, where the rollout judge counts it."""
        deadline = started + self.settings.timeout_ms / 1000
        routes = [state.route(i.entity) for i in instances]
        scores: dict[tuple[int, str], float] = {}
        failures: dict[str, str] = {}

        def run(arm: str, rows: list[int]) -> None:
            model = state.model_of(arm)
            for start in range(0, len(rows), CHUNK_ROWS):
                if time.monotonic() > deadline:
                    raise DeadlineExceeded(f"scoring passed its {self.settings.timeout_ms:g} ms deadline")
                chunk = rows[start : start + CHUNK_ROWS]
                values = model.scorer.scores([instances[i].features for i in chunk])
                scores.update({(i, arm): float(v) for i, v in zip(chunk, values, strict=True)})

        by_arm: dict[str, list[int]] = {}
        for i, route in enumerate(routes):
            by_arm.setdefault(route.served, []).append(i)
            if route.shadow:
                by_arm.setdefault(route.shadow, []).append(i)
        for arm, rows in sorted(by_arm.items(), key=lambda kv: kv[0] != CHAMPION_ARM):
            try:
                run(arm, rows)
            except DeadlineExceeded:
                raise
            except Exception as error:
                if arm == CHAMPION_ARM:
                    raise
                failures[arm] = f"{type(error).__name__}: {error}"
                if arm == CANDIDATE_ARM:
                    run(CHAMPION_ARM, [i for i in rows if (i, CHAMPION_ARM) not in scores])

        latency_ms = (time.monotonic() - started) * 1000
        now = datetime.now(UTC).isoformat()
        name, rollout = state.model_name, state.rollout
        answers, records = [], []
        for i, (instance, route) in enumerate(zip(instances, routes, strict=True)):
            served = route.served if (i, route.served) in scores else CHAMPION_ARM
            model = state.model_of(served)
            score = scores[(i, served)]
            label = int(score >= model.model.threshold)
            answers.append(
                {
                    self.settings.contract.entity_key: instance.entity,
                    self.settings.contract.as_of: instance.as_of.isoformat() if instance.as_of else None,
                    "score": score,
                    "label": label,
                    "model_name": name,
                    "model_version": model.version,
                    "arm": served,
                }
            )
            features = json.dumps(instance.features, separators=(",", ":"))
            as_of = instance.as_of.isoformat() if instance.as_of else None
            rollout_id = rollout.id if rollout else None
            for arm in (route.served, route.shadow):
                if arm is None:
                    continue
                ok = (i, arm) in scores
                records.append(
                    LogRecord(
                        request_id=request_id,
                        logged_at=now,
                        entity=instance.entity,
                        as_of=as_of,
                        arm=arm,
                        served=arm == served and ok,
                        model_name=name,
                        model_version=state.model_of(arm).version,
                        rollout_id=rollout_id,
                        score=scores.get((i, arm)),
                        predicted_label=int(scores[(i, arm)] >= state.model_of(arm).model.threshold)
                        if ok
                        else None,
                        latency_ms=latency_ms,
                        status=200 if ok else 500,
                        error=None if ok else failures.get(arm),
                        features=features,
                    )
                )
        self.request_log.write(records)
        return answers, records

    def log_refusal(self, request_id: str, status: int, error: str, started: float) -> None:
        state = self.store.state
        self.request_log.write(
            [
                LogRecord.refusal(
                    request_id,
                    self.settings.model_name,
                    state.rollout.id if state and state.rollout else None,
                    (time.monotonic() - started) * 1000,
                    status,
                    error[:500],
                )
            ]
        )


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes. An oversized body is still drained (discarded) up to
    ``DRAIN_FACTOR`` times the limit, so the client, still sending, gets its 413 instead of a broken pipe; a
    body beyond that is cut off."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_FACTOR * limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_FACTOR * limit:
            return None
        if size <= limit:
            chunks.append(chunk)
    return None if size > limit else b"".join(chunks)


def create_app(service: ScoringService) -> FastAPI:
    settings, store = service.settings, service.store
    name = settings.model_name

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.start()
        yield
        store.stop()
        service.executor.shutdown(wait=False, cancel_futures=True)
        service.request_log.close()

    app = FastAPI(title="mlops_assets scoring service", lifespan=lifespan, docs_url=None, redoc_url=None)

    def ready() -> tuple[bool, str]:
        if store.state is None:
            return False, store.last_error or "loading the model"
        return True, f"{name} v{store.state.champion.version} loaded and warmed up"

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def health_ready() -> JSONResponse:
        ok, why = ready()
        return JSONResponse({"ready": ok, "reason": why}, status_code=200 if ok else 503)

    @app.get("/v2/models/{model}/ready")
    async def model_ready(model: str) -> JSONResponse:
        if model != name:
            return _problem(404, f"unknown model {model!r}; this service serves {name!r}", "model")
        return await health_ready()

    @app.get("/v2/models/{model}")
    async def metadata(model: str) -> JSONResponse:
        state = store.state
        if model != name:
            return _problem(404, f"unknown model {model!r}; this service serves {name!r}", "model")
        if state is None:
            return _problem(503, "model not loaded yet")
        return JSONResponse(
            {
                "name": name,
                "versions": [state.champion.version] + ([state.candidate.version] if state.candidate else []),
                "platform": type(state.champion.model).__name__,
                "inputs": service.schema(state).describe(),
                "outputs": [
                    {"name": "score", "datatype": "FP64", "shape": [-1]},
                    {"name": "label", "datatype": "INT32", "shape": [-1]},
                ],
            }
        )

    @app.get("/v2/models/{model}/state")
    async def state_view(model: str) -> JSONResponse:
        state = store.state
        body = state.describe() if state else {"model_name": name}
        body |= {"ttl_seconds": store.ttl_seconds, "last_refresh_error": store.last_error}
        return JSONResponse(body)

    @app.post("/v2/models/{model}/score")
    async def score(model: str, request: Request) -> JSONResponse:
        started = time.monotonic()
        given = request.headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        headers = {"X-Request-Id": request_id}

        def refuse(status: int, message: str, field: str | None = None, **extra: str) -> JSONResponse:
            service.log_refusal(request_id, status, message, started)
            response = _problem(status, message, field, **headers, **extra)
            return response

        client = "anonymous"
        if settings.api_keys.enabled:
            auth = request.headers.get("authorization", "")
            token = auth[7:] if auth[:7].lower() == "bearer " else None
            found = settings.api_keys.client(token)
            if found is None:
                return refuse(
                    401, "missing or invalid API key", "Authorization", **{"WWW-Authenticate": "Bearer"}
                )
            client = found
        if (wait := service.limiter.retry_after(client)) > 0:
            return refuse(
                429,
                f"rate limit of {settings.rate_limit_rps:g} requests/s exceeded",
                None,
                **{"Retry-After": str(wait)},
            )
        if model != name:
            return refuse(404, f"unknown model {model!r}; this service serves {name!r}", "model")
        # The body is read (bounded) before shedding: answering while a client still sends breaks its pipe.
        body = await _read_body(request, settings.max_body_bytes)
        if body is None:
            return refuse(413, f"body larger than {settings.max_body_bytes} bytes", "body")
        if not service.in_flight.try_enter():
            return refuse(
                503, "busy: too many requests in flight, retry shortly", None, **{"Retry-After": "1"}
            )
        try:
            try:
                payload = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                return refuse(400, f"body is not JSON: {error}", "body")
            state = store.state
            if state is None:
                return refuse(503, "model not loaded yet", None, **{"Retry-After": "1"})
            try:
                instances = parse_request(payload, service.schema(state), settings.max_instances)
            except RequestInvalid as invalid:
                service.log_refusal(request_id, 422, str(invalid), started)
                return JSONResponse(
                    {"error": "invalid request", "problems": [p.to_dict() for p in invalid.problems]},
                    status_code=422,
                    headers=headers,
                )
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(
                service.executor, service.score, state, instances, request_id, started
            )
            remaining = settings.timeout_ms / 1000 - (time.monotonic() - started)
            try:
                answers, _ = await asyncio.wait_for(work, timeout=max(remaining, 0.001))
            except (TimeoutError, DeadlineExceeded):
                return refuse(
                    503,
                    f"scoring passed its {settings.timeout_ms:g} ms deadline",
                    None,
                    **{"Retry-After": "1"},
                )
            return JSONResponse({"request_id": request_id, "predictions": answers}, headers=headers)
        finally:
            service.in_flight.leave()

    return app
