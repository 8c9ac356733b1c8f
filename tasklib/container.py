"""Container tasks: the image (built only when its inputs changed) and the compose stack."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from invoke import Context, task

from opslab import __version__
from tasklib.common import REPO

VERSION = __version__
IMAGE = os.environ.get("TC_IMAGE") or f"localhost/opslab:{VERSION}"
DEV_IMAGE = os.environ.get("TC_DEV_IMAGE") or f"localhost/opslab-dev:{VERSION}"
INPUTS = ["Containerfile", "pyproject.toml", "README.md", "requirements/runtime.lock", "requirements/dev.lock", "opslab", "schemas", "wheels"]
LABEL = "dev.opslab.inputs"
PROJECT = "opslab"  # compose project name (older podman-compose ignores `name:` in compose.yaml)
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def engine() -> str:
    """The container engine: $TC_CONTAINER_ENGINE, else podman, else docker."""
    chosen = os.environ.get("TC_CONTAINER_ENGINE")
    for name in ([chosen] if chosen else ["podman", "docker"]):
        if name and shutil.which(name):
            return name
    raise SystemExit("no container engine found: install Podman or Docker, or set TC_CONTAINER_ENGINE")


def compose() -> list[str]:
    """The compose front end that works here: docker compose, podman compose or podman-compose."""
    eng = engine()
    if eng == "docker" and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("podman-compose"):
        return ["podman-compose"]
    if subprocess.run([eng, "compose", "version"], capture_output=True).returncode == 0:
        return [eng, "compose"]
    raise SystemExit("no compose tool found: install docker compose or podman-compose")


def inputs_digest() -> str:
    """sha256 over every file the image is built from (paths and bytes)."""
    digest = hashlib.sha256()
    for item in INPUTS:
        base = REPO / item
        files = sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts) if base.is_dir() else [base]
        for path in files:
            if path.exists():
                digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def _label(image: str) -> str | None:
    res = subprocess.run([engine(), "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', image], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else None


def _revision() -> str:
    res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return res.stdout.strip() or "unknown"


@task(help={"check": "only say whether a build is needed"})
def image(c: Context, check: bool = False) -> None:
    """Build the runtime and dev images, unless images built from the same inputs exist."""
    want = inputs_digest()
    if _label(IMAGE) == want and _label(DEV_IMAGE) == want:
        print(f"      ok  {IMAGE} and {DEV_IMAGE} are up to date (inputs {want})")
        return
    if check:
        print(f" changed  would build {IMAGE} and {DEV_IMAGE} (inputs {want})")
        return
    ca = os.environ.get("TC_BUILD_CA", CA_BUNDLE)
    secret = f"--secret id=ca,src={ca}" if ca and Path(ca).is_file() else ""
    base = os.environ.get("BASE_IMAGE")
    common = (f"{engine()} build {secret} --label {LABEL}={want} --build-arg VERSION={VERSION} --build-arg REVISION={_revision()}"
              + (f" --build-arg BASE_IMAGE={base}" if base else ""))
    start = time.monotonic()
    c.run(f"{common} --target runtime -t {IMAGE} {REPO}", hide="out")
    c.run(f"{common} --target dev -t {DEV_IMAGE} {REPO}", hide="out")
    # The images these replaced are left untagged; remove them (only ours: they carry LABEL).
    c.run(f"{engine()} image prune -f --filter label={LABEL}", hide="both", warn=True)
    print(f" changed  built {IMAGE} and {DEV_IMAGE} in {time.monotonic() - start:.0f} s (inputs {want})")


def _targets_dir() -> Path:
    """prometheus targets for the stack, from TC_METRICS_TARGET (default: the compose service)."""
    folder = REPO / ".stack" / "prometheus-targets"
    folder.mkdir(parents=True, exist_ok=True)
    target = os.environ.get("TC_METRICS_TARGET", "metrics:9108")
    (folder / "opslab.json").write_text(json.dumps([{"targets": [target], "labels": {"service": "opslab"}}]) + "\n")
    return folder


def _ports() -> dict[str, str]:
    return {"metrics": os.environ.get("TC_METRICS_PORT", "9108"), "prometheus": os.environ.get("TC_PROMETHEUS_PORT", "9090"),
            "grafana": os.environ.get("TC_GRAFANA_PORT", "3000"),
            "alertmanager": os.environ.get("TC_ALERTMANAGER_PORT", "9093"), "alerts": os.environ.get("TC_ALERTS_PORT", "9095")}


def _health_urls() -> dict[str, str]:
    """Where each service says it is ready, on the loopback ports the stack publishes."""
    ports = _ports()
    return {"metrics": f"http://127.0.0.1:{ports['metrics']}/healthz", "prometheus": f"http://127.0.0.1:{ports['prometheus']}/-/ready",
            "grafana": f"http://127.0.0.1:{ports['grafana']}/api/health",
            "alertmanager": f"http://127.0.0.1:{ports['alertmanager']}/-/ready", "alerts": f"http://127.0.0.1:{ports['alerts']}/healthz"}


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL built here
            return resp.status == 200
    except OSError:
        return False


def _image_available(name: str) -> bool:
    eng = engine()
    if subprocess.run([eng, "image", "exists" if eng == "podman" else "inspect", name], capture_output=True).returncode == 0:
        return True
    return subprocess.run([eng, "pull", "-q", name], capture_output=True, timeout=120).returncode == 0


DEBIAN_PROMETHEUS = "localhost/opslab-prometheus:debian"


def _prometheus_image(c: Context) -> str:
    """TC_PROMETHEUS_IMAGE (default the pinned official tag); without a registry, one built from Debian's package."""
    wanted = os.environ.get("TC_PROMETHEUS_IMAGE", "docker.io/prom/prometheus:v2.53.2")
    if _image_available(wanted):
        return wanted
    if not _image_available(DEBIAN_PROMETHEUS):
        print(f"    note  {wanted} cannot be pulled; building {DEBIAN_PROMETHEUS} from Debian's prometheus package")
        c.run(f"{engine()} build -q -t {DEBIAN_PROMETHEUS} -f {REPO / 'prometheus' / 'Containerfile.debian'} {REPO / 'prometheus'}", hide="out")
    return DEBIAN_PROMETHEUS


DEBIAN_ALERTMANAGER = "localhost/opslab-alertmanager:debian"


def _alertmanager_image(c: Context) -> str:
    """TC_ALERTMANAGER_IMAGE (default the pinned official tag); without a registry, one built from Debian's package."""
    wanted = os.environ.get("TC_ALERTMANAGER_IMAGE", "docker.io/prom/alertmanager:v0.27.0")
    if _image_available(wanted):
        return wanted
    if not _image_available(DEBIAN_ALERTMANAGER):
        print(f"    note  {wanted} cannot be pulled; building {DEBIAN_ALERTMANAGER} from Debian's prometheus-alertmanager package")
        c.run(f"{engine()} build -q -t {DEBIAN_ALERTMANAGER} -f {REPO / 'alertmanager' / 'Containerfile.debian'} {REPO / 'alertmanager'}", hide="out")
    return DEBIAN_ALERTMANAGER


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TC_IMAGE", IMAGE)
    env["TC_ARTIFACTS_DIR"] = os.path.abspath(os.environ.get("TC_ARTIFACTS_DIR") or REPO / "artifacts")
    env["TC_PROMETHEUS_TARGETS_DIR"] = str(_targets_dir())
    env.setdefault("TC_ALERTS_USER", f"{os.getuid()}:{os.getgid()}")
    return env


def _services() -> tuple[list[str], str | None]:
    grafana = os.environ.get("TC_GRAFANA_IMAGE", "docker.io/grafana/grafana:11.2.2")
    if _image_available(grafana):
        return ["metrics", "prometheus", "alerts", "alertmanager", "grafana"], None
    return ["metrics", "prometheus", "alerts", "alertmanager"], f"grafana image {grafana} is not available (no registry reachable?); started without Grafana"


@task
def stack_up(c: Context) -> None:
    """Bring up metrics, prometheus and grafana on 127.0.0.1; wait until each answers (ok when already up)."""
    ports, urls = _ports(), _health_urls()
    services, note = _services()
    if all(_ready(urls[s]) for s in services):
        print(f"      ok  stack already up: {', '.join(services)}")
    else:
        image(c)
        env = _env()
        env["TC_PROMETHEUS_IMAGE"] = _prometheus_image(c)
        env["TC_ALERTMANAGER_IMAGE"] = _alertmanager_image(c)
        Path(env["TC_ARTIFACTS_DIR"]).mkdir(parents=True, exist_ok=True)
        c.run(" ".join(compose() + ["-p", PROJECT, "-f", str(REPO / "compose.yaml"), "up", "-d", *services]), env=env, hide="both")
        deadline = time.monotonic() + 180
        waiting = list(services)
        while waiting and time.monotonic() < deadline:
            waiting = [s for s in waiting if not _ready(urls[s])]
            time.sleep(0.5)
        if waiting:
            raise SystemExit(f"stack-up: not ready after 180 s: {', '.join(waiting)} (see `make stack-status`)")
        print(f" changed  stack up: {', '.join(services)}")
    if note:
        print(f"    note  {note}")
    print(f"          metrics    http://127.0.0.1:{ports['metrics']}/metrics")
    print(f"          prometheus http://127.0.0.1:{ports['prometheus']}")
    print(f"          alerts     http://127.0.0.1:{ports['alertmanager']} (Alertmanager) -> tc alerts receive -> tc alerts list")
    if "grafana" in services:
        print(f"          grafana    http://127.0.0.1:{ports['grafana']}  (anonymous viewer; admin password: GF_ADMIN_PASSWORD)")


@task
def stack_down(c: Context) -> None:
    """Stop and remove the stack's containers (volumes are kept); ok when nothing runs."""
    res = subprocess.run([engine(), "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"], capture_output=True, text=True)
    if not res.stdout.strip():
        print("      ok  stack is not running")
        return
    c.run(" ".join(compose() + ["-p", PROJECT, "-f", str(REPO / "compose.yaml"), "down"]), env=_env(), hide="both")
    print(" changed  stack down (volumes kept)")


@task
def stack_status(c: Context) -> None:
    """Show each service and whether it answers."""
    for name, url in _health_urls().items():
        print(f"{'up' if _ready(url) else 'down':>8}  {name:<10} {url}")


TASKS = [image, stack_up, stack_down, stack_status]
