"""`tc artifacts verify`: every JSON artifact against its schema, manifest digests, journal chains."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from opslab import artifacts, journal
from opslab.contracts import RUN_ARTIFACTS, ROOT_ARTIFACTS, errors_for
from opslab.errors import CheckFailed
from opslab.result import Result


def _check_json(path: Path, schema: str, label: str) -> list[str]:
    try:
        obj = artifacts.read_json(path)
    except (OSError, ValueError) as exc:
        return [f"{label}: not readable JSON ({exc})"]
    return errors_for(schema, obj, label)


def verify_run(folder: Path) -> list[str]:
    """Problems of one run folder (empty when it verifies)."""
    label = f"runs/{folder.name}"
    problems: list[str] = []
    manifest_path = folder / artifacts.MANIFEST
    if not manifest_path.exists():
        return [f"{label}/manifest.json: missing (run did not finish initializing; re-run `tc run init`)"]
    problems += _check_json(manifest_path, "manifest", f"{label}/manifest.json")
    try:
        listed = artifacts.read_json(manifest_path).get("files", {})
    except (OSError, ValueError, AttributeError):
        listed = {}
    present = artifacts.run_files(folder)
    for rel in present:
        if rel not in listed:
            problems.append(f"{label}/{rel}: not in manifest.json (added after the run wrote it)")
    for rel, digest in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{label}/{rel}: listed in manifest.json but missing")
            continue
        if "sha256:" + artifacts.sha256_file(path) != digest:
            problems.append(f"{label}/{rel}: digest does not match manifest.json (modified)")
    for rel in present:
        schema = RUN_ARTIFACTS.get(rel)
        if schema is None:
            continue
        if rel.endswith(".jsonl"):
            problems += [f"{label}/{p}" for p in journal.verify(folder / rel, schema)]
        else:
            problems += _check_json(folder / rel, schema, f"{label}/{rel}")
    return problems


def verify_root_artifacts(base: Path) -> list[str]:
    """Problems of artifacts outside run folders (datasets, state, drills)."""
    problems: list[str] = []
    for path in sorted(base.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(base).as_posix()
        for pattern, schema in ROOT_ARTIFACTS.items():
            if fnmatch.fnmatch(rel, pattern) and rel.count("/") == pattern.count("/"):
                if rel.endswith(".jsonl"):
                    problems += [f"{rel.rsplit('/', 1)[0]}/{p}" for p in journal.verify(path, schema)]
                else:
                    problems += _check_json(path, schema, rel)
    return problems


def verify(run_id: str | None = None, all_runs: bool = False) -> Result:
    """Verify one run, or every run and root artifact; CheckFailed (exit 4) lists the problems."""
    from opslab import runs

    base = artifacts.root()
    if run_id:
        runs.load_metadata(run_id)  # InputError for an unknown run
        checked = [run_id]
        problems = verify_run(artifacts.run_dir(run_id))
    else:
        checked = runs.run_ids()
        problems = []
        for rid in checked:
            problems += verify_run(artifacts.run_dir(rid))
        problems += verify_root_artifacts(base) if base.is_dir() else []
    data = {"runs_checked": checked, "problems": problems}
    if problems:
        return Result("failed", f"{len(problems)} problem(s) under {base}", data=data, exit_code=CheckFailed.exit_code, details=problems)
    return Result("ok", f"verified {len(checked)} run(s) under {base}: all artifacts match their schemas, digests and chains", data=data)
