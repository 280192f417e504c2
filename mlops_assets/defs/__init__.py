"""Dagster definitions grouped by lifecycle stage."""
