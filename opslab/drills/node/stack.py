"""The whole alerting path on 127.0.0.1 with the real binaries: `tc alerts receive`, `tc metrics
serve`, Debian's prometheus and prometheus-alertmanager, for one artifacts root.

The node drills run it in their sandbox (detection = an alert delivered to the receiver), and the
alerting tests and the detection-latency benchmark run it too. The configs are derived from the
checkout's real files (prometheus/prometheus.yml, prometheus/rules/*.yml, alertmanager/alertmanager.yml;
a wheel carries the same files as opslab/_data/, pyproject.toml's package-dir);
only what must differ here changes: addresses, 1 s intervals, and every rule's `for:` divided by
FOR_SCALE (2m -> 2s) so holding periods keep their order. Everything waits on readiness by polling
with a deadline, never on a fixed sleep.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

from opslab import contracts
from opslab.errors import InputError

CHECKOUT = Path(__file__).resolve().parents[3]  # opslab/drills/node/stack.py -> the checkout (or site-packages)
PACKAGE_DATA = Path(__file__).resolve().parents[2] / "_data"  # opslab/_data/ of a wheel install


def _config_home() -> Path:
    """The folder holding prometheus/ and alertmanager/: the checkout beside the package (a source
    checkout or an editable install), else the wheel's opslab/_data/, else the current folder (the dev
    image runs tasks in the mounted checkout)."""
    for home in (CHECKOUT, PACKAGE_DATA, Path.cwd()):
        if (home / "prometheus" / "prometheus.yml").is_file():
            return home
    return CHECKOUT


CONFIG_HOME = _config_home()
INTERVAL = "1s"  # scrape and evaluation interval
GROUP_WAIT = "1s"  # Alertmanager group_wait and group_interval
FOR_SCALE = 60
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def binaries() -> tuple[str | None, str | None]:
    """(prometheus, alertmanager) on PATH, or None for each one missing."""
    return shutil.which("prometheus"), shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def missing() -> str | None:
    """Why the stack cannot run here, or None."""
    prometheus, alertmanager = binaries()
    if not prometheus:
        return "Debian's prometheus binary is not installed (apt-get install prometheus; .ci/run installs it; the dev image has it)"
    if not alertmanager:
        return "Debian's prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; .ci/run installs it)"
    if not (CONFIG_HOME / "prometheus" / "prometheus.yml").is_file() or not (CONFIG_HOME / "alertmanager" / "alertmanager.yml").is_file():
        return (f"the lab's prometheus/ and alertmanager/ configs are neither beside the package ({CHECKOUT}) nor in its {PACKAGE_DATA}: "
                "reinstall the lab from a wheel built by `pip wheel --no-deps <checkout>` (docs/engine-profiles.md, Install into your own project)")
    return None


def seconds(text: str) -> float:
    """A Prometheus duration (1h30m, 2m, 500ms) in seconds."""
    return sum(float(n) * UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d)", text))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 5) -> bytes:
    """The body of URL (loopback only, bounded); OSError for any failure."""
    if not url.startswith(("http://127.0.0.1:", "http://[::1]:")):
        raise OSError(f"{url}: the stack only talks to 127.0.0.1")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read(16 << 20)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise OSError(f"HTTP {exc.code} from {url}") from None


def wait(what: str, check: Callable[[], Any], timeout: float = 90, every: float = 0.05) -> Any:
    """Poll CHECK until it returns something truthy (returned); TimeoutError naming WHAT."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError) as exc:
            last = exc
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")


def tc_env(root: Path) -> dict[str, str]:
    """The environment of a tc part: this one without TC_ settings, the artifacts root ROOT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TC_") and k != "SOURCE_DATE_EPOCH"}
    if (CONFIG_HOME / "opslab").is_dir():  # a checkout: its opslab, whichever is installed; a wheel's parts import their own
        env["PYTHONPATH"] = str(CONFIG_HOME) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["TC_ARTIFACTS_DIR"] = str(root)
    return env


class AlertStack:
    """Start with start(), stop with close(); every process is one of ours, stopped by its handle.

    RULES False starts Prometheus without the lab's alert rules (a drill with its detection off).
    IMAGES (part name -> image: exporter, receiver, prometheus, alertmanager) runs those parts in
    containers through ENGINE instead (host network, the work folder and the artifacts root mounted
    at the same paths, so every path and address in the configs stays the same)."""

    def __init__(self, work: Path, root: Path, images: dict[str, str] | None = None, engine: str = "podman", rules: bool = True,
                 runbook_base: str = "docs") -> None:
        self.work, self.root = work, root
        self.images, self.engine = images or {}, engine
        self.with_rules, self.runbook_base = rules, runbook_base
        self.procs: dict[str, subprocess.Popen] = {}
        self.urls: dict[str, str] = {}
        self.rules: dict[str, dict[str, Any]] = {}

    # --- processes ------------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Path:
        """Start CMD (argv[0] the program; for a tc part, `python -m opslab`) natively or in its image."""
        if name in self.images:
            if cmd[:3] == [sys.executable, "-m", "opslab"]:
                cmd, env_args = cmd[3:], ["-e", f"TC_ARTIFACTS_DIR={self.root}"]
            else:
                cmd, env_args = cmd[1:], []
            self.root.mkdir(parents=True, exist_ok=True)
            cmd = [self.engine, "run", "--rm", "--name", f"opslab-alerting-{name}-{os.getpid()}", "--network", "host",
                   "--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{self.work}:{self.work}:Z", "-v", f"{self.root}:{self.root}:Z",
                   *env_args, self.images[name], *cmd]
        log = self.work / f"{name}.log"
        with log.open("wb") as out:
            self.procs[name] = subprocess.Popen(cmd, cwd=CONFIG_HOME, env=env, stdout=out, stderr=subprocess.STDOUT)
        return log

    def _first_line(self, name: str, log: Path) -> str:
        def line() -> str | None:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited {self.procs[name].returncode}: {log.read_text()[-2000:]}")
            text = log.read_text()
            if "\n" not in text:
                return None
            if not text.startswith(("listening on ", "serving ")):
                raise RuntimeError(f"{name} did not start: {text[-2000:]}")
            return text.splitlines()[0]

        return wait(f"{name} to say where it listens", line, timeout=60)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    # --- the parts ------------------------------------------------------------------------
    def receiver(self) -> None:
        log = self._spawn("receiver", [sys.executable, "-m", "opslab", "alerts", "receive", "--port", "0"], tc_env(self.root))
        self.urls["receiver"] = self._first_line("receiver", log).split()[2]

    def exporter(self) -> None:
        port = free_port()
        log = self._spawn("exporter", [sys.executable, "-m", "opslab", "metrics", "serve", "--port", str(port)], tc_env(self.root))
        self._first_line("exporter", log)
        self.urls["exporter"] = f"127.0.0.1:{port}"

    def alertmanager(self) -> None:
        config = yaml.safe_load((CONFIG_HOME / "alertmanager/alertmanager.yml").read_text())
        for receiver in config["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = self.urls["receiver"]
        for route in [config["route"], *config["route"].get("routes", [])]:
            route["group_wait"] = route["group_interval"] = GROUP_WAIT
        (self.work / "alertmanager.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self._spawn("alertmanager", [binaries()[1] or "alertmanager", f"--config.file={self.work / 'alertmanager.yml'}",
                                     f"--storage.path={self.work / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="])
        self.urls["alertmanager"] = f"http://127.0.0.1:{port}"
        wait("alertmanager ready", lambda: get(self.urls["alertmanager"] + "/-/ready"))

    def prometheus(self) -> None:
        config = yaml.safe_load((CONFIG_HOME / "prometheus/prometheus.yml").read_text())
        config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = INTERVAL
        config["global"]["external_labels"]["runbook_base"] = self.runbook_base
        for folder, target in (("targets", self.urls["exporter"]), ("alertmanagers", self.urls["alertmanager"].split("//", 1)[1])):
            (self.work / folder).mkdir(exist_ok=True)
            (self.work / folder / "lab.json").write_text(json.dumps([{"targets": [target]}]))
        (self.work / "rules").mkdir(exist_ok=True)
        for path in sorted((CONFIG_HOME / "prometheus/rules").glob("*.yml")):
            doc = yaml.safe_load(path.read_text())
            for group in doc["groups"]:
                if not self.with_rules:  # detection off: the recording rules stay, the alerts go
                    group["rules"] = [rule for rule in group["rules"] if "alert" not in rule]
                for rule in group["rules"]:
                    if "for" in rule:
                        rule["for"] = f"{max(1, round(seconds(rule['for']) / FOR_SCALE))}s"
                    if "alert" in rule:
                        self.rules[rule["alert"]] = rule
            (self.work / "rules" / path.name).write_text(yaml.safe_dump(doc))
        (self.work / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self._spawn("prometheus", [binaries()[0] or "prometheus", f"--config.file={self.work / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={self.work / 'prom-data'}", f"--web.listen-address=127.0.0.1:{port}",
                                   "--rules.alert.resend-delay=1s"])
        self.urls["prometheus"] = f"http://127.0.0.1:{port}"
        wait("prometheus ready", lambda: get(self.urls["prometheus"] + "/-/ready"))

        def target_up() -> bool:
            targets = json.loads(get(self.urls["prometheus"] + "/api/v1/targets"))["data"]["activeTargets"]
            return any(t["health"] == "up" and t["labels"]["job"] == "opslab" for t in targets)

        def alertmanager_known() -> bool:
            return bool(json.loads(get(self.urls["prometheus"] + "/api/v1/alertmanagers"))["data"]["activeAlertmanagers"])

        wait("the exporter target to be up", target_up)
        wait("prometheus to know the alertmanager", alertmanager_known)

    def start(self) -> "AlertStack":
        why = missing()
        if why:
            raise InputError(f"the alerting stack cannot run here: {why}")
        try:
            self.receiver()
            self.exporter()
            self.alertmanager()
            self.prometheus()
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> "AlertStack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- what arrived ---------------------------------------------------------------------
    def notifications(self) -> list[dict[str, Any]]:
        path = self.root / contracts.artifact("alert_notifications").path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_bytes()[-(16 << 20):].splitlines() if line.strip().startswith(b"{")]

    def find_alert(self, names: tuple[str, ...], status: str = "firing", after_seq: int = 0) -> tuple[dict, dict] | None:
        """The first (notification line, alert) with an alertname in NAMES and STATUS after line AFTER_SEQ, or None."""
        for line in self.notifications():
            if line["seq"] <= after_seq:
                continue
            for alert in line["notification"]["alerts"]:
                if alert["labels"].get("alertname") in names and alert["status"] == status:
                    return line, alert
        return None

    def wait_for_alert(self, name: str, status: str, after_seq: int = 0, timeout: float = 90) -> tuple[dict, dict]:
        """The first (notification line, alert) with alertname NAME and STATUS after line AFTER_SEQ."""
        return wait(f"a {status} {name} notification", lambda: self.find_alert((name,), status, after_seq), timeout)

    def last_seq(self) -> int:
        lines = self.notifications()
        return lines[-1]["seq"] if lines else 0

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query against the stack's Prometheus: the result vector."""
        from urllib.parse import urlencode

        return json.loads(get(f"{self.urls['prometheus']}/api/v1/query?{urlencode({'query': promql})}"))["data"]["result"]
