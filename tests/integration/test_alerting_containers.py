"""The alerting path of test_alerting.py with its services in containers, as the compose stack
runs them: the exporter and the receiver from the project image, Prometheus and Alertmanager from
their images (built from Debian's packages where no registry answers). Host network on 127.0.0.1,
free ports, configs derived from the real files (tests/alert_stack.py)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from alert_stack import AlertStack, get, tc
from conftest import REPO
from opslab import __version__

pytestmark = [pytest.mark.integration, pytest.mark.container]
ENGINE = os.environ.get("TC_CONTAINER_ENGINE") or shutil.which("podman") and "podman" or shutil.which("docker") and "docker"
IMAGES = {
    "exporter": os.environ.get("TC_IMAGE", f"localhost/opslab:{__version__}"),
    "receiver": os.environ.get("TC_IMAGE", f"localhost/opslab:{__version__}"),
    "prometheus": os.environ.get("TC_PROMETHEUS_IMAGE", "localhost/opslab-prometheus:debian"),
    "alertmanager": os.environ.get("TC_ALERTMANAGER_IMAGE", "localhost/opslab-alertmanager:debian"),
}


def _has(image: str) -> bool:
    return subprocess.run([ENGINE, "image", "inspect", image], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    if not ENGINE:
        pytest.skip("no container engine CLI (podman or docker) is installed")
    if subprocess.run([ENGINE, "info"], capture_output=True).returncode != 0:
        pytest.skip(f"`{ENGINE} info` fails: the container engine is not usable here")
    if not _has(IMAGES["alertmanager"]) and IMAGES["alertmanager"].endswith(":debian"):
        build = subprocess.run([ENGINE, "build", "-q", "-t", IMAGES["alertmanager"], "-f", str(REPO / "alertmanager/Containerfile.debian"),
                                str(REPO / "alertmanager")], capture_output=True, text=True, timeout=900)
        if build.returncode != 0:
            pytest.skip(f"cannot build {IMAGES['alertmanager']} from Debian's package: {build.stderr.strip()[-300:]}")
    for part, image in IMAGES.items():
        if not _has(image):
            pytest.skip(f"{part} image {image} is not available (make image; .ci/podman-setup.sh builds the Prometheus one)")
    if subprocess.run([ENGINE, "run", "--rm", IMAGES["receiver"], "alerts", "list", "--help"], capture_output=True).returncode != 0:
        pytest.skip(f"{IMAGES['receiver']} predates `tc alerts`: rebuild it with `make image`")
    return IMAGES


@pytest.fixture(scope="module")
def stack(images, tmp_path_factory):
    work = tmp_path_factory.mktemp("alerting-containers")
    os.chmod(work, 0o755)
    s = AlertStack(work, work / "artifacts", images=images, engine=ENGINE).start()
    try:
        yield s
    finally:
        s.close()


def test_engage_and_release_reach_the_receiver_in_containers(stack):
    assert tc(stack.root, "killswitch", "engage", "--reason", "alerting e2e in containers").returncode == 0
    _, alert = stack.wait_for_alert("TcKillSwitchEngaged", "firing", timeout=120)
    assert "Runbook: kill switch engaged" in get(alert["annotations"]["runbook_url"]).decode()
    seq = stack.last_seq()
    assert tc(stack.root, "killswitch", "release", "--reason", "done").returncode == 0
    stack.wait_for_alert("TcKillSwitchEngaged", "resolved", after_seq=seq, timeout=120)
    assert tc(stack.root, "artifacts", "verify", "--all").returncode == 0


def test_stopping_the_exporter_container_raises_exporter_down(stack):
    seq = stack.last_seq()
    stack.stop("exporter")
    _, alert = stack.wait_for_alert("TcExporterDown", "firing", after_seq=seq, timeout=120)
    assert alert["labels"]["severity"] == "critical"
