"""Error classes; each carries the exit code the CLI returns for it (see docs/cli.md)."""

from __future__ import annotations


class OpsLabError(Exception):
    """Base class: an error tc reports as one line, with its own exit code."""

    exit_code = 1


class InputError(OpsLabError):
    """Bad input: usage, an unreadable or invalid file, a bad value. Nothing was written."""

    exit_code = 2


class SafetyBlocked(OpsLabError):
    """An operation refused because a safety control (the kill switch) is engaged."""

    exit_code = 3


class CheckFailed(OpsLabError):
    """A check ran and failed (reconciliation mismatch, probe down, not ready)."""

    exit_code = 4


class LockedError(OpsLabError):
    """Another tc process holds the lock on the same run or state."""

    exit_code = 1
