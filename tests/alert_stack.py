"""The alerting path of opslab/drills/node/stack.py plus what only the tests need: the built docs site
served as the runbook home the alerts link to, and a `tc` runner on the same artifacts root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from opslab.drills.node import stack
from opslab.drills.node.stack import FOR_SCALE, GROUP_WAIT, INTERVAL, free_port, get, missing, seconds, tc_env, wait

__all__ = ["FOR_SCALE", "GROUP_WAIT", "INTERVAL", "AlertStack", "get", "missing", "seconds", "tc", "wait"]
REPO = Path(__file__).resolve().parent.parent  # this checkout: its mkdocs.yml and docs/ (CONFIG_HOME may be an installed wheel's _data)


def tc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opslab", *args], cwd=REPO, env=tc_env(root), capture_output=True, text=True, timeout=120)


class AlertStack(stack.AlertStack):
    """The lab's stack, with the docs site as its runbook home."""

    def docs(self) -> None:
        """Build the docs site and serve it: the runbook home the alerts link to."""
        site = self.work / "site"
        build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)], cwd=REPO,
                               capture_output=True, text=True, env={**tc_env(self.root), "NO_MKDOCS_2_WARNING": "1"}, timeout=300)
        if build.returncode != 0:
            raise RuntimeError(f"mkdocs build failed: {build.stderr[-2000:]}")
        port = free_port()
        self._spawn("docs", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(site), str(port)])
        self.urls["docs"] = self.runbook_base = f"http://127.0.0.1:{port}"
        wait("the docs server", lambda: get(self.urls["docs"] + "/"))

    def start(self) -> "AlertStack":
        try:
            self.docs()
        except BaseException:
            self.close()
            raise
        super().start()
        return self
