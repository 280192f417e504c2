"""Command line: ``python -m mlops_assets.cli demo`` runs the lifecycle end to end on the local instance.

Runs go through the Dagster instance at ``$DAGSTER_HOME``, so everything the demo does shows in
``dagster dev`` afterwards: runs, materializations, check results. The closing drift loop is left to the
real ``dagster-daemon``: the demo only feeds it drifted data and watches what its sensors launch.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from mlops_assets.monitoring.verdict import DayVerdict

DEMO_START = date(2026, 1, 1)
DEMO_DAYS = 120
SCORING_DAYS = 7
DRIFT_DAYS = 7
DRIFT_SCENARIO = "sudden_covariate_shift"
LOOP_TIMEOUT_S = 20 * 60
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def _range_tags(start: date, end: date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": end.isoformat(),
    }


def _sweep_dead_runs(instance: dg.DagsterInstance) -> None:
    """Fail runs a killed process left STARTED (and free their pool slots), as the daemon's run monitoring
    would: without it they would hold the dbt pool and the run queue forever."""
    from mlops_assets.environment import build_resources
    from mlops_assets.runs.launcher import sweep_dead_runs

    for run_id, reason in sweep_dead_runs(instance):
        print(f"[demo] run {run_id} was left STARTED ({reason}): marked failed, pool slots freed", flush=True)
        ended = build_resources()["mlflow_tracking"].end_open_runs(run_id)
        if ended:
            print(f"[demo] ended its {len(ended)} open MLflow run(s) as KILLED", flush=True)


def _run(
    job_name: str,
    instance: dg.DagsterInstance,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    from mlops_assets.definitions import defs

    _sweep_dead_runs(instance)
    started = time.monotonic()
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, tags=tags or {}, run_config=run_config, raise_on_error=False
    )
    status = "succeeded" if result.success else "FAILED"
    print(f"[demo] {job_name}: run {result.run_id} {status} in {time.monotonic() - started:.0f}s", flush=True)
    if not result.success:
        for event in result.all_events:
            if event.is_failure:
                # A step failure's message is generic; its error (e.g. why a rollback changed nothing) is not.
                error = getattr(event.event_specific_data, "error", None)
                error = (error.cause or error) if error is not None else None  # the step's own exception
                detail = error.message.strip() if error is not None else event.message
                print(f"[demo]   {event.step_key}: {detail}", file=sys.stderr)
        raise SystemExit(1)
    return result


def _summary() -> None:
    """What the demo left behind: the Delta tables, and the champion with its test metrics."""

    from mlops_assets.environment import build_resources
    from mlops_assets.lakehouse.catalog import LIFECYCLE_TABLES
    from mlops_assets.ml.mlflow_model import CHAMPION

    resources = build_resources()
    lakehouse, tracking = resources["lakehouse"], resources["mlflow_tracking"]
    delta = lakehouse.delta()
    refs = LIFECYCLE_TABLES
    print(f"[demo] Delta tables under {lakehouse.root}:")
    for ref in (r for r in refs if delta.exists(r)):
        print(f"[demo]   {ref!s:32} rows={delta.read(ref).count():>9,}  version={delta.version(ref)}")
    version = tracking.registry().alias_version(CHAMPION)
    if version is None:
        return
    client = tracking.client()
    run_id = client.get_model_version(tracking.model_name, version).run_id
    metrics = client.get_run(run_id).data.metrics
    print(
        f"[demo] MLflow ({tracking.tracking_uri}): {tracking.model_name}@{CHAMPION} = v{version}, run {run_id}"
    )
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "f1"):
        if f"test_{name}" in metrics:
            low, high = metrics.get(f"test_{name}_ci_low"), metrics.get(f"test_{name}_ci_high")
            print(f"[demo]   test {name:8} {metrics[f'test_{name}']:.3f}  95% CI [{low:.3f}, {high:.3f}]")


def _latest_drift_reports(instance: dg.DagsterInstance) -> dict[str, DayVerdict]:
    from mlops_assets.defs.monitoring.drift_report import DRIFT_REPORT_KEY, drift_verdicts

    records = instance.fetch_materializations(DRIFT_REPORT_KEY, limit=200).records  # newest first
    return drift_verdicts(list(reversed(records)))


def _print_reports(reports: dict[str, DayVerdict]) -> None:
    for day, r in sorted(reports.items()):
        critical = ", ".join(r.critical_columns) or "-"
        print(
            f"[demo]   {day}  {r.action!s:14} data drift {r.data_drift_level!s:11} performance "
            f"{r.performance_level!s:8} model v{r.model_version}  critical: {critical}"
        )


def _sensor_runs(instance: dg.DagsterInstance, job: str, sensor: str, since: float) -> list[dg.DagsterRun]:
    return list(
        instance.get_runs(
            filters=dg.RunsFilter(
                job_name=job,
                tags={"dagster/sensor_name": sensor},
                created_after=datetime.fromtimestamp(since, UTC),
            )
        )
    )


def _tick_decisions(instance: dg.DagsterInstance, sensor: str, since: float) -> list[str]:
    """What the sensor decided on each tick since ``since``, oldest first, as the UI's tick history shows it."""
    lines = []
    for state in instance.all_instigator_state():
        if state.instigator_name != sensor:
            continue
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=50):
            if tick.timestamp < since:
                continue
            stamp = datetime.fromtimestamp(tick.timestamp, UTC).strftime("%H:%M:%S")
            if tick.run_keys:
                lines.append(f"{stamp} launched run key(s) {', '.join(tick.run_keys)}")
            elif tick.skip_reason:
                lines.append(f"{stamp} {tick.skip_reason}")
    return sorted(lines)


class _Daemon:
    """``dagster-daemon run`` on this instance and workspace, as ``dagster dev`` starts it."""

    def __init__(self, log_path: Path) -> None:
        from mlops_assets.settings import PROJECT_ROOT

        self.log_path = log_path
        # The demo plays a week of data in minutes: the wall-clock cooldown and cap would stop every re-run of
        # the demo, so its daemon runs without them. The unchanged-training-data guardrail stays on.
        env = {**os.environ, "MLOPS_RETRAIN_COOLDOWN_HOURS": "0", "MLOPS_MAX_RETRAINS": "100"}
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_for_run(
        self, instance: dg.DagsterInstance, job: str, sensor: str, since: float, deadline: float
    ) -> dg.DagsterRun:
        """The first run ``sensor`` launched for ``job`` after ``since``, once it has finished."""
        last_note = 0.0
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"[demo] dagster-daemon exited ({self.proc.returncode}); see {self.log_path}"
                )
            runs = _sensor_runs(instance, job, sensor, since)
            if runs and runs[-1].status.value in FINISHED:
                return runs[-1]
            now = time.monotonic()
            if now > deadline:
                raise SystemExit(f"[demo] no finished {job} run from {sensor} in time; see {self.log_path}")
            if now - last_note >= 30:
                state = f"run {runs[-1].run_id[:8]} {runs[-1].status.value}" if runs else "no run yet"
                print(f"[demo]   waiting for {sensor} -> {job}: {state}", flush=True)
                last_note = now
            time.sleep(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # the daemon shuts its threads and code server down
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _last_promotion_decision() -> str:
    from mlops_assets.environment import build_resources
    from mlops_assets.lakehouse.catalog import PROMOTION_AUDIT

    delta = build_resources()["lakehouse"].delta()
    row = delta.read(PROMOTION_AUDIT).orderBy("decided_at", ascending=False).first()
    reasons = "; ".join(row["reasons"][:3]) or "-"
    return f"{row['decision']} v{row['from_version']} -> v{row['to_version']} ({reasons})"


def drift_loop(instance: dg.DagsterInstance, start: date) -> None:
    """Drifted days through ingestion and scoring, then the real daemon: sensor -> retrain -> re-score."""
    from mlops_assets.defs.monitoring.retraining import rescore_job, retrain_job

    end = start + timedelta(days=DRIFT_DAYS - 1)
    source = {"scenario": DRIFT_SCENARIO, "drift_start": start.isoformat()}
    print(
        f"[demo] 4/6 drift arrives: source scenario {DRIFT_SCENARIO} from {start}; load and score {start}..{end}"
    )
    _run("daily_lakehouse", instance, _range_tags(start, end), {"resources": {"source": {"config": source}}})
    _run("daily_scoring", instance, _range_tags(start, end))
    _print_reports(_latest_drift_reports(instance))

    print(
        "[demo] 5/6 the real dagster-daemon takes over: drift_retraining_sensor -> retrain_on_drift",
        flush=True,
    )
    since, deadline = time.time(), time.monotonic() + LOOP_TIMEOUT_S
    daemon = _Daemon(Path(instance.root_directory) / "demo-daemon.log")
    print(f"[demo]   dagster-daemon pid {daemon.proc.pid}, log {daemon.log_path}")
    try:
        retrain = daemon.wait_for_run(instance, retrain_job.name, "drift_retraining_sensor", since, deadline)
        tags = retrain.tags
        print(
            f"[demo]   retrain_on_drift run {retrain.run_id} {retrain.status.value}: launched by the sensor for "
            f"{tags.get('mlops/drift_partition')} ({tags.get('mlops/drift_action')}), run key {tags.get('dagster/run_key')}"
        )
        print(f"[demo]   promotion gate: {_last_promotion_decision()}")
        if retrain.status.value != "SUCCESS":
            raise SystemExit(f"[demo] the drift-triggered retrain did not succeed; see run {retrain.run_id}")
        rescore = daemon.wait_for_run(instance, rescore_job.name, "rescore_after_retrain", since, deadline)
        print(f"[demo]   rescore_after_retrain run {rescore.run_id} {rescore.status.value}")
        if rescore.status.value != "SUCCESS":
            raise SystemExit(
                f"[demo] the re-score after the retrain did not succeed; see run {rescore.run_id}"
            )
        _print_reports(_latest_drift_reports(instance))
        # One more sensor tick sees the re-scored report: it must not retrain again on the same training data.
        rescored_at = time.time()
        while time.monotonic() < deadline and not _tick_decisions(
            instance, "drift_retraining_sensor", rescored_at
        ):
            time.sleep(5)
    finally:
        daemon.stop()
    print("[demo]   drift_retraining_sensor ticks (the tick history in the UI):")
    for line in _tick_decisions(instance, "drift_retraining_sensor", since):
        print(f"[demo]     {line}")


def demo(days: int) -> None:
    instance = dg.DagsterInstance.get()
    start, end = DEMO_START, DEMO_START + timedelta(days=days - 1)
    print(f"[demo] DAGSTER_HOME instance: {instance.root_directory}")
    print(f"[demo] 1/6 landing -> bronze -> silver -> gold -> features for {start}..{end}, one backfill run")
    _run("daily_lakehouse", instance, _range_tags(start, end))
    print(
        "[demo] 2/6 training set -> model zoo: baseline, logistic, LightGBM + Optuna (MLflow) -> evaluation -> gate"
    )
    _run("train_evaluate_promote", instance)
    score_start = end - timedelta(days=SCORING_DAYS - 1)
    print(f"[demo] 3/6 batch scoring with @champion for {score_start}..{end}")
    _run("daily_scoring", instance, _range_tags(score_start, end))
    _print_reports(_latest_drift_reports(instance))
    drift_loop(instance, end + timedelta(days=1))
    online(instance)
    _summary()
    print("[demo] done: `make dev` and open http://127.0.0.1:3000 to browse the runs and assets")


def online(instance: dg.DagsterInstance) -> None:
    """Step 6: the champion behind the scoring service, its request log in the lakehouse, the stream."""
    from mlops_assets.demo_online import serve_and_score
    from mlops_assets.environment import build_resources

    print("[demo] 6/6 online: the scoring service on @champion (make serve), one HTTP request per customer")
    contract = build_resources()["feature_set"].contract()
    day = serve_and_score(_lakehouse(), contract, lambda line: print(f"[demo]   {line}", flush=True))
    print("[demo]   the request log -> serving/inference_log (Delta) + train_serving_skew check")
    result = _run("inference_log_job", instance)
    for check in result.get_asset_check_evaluations():
        verdict = "passed" if check.passed else "FAILED"
        print(
            f"[demo]   {check.check_name}: {verdict} {check.metadata['pairs_compared'].value} pairs compared, "
            f"max |online - batch| over {check.metadata['rows_replayed'].value} replayed rows "
            f"{check.metadata['max_score_difference'].value:.1e}"
        )
    print(
        f"[demo]   {day}'s events -> stream/score_events -> ml/stream_predictions (Structured Streaming, availableNow)"
    )
    _run("score_events_job", instance, {"dagster/partition": day.isoformat()})
    streamed = _run("stream_scoring", instance)
    for event in streamed.get_asset_materialization_events():
        meta = event.event_specific_data.materialization.metadata
        counts = {k: meta[k].value for k in ("rows_scored", "rows_dead_lettered") if k in meta}
        print(f"[demo]   {event.asset_key.to_user_string()}: {counts}")


def _lakehouse():
    from mlops_assets.environment import build_resources

    return build_resources()["lakehouse"].delta()


def restore(table: str, version: int, reason: str) -> None:
    from mlops_assets.lakehouse.restore import RestoreError, restore_table

    try:
        result = restore_table(_lakehouse(), table, version, reason)
    except RestoreError as error:
        raise SystemExit(f"restore: {error}") from None
    print(
        f"restored {result.table} v{result.from_version} -> v{result.to_version} (commit v{result.restore_commit}): "
        f"{result.rows_before:,} -> {result.rows_after:,} rows; audited in monitoring.table_restores"
    )


def history(table: str) -> None:
    from mlops_assets.lakehouse.restore import RestoreError, history_table, table_history

    try:
        ref, entries = table_history(_lakehouse(), table)
    except RestoreError as error:
        raise SystemExit(f"history: {error}") from None
    print(f"{ref} (newest first):\n{history_table(entries)}")


def _parse_steps(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise SystemExit(
            f"rollout: --steps {text!r} must be comma-separated fractions, e.g. 0.05,0.25,0.5,1.0"
        ) from None


def rollout_start(candidate: str, mode: str, steps: str | None, min_requests: int | None) -> None:
    config: dict[str, object] = {"candidate": candidate, "mode": mode, "steps": _parse_steps(steps)}
    if min_requests is not None:
        config["min_requests_per_arm"] = min_requests
    _run("rollout_start", dg.DagsterInstance.get(), run_config={"ops": {"start_rollout": {"config": config}}})
    rollout_status()


def rollout_status() -> None:
    """The rollout on the registry tag, the aliases, and the last judged step (no Spark: registry + instance)."""
    from mlops_assets.defs.rollout import ROLLOUT_STEP_KEY, read_rollout
    from mlops_assets.environment import build_resources
    from mlops_assets.ml.mlflow_model import CANDIDATE, CHAMPION

    registry = build_resources()["mlflow_tracking"].registry()
    state = read_rollout(registry)
    champion, candidate = registry.alias_version(CHAMPION), registry.alias_version(CANDIDATE)
    champion_text, candidate_text = (f"v{v}" if v else "-" for v in (champion, candidate))
    print(f"{registry.model_name}: @{CHAMPION} {champion_text}, @{CANDIDATE} {candidate_text}")
    if state is None:
        print("no rollout was ever started: make canary VERSION=n (or make shadow VERSION=n)")
        return
    steps = " -> ".join(f"{s:.0%}" for s in state.steps)
    print(f"{state.describe()}: {state.status}; steps {steps}; started {state.started_at}")
    print(f"  serving weights now: {state.weights()}; guards {state.guards}")
    records = dg.DagsterInstance.get().fetch_materializations(ROLLOUT_STEP_KEY, limit=1).records
    if records and records[0].asset_materialization:
        meta = records[0].asset_materialization.metadata
        if "rollout_id" in meta and meta["rollout_id"].value == state.id:
            print(f"  last judged step: {meta['outcome'].value} ({meta['audit'].value})")
            print("    " + str(meta["reasons"].value).replace("\n", "\n    "))


def connect_server(port: int) -> None:
    """A Spark Connect server with Delta on 127.0.0.1:port, in the foreground until Ctrl-C; point the project at
    it with ``MLOPS_SPARK=sc://127.0.0.1:<port>``."""

    from mlops_assets.lakehouse.spark import connect_server_command, connect_server_environ

    print(f"[connect] Spark Connect on sc://127.0.0.1:{port} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    server = subprocess.Popen(connect_server_command(port), env=connect_server_environ(os.environ))
    try:
        raise SystemExit(server.wait())
    except KeyboardInterrupt:
        server.terminate()
        raise SystemExit(server.wait()) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlops_assets")
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="run the lifecycle end to end on the local instance")
    demo_parser.add_argument("--days", type=int, default=DEMO_DAYS, help="days of data to backfill")
    sub.add_parser("experiment", help="one experiment from plan to decision (make experiment)")
    sub.add_parser("rollback", help="restore the previous @champion (audited)")
    restore_parser = sub.add_parser("restore", help="restore a Delta table to an earlier version (audited)")
    restore_parser.add_argument("--table", required=True, help="<layer>.<name>, e.g. gold.fct_usage_daily")
    restore_parser.add_argument("--version", required=True, type=int, help="the version to go back to")
    restore_parser.add_argument("--reason", default="manual restore", help="recorded in the audit row")
    history_parser = sub.add_parser("history", help="a Delta table's versions, to pick one to restore")
    history_parser.add_argument("--table", required=True, help="<layer>.<name>")
    rollout_parser = sub.add_parser(
        "rollout", help="canary or shadow rollouts of a candidate version (audited)"
    )
    rollout_sub = rollout_parser.add_subparsers(dest="rollout_command", required=True)
    start_parser = rollout_sub.add_parser("start", help="set @candidate and the rollout tag")
    start_parser.add_argument("--candidate", required=True, help="the model version to roll out")
    start_parser.add_argument("--mode", choices=("canary", "shadow"), default="canary")
    start_parser.add_argument("--steps", help="the candidate's shares, e.g. 0.05,0.25,0.5,1.0")
    start_parser.add_argument("--min-requests", type=int, help="minimum requests per arm and step")
    rollout_sub.add_parser("status", help="the running rollout, the aliases and the last judged step")
    rollout_sub.add_parser("abort", help="stop the rollout: @candidate removed, @champion unchanged")
    connect_parser = sub.add_parser("connect-server", help="a Spark Connect server with Delta on 127.0.0.1")
    connect_parser.add_argument("--port", type=int, default=15002)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.days)
    elif args.command == "experiment":
        from mlops_assets.demo_experiment import run

        run(dg.DagsterInstance.get())
    elif args.command == "rollback":
        _run("rollback_champion", dg.DagsterInstance.get())
    elif args.command == "restore":
        restore(args.table, args.version, args.reason)
    elif args.command == "history":
        history(args.table)
    elif args.command == "rollout" and args.rollout_command == "start":
        rollout_start(args.candidate, args.mode, args.steps, args.min_requests)
    elif args.command == "rollout" and args.rollout_command == "status":
        rollout_status()
    elif args.command == "rollout" and args.rollout_command == "abort":
        _run("rollout_abort", dg.DagsterInstance.get())
        rollout_status()
    elif args.command == "connect-server":
        connect_server(args.port)


if __name__ == "__main__":
    main()
