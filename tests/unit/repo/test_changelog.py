"""CHANGELOG.md keeps the Keep a Changelog form and its newest release is the package's version."""

from __future__ import annotations

import re

from conftest import REPO
from opslab import __version__

TEXT = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
VERSION_HEAD = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$")
KINDS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def _heads(level: str) -> list[str]:
    return [line for line in TEXT.splitlines() if line.startswith(level + " ")]


def test_unreleased_comes_first_then_versions_newest_first():
    heads = _heads("##")
    assert heads[0] == "## [Unreleased]"
    versions = []
    for head in heads[1:]:
        match = VERSION_HEAD.match(head)
        assert match, f"not a release heading: {head!r}"
        versions.append(tuple(int(x) for x in match.group(1).split(".")))
    assert versions and versions == sorted(versions, reverse=True)


def test_the_newest_release_is_the_package_version():
    released = VERSION_HEAD.match(_heads("##")[1]).group(1)
    assert released == __version__, f"CHANGELOG's newest release {released} != opslab.__version__ {__version__}"


def test_only_keep_a_changelog_kinds_of_change():
    kinds = {head[4:] for head in _heads("###")}
    assert kinds and kinds <= KINDS, kinds - KINDS


def test_it_names_no_repository_url():
    assert "github.com" not in TEXT and "/compare/" not in TEXT  # the project's source URL is not known
