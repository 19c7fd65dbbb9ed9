"""Benchmarks: national-scale figures for the README (see national.py)."""
