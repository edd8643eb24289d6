"""Benchmark scripts that print figures (run them directly; pytest does not collect ``bench_*.py``)."""
