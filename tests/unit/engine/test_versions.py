"""engine/versions.py: which release is installed and the exec client's WebSocket URL by release."""

from __future__ import annotations

import importlib.metadata

import pytest

from opslab.engine import versions


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch):
    def set_version(text: str) -> None:
        versions.nautilus.cache_clear()
        monkeypatch.setattr(importlib.metadata, "version", lambda name: text)

    yield set_version
    versions.nautilus.cache_clear()


@pytest.mark.parametrize("text, parsed", [("1.221.0", (1, 221, 0)), ("1.231.0", (1, 231, 0)), ("2.0.0rc3", (2, 0, 0)), ("1.223", (1, 223, 0))])
def test_version_parsed(installed, text, parsed):
    installed(text)
    assert versions.nautilus() == parsed


@pytest.mark.parametrize("text, url", [
    ("1.221.0", "ws://127.0.0.1:8081"),
    ("1.222.0", "ws://127.0.0.1:8081"),
    ("1.223.0", "ws://127.0.0.1:8081/ws-api/v3"),
    ("1.231.0", "ws://127.0.0.1:8081/ws-api/v3"),
])
def test_exec_ws_url_is_the_ws_api_from_1_223(installed, text, url):
    installed(text)
    assert versions.exec_ws_url("ws://127.0.0.1:8081") == url
    if versions.ws_api_user_stream():
        assert versions.exec_ws_url("ws://127.0.0.1:8081/") == url  # no doubled slash
        assert versions.exec_ws_url(url) == url  # already the WebSocket API: unchanged


@pytest.mark.parametrize("text, prints", [("1.221.0", False), ("1.222.0", True), ("1.231.0", True)])
def test_rotation_notes_are_printed_after_1_221(installed, text, prints):
    installed(text)
    assert versions.prints_rotation_notes() is prints
