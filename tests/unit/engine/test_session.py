"""engine/session.py: 1.231's log-rotation notes on file descriptor 2 are dropped while the engine logs to files;
everything else written there passes on unchanged, and nothing is touched on a release that prints no such note."""

from __future__ import annotations

import importlib.metadata
import os

import pytest

from opslab.engine import session, versions

NOTE = b"[NAUTILUS] Rotated log file, now logging to: /tmp/run/engine/engine_2026-12-03_104259-684.log\n"


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch):
    def set_version(text: str) -> None:
        versions.nautilus.cache_clear()
        monkeypatch.setattr(importlib.metadata, "version", lambda name: text)

    yield set_version
    versions.nautilus.cache_clear()


def test_rotation_notes_are_dropped_and_the_rest_passes(installed, capfd: pytest.CaptureFixture[str]):
    installed("1.231.0")
    fd2 = os.fstat(2)
    with session.rotation_notes_dropped():
        assert os.fstat(2).st_ino != fd2.st_ino  # a pipe while the engine logs
        os.write(2, NOTE)
        os.write(2, b"a panic the operator must see\n" + NOTE + b"[NAUTILUS] something else\n")
        os.write(2, b"no newline at the end")
    assert os.fstat(2).st_ino == fd2.st_ino  # fd 2 is the original again
    assert capfd.readouterr().err == ("a panic the operator must see\n[NAUTILUS] something else\n"
                                      "no newline at the end")


def test_nothing_changes_on_a_release_without_rotation_notes(installed, capfd: pytest.CaptureFixture[str]):
    installed("1.221.0")
    fd2 = os.fstat(2)
    with session.rotation_notes_dropped():
        assert os.fstat(2).st_ino == fd2.st_ino
        os.write(2, NOTE)
    assert capfd.readouterr().err == NOTE.decode()


def test_a_partial_line_passes_at_once_unless_it_may_become_a_note(installed, capfd: pytest.CaptureFixture[str]):
    """A progress line ("\\r  bars 10/100", no newline) reaches the terminal while the engine runs; only the start
    of a line that may still become a note waits for the rest."""
    installed("1.231.0")
    with session.rotation_notes_dropped():
        os.write(2, b"\r  bars 10/100")
        assert _until(capfd, "\r  bars 10/100")
        os.write(2, b" more\n[NAUTILUS] Rot")
        assert _until(capfd, " more\n")
        os.write(2, NOTE[len(b"[NAUTILUS] Rot"):] + b"[NAUTILUS] Rotation")
        os.write(2, b"al stays\n")
    assert capfd.readouterr().err == "[NAUTILUS] Rotational stays\n"


def _until(capfd: pytest.CaptureFixture[str], text: str) -> bool:
    """Whether TEXT reached fd 2's capture within a bounded wait (the pump is a thread)."""
    import time

    seen, deadline = "", time.monotonic() + 5
    while time.monotonic() < deadline:
        seen += capfd.readouterr().err
        if seen == text:
            return True
        time.sleep(0.01)
    return False
