"""Benchmark suite of the sigmasight_assets code location (see benchmarks/README.md).

``python -m benchmarks.run`` runs every workload at full scale; ``benchmarks/bench_regression.py``
is the calc-level regression benchmark it reuses for workload 4.
"""
