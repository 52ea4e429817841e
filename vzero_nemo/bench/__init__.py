"""Benchmarks (`python -m vzero_nemo.bench.<name>`)."""
