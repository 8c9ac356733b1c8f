"""Real containers through the Docker API (Podman's socket here) with testcontainers-python:
the demo inside the project image on a mounted artifacts root, then the exporter and Prometheus
in containers with every dashboard query answered. Skips say exactly what is missing."""

from __future__ import annotations

import gc
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import warnings

import pytest
import yaml

import dashboard_queries
from conftest import REPO, add_matrix_evidence
from opslab import __version__

pytestmark = [
    pytest.mark.integration,
    pytest.mark.container,
    # docker-py and testcontainers leave their unix sockets to the garbage collector.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
VERSION = __version__
IMAGE = f"localhost/opslab:{VERSION}"
DEV_IMAGE = f"localhost/opslab-dev:{VERSION}"
PROMETHEUS_IMAGE = os.environ.get("TC_PROMETHEUS_IMAGE", "localhost/opslab-prometheus:debian")
GRAFANA_IMAGE = os.environ.get("TC_GRAFANA_IMAGE", "docker.io/grafana/grafana:11.2.2")


def _collect_leaked_sockets() -> None:
    """docker-py leaves sockets to the garbage collector; collect them here, under this module's
    warning filters, so their ResourceWarning cannot surface later inside an unrelated test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="module", autouse=True)
def _no_leaked_sockets():
    yield
    _collect_leaked_sockets()


def _docker_client():
    import docker

    client = None
    try:
        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:  # no socket, engine down
        reason = f"{type(exc).__name__}: {exc}"
        if client is not None:
            client.close()
    # Outside the except block, so the skip does not chain the exception (and its sockets).
    del client
    _collect_leaked_sockets()
    pytest.skip(f"no container engine reachable through the Docker API "
                f"(DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}): {reason}")


def _has_image(client, name: str) -> bool:
    import docker

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


@pytest.fixture(scope="module")
def client():
    docker_client = _docker_client()
    yield docker_client
    docker_client.close()


@pytest.fixture(scope="module")
def images(client):
    if not (_has_image(client, IMAGE) and _has_image(client, DEV_IMAGE)):
        if not shutil.which("podman") and not shutil.which("docker"):
            pytest.skip("the project images are missing and no podman/docker CLI is installed to build them")
        subprocess.run([str(REPO / "scripts" / "image")], cwd=REPO, check=True, timeout=1800)
    return IMAGE, DEV_IMAGE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_to_end(container, timeout: int = 900) -> tuple[int, str]:
    try:
        container.start()
        wrapped = container.get_wrapped_container()
        status = wrapped.wait(timeout=timeout)
        return status["StatusCode"], wrapped.logs().decode(errors="replace")
    finally:
        container.stop()  # removes the container, also when it was created but failed to start


@pytest.fixture(scope="module")
def demo_in_image(images, tmp_path_factory):
    from testcontainers.core.container import DockerContainer

    root = tmp_path_factory.mktemp("container-demo")
    container = (DockerContainer(DEV_IMAGE).with_command("demo")
                 .with_volume_mapping(str(REPO), "/work", "ro").with_volume_mapping(str(root), "/artifacts", "rw")
                 .with_env("TC_ARTIFACTS_DIR", "/artifacts").with_env("HOME", "/tmp")
                 .with_kwargs(user=f"{os.getuid()}:{os.getgid()}", working_dir="/work"))
    code, logs = _run_to_end(container)
    assert code == 0, logs[-3000:]
    return root, logs


def test_demo_runs_inside_the_image_and_verifies(demo_in_image, images):
    from testcontainers.core.container import DockerContainer

    root, logs = demo_in_image
    assert "backtest completed" in logs and "detected their failure" in logs
    assert (root / "runs/demo/report.md").exists()
    assert (root / "runs/demo/report.md").stat().st_uid == os.getuid(), "files keep the host user's ownership"
    verify = (DockerContainer(IMAGE).with_command("artifacts verify --all")
              .with_volume_mapping(str(root), "/artifacts", "ro").with_env("TC_ARTIFACTS_DIR", "/artifacts")
              .with_kwargs(user=f"{os.getuid()}:{os.getgid()}"))
    code, out = _run_to_end(verify)
    assert code == 0 and "verified 3 run(s)" in out, out  # demo, paper-demo, node-demo


def test_the_exporter_as_its_image_user_reads_a_tree_written_by_another_uid(images, tmp_path):
    """File modes: tc writes 0644/0755 under the default umask, so the compose/Kubernetes exporter,
    running as the image's non-root user, reads a tree written by root (or by any other uid)."""
    from testcontainers.core.container import DockerContainer

    from conftest import SPECS, run_tc

    root = tmp_path / "artifacts"
    old = os.umask(0o022)
    try:
        assert run_tc("run", "init", "--spec", str(SPECS / "minimal.json"), artifacts=root).code == 0
        assert run_tc("killswitch", "engage", "--reason", "modes", artifacts=root).code == 0
        assert run_tc("killswitch", "release", "--reason", "modes", artifacts=root).code == 0
    finally:
        os.umask(old)
    dump = (DockerContainer(IMAGE).with_command("metrics dump")  # the image's own user, not the host's uid
            .with_volume_mapping(str(root), "/artifacts", "ro").with_env("TC_ARTIFACTS_DIR", "/artifacts"))
    code, out = _run_to_end(dump)
    assert code == 0, out
    assert "\ntc_kill_switch_state_valid 1.0\n" in out and "\ntc_kill_switch_engaged 0.0\n" in out, out[-2000:]
    assert 'tc_run_status{run_id="minimal",status="initialized"} 1.0' in out
    assert 'tc_exporter_artifact_errors_total{kind="run"} 0.0' in out


def test_image_script_says_ok_when_the_inputs_did_not_change(images):
    out = subprocess.run([str(REPO / "scripts" / "image"), "--check"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "ok", out.stdout


def test_image_script_rejects_an_unknown_argument(images):
    out = subprocess.run([str(REPO / "scripts" / "image"), "--bogus"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown argument '--bogus'" in out.stderr and not out.stdout


def test_runtime_image_workdir_exists_and_is_writable_by_its_user(client, images):
    from testcontainers.core.container import DockerContainer

    probe = (DockerContainer(IMAGE).with_kwargs(entrypoint=["sh", "-c"])
             .with_command(["id -un; pwd; touch ./written && echo writable"]))
    code, out = _run_to_end(probe)
    assert code == 0 and out.split() == ["opslab", "/work", "writable"], out


def test_runtime_image_labels_carry_no_made_up_source_url(client, images):
    labels = client.images.get(IMAGE).labels
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    # The source URL comes only from the SOURCE build argument (TC_SOURCE_URL); never a guess.
    assert labels["org.opencontainers.image.source"] == os.environ.get("TC_SOURCE_URL", "")


def test_runtime_image_holds_no_installer_or_dependency_tests(images):
    from testcontainers.core.container import DockerContainer

    script = ("import importlib.util as u, pathlib, sys; import pandas, numpy, pyarrow; "
              "print(u.find_spec('pip') is None, any(pathlib.Path(m.__file__).parent.joinpath('tests').exists() "
              "for m in (pandas, numpy, pyarrow)))")
    probe = DockerContainer(IMAGE).with_kwargs(entrypoint=["python3", "-c"]).with_command([script])
    code, out = _run_to_end(probe)
    assert code == 0 and out.split() == ["True", "False"], out


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


def _wait(what: str, check, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(client, demo_in_image, tmp_path_factory):
    from testcontainers.core.container import DockerContainer

    if not _has_image(client, PROMETHEUS_IMAGE):
        pytest.skip(f"Prometheus image {PROMETHEUS_IMAGE} is not available (set TC_PROMETHEUS_IMAGE; .ci/podman-setup.sh builds one from Debian's package)")
    root, _ = demo_in_image
    add_matrix_evidence(root)
    metrics_port, prom_port = _free_port(), _free_port()
    work = tmp_path_factory.mktemp("prom-config")
    config = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copytree(REPO / "prometheus/rules", work / "rules")
    (work / "targets").mkdir()
    (work / "targets/opslab.json").write_text(json.dumps([{"targets": [f"127.0.0.1:{metrics_port}"]}]))
    os.chmod(work, 0o755)
    exporter = (DockerContainer(IMAGE).with_command(f"metrics serve --host 127.0.0.1 --port {metrics_port}")
                .with_volume_mapping(str(root), "/artifacts", "ro").with_env("TC_ARTIFACTS_DIR", "/artifacts")
                .with_kwargs(network_mode="host", user=f"{os.getuid()}:{os.getgid()}"))
    prometheus = (DockerContainer(PROMETHEUS_IMAGE)
                  .with_command(f"--config.file=/config/prometheus.yml --storage.tsdb.path=/tmp/prom --web.listen-address=127.0.0.1:{prom_port}")
                  .with_volume_mapping(str(work), "/config", "ro").with_kwargs(network_mode="host"))
    try:
        exporter.start()
        prometheus.start()
        base = f"http://127.0.0.1:{prom_port}"
        _wait("exporter /healthz", lambda: _get(f"http://127.0.0.1:{metrics_port}/healthz") == b"ok\n")
        _wait("prometheus ready", lambda: bool(_get(f"{base}/-/ready")))
        _wait("exporter target up", lambda: any(t["health"] == "up" for t in json.loads(_get(f"{base}/api/v1/targets"))["data"]["activeTargets"]))
        yield base
    finally:  # removes each container, also one that was created but failed to start
        prometheus.stop()
        exporter.stop()


def test_every_dashboard_query_has_data_in_containers(stack):
    exprs = [expr for _, expr in dashboard_queries.panel_queries()]  # variables as Grafana sends them ($run = All)
    assert len(exprs) >= 15
    for expr in exprs:
        def has_data(e=expr) -> bool:
            answer = json.loads(_get(f"{stack}/api/v1/query?" + urllib.parse.urlencode({"query": e})))
            return answer["status"] == "success" and bool(answer["data"]["result"])

        _wait(f"data for {expr}", has_data, timeout=30)


def test_grafana_provisions_the_dashboard(client, stack, tmp_path):
    if not _has_image(client, GRAFANA_IMAGE):
        pytest.skip(f"no Grafana image available on this machine ({GRAFANA_IMAGE}; no registry reachable); "
                    "runs wherever TC_GRAFANA_IMAGE can be pulled. Its queries are tested above against a real Prometheus.")
    from testcontainers.core.container import DockerContainer

    port = _free_port()
    prov = tmp_path / "provisioning"
    shutil.copytree(REPO / "grafana/provisioning", prov)
    ds = prov / "datasources/opslab.yml"
    ds.write_text(ds.read_text().replace("http://prometheus:9090", stack))
    grafana = (DockerContainer(GRAFANA_IMAGE).with_kwargs(network_mode="host")
               .with_env("GF_SERVER_HTTP_ADDR", "127.0.0.1").with_env("GF_SERVER_HTTP_PORT", str(port))
               .with_env("GF_AUTH_ANONYMOUS_ENABLED", "true").with_env("GF_SECURITY_ADMIN_PASSWORD", "test-only")
               .with_volume_mapping(str(prov), "/etc/grafana/provisioning", "ro")
               .with_volume_mapping(str(REPO / "grafana/dashboards"), "/var/lib/grafana/dashboards", "ro"))
    with grafana:
        base = f"http://admin:test-only@127.0.0.1:{port}"
        _wait("grafana health", lambda: json.loads(_get(f"http://127.0.0.1:{port}/api/health"))["database"] == "ok")
        health = json.loads(_get(f"{base}/api/datasources/uid/opslab-prometheus/health"))
        assert health["status"] == "OK"
        dash = json.loads(_get(f"{base}/api/dashboards/uid/opslab-overview"))["dashboard"]
        assert len([p for p in dash["panels"] if p["type"] != "row"]) >= 15
