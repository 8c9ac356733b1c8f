"""Generate the curated sample outputs in docs/samples/ from a real run of tc (`make samples`).

Usage: python scripts/gen_samples.py [--check]

The samples come from the same flow every time, under a fixed SOURCE_DATE_EPOCH, in a temporary
artifacts root: the paper demo blocked once by the kill switch, then run and reconciled (real
NautilusTrader), a second run whose reconciliation finds a quantity off, every drill, and one
scrape of the exporter. --check regenerates them and fails
when docs/samples/ differs, so the samples cannot drift from what tc writes (`make check` runs it).

The samples are those of the newest engine profile (the default image's; scripts/default-engine --newest):
another engine writes other trade ids and versions, so there --check says so and passes, and generating
refuses.

Facts of the machine, not of tc, are normalised so the check passes on any machine: this
checkout's path and the temporary root become `$REPO` and `$ARTIFACTS`, the Python patch
version becomes `x` (`3.13.x`), the user@host of a kill switch event becomes `<user>@<host>`, samples of a
metric family are sorted (directory order differs between filesystems), and the value of the
measured tc_exporter_scrape_duration_seconds is left out.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "docs" / "samples"
EPOCH = "1700000000"
PAPER_SPEC = REPO / "fixtures" / "specs" / "paper-demo.yaml"
RUN = "paper-demo"
MISMATCH_SPEC = REPO / "fixtures" / "specs" / "reconcile.yaml"
MISMATCH_OBSERVED = REPO / "fixtures" / "reconciliation" / "observed_quantity_off.json"
MISMATCH_RUN = "reconcile-fixtures"
MEASURED = ("tc_exporter_scrape_duration_seconds",)


def tc(root: Path, *args: str, expect: tuple[int, ...] = (0,)) -> str:
    """Run `python -m opslab ARGS` against ROOT with the fixed clock; stdout, or exit with its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TC_")}
    env.update({"TC_ARTIFACTS_DIR": str(root), "SOURCE_DATE_EPOCH": EPOCH, "PYTHONPATH": str(REPO)})
    proc = subprocess.run([sys.executable, "-m", "opslab", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode not in expect:
        raise SystemExit(f"gen_samples: tc {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def build_root(root: Path) -> Path:
    """The sample flow into ROOT (the browser test and `make screenshots` use it too); ROOT returned."""
    spec = str(PAPER_SPEC)
    tc(root, "data", "prepare", "--spec", spec)
    tc(root, "killswitch", "engage", "--reason", "sample: show the paper gate")
    tc(root, "run", "paper", "--spec", spec, expect=(3,))
    tc(root, "killswitch", "release", "--reason", "sample: gate shown, releasing")
    tc(root, "run", "paper", "--spec", spec)
    tc(root, "reconcile", "--spec", spec)
    # A second run whose reconciliation does not match (a quantity off): the page highlights the diff.
    tc(root, "run", "init", "--spec", str(MISMATCH_SPEC))
    tc(root, "reconcile", "--spec", str(MISMATCH_SPEC), "--observed", str(MISMATCH_OBSERVED), expect=(4,))
    tc(root, "drill", "run", "--all")
    tc(root, "artifacts", "verify", "--all")
    return root


def _normalise(text: str, root: Path) -> str:
    from opslab.escaping import html, md

    for path, name in ((root, "ARTIFACTS"), (REPO, "REPO")):  # before the repo: the root may lie inside it
        for form in {str(path), md(str(path)), html(str(path))}:
            text = text.replace(form, f"${name}")
    minor = ".".join(platform.python_version_tuple()[:2]) + ".x"
    text = text.replace(f"python {platform.python_version()}", f"python {minor}")
    text = text.replace(f'python="{platform.python_version()}"', f'python="{minor}"')  # tc_build_info
    return re.sub(r"\bby [^\s:@]+@[^\s:]+", "by <user>@<host>", text)


def _scrape(root: Path) -> str:
    """One exporter scrape: families in the exporter's order, samples sorted, measured values left out."""
    head = ("# A sample scrape of `tc metrics serve` after the flow in scripts/gen_samples.py.\n"
            f"# Samples sorted within each family; the measured value of {', '.join(MEASURED)} is left out.\n")
    blocks: list[tuple[list[str], list[str]]] = []  # (HELP/TYPE lines, sample lines) per family
    for line in tc(root, "metrics", "dump").splitlines():
        if line.startswith("# HELP"):
            blocks.append(([line], []))
        elif line.startswith("#"):
            blocks[-1][0].append(line)
        elif not line.startswith(MEASURED):
            blocks[-1][1].append(line)
    return head + "".join("\n".join(comments + sorted(samples)) + "\n" for comments, samples in blocks)


def render(root: Path) -> dict[str, str]:
    """File name in docs/samples/ -> text, from a root built by build_root."""
    run = root / "runs" / RUN
    files = {
        "report.md": (run / "report.md").read_text(encoding="utf-8"),
        "report-mismatch.md": (root / "runs" / MISMATCH_RUN / "report.md").read_text(encoding="utf-8"),
        "report.html": (run / "report.html").read_text(encoding="utf-8"),
        "scorecard.json": (root / "drills" / "scorecard.json").read_text(encoding="utf-8"),
        "scorecard.html": (root / "drills" / "scorecard.html").read_text(encoding="utf-8"),
        "metrics.txt": _scrape(root),
    }
    return {name: _normalise(text, root) for name, text in files.items()}


def main() -> int:
    check = "--check" in sys.argv
    from importlib import metadata

    newest = subprocess.run([str(REPO / "scripts" / "default-engine"), "--newest"], capture_output=True, text=True, timeout=60).stdout.strip()
    running = metadata.version("nautilus_trader")
    if running != newest:
        if check:
            print(f" skipped  docs/samples/ come from nautilus_trader {newest} (the newest engine profile); this environment has "
                  f"{running}: `make check` in the default image or `make check ENGINE={newest}` checks them")
            return 0
        print(f"gen_samples: docs/samples/ come from nautilus_trader {newest}, this environment has {running}: "
              f"run `make samples ENGINE={newest}`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tc-samples-") as tmp:
        root = build_root(Path(tmp) / "artifacts")
        samples = render(root)
    if check:
        stale = [name for name, text in samples.items() if not (OUT / name).is_file() or (OUT / name).read_text(encoding="utf-8") != text]
        extra = sorted(p.name for p in OUT.glob("*") if p.name not in samples and p.name != "README.md") if OUT.is_dir() else []
        if stale or extra:
            print(f"{OUT}: out of date ({', '.join(stale + extra)}): run make samples", file=sys.stderr)
            return 1
        print(f"      ok  docs/samples/ matches what tc writes ({len(samples)} files)")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in samples.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(samples)} samples to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
