"""Benchmarks of the pipeline's hot paths (run by hand; figures go in docs/benchmarks.md)."""
