"""The value every operation returns; the CLI's reporters turn it into text or JSON."""

from __future__ import annotations

from typing import Any


class Result:
    """Outcome of one operation: ok (nothing changed), changed, or what blocked or failed it
    (blocked, halted, engaged, unconfirmed, failed); a one-line summary; touched paths; the exit code
    (errors.EXIT_CODES). BODY, when given, is printed as it is instead of the summary in text mode (`tc metrics dump`).
    A plain class, not a dataclass: every command builds one, and `dataclasses` (with `inspect`) is 6 ms of a
    command's start on Python 3.11 (benchmarks/bench_foundation.py)."""

    __slots__ = ("status", "summary", "artifacts", "data", "exit_code", "details", "body")

    def __init__(self, status: str, summary: str, artifacts: list[str] | None = None, data: dict[str, Any] | None = None,
                 exit_code: int = 0, details: list[str] | None = None, body: str | None = None) -> None:
        self.status, self.summary, self.exit_code, self.body = status, summary, exit_code, body
        self.artifacts = [] if artifacts is None else artifacts
        self.data = {} if data is None else data
        self.details = [] if details is None else details

    def __repr__(self) -> str:
        return f"Result({self.status!r}, {self.summary!r}, exit_code={self.exit_code})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and (self.as_dict(), self.body) == (other.as_dict(), other.body)

    __hash__ = None  # mutable, like the dataclass it was

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.summary,
            "artifacts": self.artifacts,
            "data": self.data,
            "exit_code": self.exit_code,
            "details": self.details,
        }


def merge_status(*statuses: str) -> str:
    """changed if any step changed something, else ok."""
    return "changed" if "changed" in statuses else "ok"
