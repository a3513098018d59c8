"""Benchmark I/O: loading (long and wide layouts), validation, fingerprints, images."""

from spuriverse.data.layouts import BenchmarkError
from spuriverse.data.loading import Benchmark, LoadedItem, load_benchmark

__all__ = ["Benchmark", "BenchmarkError", "LoadedItem", "load_benchmark"]
