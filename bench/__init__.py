"""Jifen benchmarks: each against its hand-written baseline, same run (see README.md)."""
