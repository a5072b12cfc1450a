"""Benchmarks and the load test. The product never imports this package."""
