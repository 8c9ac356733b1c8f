"""Take the screenshots shown in docs/ (`make screenshots`): run reports, a live node's report and the drill scorecard.

Usage: python scripts/screenshots.py

Same flow as the samples (scripts/gen_samples.py) into a temporary root, same browser recipe as
the browser test (tasklib/browser.py): a page with a console error, a request or a blank chart
is refused, so a picture in the docs is always one the test would pass. Beside the samples' flow,
in the same root: a live node run of fixtures/specs/node-ethusdt.yaml (Binance's ETHUSDT 15-minute
klines, imported) against the lab's venue (both on 127.0.0.1, about half a minute), and four node
drills with long names, so the scorecard shows node drills.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from gen_samples import MISMATCH_RUN, RUN, build_root  # noqa: E402

from tasklib import browser  # noqa: E402

OUT = REPO / "docs" / "images"
NODE_SPEC = REPO / "fixtures" / "specs" / "node-ethusdt.yaml"
NODE_RUN = "node-ethusdt"
KLINES = REPO / "fixtures" / "data" / "binance" / "ETHUSDT-15m-2024-03-01.csv"
INSTRUMENT = REPO / "fixtures" / "instruments" / "ethusdt-binance-spot.json"
NODE_DRILLS = ("node_futures_position_beyond_lookback", "node_warm_restart_venue_moved", "node_user_stream_expiry",
               "node_ambiguous_submit")
TOP_PX = 560  # the top of a report: title, status badges, overview


def _tc(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "opslab", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"screenshots: tc {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


def live_flow(root: Path) -> None:
    """The node spec's dataset imported, a node run against the venue (tc venue serve in a child, stopped with SIGTERM),
    reconciled; then NODE_DRILLS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TC_")}
    env.update({"TC_ARTIFACTS_DIR": str(root), "PYTHONPATH": str(REPO), "TC_BINANCE_API_KEY": "shots-key-abc123",
                "TC_BINANCE_API_SECRET": "shots-secret-def456"})
    profile = subprocess.run([sys.executable, "-c", "from opslab import runs; from opslab.venue import profiles; "
                              "print(profiles.for_nautilus(runs.versions()['nautilus_trader']))"],
                             cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout.strip()
    _tc(root, "data", "import", "--csv", str(KLINES), "--id", "eth-15m", "--instrument-file", str(INSTRUMENT), env=env)
    venue = subprocess.Popen([sys.executable, "-m", "opslab", "venue", "serve", "--spec", str(NODE_SPEC), "--port", "0", "--ws-port", "0",
                              "--speed", "3000", "--binance-api", profile], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        assert venue.stdout is not None
        words = venue.stdout.readline().split()  # listening on URL websocket WS_URL ...
        http_url, ws_url = words[2].rstrip("/"), words[4]
        _tc(root, "run", "node", "--spec", str(NODE_SPEC), "--venue-url", http_url, "--venue-ws-url", ws_url, env=env)
        _tc(root, "reconcile", "--spec", str(NODE_SPEC), env=env)
    finally:
        venue.send_signal(signal.SIGTERM)
        venue.wait(timeout=30)
    _tc(root, "drill", "run", *NODE_DRILLS, "--jobs", "2", env=env)


def _top(png: bytes, height: int = TOP_PX) -> bytes:
    from PIL import Image  # Pillow comes with matplotlib

    img = Image.open(io.BytesIO(png))
    out = io.BytesIO()
    img.crop((0, 0, img.width, min(height, img.height))).save(out, format="PNG")
    return out.getvalue()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tc-screenshots-") as tmp:
        root = build_root(Path(tmp) / "artifacts")
        live_flow(root)
        with browser.browse() as chrome:
            report = chrome.open(root / "runs" / RUN / "report.html", sections=("charts",))
            mismatch = chrome.open(root / "runs" / MISMATCH_RUN / "report.html", sections=("reconciliation",))
            node = chrome.open(root / "runs" / NODE_RUN / "report.html", sections=("charts",))
            scorecard = chrome.open(root / "drills" / "scorecard.html", sections=("scorecard",))
    pages = (report, mismatch, node, scorecard)
    bad = [line for page in pages for line in browser.problems(page)]
    if bad or len(report.charts) != 3 or not node.charts or len(scorecard.charts) != 1:
        print("screenshots: refusing pages the browser test would fail: " + "; ".join(bad or ["charts missing"]), file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    shots = {"report-charts.png": report.sections["charts"], "report-status.png": _top(report.screenshot),
             "report-reconciliation.png": mismatch.sections["reconciliation"], "node-report-charts.png": node.sections["charts"],
             "scorecard.png": scorecard.sections["scorecard"]}
    for name, png in shots.items():
        (OUT / name).write_bytes(png)
    print(f"wrote {', '.join(shots)} to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
