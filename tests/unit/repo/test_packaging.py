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
# The engine profiles' lock folders (docs/engine-profiles.md), oldest release first.
PROFILES = [f"requirements/{p.name}" for p in sorted(REPO.glob("requirements/engine-*"),
                                                      key=lambda p: [int(n) for n in re.findall(r"\d+", p.name)])]


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


def _name(requirement: str) -> str:
    """The normalized distribution name of a requirement line (PEP 503: lower case, runs of -_. as -)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


def _in_names(path) -> set[str]:
    return {_name(line) for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()}


def _pinned(lock) -> dict[str, str]:
    return {_name(m.group(1)): m.group(2) for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock.read_text(), flags=re.MULTILINE)}


@pytest.mark.parametrize("reqs", PROFILES)
def test_pyproject_dependencies_are_the_runtime_in_of_every_profile_and_each_one_is_locked(reqs: str):
    """`pip install <the lab>` must bring what `make setup` brings: pyproject's [project].dependencies
    name the same packages as each profile's runtime.in (matplotlib and websockets were once missing),
    and the profile's hashed runtime.lock pins every one of them."""
    declared = {_name(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    listed = _in_names(REPO / reqs / "runtime.in")
    assert declared == listed, f"only in pyproject.toml: {sorted(declared - listed)}; only in {reqs}/runtime.in: {sorted(listed - declared)}"
    pinned = _pinned(REPO / reqs / "runtime.lock")
    assert not listed - set(pinned), f"{reqs}/runtime.lock does not pin {sorted(listed - set(pinned))}: recompile it"
    engine = re.search(r"^nautilus_trader==(\S+)", (REPO / reqs / "runtime.in").read_text(), flags=re.MULTILINE)
    assert engine and pinned["nautilus-trader"] == engine.group(1), "the lock pins the profile's engine release"


@pytest.mark.parametrize("reqs", PROFILES[1:])
def test_every_profile_has_the_same_dev_tooling_and_locks_it(reqs: str):
    """The test suite needs the same tools on every engine profile: a profile's dev.in names what the
    oldest profile's dev.in names (the client compatibility suite's Binance clients were once missing on
    1.231.0), and its hashed dev.lock pins every one of them."""
    def names(path) -> set[str]:  # the requirement lines; not the options (-c runtime.lock)
        lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
        return {_name(line) for line in lines if line and not line.startswith("-")}

    first = PROFILES[0]
    wanted, listed = names(REPO / first / "dev.in"), names(REPO / reqs / "dev.in")
    assert wanted == listed, f"only in {first}/dev.in: {sorted(wanted - listed)}; only in {reqs}/dev.in: {sorted(listed - wanted)}"
    pinned = _pinned(REPO / reqs / "dev.lock")
    assert not listed - set(pinned), f"{reqs}/dev.lock does not pin {sorted(listed - set(pinned))}: recompile it"


def test_the_wheel_carries_the_node_drills_configs_and_the_runbooks_from_their_one_source():
    """pyproject's package-dir maps folders of the checkout into the wheel (opslab/_data/...): no copy in
    git. Every mapped folder exists and every package-data pattern matches a file there, so a missing or
    renamed source fails here, not in a user's wheel."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir, package_data = setuptools["package-dir"], setuptools["package-data"]
    for package in ("opslab._data.prometheus", "opslab._data.prometheus.rules", "opslab._data.alertmanager", "opslab._data.runbooks"):
        assert package in setuptools["packages"], package
        folder = REPO / package_dir[package]
        assert folder.is_dir(), f"{package}: {folder} is missing"
        for pattern in package_data[package]:
            assert list(folder.glob(pattern)), f"{package}: nothing in {package_dir[package]} matches {pattern}"
    assert package_dir["opslab._data.runbooks"] == "docs/runbooks"
    assert not (REPO / "opslab" / "_data").exists(), "opslab/_data/ exists only in the wheel; the checkout's files are the source"


def test_two_console_scripts_one_entry_point():
    """`tc` is also iproute2's traffic-control program: the lab installs `opslab` too, for the same main()."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"tc": "opslab.cli:entry", "opslab": "opslab.cli:entry"}


@pytest.mark.parametrize("reqs", PROFILES)
def test_every_profile_names_its_python_and_its_base_image(reqs: str):
    """scripts/engine-python reads a profile's `python` (its minor versions, preferred first) and scripts/image
    its `base-image`: a profile without them could be set up or built by neither."""
    minors = (REPO / reqs / "python").read_text().split()
    assert minors and all(re.fullmatch(r"3\.\d{1,2}", m) for m in minors), minors
    assert re.fullmatch(r"docker\.io/library/debian:[a-z]+-slim", (REPO / reqs / "base-image").read_text().strip())


def test_the_containerfile_defaults_build_the_newest_profile():
    """A bare `podman build .` builds the default image, which holds the newest engine profile (scripts/image
    passes another profile's REQS and BASE_IMAGE)."""
    newest = subprocess.run([str(REPO / "scripts" / "default-engine"), "--newest"], capture_output=True, text=True, timeout=30)
    assert newest.returncode == 0 and f"requirements/engine-{newest.stdout.strip()}" == PROFILES[-1]
    text = (REPO / "Containerfile").read_text()
    assert f"ARG REQS={PROFILES[-1]}\n" in text
    assert f"ARG BASE_IMAGE={(REPO / PROFILES[-1] / 'base-image').read_text().strip()}\n" in text
