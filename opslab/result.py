"""The value every operation returns; the CLI's reporters turn it into text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """Outcome of one operation: ok (nothing changed) or changed, a one-line summary, touched paths."""

    status: str
    summary: str
    artifacts: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0
    details: list[str] = field(default_factory=list)

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
