"""An engine profile's images (`make image ENGINE=1.231.0`, docs/engine-profiles.md): Debian 13 with
its Python 3.13 and NautilusTrader 1.231.0, within the size budget, and the demo backtest inside it
gives what the engine this test runs on gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SPECS, tc_env
from opslab import __version__

PROFILE = "1.231.0"
IMAGE = f"localhost/opslab:{__version__}-nt{PROFILE}"
DEV_IMAGE = f"localhost/opslab-dev:{__version__}-nt{PROFILE}"
DEFAULT_IMAGE = f"localhost/opslab:{__version__}"

pytestmark = [pytest.mark.integration, pytest.mark.container]


def _podman(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    if not shutil.which("podman"):
        pytest.skip("podman not found: the profile's images are built and run with Podman (.ci/podman-setup.sh installs it)")
    for name in (IMAGE, DEV_IMAGE):
        if _podman("image", "exists", name).returncode != 0:
            pytest.skip(f"image {name} is not present: `make image ENGINE={PROFILE}` builds it "
                        "(on a debian:trixie-slim base, which .ci/podman-setup.sh makes when no registry answers)")
    return IMAGE


def test_the_profile_image_is_debian_13_with_python_313_and_nautilus_1231(image):
    probe = ("import importlib.metadata as m, platform, sys; "
             "print(open('/etc/debian_version').read().strip(), platform.python_version(), m.version('nautilus_trader'), "
             "m.version('opslab'), sys.executable)")
    res = _podman("run", "--rm", "--network", "none", "--entrypoint", "python3", image, "-c", probe)
    assert res.returncode == 0, res.stderr
    debian, python, nautilus, opslab, executable = res.stdout.split()
    assert debian.startswith("13."), debian
    assert python.startswith("3.13."), python
    assert (nautilus, opslab, executable) == (PROFILE, __version__, "/opt/venv/bin/python3")
    dev = _podman("run", "--rm", "--network", "none", "--entrypoint", "python3", DEV_IMAGE, "-c",
                  "import importlib.metadata as m; print(m.version('nautilus_trader'), m.version('pytest'))")
    assert dev.returncode == 0 and dev.stdout.split()[0] == PROFILE, dev.stderr


def _sizes(image: str) -> tuple[int, int]:
    """(the image's size, the bytes of its nautilus_trader package), both in bytes."""
    res = _podman("image", "inspect", "--format", "{{.Size}}", image)
    assert res.returncode == 0, res.stderr
    du = _podman("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
                 "du -sk /opt/venv/lib/python3*/site-packages/nautilus_trader | cut -f1")
    assert du.returncode == 0, du.stderr
    return int(res.stdout.strip()), int(du.stdout.strip()) * 1024


def test_the_profile_image_adds_nothing_beyond_nautilus_traders_own_growth(image):
    """The issue's budget was the default image's size then, 616 MB. NautilusTrader 1.231.0 alone installs to about
    twice 1.221.0 (every Cython extension carries its own copy of the Rust core: 578 MB against 293 MB
    in the images), so the whole image cannot meet it; what the lab controls (the base, Python, the
    other packages, the lab) must: at most 5 % above the default image's, NautilusTrader aside."""
    size, nautilus = _sizes(image)
    if _podman("image", "exists", DEFAULT_IMAGE).returncode != 0:
        pytest.skip(f"{DEFAULT_IMAGE} is not present (make image): the comparison needs the default engine's image")
    default_size, default_nautilus = _sizes(DEFAULT_IMAGE)
    print(f"\n{image}: {size / 1e6:.0f} MB, nautilus_trader {nautilus / 1e6:.0f} MB, the rest {(size - nautilus) / 1e6:.0f} MB"
          f"\n{DEFAULT_IMAGE}: {default_size / 1e6:.0f} MB, nautilus_trader {default_nautilus / 1e6:.0f} MB, "
          f"the rest {(default_size - default_nautilus) / 1e6:.0f} MB")
    assert size - nautilus <= 1.05 * (default_size - default_nautilus)


def _native_backtest(root: Path) -> dict:
    for args in (["data", "prepare"], ["run", "backtest"]):
        proc = subprocess.run([sys.executable, "-m", "opslab", *args, "--spec", str(SPECS / "demo.yaml"), "--json"], cwd=REPO,
                              env=tc_env(root), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])["data"]["counters"]


def test_the_demo_backtest_in_the_profile_image_equals_the_native_engine(image, tmp_path):
    root = tmp_path / "image"
    root.mkdir()
    mounts = ["-v", f"{REPO}:/src:ro", "-v", f"{root}:/artifacts:rw", "-e", "TC_ARTIFACTS_DIR=/artifacts",
              "--user", f"{os.getuid()}:{os.getgid()}", "--network", "none"]
    for args in (["data", "prepare"], ["run", "backtest"]):
        res = _podman("run", "--rm", *mounts, image, *args, "--spec", "/src/fixtures/specs/demo.yaml", "--json")
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    counters = json.loads(res.stdout.strip().splitlines()[-1])["data"]["counters"]
    meta = json.loads((root / "runs" / "demo" / "metadata.json").read_text())
    assert meta["versions"]["nautilus_trader"] == PROFILE and meta["versions"]["python"].startswith("3.13.")
    assert counters == _native_backtest(tmp_path / "native") and counters["fills"] > 0


def test_the_image_script_knows_the_profile_images_and_refuses_an_unknown_profile(image):
    env = {**os.environ, "TC_ENGINE_PROFILE": PROFILE}
    current = subprocess.run([str(REPO / "scripts" / "image"), "--check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    # "are up to date" right after `make image ENGINE=1.231.0` (CI), "would build" once the inputs changed since
    assert current.returncode == 0, current.stderr
    assert (f"{IMAGE} and {DEV_IMAGE} are up to date" in current.stdout
            or f"would build {IMAGE} and {DEV_IMAGE}" in current.stdout), current.stdout
    env["TC_ENGINE_PROFILE"] = "9.9.9"
    unknown = subprocess.run([str(REPO / "scripts" / "image"), "--check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("error: engine profile 9.9.9: requirements/engine-9.9.9/runtime.lock or base-image is missing")
