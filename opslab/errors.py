"""Error classes and the one outcome -> exit code mapping (docs/cli.md).

A safety block (3) and a failed check (4) are usually results, not errors: the operation ran,
recorded what it saw, and says so with its Result's exit code from EXIT_CODES. CheckFailed is for a
check that refuses before anything is written.
"""

from __future__ import annotations

from typing import Any

# The exit codes, by outcome: the only table of them.
EXIT_CODES = {"ok": 0, "unexpected": 1, "input": 2, "safety": 3, "check": 4, "busy": 5}


class OpsLabError(Exception):
    """Base class: an error tc reports as one line, with its own outcome (and so exit code)."""

    outcome = "unexpected"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


class InputError(OpsLabError):
    """Bad input: usage, an unreadable, invalid or oversized file, a bad value, a misconfigured root.
    Raised before anything is written."""

    outcome = "input"


class CheckFailed(OpsLabError):
    """A check failed before anything was written (a dataset whose quality check failed): exit 4."""

    outcome = "check"


class LockedError(OpsLabError):
    """Another tc process holds the lock on the same run, dataset or state: busy, retry later."""

    outcome = "busy"


def exit_code_of(outcome: Any) -> int:
    """The exit code of a Result or of an exception (anything not an OpsLabError is unexpected: 1)."""
    if isinstance(outcome, OpsLabError):
        return outcome.exit_code
    if isinstance(outcome, BaseException):
        return EXIT_CODES["unexpected"]
    return outcome.exit_code
