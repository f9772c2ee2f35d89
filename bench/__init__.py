"""Throughput benchmarks (not tests): `python -m bench [--quick]` prints one table."""
