"""Prometheus metrics from the artifacts: catalog (families), extract (artifact -> samples),
exposition (the one encoder), cache (the change feed), server (serve and dump)."""
