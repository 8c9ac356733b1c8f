"""Exposition: the ONE encoder, used by `tc metrics serve` and `tc metrics dump`, in two dialects:
the Prometheus text format 0.0.4 and OpenMetrics 1.0 text (what Prometheus asks for by default).

Sample lines are the same in both; only the family headers differ (OpenMetrics names a counter
family without `_total`) and OpenMetrics ends with `# EOF`. Written here rather than through
prometheus_client's registry because the exporter keeps sample lines pre-rendered per family and
re-joins only the families a change touched (a scrape costs what changed); the tests parse both
dialects with prometheus_client's parsers and `promtool check metrics`.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from prometheus_client.utils import floatToGoString

from opslab.metrics.catalog import BY_NAME, FAMILIES, Family
from opslab.metrics.extract import Sample

TEXT, OPENMETRICS = "text", "openmetrics"
CONTENT_TYPES = {TEXT: "text/plain; version=0.0.4; charset=utf-8",
                 OPENMETRICS: "application/openmetrics-text; version=1.0.0; charset=utf-8"}
EOF_MARK = {TEXT: b"", OPENMETRICS: b"# EOF\n"}
MAX_LABEL_VALUE = 128  # longer values (a 100 KB probe URL) are cut, and a digest keeps them distinct


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def bounded(value: str) -> str:
    """VALUE, or its first characters plus a short digest when it is longer than MAX_LABEL_VALUE."""
    if len(value) <= MAX_LABEL_VALUE:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{value[:MAX_LABEL_VALUE - 16]}…{digest}"


def sample_line(name: str, labels: tuple[str, ...], value: float) -> str:
    """One sample, exactly as prometheus_client writes it (labels sorted by name, Go float formatting)."""
    family = BY_NAME[name]
    pairs = sorted(zip(family.labels, labels, strict=True))
    label_text = "{" + ",".join(f'{k}="{_escape_label_value(bounded(str(v)))}"' for k, v in pairs) + "}" if pairs else ""
    return f"{family.exposed}{label_text} {floatToGoString(value)}\n"


def lines_by_family(samples: Iterable[Sample]) -> dict[str, bytes]:
    """SAMPLES rendered as sample lines, grouped by family."""
    grouped: dict[str, list[str]] = {}
    for name, labels, value in samples:
        grouped.setdefault(name, []).append(sample_line(name, labels, value))
    return {name: "".join(lines).encode() for name, lines in grouped.items()}


def _header(family: Family, dialect: str) -> bytes:
    doc = family.help.replace("\\", r"\\").replace("\n", r"\n")
    if dialect == OPENMETRICS:
        doc = doc.replace('"', r"\"")
        return f"# HELP {family.name} {doc}\n# TYPE {family.name} {family.kind}\n".encode()
    return f"# HELP {family.exposed} {doc}\n# TYPE {family.exposed} {family.kind}\n".encode()


HEADERS: dict[str, dict[str, bytes]] = {d: {f.name: _header(f, d) for f in FAMILIES} for d in (TEXT, OPENMETRICS)}


def negotiate(accept: str) -> str:
    """The dialect for an Accept header: OpenMetrics when the client lists it, else the text format."""
    return OPENMETRICS if "application/openmetrics-text" in (accept or "") else TEXT
