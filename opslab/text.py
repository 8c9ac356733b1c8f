"""Stored text shown to people: escaped for terminals and for Markdown, so it cannot forge output."""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def terminal(value: Any) -> str:
    """VALUE as one safe line: control characters (escape sequences, newlines, bidi overrides) as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", str(value))


def markdown(value: Any) -> str:
    """VALUE as inline Markdown text for a table cell: one line, punctuation escaped, None as '-'."""
    if value is None:
        return "-"
    return _MARKDOWN.sub(r"\\\1", terminal(value))
