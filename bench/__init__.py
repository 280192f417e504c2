"""Benchmarks of the project's own code against the usual alternatives (``python -m bench``)."""
