"""Time partitions shared by every daily asset."""

import dagster as dg

LAKEHOUSE_START_DATE = "2026-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=LAKEHOUSE_START_DATE)

# A backfill of many days runs as one run over the whole range: one JVM, one Delta commit per table.
single_run_backfill = dg.BackfillPolicy.single_run()
