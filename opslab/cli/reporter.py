"""Prints results and server events: text for people, or one JSON object per line (--json)."""

from __future__ import annotations

import json
import sys
from typing import Any

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
        for line in message.splitlines() or [message]:
            print("error: " + _safe(line), file=sys.stderr)
        if self.json:
            print(json.dumps({"status": "error", "error": message, "exit_code": code}, sort_keys=True))


def _safe(line: str) -> str:
    from opslab.escaping import terminal

    return terminal(line)

