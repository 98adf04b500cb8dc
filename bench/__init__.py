"""Flywheel benchmarks: each script prints a table and rewrites its section of docs/benchmarks.md."""
