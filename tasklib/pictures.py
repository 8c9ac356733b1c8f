"""Pictures and samples in docs/: screenshots by the browser test's recipe, samples with --check."""

from __future__ import annotations

import sys

from invoke import Context, task

from tasklib.common import REPO

PY = sys.executable


@task(help={"check": "regenerate in a temporary root and fail when docs/samples/ differs (writes nothing)"})
def samples(c: Context, check: bool = False) -> None:
    """Regenerate docs/samples/ (a report, a scorecard, a scrape) from a real run of tc."""
    c.run(f"{PY} {REPO / 'scripts' / 'gen_samples.py'}{' --check' if check else ''}")


@task
def screenshots(c: Context) -> None:
    """Take docs/images/*.png in headless Chromium, the browser test's recipe (needs chromium)."""
    c.run(f"{PY} {REPO / 'scripts' / 'screenshots.py'}")


TASKS = [samples, screenshots]
