"""The scoring service as users run it: a real process on 127.0.0.1 over a real MLflow registry, driven over HTTP.

One server per module (started once); each test sets the registry state it needs and puts it back, so it also
passes alone (``-k``).
"""

from __future__ import annotations

import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlops_assets.ml.mlflow_model import ModelRegistry
from mlops_assets.serving.assignment import assign_arm
from mlops_assets.serving.rollout import Rollout
from mlops_assets_tests.servers import wait_until
from mlops_assets_tests.serving_fixtures import (
    LIMITED_KEY,
    MODEL_NAME,
    TEST_KEY,
    build_registry,
    scoring_server,
)

BURST_KEY = "burst-key-0123456789"
pytestmark = pytest.mark.serving


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return build_registry(tmp_path_factory.mktemp("serving-registry"))


@pytest.fixture(scope="module")
def server(registry, tmp_path_factory):
    with scoring_server(
        registry,
        tmp_path_factory.mktemp("serving"),
        api_keys=f"tests={TEST_KEY},limited={LIMITED_KEY},burst={BURST_KEY}",
        rate_limit_rps=20,  # low, so a client outruns it however slow the machine is
        rate_limit_burst=40,
        max_in_flight=4,
    ) as running:
        yield running


@pytest.fixture
def aliases(registry, server):
    """The registry, put back to ``@champion`` = the LightGBM version and no rollout after the test, and the
    server seen to have picked that up (the next test must not meet this one's state within a TTL)."""
    reg = ModelRegistry(registry.tracking_uri, MODEL_NAME)
    yield reg
    reg.set_alias("champion", registry.champion)
    if reg.alias_version("candidate"):
        reg.delete_alias("candidate")
    if "rollout" in reg.client.get_registered_model(MODEL_NAME).tags:
        reg.client.delete_registered_model_tag(MODEL_NAME, "rollout")
    wait_until(
        lambda: (s := server.state())["champion_version"] == registry.champion and s["rollout"] is None,
        15,
        "the service to return to the plain champion",
    )


def test_health_and_metadata_follow_the_open_inference_paths(server, registry) -> None:
    assert server.call("GET", "/v2/health/live").body == {"live": True}
    ready = server.call("GET", "/v2/health/ready")
    assert ready.status == 200 and ready.body["ready"] is True
    assert server.call("GET", f"/v2/models/{MODEL_NAME}/ready").status == 200
    meta = server.call("GET", f"/v2/models/{MODEL_NAME}").body
    assert meta["versions"] == [registry.champion]
    inputs = {i["name"]: i for i in meta["inputs"]}
    assert inputs["plan"]["categories"] == ["basic", "premium", "standard"]
    assert inputs["tenure_days"]["datatype"] == "FP64"
    unknown = server.call("GET", "/v2/models/nope")
    assert unknown.status == 404 and unknown.body["problems"][0]["field"] == "model"


def test_scoring_answers_with_score_label_version_arm_and_request_id(server, registry) -> None:
    one = server.score(registry.rows[0])
    assert one.status == 200, one.body
    [answer] = one.body["predictions"]
    assert answer["customer_id"] == registry.rows[0]["customer_id"]
    assert answer["as_of_date"] == registry.rows[0]["as_of_date"]
    assert 0 < answer["score"] < 1 and answer["label"] in (0, 1)
    assert (answer["model_name"], answer["model_version"], answer["arm"]) == (
        MODEL_NAME,
        registry.champion,
        "champion",
    )
    assert one.headers["x-request-id"] == one.body["request_id"]
    many = server.score({"instances": registry.rows[:50]})
    assert many.status == 200 and len(many.body["predictions"]) == 50
    assert many.body["predictions"][0]["score"] == answer["score"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda r: r.pop("tenure_days"), "tenure_days", "missing"),
        (lambda r: r.update(tenure_days="120"), "tenure_days", "expected a number"),
        (lambda r: r.update(tenure_days=True), "tenure_days", "expected a number"),
        (lambda r: r.update(plan="gold"), "plan", "unknown category 'gold'"),
        (lambda r: r.update(plan=3), "plan", "expected a string"),
        (lambda r: r.update(minutes_7d=math.nan), "minutes_7d", "send null"),
        (lambda r: r.update(minutes_7d=math.inf), "minutes_7d", "send null"),
        (lambda r: r.update(as_of_date="05/12/2026"), "as_of_date", "ISO date"),
        (lambda r: r.pop("customer_id"), "customer_id", "required"),
        (lambda r: r.update(tenure=3), "tenure", "unknown field"),
    ],
    ids=[
        "missing",
        "string",
        "bool",
        "unknown-category",
        "category-type",
        "nan",
        "infinity",
        "date",
        "no-id",
        "extra",
    ],
)
def test_a_bad_instance_gets_a_422_naming_the_field(server, registry, change, field, words) -> None:
    row = dict(registry.rows[1])
    change(row)
    raw = json.dumps(
        {"instances": [registry.rows[0], row]}
    ).encode()  # NaN/Infinity as Python's json writes them
    response = server.call("POST", f"/v2/models/{MODEL_NAME}/score", raw=raw)
    assert response.status == 422, response.body
    [problem] = response.body["problems"]
    assert problem["field"] == f"instances[1].{field}"
    assert words in problem["message"]


def test_bad_bodies_get_4xx_naming_what_is_wrong_never_a_500(server, registry) -> None:
    path = f"/v2/models/{MODEL_NAME}/score"
    not_json = server.call("POST", path, raw=b"{not json")
    assert not_json.status == 400 and not_json.body["problems"][0]["field"] == "body"
    huge = server.call("POST", path, raw=b'{"instances": [' + b" " * (2 << 20) + b"]}")
    assert huge.status == 413 and huge.body["problems"][0]["field"] == "body"
    too_many = server.score({"instances": [registry.rows[0]] * 1001})
    assert too_many.status == 422 and "at most 1000" in too_many.body["problems"][0]["message"]
    for body in ([], {"instances": []}, "text", {"instances": [1]}):
        response = server.score(body)
        assert response.status == 422, (body, response.body)
    assert server.call("GET", "/v2/health/ready").status == 200


def test_api_keys_are_required_checked_and_never_written_down(server, registry) -> None:
    assert server.score(registry.rows[0], key=None).status == 401
    wrong = server.score(registry.rows[0], key=TEST_KEY[:-1] + "x")
    assert wrong.status == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert server.score(registry.rows[0], key=TEST_KEY).status == 200
    time.sleep(1.2)  # a rotation: the request log holds this test's requests
    written = server.log_path.read_text() + "".join(p.read_text() for p in server.request_log_dir.glob("*"))
    assert written and TEST_KEY not in written and LIMITED_KEY not in written


def test_a_client_over_its_rate_limit_gets_429_with_retry_after(server, registry) -> None:
    statuses = []  # a client faster than 20/s runs out of its 40-request burst; stop at the first 429
    deadline = time.monotonic() + 60
    while not any(r.status == 429 for r in statuses) and time.monotonic() < deadline:
        statuses.append(server.score(registry.rows[0], key=LIMITED_KEY))
    statuses += [server.score(registry.rows[0], key=LIMITED_KEY) for _ in range(5)]
    limited = [r for r in statuses if r.status == 429]
    assert limited and {r.status for r in statuses} == {200, 429}
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    # Another client is not affected by this one's limit.
    assert server.score(registry.rows[0], key=TEST_KEY).status == 200
    time.sleep(int(limited[-1].headers["retry-after"]))
    assert server.score(registry.rows[0], key=LIMITED_KEY).status == 200


def test_a_burst_beyond_the_in_flight_bound_is_shed_fast_with_503(server, registry) -> None:
    body = {"instances": registry.rows[:1000]}
    with ThreadPoolExecutor(24) as pool:
        responses = list(pool.map(lambda _: server.score(body, key=BURST_KEY), range(24)))
    statuses = [r.status for r in responses]
    assert set(statuses) <= {200, 429, 503}, statuses
    shed = [r for r in responses if r.status == 503]
    served = [r for r in responses if r.status == 200]
    assert shed and served, statuses
    assert all(r.headers["retry-after"] == "1" for r in shed)
    # Shed, not queued: a refused request was never scored (its only record is the 503).
    shed_ids = {r.headers["x-request-id"] for r in shed}
    records = wait_until(
        lambda: (
            (found := [r for r in server.records() if r["request_id"] in shed_ids])
            and len(found) >= len(shed_ids)
            and found
        ),
        10,
        "the shed requests' records",
    )
    assert {r["status"] for r in records} == {503} and len(records) == len(shed_ids)
    assert server.score(registry.rows[0]).status == 200  # and the service is fine afterwards


def test_a_promotion_takes_effect_under_load_without_a_failed_request(server, registry, aliases) -> None:
    seen: list[list[tuple[int, str]]] = [[], []]
    stop = threading.Event()

    def load(out: list[tuple[int, str]]) -> None:
        while not stop.is_set():
            response = server.score(registry.rows[len(out) % 100])
            out.append((response.status, response.body.get("predictions", [{}])[0].get("model_version")))
            time.sleep(0.15)  # two threads stay under the suite server's 20 requests/s

    threads = [threading.Thread(target=load, args=(s,)) for s in seen]
    for t in threads:
        t.start()
    time.sleep(1)
    aliases.set_alias("champion", registry.other)
    wait_until(
        lambda: all(out and out[-1][1] == registry.other for out in seen), 15, "the new champion to answer"
    )
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    for out in seen:
        assert {status for status, _ in out} == {200}
        versions = [v for _, v in out]
        flipped = versions.index(registry.other)
        assert flipped > 0 and set(versions[:flipped]) == {registry.champion}
        assert set(versions[flipped:]) == {registry.other}  # no flapping back


def _start_rollout(aliases, registry, mode: str, weight: float) -> Rollout:
    steps = [weight, 1.0] if mode == "canary" else [1.0]
    rollout = Rollout.start(registry.other, registry.champion, mode, steps)
    aliases.set_alias("candidate", registry.other)
    aliases.client.set_registered_model_tag(MODEL_NAME, "rollout", rollout.to_json())
    return rollout


def test_a_canary_serves_each_entity_its_sticky_arm(server, registry, aliases) -> None:
    rollout = _start_rollout(aliases, registry, "canary", 0.3)
    wait_until(lambda: server.state()["candidate_version"] == registry.other, 15, "the canary to start")
    rows = registry.rows[:600]
    first = server.score({"instances": rows}).body["predictions"]
    again = server.score({"instances": rows}).body["predictions"]
    weights = [("champion", 0.7), ("candidate", 0.3)]
    expected = [assign_arm(r["customer_id"], rollout.salt, weights) for r in rows]
    assert [p["arm"] for p in first] == expected == [p["arm"] for p in again]
    share = expected.count("candidate") / len(rows)
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / len(rows))
    versions = {p["arm"]: p["model_version"] for p in first}
    assert versions == {"champion": registry.champion, "candidate": registry.other}


def test_a_shadow_candidate_is_scored_and_logged_but_never_answers(server, registry, aliases) -> None:
    rollout = _start_rollout(aliases, registry, "shadow", 1.0)
    wait_until(lambda: server.state()["candidate_version"] == registry.other, 15, "the shadow to start")
    response = server.score({"instances": registry.rows[:20]})
    assert {p["arm"] for p in response.body["predictions"]} == {"champion"}
    request_id = response.body["request_id"]
    records = wait_until(
        lambda: [r for r in server.records() if r["request_id"] == request_id],
        10,
        "the request's log records",
    )
    by_arm = {arm: [r for r in records if r["arm"] == arm] for arm in ("champion", "shadow")}
    assert len(by_arm["champion"]) == len(by_arm["shadow"]) == 20
    assert all(r["served"] for r in by_arm["champion"]) and not any(r["served"] for r in by_arm["shadow"])
    assert {r["model_version"] for r in by_arm["shadow"]} == {registry.other}
    assert {r["rollout_id"] for r in records} == {rollout.id}
    served = {p["customer_id"]: p["score"] for p in response.body["predictions"]}
    assert all(r["score"] == served[r["entity"]] for r in by_arm["champion"])
    assert all(r["score"] != served[r["entity"]] for r in by_arm["shadow"])


def test_every_request_is_logged_with_features_version_latency_and_status(server, registry) -> None:
    ok = server.score({"instances": registry.rows[:3]})
    bad = server.score({**registry.rows[0], "plan": "gold"})
    ids = {ok.body["request_id"]: 200, bad.headers["x-request-id"]: 422}
    records = wait_until(
        lambda: (
            (found := [r for r in server.records() if r["request_id"] in ids]) and len(found) == 4 and found
        ),
        10,
        "the requests' log records",
    )
    scored = [r for r in records if r["status"] == 200]
    assert [r["entity"] for r in scored] == [r["customer_id"] for r in registry.rows[:3]]
    assert json.loads(scored[0]["features"])["plan"] == registry.rows[0]["plan"]
    assert all(r["latency_ms"] > 0 and r["model_version"] == registry.champion for r in scored)
    [refused] = [r for r in records if r["status"] == 422]
    assert "plan" in refused["error"] and refused["features"] is None


def test_a_request_past_its_deadline_is_stopped_and_answered_503(registry, tmp_path) -> None:
    with scoring_server(
        registry,
        tmp_path,
        api_keys=f"tests={TEST_KEY}",
        timeout_ms=40,
        max_instances=100_000,
        max_body_bytes=1 << 26,
    ) as slow:
        big = slow.score({"instances": registry.rows * 40})
        assert big.status == 503 and "deadline" in big.body["error"], big.body
        assert slow.score(registry.rows[0]).status == 200
        request_id = big.headers["x-request-id"]
        records = wait_until(
            lambda: [r for r in slow.records() if r["request_id"] == request_id], 10, "the refusal's record"
        )
        assert [r["status"] for r in records] == [503]  # no row of it was scored and logged as served
