"""The stack tasks' engine client (tasklib/container.py): an engine socket nothing answers on is one clear line
that says how to start the engine, not a docker-py traceback. (In a child process: docker-py leaves the socket of
the client it could not build to the garbage collector.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("kind", ["no file", "a socket file nothing listens on"])
def test_an_engine_that_does_not_answer_is_one_line_saying_how_to_start_it(tmp_path, kind):
    path = tmp_path / "engine.sock"
    if kind != "no file":
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(path))  # bound, never listening: what a stopped service leaves behind
        stale.close()
    env = {**os.environ, "DOCKER_HOST": f"unix://{path}", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", "from tasklib import container; container.api()"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"the container engine at unix://{path} does not answer (")
    assert "podman system service" in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
