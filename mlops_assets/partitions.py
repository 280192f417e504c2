"""Time partitions shared by every daily asset."""

import warnings

import dagster as dg

# Deliberate choices that Dagster flags: single-run backfills (beta), partitioned asset checks (preview),
# and freshness *checks* (superseded by FreshnessPolicy, which cannot fail a check or gate a run).
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.SupersessionWarning)

LAKEHOUSE_START_DATE = "2026-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=LAKEHOUSE_START_DATE)

# A backfill of many days runs as one run over the whole range: one JVM, one Delta commit per table.
single_run_backfill = dg.BackfillPolicy.single_run()
