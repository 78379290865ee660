"""Benchmarks (not tests): Parley against its peer and its limit on one PostgreSQL.

Run each as `uv run python -m bench.<name>` (`--quick` for a smoke run); figures
and how they were taken are in bench/RESULTS.md.
"""
