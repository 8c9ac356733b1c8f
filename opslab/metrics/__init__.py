"""Prometheus metrics from the artifacts: a cached custom collector and a small loopback server."""
