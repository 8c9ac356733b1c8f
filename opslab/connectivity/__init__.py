"""Connectivity: readiness (no network), a loopback-only probe, and the lab's fake venue on 127.0.0.1."""
