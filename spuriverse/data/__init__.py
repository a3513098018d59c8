"""Benchmark I/O: loading (long and wide layouts), validation, fingerprints, images."""

from spuriverse.data.layouts import BenchmarkError
from spuriverse.data.loading import Benchmark, LoadedItem, load_benchmark
from spuriverse.data.mapping import mapped_item

__all__ = ["Benchmark", "BenchmarkError", "LoadedItem", "load_benchmark", "mapped_item"]
