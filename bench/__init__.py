"""Benchmarks: databricks_access side by side with the official databricks-sdk.

Run `python -m bench` (see bench/README.md). Workloads live in this package's modules,
one module per family, each registered with `bench.harness.workload`.
"""
