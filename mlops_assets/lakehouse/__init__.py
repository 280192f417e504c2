"""Pure lakehouse logic: Spark transforms, Delta I/O, data-quality rules. No Dagster here."""
