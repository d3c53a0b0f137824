"""Test and demo helpers shipped in the package (``make run`` and the benchmarks use them)."""
