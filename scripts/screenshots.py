"""Take the screenshots shown in docs/ (`make screenshots`): a run report and the drill scorecard.

Usage: python scripts/screenshots.py

Same flow as the samples (scripts/gen_samples.py) into a temporary root, same browser recipe as
the browser test (tasklib/browser.py): a page with a console error, a request or a blank chart
is refused, so a picture in the docs is always one the test would pass.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from gen_samples import MISMATCH_RUN, RUN, build_root  # noqa: E402

from tasklib import browser  # noqa: E402

OUT = REPO / "docs" / "images"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tc-screenshots-") as tmp:
        root = build_root(Path(tmp) / "artifacts")
        with browser.browse() as chrome:
            report = chrome.open(root / "runs" / RUN / "report.html", sections=("charts",))
            mismatch = chrome.open(root / "runs" / MISMATCH_RUN / "report.html", sections=("reconciliation",))
            scorecard = chrome.open(root / "drills" / "scorecard.html", sections=("scorecard",))
    bad = browser.problems(report) + browser.problems(mismatch) + browser.problems(scorecard)
    if bad or len(report.charts) != 3 or len(scorecard.charts) != 1:
        print("screenshots: refusing pages the browser test would fail: " + "; ".join(bad or ["charts missing"]), file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    shots = {"report-charts.png": report.sections["charts"], "report-reconciliation.png": mismatch.sections["reconciliation"],
             "scorecard.png": scorecard.sections["scorecard"]}
    for name, png in shots.items():
        (OUT / name).write_bytes(png)
    print(f"wrote {', '.join(shots)} to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
