"""The value every operation returns; the CLI's reporters turn it into text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """Outcome of one operation: ok (nothing changed), changed, or what blocked or failed it
    (blocked, halted, engaged, unconfirmed, failed); a one-line summary; touched paths; the exit code
    (errors.EXIT_CODES)."""

    status: str
    summary: str
    artifacts: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0
    details: list[str] = field(default_factory=list)
    body: str | None = None  # printed as it is instead of the summary in text mode (`tc metrics dump`)

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
