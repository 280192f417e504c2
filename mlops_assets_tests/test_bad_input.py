"""Bad input, exhaustively: each hand-made landing file either quarantines rows with a named reason or
stops the load with an error naming the file and the problem, before anything is written.

The table runs the real bronze -> silver functions on real Spark; the graph tests below load bad files
through the real Dagster assets and check that the tables are exactly as they were (nothing partial).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.lakehouse.catalog import BRONZE, QUARANTINE, SILVER
from mlops_assets.lakehouse.entities import BILLING_EVENTS, USAGE_EVENTS, EntitySpec
from mlops_assets.lakehouse.ingest import LandingFileError, LandingSchemaError, landing_files, to_bronze
from mlops_assets.lakehouse.quality import split_silver
from mlops_assets.partitions import daily_partitions

DAY = date(2026, 2, 10)
HEADER = "event_id,customer_id,event_ts,event_type,amount,payment_method"
GOOD = "B1,C000001,2026-02-10T10:00:00,charge,9.99,card"
GOOD_2 = "B2,C000002,2026-02-10T11:00:00,charge,5.00,paypal"


def _usage(event_id: str, event_date: str = "2026-02-10", sessions: str = "3") -> str:
    return (
        f'{{"event_id": "{event_id}", "customer_id": "C000001", "event_date": "{event_date}", '
        f'"sessions": {sessions}, "minutes_used": 12.5, "support_tickets": 0, "device": "tv"}}'
    )


@dataclass(frozen=True)
class BadFile:
    """A landing file and what loading it must give: silver ids and quarantine reasons by line, or an error."""

    name: str
    content: bytes
    spec: EntitySpec = BILLING_EVENTS
    silver: tuple[str, ...] = ()
    quarantined: dict[int, list[str]] | None = None
    error: type[Exception] | None = None
    message: str = ""
    max_file_bytes: int | None = None


def _csv(*lines: str, end: str = "\n") -> bytes:
    return (end.join(lines) + end).encode()


CASES = [
    BadFile(
        "truncated last line",
        _csv(HEADER, GOOD, "B2,C000002,2026-02-10T11:0").rstrip(b"\n"),  # cut off mid-write
        silver=("B1",),
        quarantined={3: ["record:malformed"]},
    ),
    BadFile(
        "truncated json line",
        (_usage("U1") + "\n" + _usage("U2")[:40]).encode(),
        spec=USAGE_EVENTS,
        silver=("U1",),
        quarantined={2: ["record:malformed"]},
    ),
    BadFile(
        "wrong delimiter",
        _csv(HEADER.replace(",", ";"), GOOD.replace(",", ";")),
        error=LandingSchemaError,
        message="missing columns ['event_id', 'customer_id'",
    ),
    BadFile(
        "binary garbage",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        error=LandingFileError,
        message="binary content (NUL byte at offset 8)",
    ),
    BadFile("empty file", b"", error=LandingFileError, message="empty file (0 bytes"),
    BadFile("empty json file", b"", spec=USAGE_EVENTS, error=LandingFileError, message="empty file"),
    BadFile("byte-order mark", b"\xef\xbb\xbf" + _csv(HEADER, GOOD, GOOD_2), silver=("B1", "B2")),
    BadFile("CRLF line ends", _csv(HEADER, GOOD, GOOD_2, end="\r\n"), silver=("B1", "B2")),
    BadFile(
        "non-UTF-8 bytes",
        _csv(HEADER, GOOD) + b"B2,C00\xc3\x28\xff02,2026-02-10T11:00:00,charge,5.00,paypal\n",
        silver=("B1",),
        quarantined={3: ["record:invalid_utf8"]},
    ),
    BadFile(
        "duplicated header",
        _csv(HEADER, GOOD, HEADER, GOOD_2),
        silver=("B1", "B2"),
        quarantined={3: ["record:repeated_header"]},
    ),
    BadFile(
        "huge numbers",
        _csv(
            HEADER,
            GOOD,
            "B2,C000002,2026-02-10T11:00:00,charge,1e400,card",
            "B3,C000003,2026-02-10T11:00:00,charge,123456789012345678901234567890,card",
        ),
        silver=("B1",),
        quarantined={3: ["amount:out_of_range"], 4: ["amount:out_of_range"]},
    ),
    BadFile(
        "huge integer",
        (_usage("U1") + "\n" + _usage("U2", sessions="99999999999999999999") + "\n").encode(),
        spec=USAGE_EVENTS,
        silver=("U1",),
        quarantined={2: ["sessions:bad_type"]},
    ),
    BadFile(
        "date in the wrong format",
        _csv(HEADER, GOOD, "B2,C000002,10/02/2026 11:00,charge,5.00,paypal"),
        silver=("B1",),
        quarantined={3: ["event_ts:bad_type"]},
    ),
    BadFile(
        "a day that does not exist",
        (_usage("U1") + "\n" + _usage("U2", event_date="2026-02-30") + "\n").encode(),
        spec=USAGE_EVENTS,
        silver=("U1",),
        quarantined={2: ["event_date:bad_type"]},
    ),
    BadFile(
        "extra column",
        _csv(HEADER + ",coupon", GOOD + ",X"),
        error=LandingSchemaError,
        message="unexpected columns ['coupon']",
    ),
    BadFile(
        "missing column",
        _csv(HEADER.rsplit(",", 1)[0], GOOD.rsplit(",", 1)[0]),
        error=LandingSchemaError,
        message="missing columns ['payment_method']",
    ),
    BadFile(
        "renamed column",
        _csv(HEADER.replace("amount", "amount_usd"), GOOD),
        error=LandingSchemaError,
        message="missing columns ['amount']; unexpected columns ['amount_usd']",
    ),
    BadFile(
        "over the size limit",
        _csv(HEADER, *[GOOD] * 100),
        error=LandingFileError,
        message="over the 1000-byte landing file limit",
        max_file_bytes=1000,
    ),
]


def _land(root: Path, case: BadFile) -> None:
    folder = root / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / case.spec.file_name).write_bytes(case.content)


def _load(spark, root: Path, case: BadFile):
    paths = landing_files(str(root), case.spec, [DAY], case.max_file_bytes)
    return to_bronze(spark, paths, case.spec, datetime.now(UTC))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_landing_file_is_quarantined_with_a_reason_or_refused_naming_the_file(spark, tmp_path, case):
    _land(tmp_path, case)
    if case.error is not None:
        with pytest.raises(case.error) as raised:
            _load(spark, tmp_path, case)
        assert case.spec.file_name in str(raised.value) and case.message in str(raised.value)
        return
    bronze = _load(spark, tmp_path, case)
    split = split_silver(bronze, case.spec)
    key = case.spec.key[0]
    assert sorted(r[key] for r in split.silver.collect()) == list(case.silver)
    reasons = {r["_source_row"]: sorted(r["rules_broken"]) for r in split.quarantine.collect()}
    assert reasons == (case.quarantined or {})
    # every data line is in bronze, nothing is lost: silver + quarantine + duplicates = bronze
    assert split.silver.count() + split.quarantine.count() + split.duplicates.count() == bronze.count()


def test_a_rewritten_landing_file_is_read_again_not_served_from_spark_cache(spark, tmp_path):
    """Found by the late-file test: the same paths are the same Spark plan, and a cached first read was served."""
    first = BadFile("one row", _csv(HEADER, GOOD))
    _land(tmp_path, first)
    assert _load(spark, tmp_path, first).count() == 1
    _land(tmp_path, BadFile("two rows", _csv(HEADER, GOOD, GOOD_2)))
    assert _load(spark, tmp_path, first).count() == 2


def test_a_landing_folder_for_a_day_that_does_not_exist_is_no_partition():
    assert not daily_partitions.has_partition_key("2026-02-30")
    assert daily_partitions.has_partition_key("2026-02-28")


# --- through the real assets: a bad file or a failed commit leaves the tables as they were -------------------

LOAD_DAYS = [date(2026, 2, 1), date(2026, 2, 2)]
USAGE = {
    "bronze": BRONZE[USAGE_EVENTS.name],
    "silver": SILVER[USAGE_EVENTS.name],
    "quarantine": QUARANTINE[USAGE_EVENTS.name],
}


@pytest.fixture
def small_lakehouse(spark, tmp_path):
    """Landing -> bronze -> silver of usage events for two days, in a lakehouse of its own."""
    from mlops_assets.compute import SparkStepRunner
    from mlops_assets.defs.ingestion import bronze_assets, landing_daily_files
    from mlops_assets.defs.silver import silver_assets
    from mlops_assets.resources import LakehouseResource, SparkResource, SyntheticSourceResource

    spark_resource = SparkResource()
    lakehouse = LakehouseResource(root=str(tmp_path / "lakehouse"), spark=spark_resource)
    wanted = {dg.AssetKey(ref.asset_key_path) for ref in USAGE.values()}
    usage = [a for a in [*bronze_assets, *silver_assets] if a.keys & wanted]
    assets = [landing_daily_files, *usage]
    resources = {
        "spark": spark_resource,
        "lakehouse": lakehouse,
        "compute": SparkStepRunner(lakehouse=lakehouse),
        "source": SyntheticSourceResource(initial_customers=40, daily_signups=1),
    }

    def load(day: date, selection: dg.AssetSelection | None = None) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets,
            resources=resources,
            partition_key=day.isoformat(),
            selection=selection,
            raise_on_error=False,
        )

    for day in LOAD_DAYS:
        assert load(day, selection=dg.AssetSelection.assets(landing_daily_files)).success
        with open(Path(lakehouse.landing_root) / day.isoformat() / USAGE_EVENTS.file_name, "a") as f:
            f.write('{"event_id": "cut off\n')  # one quarantined row per day, whatever the seed gives
        assert load(
            day, selection=dg.AssetSelection.assets(*(r.asset_key_path for r in USAGE.values()))
        ).success
    return lakehouse, load


def _snapshot(delta, day: date, layers: tuple[str, ...] = tuple(USAGE)) -> dict[str, tuple[int, list]]:
    """Per table: its version and the day's rows (without load timestamps)."""
    out = {}
    for layer in layers:
        ref = USAGE[layer]
        rows = delta.read_partitions(ref, day, day).drop("_ingested_at", "_quarantined_at")
        out[layer] = (delta.version(ref), sorted(map(tuple, rows.collect()), key=repr))
    return out


def test_an_empty_landing_file_stops_the_load_and_keeps_the_day(small_lakehouse):
    lakehouse, load = small_lakehouse
    delta, day = lakehouse.delta(), LOAD_DAYS[-1]
    before = _snapshot(delta, day)
    assert before["silver"][1], "the day had rows to lose"
    path = Path(lakehouse.landing_root) / day.isoformat() / USAGE_EVENTS.file_name
    path.write_bytes(b"")
    result = load(day, selection=dg.AssetSelection.assets(USAGE["bronze"].asset_key_path).downstream())
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.to_string()
    assert str(path) in message and "empty file (0 bytes" in message and "nothing was loaded" in message
    assert _snapshot(delta, day) == before


def test_a_failure_between_the_quarantine_and_silver_commits_is_repaired_by_the_rerun(small_lakehouse):
    lakehouse, load = small_lakehouse
    delta, day = lakehouse.delta(), LOAD_DAYS[-1]
    clean = _snapshot(delta, day)
    silver_log = Path(lakehouse.locator.path(USAGE["silver"])) / "_delta_log"
    # A commit file that cannot be read: Delta fails the silver write after quarantine has committed.
    blocker = silver_log / f"{clean['silver'][0] + 1:020d}.json"
    blocker.write_text("not a commit\n")
    silver_only = dg.AssetSelection.assets(*(USAGE[t].asset_key_path for t in ("silver", "quarantine")))
    failed = load(day, selection=silver_only)
    assert not failed.success
    after_failure = _snapshot(delta, day, ("quarantine",))
    # silver's RetryPolicy tried 3 times: quarantine committed each time, the same rows, never doubled
    retries = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert after_failure["quarantine"][0] == clean["quarantine"][0] + 1 + len(retries) and len(retries) == 2
    assert after_failure["quarantine"][1] == clean["quarantine"][1] != []
    blocker.unlink()
    assert load(day, selection=silver_only).success
    rerun = _snapshot(delta, day)
    assert {layer: rows for layer, (_, rows) in rerun.items()} == {
        layer: rows for layer, (_, rows) in clean.items()
    }


def test_a_late_file_for_a_past_day_replaces_only_that_day(small_lakehouse):
    lakehouse, load = small_lakehouse
    delta, (past, latest) = lakehouse.delta(), LOAD_DAYS
    latest_before, past_before = _snapshot(delta, latest), _snapshot(delta, past)
    path = Path(lakehouse.landing_root) / past.isoformat() / USAGE_EVENTS.file_name
    late = _usage("LATE-1", event_date=past.isoformat()).replace("C000001", "C000002")
    path.write_text(path.read_text() + late + "\n")  # the source re-sends the day with one more row
    assert load(past, selection=dg.AssetSelection.assets(*(r.asset_key_path for r in USAGE.values()))).success
    past_after = _snapshot(delta, past)
    assert len(past_after["bronze"][1]) == len(past_before["bronze"][1]) + 1
    assert len(past_after["silver"][1]) == len(past_before["silver"][1]) + 1
    assert any("LATE-1" in map(str, row) for row in past_after["silver"][1])
    # the other day's rows are untouched (its table versions moved: the tables got a commit)
    assert {k: rows for k, (_, rows) in _snapshot(delta, latest).items()} == {
        k: rows for k, (_, rows) in latest_before.items()
    }
