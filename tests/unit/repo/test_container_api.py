"""The stack tasks' engine client (tasklib/container.py): an engine socket nothing answers on is one clear line
that says how to start the engine, not a docker-py traceback."""

from __future__ import annotations

import socket

import pytest

from tasklib import container


@pytest.mark.parametrize("kind", ["no file", "a socket file nothing listens on"])
def test_an_engine_that_does_not_answer_is_one_line_saying_how_to_start_it(tmp_path, monkeypatch, kind):
    path = tmp_path / "engine.sock"
    if kind != "no file":
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(path))  # bound, never listening: what a stopped service leaves behind
        stale.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    with pytest.raises(SystemExit) as stopped:  # (docker-py leaves its half-built client's socket to the collector)
        container.api()
    message = str(stopped.value)
    assert message.startswith(f"the container engine at unix://{path} does not answer (")
    assert "podman system service" in message and "\n" not in message
