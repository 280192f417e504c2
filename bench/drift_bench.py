"""Drift benchmark: our Spark drift path against Evidently's DataDriftPreset on the same data.

Both sides see the same synthetic data: 20 numerical and 5 categorical columns, reference and current of
N rows each, three columns drifted in the current side (two numerical shifted, one categorical
re-weighted). The data is generated with numpy in chunks and written once to Parquet (row groups), so
even 5M rows x 25 columns per side is produced in bounded memory.

- ours: Spark (local[2], driver 4g), timed from reading the Parquet to the finished verdict: reference
  profile from the reference Parquet (``spark_profile.build_profile_spark``), then the one-pass drift of the current
  Parquet (``compute_drift_spark``). The JVM start and a 60k-row warm-up run are excluded: a monitoring
  job runs in an already-started Spark session that has compiled these query shapes before.
- Evidently: ``Report([DataDriftPreset()]).run`` on pandas DataFrames already in memory, in a
  subprocess (so it can be killed at its time limit and cannot take our process down when memory runs
  out); loading the Parquet into pandas is excluded from its time.

- floor: the same statistics with numpy/Arrow in one process over both sides already in memory
  (``bench.drift_floor``): what the arithmetic costs without an engine; ``vs_floor = ours_s / floor_s``.

``same_verdict``: the set of columns we flag (severity warn or critical) equals the set Evidently flags.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from bench.drift_floor import FloorResult, load_side, run_floor

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

NUMERICAL = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
EXPECTED_DRIFTED = frozenset({"num_00", "num_01", "cat_0"})
CHUNK_ROWS = 250_000
WARMUP_ROWS = 60_000
DEFAULT_SIZES = (100_000, 1_000_000, 5_000_000)
REPO_ROOT = Path(__file__).resolve().parents[1]

# Categorical columns: (labels, reference weights); cat_2 and cat_3 have more categories than the profile's
# top-20 vocabulary, so their tail lands in the __other__ bucket.
_CAT_BASE = [5, 10, 30, 100, 3]
_CAT_NULL_RATE = [0.0, 0.0, 0.0, 0.0, 0.01]
_CAT0_DRIFTED_WEIGHTS = np.full(5, 0.2)


def _cat_spec(j: int) -> tuple[np.ndarray, np.ndarray]:
    k = _CAT_BASE[j]
    labels = np.array([f"c{j}_v{i:03d}" for i in range(k)])
    weights = np.array([0.4, 0.25, 0.15, 0.12, 0.08]) if j == 0 else 1.0 / np.arange(1, k + 1) ** 1.1
    return labels, weights / weights.sum()


def _numerical(i: int, rng: np.random.Generator, n: int, drifted: bool) -> np.ndarray:
    """Column i: normal, lognormal, uniform or exponential by i % 4; num_05 and num_10 have 2 % nulls."""
    family = i % 4
    if family == 0:
        x = rng.normal(10.0 + i, 1.0 + i / 10, n)
        if drifted and i == 0:
            x += 0.6 * (1.0 + i / 10)  # mean shift of 0.6 standard deviations
    elif family == 1:
        x = rng.lognormal(0.0, 0.5, n)
        if drifted and i == 1:
            x *= 1.4  # scale change: a shift of 0.67 sd of log(x)
    elif family == 2:
        x = rng.uniform(0.0, 100.0, n)
    else:
        x = rng.exponential(2.0 + i, n)
    if i in (5, 10):
        x[rng.random(n) < 0.02] = np.nan
    return x


def write_dataset(path: Path, rows: int, drifted: bool, seed: int) -> None:
    """One side (reference or current) as a Parquet file written in row groups of CHUNK_ROWS."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, pa.float64()) for c in NUMERICAL] + [(c, pa.string()) for c in CATEGORICAL])
    cats = [_cat_spec(j) for j in range(len(CATEGORICAL))]
    with pq.ParquetWriter(path, schema) as writer:
        for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
            n = min(CHUNK_ROWS, rows - start)
            rng = np.random.default_rng([seed, int(drifted), chunk])
            arrays: list[pa.Array] = []
            for i in range(len(NUMERICAL)):
                x = _numerical(i, rng, n, drifted)
                arrays.append(pa.array(x, mask=np.isnan(x)))
            for j, (labels, weights) in enumerate(cats):
                w = _CAT0_DRIFTED_WEIGHTS if drifted and j == 0 else weights
                values = labels[rng.choice(len(labels), size=n, p=w)]
                mask = rng.random(n) < _CAT_NULL_RATE[j] if _CAT_NULL_RATE[j] else None
                arrays.append(pa.array(values, type=pa.string(), mask=mask))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=n)


# --- ours --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OursResult:
    seconds: float
    drifted: frozenset[str]


def run_ours(spark: SparkSession, reference: Path, current: Path) -> OursResult:
    from mlops_assets.monitoring.spark_drift import compute_drift_spark
    from mlops_assets.monitoring.spark_profile import build_profile_spark

    start = time.perf_counter()
    profile = build_profile_spark(spark.read.parquet(str(reference)), NUMERICAL, CATEGORICAL)
    outcome = compute_drift_spark(profile, spark.read.parquet(str(current)))
    seconds = time.perf_counter() - start
    return OursResult(seconds, frozenset(outcome.summary.drifted_columns))


# --- Evidently in a subprocess -------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidentlyResult:
    status: str  # ok | timeout | oom | failed
    seconds: float | None = None
    drifted: frozenset[str] | None = None
    detail: str = ""


def _limit_address_space(limit_bytes: int) -> None:
    """Runs in the child before exec: a hard backstop in case a spike outruns the RSS watchdog."""
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def rss_gb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process (Linux /proc; ``VmHWM`` for its peak); 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 0.0


def _ours_memory(spark: SparkSession) -> str:
    """Peak resident memory of the Spark JVM and of this process: evidence that ours stays bounded."""
    proc = getattr(getattr(spark.sparkContext, "_gateway", None), "proc", None)
    jvm = f"{rss_gb(proc.pid, 'VmHWM'):.1f} GB" if proc is not None else "n/a"
    python = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return f"ours peak RSS: JVM {jvm}, python {python:.1f} GB"


def _lines(stream: IO[str], out: queue.Queue[str | None]) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def run_evidently(reference: Path, current: Path, timeout_s: float, memory_gb: float) -> EvidentlyResult:
    """Evidently's report in a child process, killed at ``timeout_s`` or at ``memory_gb`` of resident memory.

    The time limit applies to the report only: it starts when the child says its pandas frames are loaded.
    Memory is watched as RSS (virtual-memory caps misfire on allocators that reserve address space);
    an address-space cap of twice the limit plus 4 GB stays as a backstop against a spike between two polls.
    """
    cmd = [
        sys.executable,
        "-m",
        "bench.evidently_child",
        str(reference),
        str(current),
        ",".join(NUMERICAL),
        ",".join(CATEGORICAL),
    ]
    backstop = int((2 * memory_gb + 4) * 1024**3)
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: _limit_address_space(backstop)) if memory_gb > 0 else None,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    stderr: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    threading.Thread(target=_lines, args=(proc.stderr, stderr), daemon=True).start()
    phase, peak = "load", 0.0
    deadline = time.monotonic() + max(600.0, timeout_s)  # loading gets its own, generous limit
    try:
        while True:
            peak = max(peak, rss_gb(proc.pid))
            if memory_gb > 0 and peak > memory_gb:
                return EvidentlyResult(
                    "oom", detail=f"killed in {phase} at RSS {peak:.1f} GB > {memory_gb:g} GB"
                )
            if time.monotonic() > deadline:
                limit = timeout_s if phase == "report" else max(600.0, timeout_s)
                return EvidentlyResult(
                    "timeout", detail=f"{phase} exceeded {limit:g} s, peak RSS {peak:.1f} GB"
                )
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                proc.wait()
                tail = _drain(stderr)
                status = "oom" if "MemoryError" in tail or "Unable to allocate" in tail else "failed"
                last = tail.strip().splitlines()[-1:] or [""]
                return EvidentlyResult(status, detail=f"{phase}: exit {proc.returncode}: {last[0]}")
            if line.strip() == "READY":
                phase, deadline = "report", time.monotonic() + timeout_s
            elif line.startswith("{"):
                payload = json.loads(line)
                return EvidentlyResult(
                    "ok", payload["seconds"], frozenset(payload["drifted"]), detail=f"peak RSS {peak:.1f} GB"
                )
    finally:
        if proc.poll() is None:
            proc.kill()  # our own child, by its handle
        proc.wait()


def _drain(q: queue.Queue[str | None]) -> str:
    """Everything the child wrote to stderr (the reader thread ends at EOF, which follows the exit)."""
    parts: list[str] = []
    with contextlib.suppress(queue.Empty):
        while (item := q.get(timeout=10)) is not None:
            parts.append(item)
    return "".join(parts)


# --- driver --------------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _memory_gb() -> float:
    with contextlib.suppress(OSError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return float("nan")


def _parse_sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


@contextlib.contextmanager
def _workdir(path: str | None, keep: bool) -> Iterator[Path]:
    root = Path(path) if path else Path(tempfile.mkdtemp(prefix="drift_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        if not keep and not path:
            shutil.rmtree(root, ignore_errors=True)


def _floor(reference: Path, current: Path) -> FloorResult:
    """The in-memory floor on the same files; its arrays are freed before Evidently's child starts."""
    ref_side = load_side(reference, NUMERICAL, CATEGORICAL)
    cur_side = load_side(current, NUMERICAL, CATEGORICAL)
    run_floor(ref_side, cur_side)  # warm-up: first-call costs of numpy and Arrow are no part of the floor
    return run_floor(ref_side, cur_side)


def _fmt_ratio(ours: OursResult, ev: EvidentlyResult, timeout_s: float) -> str:
    if ev.status == "ok" and ev.seconds is not None:
        return f"{ev.seconds / ours.seconds:.1f}"
    if ev.status == "timeout":
        return f">{timeout_s / ours.seconds:.1f}"
    return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default=",".join(str(s) for s in DEFAULT_SIZES), help="rows per side, e.g. 100000,1000000"
    )
    parser.add_argument(
        "--evidently-timeout", type=float, default=600.0, help="seconds per size for Evidently's report"
    )
    parser.add_argument(
        "--evidently-memory-gb",
        type=float,
        default=12.0,
        help="resident-memory limit of the Evidently child (0 = none)",
    )
    parser.add_argument(
        "--workdir", default=None, help="where to write the Parquet files (default: a temp dir, removed)"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the generated Parquet files")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = _parse_sizes(args.sizes)

    import pyspark

    print(
        f"# drift-bench machine: {platform.machine()} cores={os.cpu_count()} mem={_memory_gb():.0f}GB "
        f"python={platform.python_version()} pyspark={pyspark.__version__} delta-spark={_version('delta-spark')} "
        f"evidently={_version('evidently')} pandas={_version('pandas')} numpy={np.__version__} "
        f"pyarrow={_version('pyarrow')} scipy={_version('scipy')}",
        flush=True,
    )
    print(
        "# ours_s: Spark local[2] driver 4g, from reading the reference parquet -> profile (row count, sampled "
        "quantiles, top-K vocabulary, 1 counting pass) -> current parquet (1 counting pass) -> verdict; "
        "JVM start + a 60k-row warm-up excluded",
        flush=True,
    )
    print(
        f"# evidently_s: Report([DataDriftPreset()]).run on in-memory pandas (parquet->pandas load EXCLUDED), "
        f"subprocess, limit {args.evidently_timeout:g} s, killed above {args.evidently_memory_gb:g} GB RSS",
        flush=True,
    )
    print(
        "# floor_s: the same statistics (sampled edges, exact counts, moments, top-K, grading) in one process "
        "with numpy/Arrow over both sides already in memory (parquet load EXCLUDED); vs_floor=ours_s/floor_s",
        flush=True,
    )
    print(f"# 20 numerical + 5 categorical columns, drifted: {sorted(EXPECTED_DRIFTED)}", flush=True)

    from mlops_assets.lakehouse.spark import build_local_session

    spark = build_local_session(master="local[2]", driver_memory="4g", app_name="drift_bench")
    spark.sparkContext.setLogLevel("ERROR")
    with _workdir(args.workdir, args.keep_data) as root:
        warm_ref, warm_cur = root / "warm_ref.parquet", root / "warm_cur.parquet"
        # Warm-up: a monitoring job runs in a long-lived session where these query shapes are compiled
        # already; 60k rows is above the quantile-sampling threshold, so the sampled plan is warmed too.
        write_dataset(warm_ref, WARMUP_ROWS, drifted=False, seed=args.seed + 1)
        write_dataset(warm_cur, WARMUP_ROWS, drifted=True, seed=args.seed + 1)
        run_ours(spark, warm_ref, warm_cur)

        for rows in sizes:
            ref, cur = root / f"ref_{rows}.parquet", root / f"cur_{rows}.parquet"
            gen_start = time.perf_counter()
            write_dataset(ref, rows, drifted=False, seed=args.seed)
            write_dataset(cur, rows, drifted=True, seed=args.seed)
            print(f"# rows={rows} data written in {time.perf_counter() - gen_start:.1f} s", flush=True)
            ours = run_ours(spark, ref, cur)
            floor = _floor(ref, cur)
            ev = run_evidently(ref, cur, args.evidently_timeout, args.evidently_memory_gb)
            ev_s = f"{ev.seconds:.2f}" if ev.status == "ok" and ev.seconds is not None else ev.status
            same = "n/a" if ev.drifted is None else ("yes" if ev.drifted == ours.drifted else "no")
            print(f"# rows={rows} {_ours_memory(spark)}", flush=True)
            print(
                f"# rows={rows} ours drifted={sorted(ours.drifted)} evidently drifted="
                f"{sorted(ev.drifted) if ev.drifted is not None else ev.status} {ev.detail}".rstrip(),
                flush=True,
            )
            print(
                f"drift-bench rows={rows} ours_s={ours.seconds:.2f} evidently_s={ev_s} "
                f"ratio={_fmt_ratio(ours, ev, args.evidently_timeout)} same_verdict={same} "
                f"floor_s={floor.seconds:.2f} vs_floor={ours.seconds / floor.seconds:.1f} "
                f"floor_same_verdict={'yes' if floor.drifted == ours.drifted else 'no'}",
                flush=True,
            )
            if not args.keep_data:
                ref.unlink(missing_ok=True)
                cur.unlink(missing_ok=True)
    return 0
