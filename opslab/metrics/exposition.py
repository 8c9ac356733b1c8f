"""Exposition: the ONE encoder of the Prometheus text format, used by `tc metrics serve` and `dump`.

Written here rather than through prometheus_client's registry because the exporter keeps samples
pre-rendered per family and re-joins only the families a change touched (a scrape costs what
changed); the tests parse its output with prometheus_client's parser and promtool.
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client.utils import floatToGoString

from opslab.metrics.catalog import BY_NAME, FAMILIES, Family
from opslab.metrics.extract import Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _exposed_name(family: Family) -> str:
    return family.name + "_total" if family.kind == "counter" else family.name


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _sample_line(name: str, labels: tuple[str, ...], value: float) -> str:
    """One sample in the Prometheus text format, exactly as prometheus_client writes it (labels
    sorted by name, Go float formatting)."""
    family = BY_NAME[name]
    pairs = sorted(zip(family.labels, labels, strict=True))
    label_text = "{" + ",".join(f'{k}="{_escape_label_value(str(v))}"' for k, v in pairs) + "}" if pairs else ""
    return f"{_exposed_name(family)}{label_text} {floatToGoString(value)}\n"


def lines_by_family(samples: Iterable[Sample]) -> dict[str, str]:
    """SAMPLES rendered as text lines, grouped by family."""
    grouped: dict[str, list[str]] = {}
    for name, labels, value in samples:
        grouped.setdefault(name, []).append(_sample_line(name, labels, value))
    return {name: "".join(lines) for name, lines in grouped.items()}


def _header(family: Family) -> bytes:
    doc = family.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {_exposed_name(family)} {doc}\n# TYPE {_exposed_name(family)} {family.kind}\n".encode()


HEADERS: dict[str, bytes] = {f.name: _header(f) for f in FAMILIES}


