"""Stack tasks: the compose stack (metrics, Prometheus, Grafana) on 127.0.0.1.

The images are built by scripts/image (`make image`, through the engine directly, no Python). These
tasks run natively (.venv) or inside the dev image (`scripts/container-task --engine`, the engine's
socket mounted in); they reach the engine through its Docker API (docker-py), which Podman's and
Docker's sockets both serve, and compose through whichever compose front end is installed.
"""

from __future__ import annotations

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
# The compose project name (older podman-compose ignores `name:` in compose.yaml); TC_STACK_PROJECT
# runs a second stack beside the first (CI, tests).
PROJECT = os.environ.get("TC_STACK_PROJECT") or "opslab"
# Where the engines put their Docker-API socket (the same list as scripts/lib.sh find_socket).
SOCKETS = ["/run/podman/podman.sock", f"{os.environ.get('XDG_RUNTIME_DIR', '/nonexistent')}/podman/podman.sock", "/var/run/docker.sock"]


def docker_host() -> str:
    """$DOCKER_HOST, else the first engine socket that exists; exits with a clear line when none does."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    for path in SOCKETS:
        if Path(path).is_socket():
            return f"unix://{path}"
    raise SystemExit("no container engine API socket found: start Docker, or Podman's socket "
                     "(`systemctl --user enable --now podman.socket`), or set DOCKER_HOST")


def api():
    """A docker-py client on the engine's socket (Podman's socket speaks the same API)."""
    import docker

    hint = ("start it (podman: `systemctl --user enable --now podman.socket`, or "
            "`podman system service --time=0 unix:///run/podman/podman.sock &` as root), or set DOCKER_HOST")
    try:
        # docker-py asks the engine for its API version while it is built: a socket file left by a stopped
        # service fails here already, not at ping().
        client = docker.DockerClient(base_url=docker_host())
    except docker.errors.DockerException as exc:
        raise SystemExit(f"the container engine at {docker_host()} does not answer ({str(exc)[:160]}): {hint}") from None
    try:
        client.ping()
    except Exception as exc:  # the socket exists but nothing answers: say which one
        client.close()
        raise SystemExit(f"the container engine at {docker_host()} does not answer ({str(exc)[:160]}): {hint}") from None
    return client


def compose() -> list[str]:
    """The compose front end installed here: docker compose, podman-compose, podman compose, or
    docker-compose (the dev image's, which drives the mounted socket)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("podman-compose"):
        return ["podman-compose"]
    if shutil.which("podman") and subprocess.run(["podman", "compose", "version"], capture_output=True).returncode == 0:
        return ["podman", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SystemExit("no compose tool found: install docker compose or podman-compose, or use RUNTIME=container")


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
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _image_available(client, name: str) -> bool:
    import docker

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(name)
        return True
    except docker.errors.APIError:
        return False


DEBIAN_PROMETHEUS = "localhost/opslab-prometheus:debian"
DEBIAN_ALERTMANAGER = "localhost/opslab-alertmanager:debian"


def _service_image(client, variable: str, pinned: str, debian: str, folder: str, package: str) -> str:
    """$VARIABLE (default the PINNED official tag); without a registry, one built from Debian's PACKAGE
    (FOLDER/Containerfile.debian)."""
    wanted = os.environ.get(variable, pinned)
    if _image_available(client, wanted):
        return wanted
    if not _image_available(client, debian):
        print(f"    note  {wanted} cannot be pulled; building {debian} from Debian's {package} package (a minute or two)")
        client.images.build(path=str(REPO / folder), dockerfile="Containerfile.debian", tag=debian, rm=True)
    return debian


def _prometheus_image(client) -> str:
    return _service_image(client, "TC_PROMETHEUS_IMAGE", "docker.io/prom/prometheus:v2.53.2", DEBIAN_PROMETHEUS, "prometheus", "prometheus")


def _alertmanager_image(client) -> str:
    return _service_image(client, "TC_ALERTMANAGER_IMAGE", "docker.io/prom/alertmanager:v0.27.0", DEBIAN_ALERTMANAGER, "alertmanager",
                          "prometheus-alertmanager")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TC_IMAGE", IMAGE)
    env["DOCKER_HOST"] = docker_host()
    env["TC_ARTIFACTS_DIR"] = os.path.abspath(os.environ.get("TC_ARTIFACTS_DIR") or REPO / "artifacts")
    env["TC_PROMETHEUS_TARGETS_DIR"] = str(_targets_dir())
    env.setdefault("TC_ALERTS_USER", f"{os.getuid()}:{os.getgid()}")
    return env


def _services(client) -> tuple[list[str], str | None]:
    grafana = os.environ.get("TC_GRAFANA_IMAGE", "docker.io/grafana/grafana:11.2.2")
    if _image_available(client, grafana):
        return ["metrics", "prometheus", "alerts", "alertmanager", "grafana"], None
    return ["metrics", "prometheus", "alerts", "alertmanager"], f"grafana image {grafana} is not available (no registry reachable?); started without Grafana"


@task
def stack_up(c: Context) -> None:
    """Bring up metrics, prometheus and grafana on 127.0.0.1; wait until each answers (ok when already up)."""
    ports, urls = _ports(), _health_urls()
    client = api()
    try:
        if not _image_available(client, IMAGE):
            raise SystemExit(f"stack-up: {IMAGE} is missing: run `make image` first")
        services, note = _services(client)
        if all(_ready(urls[s]) for s in services):
            print(f"      ok  stack already up: {', '.join(services)}")
        else:
            env = _env()
            env["TC_PROMETHEUS_IMAGE"] = _prometheus_image(client)
            env["TC_ALERTMANAGER_IMAGE"] = _alertmanager_image(client)
            Path(env["TC_ARTIFACTS_DIR"]).mkdir(parents=True, exist_ok=True)
            print(f"stack-up: starting {', '.join(services)} with {' '.join(compose())} ...")
            start = time.monotonic()
            c.run(" ".join(compose() + ["-p", PROJECT, "-f", str(REPO / "compose.yaml"), "up", "-d", *services]), env=env, hide="both")
            deadline = start + 180
            waiting = list(services)
            while waiting and time.monotonic() < deadline:
                waiting = [s for s in waiting if not _ready(urls[s])]
                time.sleep(0.5)
            if waiting:
                raise SystemExit(f"stack-up: not ready after 180 s: {', '.join(waiting)} (see `make stack-status`)")
            print(f" changed  stack up: {', '.join(services)} ({time.monotonic() - start:.0f} s)")
    finally:
        client.close()
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
    client = api()
    try:
        running = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT}"})
    finally:
        client.close()
    if not running:
        print("      ok  stack is not running")
        return
    c.run(" ".join(compose() + ["-p", PROJECT, "-f", str(REPO / "compose.yaml"), "down"]), env=_env(), hide="both")
    print(" changed  stack down (volumes kept)")


@task
def stack_status(c: Context) -> None:
    """Show each service and whether it answers."""
    for name, url in _health_urls().items():
        print(f"{'up' if _ready(url) else 'down':>8}  {name:<10} {url}")


TASKS = [stack_up, stack_down, stack_status]
