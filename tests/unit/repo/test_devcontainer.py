"""The Dev Container definitions: each parses as JSON and builds a stage that the Containerfile defines."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO

CONFIGS = sorted((REPO / ".devcontainer").rglob("devcontainer.json"))


def _stages() -> set[str]:
    text = (REPO / "Containerfile").read_text()
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+([a-z][a-z0-9_-]*)\s*$", text, flags=re.MULTILINE | re.IGNORECASE))


def test_the_containerfile_defines_the_runtime_and_dev_stages():
    assert {"runtime", "dev"} <= _stages()


def test_there_is_a_default_dev_container():
    assert REPO / ".devcontainer" / "devcontainer.json" in CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_dev_container_builds_the_dev_stage_of_the_containerfile(path):
    config = json.loads(path.read_text())
    build = config["build"]
    assert (path.parent / build["dockerfile"]).resolve() == REPO / "Containerfile"
    assert (path.parent / build["context"]).resolve() == REPO
    assert build["target"] in _stages(), f"{path}: target {build['target']!r} is not a stage of the Containerfile"
    assert build["target"] == "dev", "the Dev Container is the dev image (pytest, invoke, make)"
    # The checkout is the workspace; artifacts land in it, not in the image.
    assert config["containerEnv"]["TC_ARTIFACTS_DIR"].startswith("${containerWorkspaceFolder}")


def test_the_engine_variant_mounts_the_socket_and_points_docker_host_at_it():
    config = json.loads((REPO / ".devcontainer" / "with-engine" / "devcontainer.json").read_text())
    target = "/run/engine.sock"
    assert any(f"target={target}" in mount for mount in config["mounts"])
    assert config["containerEnv"]["DOCKER_HOST"] == f"unix://{target}"


def test_the_default_dev_container_needs_no_engine_socket():
    config = json.loads((REPO / ".devcontainer" / "devcontainer.json").read_text())
    assert "mounts" not in config and "DOCKER_HOST" not in config["containerEnv"]
