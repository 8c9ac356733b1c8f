"""Escaping of stored text (reasons, descriptions, ids) before it is shown on a terminal, in Markdown or HTML.

Stored text comes from users and peers (a kill switch reason, a spec description, a venue's error):
rendered unescaped, `|` breaks a Markdown table, `<script>` runs in report.html, a newline starts a
new Markdown block. html.escape covers HTML; Markdown has no standard-library escaper, so md() is
here (CommonMark's backslash escapes; markdown-it and Python-Markdown honour the same set).
"""

from __future__ import annotations

import html as _html
import re
from typing import Any

# CommonMark: any ASCII punctuation may be backslash-escaped. Inline markup (emphasis, code, links,
# autolinks/HTML, entities, strikethrough, table cells) is escaped everywhere; block markers
# (heading, list, quote) only where they could start a block. Dashes and dots in the middle of
# text (dates, versions) stay readable in a terminal.
_MD_INLINE = re.compile(r"([\\`*\[\]<>|~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")  # `_` inside a word (ops_smoke_demo) is not markup
_MD_BLOCK_START = re.compile(r"^(\s*|\s*\d+)((?<![0-9])[#>+=-]|(?<=[0-9])[.)])")
_NEWLINES = re.compile(r"[\r\n\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def terminal(value: Any) -> str:
    """VALUE as one safe line for a terminal: control characters (escape sequences, newlines, bidi
    overrides) shown as \\xNN / \\uNNNN, so stored text cannot forge output lines or move the cursor."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", str(value))


def md(value: Any, line_start: bool = False) -> str:
    """VALUE as literal Markdown text: markup characters backslash-escaped, newlines folded to spaces.

    Safe inside a table cell (`|` is escaped). LINE_START: the text begins a line (a paragraph), so
    a leading `#`, `-`, `>` or `1.` is escaped too; in a cell or mid-line they are plain text and
    stay unescaped (a number like 0.30 reads as itself in a terminal). None renders as "-".
    """
    if value is None:
        return "-"
    text = _MD_INLINE.sub(r"\\\1", terminal(_NEWLINES.sub(" ", str(value))))
    return _MD_BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text) if line_start else text


def md_code(value: Any) -> str:
    """VALUE as an inline code span (for paths and ids): a fence longer than any backtick run inside.

    Not for table cells (a `|` inside would end the cell); use md() there.
    """
    text = _NEWLINES.sub(" ", "-" if value is None else str(value))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def html(value: Any) -> str:
    """VALUE as HTML text (quotes escaped too, so it is also safe inside an attribute). None is "-"."""
    return "-" if value is None else _html.escape(str(value), quote=True)
