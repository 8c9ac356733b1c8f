"""Packaging hygiene: the SPDX license string, generated files kept out of git, and no made-up
repository address anywhere (the project's public URL is not known; it comes from TC_SOURCE_URL)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest

from conftest import REPO

# A code-hosting address under the project's own name: any such address would be a guess. (The
# schemas' `$id` URIs are identifiers that nothing fetches, not repository addresses.)
MADE_UP = re.compile(r"https?://(?:www\.)?(?:github\.com|gitlab\.com|bitbucket\.org|codeberg\.org)/tradingchassis[^\s\"'<>)]*",
                     re.IGNORECASE)


def _tracked() -> list[str]:
    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("not a git checkout (or no git): the tracked files cannot be listed")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, timeout=30)
    if out.returncode != 0:  # e.g. a git worktree mounted into a container without its main repository
        pytest.skip(f"git cannot read this checkout here: {out.stderr.decode(errors='replace').strip()[:200]}")
    return [p for p in out.stdout.decode().split("\0") if p]


def test_license_is_an_spdx_expression_and_the_build_backend_supports_it():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    requires = project["build-system"]["requires"]
    match = next(re.fullmatch(r"setuptools>=(\d+)", r) for r in requires if r.startswith("setuptools"))
    assert match and int(match.group(1)) >= 77, "PEP 639 license strings need setuptools >= 77"


def test_generated_files_are_ignored_not_committed():
    tracked = _tracked()
    assert not [p for p in tracked if p.startswith(".stack/")], "make stack-up generates .stack/"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".stack/prometheus-targets/opslab.json"], cwd=REPO, timeout=30)
    assert ignored.returncode == 0, ".stack/ must be in .gitignore"


def test_no_made_up_repository_url_in_any_tracked_file():
    found = []
    for rel in _tracked():
        path = REPO / rel
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{rel}: {m.group(0)}" for m in MADE_UP.finditer(text)]
    assert not found, "repository URLs must come from TC_SOURCE_URL:\n" + "\n".join(found)


def test_the_image_source_label_comes_only_from_a_build_argument():
    text = (REPO / "Containerfile").read_text()
    assert re.search(r"^ARG SOURCE=$", text, flags=re.MULTILINE), "SOURCE has no default URL"
    assert 'org.opencontainers.image.source="${SOURCE}"' in text
