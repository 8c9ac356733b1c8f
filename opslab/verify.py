"""`tc artifacts verify`: every file under the root against the artifact registry.

Runs: schemas, manifest digests (and seal), journal chains, observation histories, unknown files.
Datasets: manifest schema and seal, bars bytes/rows/fingerprint against the manifest, the id against
its parameters, quality.json's own seal. Venue: state.json and stats.json against their seals. State: the
kill switch state against its history. Drills: schemas and the drills manifest. Alerts: the history's
chain and its anchor. Anywhere: links (tampering: tc never follows them), leftover temp files, unknown
files. COVER says which of these covers each artifact kind.
"""

from __future__ import annotations

import os

from pathlib import Path
from typing import Callable

from opslab import contracts, digests, fs, journal, runs, safety
from opslab.datasets import resolve, store
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result

# How verify finds a change to each artifact kind of the registry (tests/unit/test_verify.py walks the registry:
# a kind without a row here fails it). With TC_MANIFEST_KEY set every manifest, seal and anchor is keyed.
RUN_MANIFEST = "the run's manifest.json (sha256 per file, hmac with the key)"
DATASET_MANIFEST = "the dataset's manifest.json (bars fingerprint, instrument and catalog digests; hmac with the key)"
SEAL = "its own seal field (sha256, hmac-sha256 with the key)"
CHAIN = "its hash chain, checked against the state derived from it"
ANCHORED = "its hash chain and its sealed anchor (line count and last hash)"
DRILLS_MANIFEST = "drills/manifest.json (sha256 per file, hmac with the key)"
LIVE = ("not sealed: a running node's registration and wake socket (opslab/nodes.py), checked live by each engage (schema, owner, "
        "pid, socket answer) and removed on a clean stop; a record of nothing that happened")
COLLECTION = ("its own seal (sha256, hmac-sha256 with the key), its digest over the members, and each member's manifest digest against "
              "runs/<run_id>/manifest.json as it is now; derived: nothing records that one was written, so a deleted collection is "
              "written again by `tc artifacts collect`")
CHANGE_FEED = "not covered: a hint for readers' caches (the exporter), which re-read what it names; nothing trusts it"
COVER: dict[str, str] = {
    **{name: RUN_MANIFEST for name, a in contracts.ARTIFACTS.items() if a.scope == "run"},
    "dataset_manifest": DATASET_MANIFEST, "dataset_bars": DATASET_MANIFEST, "dataset_instrument": DATASET_MANIFEST,
    "dataset_catalog": DATASET_MANIFEST, "dataset_quality": SEAL,
    "venue_state": SEAL, "venue_stats": SEAL,
    "kill_switch": CHAIN, "kill_switch_events": CHAIN,
    "drill_result": DRILLS_MANIFEST, "drill_scorecard": DRILLS_MANIFEST, "drill_scorecard_html": DRILLS_MANIFEST,
    "drill_matrix": DRILLS_MANIFEST, "drill_matrix_html": DRILLS_MANIFEST,
    "drills_manifest": DRILLS_MANIFEST,
    "alert_notifications": ANCHORED, "alert_notifications_anchor": ANCHORED,
    "node_registration": LIVE, "node_wake_socket": LIVE,
    "generation": CHANGE_FEED,
    "collection": COLLECTION,
}


def _check_json(path: Path, schema: str, label: str, sealed: bool = False) -> list[str]:
    try:
        obj = fs.read_json(path)
    except (OSError, InputError) as exc:
        return [f"{label}: not readable JSON ({getattr(exc, 'strerror', None) or exc})"]
    problems = contracts.errors_for(schema, obj, label)
    return problems or (digests.stamp_problems(obj, label) if sealed else [])


def _check_history(path: Path, schema: str, label: str) -> list[str]:
    try:
        raw = fs.read_bytes(path)
    except (OSError, InputError) as exc:
        return [f"{label}: cannot read ({getattr(exc, 'strerror', None) or exc})"]
    problems = []
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            doc = fs.parse_json(line, f"{label}:{number}")
        except InputError as exc:
            return problems + [str(exc)]
        problems += contracts.errors_for(schema, doc, f"{label}:{number}")
    return problems


def _check_file(folder: Path, rel: str, scope: str, label: str) -> list[str]:
    """Schema (or chain) problems of one file, or `unknown file` when the registry does not know it."""
    found = contracts.classify(rel, scope)
    if found is None:
        return [f"{label}/{rel}: unknown file (not an artifact tc writes)"]
    art, is_history = found
    if art.schema is None:
        return []
    path = folder / rel
    if is_history:
        return _check_history(path, art.schema, f"{label}/{rel}")
    if art.jsonl:
        return journal.verify(path, art.schema, f"{label}/{rel}")
    return _check_json(path, art.schema, f"{label}/{rel}", sealed=COVER.get(art.name) in (SEAL, COLLECTION))


def _odd_entries(folder: Path, label: str, prune: Callable[[str], bool] | None = None) -> tuple[list[str], list[str]]:
    """(regular files as relative paths, problems: links, devices, leftover temp files) beneath FOLDER."""
    files, problems = [], []

    def skip(rel: str) -> bool:  # a staging folder (fs.install_dir) is a temp file's kind: never descended into
        return bool(prune and prune(rel)) or fs.is_temp_name(rel.rsplit("/", 1)[-1])

    for rel, kind in fs.walk(folder, skip):
        name = rel.rsplit("/", 1)[-1]
        if kind == "link":
            problems.append(f"{label}/{rel}: is a symlink (tampering: tc never writes or follows links)")
        elif kind == "socket" and label == "." and contracts.artifact("node_wake_socket").matches(rel):
            continue  # a running node's wake socket (opslab/nodes.py)
        elif kind in ("other", "socket"):
            problems.append(f"{label}/{rel}: is not a regular file or folder")
        elif kind in ("file", "dir") and fs.is_leftover_temp(name):
            problems.append(f"{label}/{rel}: leftover temp file of a crashed writer (the next write there removes it)")
        elif kind == "file":
            files.append(rel)
    return files, problems


def verify_run(folder: Path) -> list[str]:
    """Problems of one run folder (empty when it verifies)."""
    label = f"runs/{folder.name}"
    manifest = runs.path_of(folder, "manifest")
    if not fs.exists(manifest):
        return [f"{label}/manifest.json: missing (the run did not finish initializing; re-run `tc run init`)"]
    files, problems = _odd_entries(folder, label)
    listed = [rel for rel in files if rel != contracts.artifact("manifest").path]
    problems += digests.check_manifest(manifest, folder, listed, label)
    for rel in files:
        problems += _check_file(folder, rel, "run", label)
    return problems


def quick_run_problems(folder: Path, running: bool = False) -> list[str]:
    """What can be found in a run folder without reading its files' contents: links, temp and
    unknown files, files missing from or added to the manifest, and files changed after tc wrote
    the manifest (tc writes it last, so nothing may be newer). The exporter checks this on every
    change: hashing every file of every run at start-up would cost more than everything else it
    reads. `tc artifacts verify` rechecks digests, seals and schemas.

    RUNNING: the run says it is running (a live node writes heartbeats for hours), so files newer
    than, added to or missing from its manifest are its work in progress, not problems; links, temp
    and unknown files still are."""
    label = f"runs/{folder.name}"
    manifest = runs.path_of(folder, "manifest")
    written = fs.mtime_ns(manifest)
    files, problems = _odd_entries(folder, label)
    if running:
        return problems + [f"{label}/{rel}: unknown file (not an artifact tc writes)" for rel in sorted(files)
                           if rel != contracts.artifact("manifest").path and contracts.classify(rel, "run") is None]
    if written is None:
        return problems + [f"{label}/manifest.json: missing"]
    try:
        listed = set(fs.parse_json(fs.read_bytes(manifest), str(manifest))["files"])
    except (OSError, InputError, KeyError, TypeError) as exc:
        return problems + [f"{label}/manifest.json: unreadable ({exc})"]
    present = {rel for rel in files if rel != contracts.artifact("manifest").path}
    problems += [f"{label}/{rel}: not in manifest.json" for rel in sorted(present - listed)]
    problems += [f"{label}/{rel}: listed in manifest.json but missing" for rel in sorted(listed - present)]
    where = os.fspath(folder)  # one text for every file's stat: Path joins cost more than the stat on Python 3.13
    for rel in sorted(present & listed):
        changed = fs.mtime_ns(f"{where}/{rel}")
        if changed is not None and changed > written:
            problems.append(f"{label}/{rel}: changed after manifest.json was written")
        if contracts.classify(rel, "run") is None:
            problems.append(f"{label}/{rel}: unknown file (not an artifact tc writes)")
    return problems


def _verify_dataset(base: Path, dataset_id: str) -> list[str]:
    folder = store.dataset_dir(dataset_id)
    label = f"datasets/{dataset_id}"
    try:
        manifest = store.check_intact(folder)
    except InputError as exc:
        return [f"{label}: {exc}"]
    problems = []
    derived = store.DatasetParams.from_manifest(manifest).dataset_id if manifest["kind"] == "synthetic" else dataset_id
    if derived != dataset_id or manifest["dataset_id"] != dataset_id:
        problems.append(f"{label}/manifest.json: dataset_id does not match its parameters (edited?)")
    quality = contracts.artifact("dataset_quality").in_folder(folder)
    if not fs.exists(quality):  # present: checked with the root's files (schema and seal)
        problems += resolve.quality_problems(folder, manifest, f"{label}/{quality.name}")
    size, rows = store.measure(folder)
    if size != manifest["bytes"] or rows != manifest["rows"]:
        problems.append(f"{label}/bars.csv: {size} bytes and {rows} rows, the manifest says {manifest['bytes']} and {manifest['rows']} "
                        f"({label}/manifest.json or bars.csv edited)")
    return problems


def _venue_pairs(base: Path) -> list[str]:
    """A venue started with a spec writes state.json and stats.json together: one without the other was deleted."""
    pair = [contracts.artifact(name) for name in ("venue_state", "venue_stats")]
    problems = []
    for name, kind in fs.entries(base / pair[0].path.split("/", 1)[0]):
        if kind != "dir":
            continue
        there = [fs.exists(a.at(base, name)) for a in pair]
        if any(there) and not all(there):
            lost, kept = (pair[0], pair[1]) if there[1] else (pair[1], pair[0])
            problems.append(f"{lost.at(Path(), name).as_posix()}: missing, but {kept.at(Path(), name).name} is there "
                            "(the venue writes both: deleted?)")
    return problems


def collection_problems(base: Path, rel: str) -> list[str]:
    """A collection (collections/<name>.json) against the runs it names: its digest over the members, and each member's
    manifest.json as it is now (schema and seal are checked with every root file)."""
    try:
        doc = fs.read_json(base / rel)
    except (OSError, InputError):
        return []  # reported by the schema check
    if contracts.errors_for("collection_manifest", doc, rel):
        return []
    members = doc["members"]
    problems = []
    if [m["index"] for m in members] != list(range(doc["count"])) or any(m["run_id"] != f"{doc['name']}-{m['index']}" for m in members):
        problems.append(f"{rel}: members are not {doc['name']}-0 .. {doc['name']}-{doc['count'] - 1} in index order (edited?)")
    if digests.collection_digest([(m["run_id"], m["manifest_sha256"]) for m in members]) != doc["digest"]:
        problems.append(f"{rel}: digest does not match its members (edited?)")
    for m in members:
        manifest = runs.path_of(base / "runs" / m["run_id"], "manifest")
        try:
            found = "sha256:" + fs.sha256_file(manifest)
        except FileNotFoundError:
            problems.append(f"{rel}: member {m['run_id']}: runs/{m['run_id']}/manifest.json is missing (the run was removed after it was collected)")
            continue
        except (OSError, InputError) as exc:
            problems.append(f"{rel}: member {m['run_id']}: {exc}")
            continue
        if found != m["manifest_sha256"]:
            problems.append(f"{rel}: member {m['run_id']}: runs/{m['run_id']}/manifest.json changed after it was collected "
                            f"(collect again: `tc artifacts collect {doc['name']} --count {doc['count']}`)")
    return problems


def verify_root(base: Path) -> list[str]:
    """Problems of everything under the root except run folders' contents (checked by verify_run)."""
    files, problems = _odd_entries(base, ".", prune=lambda rel: rel.startswith("runs/"))
    problems = [p.replace("./", "", 1) for p in problems]
    checked_datasets: set[str] = set()
    drills = []
    for rel in files:
        top = rel.split("/", 1)[0]
        if top == "runs":
            if rel.count("/") == 1:
                problems.append(f"{rel}: unknown file (runs/ holds run folders only)")
            continue
        problems += [p.replace("./", "", 1) for p in _check_file(base, rel, "root", ".")]
        if top == "datasets" and rel.count("/") == 2 and rel.split("/")[1] not in checked_datasets:
            checked_datasets.add(rel.split("/")[1])
            problems += _verify_dataset(base, rel.split("/")[1])
        if contracts.artifact("collection").matches(rel):
            problems += collection_problems(base, rel)
        if top == "drills" and rel != contracts.artifact("drills_manifest").path:
            drills.append(rel[len("drills/"):])
    if drills:
        problems += digests.check_manifest(base / contracts.artifact("drills_manifest").path, base / "drills", drills, "drills")
    for name, kind in fs.entries(base / "runs"):
        if kind == "dir" and not contracts.RUN_ID_RE.fullmatch(name):
            problems.append(f"runs/{name}: not a valid run id")
    problems += _venue_pairs(base)
    log, anchor = (contracts.artifact(name).path for name in ("alert_notifications", "alert_notifications_anchor"))
    problems += journal.anchor_problems(base / log, base / anchor, log, anchor)
    snap = safety.snapshot(base)
    if snap["state"] == "corrupt":
        problems.append(f"state: {snap['warning']}")
    return problems


def verify(run_id: str | None = None, all_runs: bool = False) -> Result:
    """Verify one run, or every run and root artifact; exit 4 lists the problems."""
    base = fs.root_for_read()
    if run_id:
        runs.load_metadata(run_id)  # InputError for an unknown run
        checked = [run_id]
        problems = verify_run(runs.run_dir(run_id))
    else:
        checked = runs.run_ids()
        problems = verify_root(base)
        for rid in checked:
            problems += verify_run(runs.run_dir(rid))
    found = {"runs_checked": checked, "problems": problems}
    if problems:
        return Result("failed", f"{len(problems)} problem(s) under {base}", data=found, exit_code=EXIT_CODES["check"], details=problems)
    return Result("ok", f"verified {len(checked)} run(s) and every root artifact under {base}: schemas, digests, chains, "
                  "datasets and the kill switch agree", data=found)
