"""Prints results and server events: text for people, or one JSON object per line (--json)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

class Reporter:
    """Prints results and server events: text for people, or one JSON object per line (--json).
    Stored text is escaped, so it cannot forge output lines or send terminal escape sequences."""

    def __init__(self, want_json: bool) -> None:
        self.json = want_json

    def event(self, kind: str, message: str, **fields: Any) -> None:
        """A line a long-running command prints before its result (a server's `listening`)."""
        if self.json:
            print(json.dumps({"event": kind, "message": message, **fields}, sort_keys=True, default=str), flush=True)
        else:
            print(_safe(message), flush=True)

    def progress(self) -> Any:
        """A callable printing progress lines of long work to stderr, or None: only on a terminal, or with
        TC_PROGRESS=1 (stdout, --json or not, keeps only the result)."""
        if not (sys.stderr.isatty() or os.environ.get("TC_PROGRESS") == "1"):
            return None

        def say(message: str) -> None:
            print(_safe(message), file=sys.stderr, flush=True)

        return say

    def result(self, result: Any) -> None:
        if self.json:
            print(json.dumps(result.as_dict(), sort_keys=True, default=str))
        elif result.body is not None:
            sys.stdout.write(result.body)
        else:
            print(_safe(f"{result.status}: {result.summary}"))
            for line in result.details:
                print("  " + _safe(line))

    def error(self, message: str, code: int) -> None:
        """An error: `error: ...` lines on stderr; with --json also the result envelope on stdout (docs/cli.md)."""
        lines = message.splitlines() or [message]
        for line in lines:
            print("error: " + _safe(line), file=sys.stderr)
        if self.json:
            print(json.dumps(error_envelope(message, code), sort_keys=True))


def error_envelope(message: str, code: int) -> dict[str, Any]:
    """An error as the same object every result is (docs/cli.md#errors-as-json): status `error`, the first
    line as summary, every line (a spec with three problems: three) in details."""
    lines = message.splitlines() or [message]
    return {"status": "error", "summary": lines[0], "artifacts": [], "data": {}, "details": lines, "exit_code": code}


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Left-aligned columns under a header line, two spaces apart (the last column is not padded)."""
    cells = [list(header)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def _safe(line: str) -> str:
    from opslab.escaping import terminal

    return terminal(line)

