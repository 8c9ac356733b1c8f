"""Connectivity: readiness (no network) and a loopback-only probe."""
