"""The remote side of a Spark step: open Pipes, run the step's pure function, report its materializations and
check outcomes (and the whole summary as a custom message) back to Dagster.

The step's parameters and the table locator come as Pipes extras (``{"params": ..., "locator": {"root",
"catalog"}}``), so the task's command line carries only the step's name and the Pipes transport.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from dagster_pipes import PipesContext, open_dagster_pipes
from pyspark.sql import SparkSession

from mlops_assets.lakehouse.steps import STEPS, application_id, run_step, step_reports
from mlops_assets.lakehouse.tables import TableLocator
from mlops_assets.remote.pipes_io import PIPES_IO, pipes_io


def remote_session() -> SparkSession:
    """The cluster's session on a Databricks runtime (Delta built in); elsewhere the project's local session."""
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return SparkSession.builder.getOrCreate()
    from mlops_assets.lakehouse.spark import build_local_session

    return build_local_session()


def report(pipes: PipesContext, step: str, summary: dict) -> None:
    reports = step_reports(step, summary)
    for m in reports.materializations:
        pipes.report_asset_materialization(metadata=m.metadata, asset_key=m.asset_key)
    for c in reports.checks:
        pipes.report_asset_check(
            check_name=c.check_name,
            passed=c.passed,
            severity=c.severity,
            metadata=c.metadata,
            asset_key=c.asset_key,
        )
    pipes.report_custom_message(summary)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlops_assets.remote", description=__doc__)
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--pipes-io", choices=PIPES_IO, default="local")
    args, _pipes_args = parser.parse_known_args(argv)  # Pipes' own --dagster-pipes-* are read by its loader
    # First the session: the DBFS message writer reads the cluster's Spark conf when Pipes opens.
    spark = remote_session()
    params_loader, context_loader, message_writer = pipes_io(args.pipes_io)
    with open_dagster_pipes(
        params_loader=params_loader, context_loader=context_loader, message_writer=message_writer
    ) as pipes:
        extras = pipes.extras
        locator = TableLocator(**extras["locator"])
        pipes.log.info(f"step {args.step} on Spark application {application_id(spark)}")
        summary = run_step(args.step, spark, locator, extras["params"])
        report(pipes, args.step, summary)
