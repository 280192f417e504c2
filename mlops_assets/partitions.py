"""Time partitions shared by every daily asset.

The start is read once, when the code location is imported (``MLOPS_START_DATE``, validated in
``mlops_assets.settings``): every daily asset of a process shares this one definition.
"""

import dagster as dg

from mlops_assets.settings import load_start_date

LAKEHOUSE_START_DATE = load_start_date().isoformat()

daily_partitions = dg.DailyPartitionsDefinition(start_date=LAKEHOUSE_START_DATE)

# A backfill of many days runs as one run over the whole range: one JVM, one Delta commit per table.
single_run_backfill = dg.BackfillPolicy.single_run()
