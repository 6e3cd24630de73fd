"""Benchmark harness: what a reading costs in a real Home Assistant process."""
