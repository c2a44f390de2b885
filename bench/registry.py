"""Benchmarks by name: each takes the BenchContext and returns (figure values, raw data).

Example:
    @BENCHMARKS.register("pipeline")
    def pipeline(ctx):
        return {"pipeline_speedup": 2.4}, {"samples_per_s": {...}}
"""
from mmkeras.registry import Registry

BENCHMARKS = Registry("benchmark")
