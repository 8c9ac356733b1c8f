"""Failure drills: the registry (registry.py), the framework (base.py), the runner, lab/ and node/ drills."""

KINDS = ("lab", "node")  # the kinds of drill (Drill.kind); `tc drill list/run --kind` also takes "all". Here: the CLI reads it cheaply
MAX_JOBS = 8  # `tc drill run/matrix --jobs`: drills at once (a node drill is about 7 processes: node, venue, Prometheus, ...)
