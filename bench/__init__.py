"""Benchmarks: each measures ours against a baseline in the same run and prints a table or JSON."""
