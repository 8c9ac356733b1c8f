"""`tc artifacts collect`: the verified fan-in of a run set (an Indexed Job's runs, docs/kubernetes.md).

Every pod of an Indexed Job writes its run into one shared artifacts root, so the members of set NAME with
COUNT indices are runs/<NAME>-0 .. runs/<NAME>-(COUNT-1). Each must be there, finished, and verify exactly as
`tc artifacts verify RUN_ID` verifies it (verify.verify_run: every file against the manifest, schemas, chains,
the HMAC seal with TC_MANIFEST_KEY). Then collections/<NAME>.json records each member's manifest digest and
one digest over them all. A missing, unfinished or tampered index refuses the whole collection: exit 4, one
line per index, nothing written. Convergent: the same members a second time say `ok` and write nothing.
"""

from __future__ import annotations

from typing import Any

from opslab import clock, contracts, digests, fs, k8s, runs, verify
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result

FINISHED = ("completed", "stopped")  # a backtest completes; a paper or node run stops
UNFINISHED = ("initialized", "running")  # its pod may still be at work: collect again later


def check_count(count: Any) -> int:
    """COUNT as the number of completion indices of a set, or InputError."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= k8s.MAX_SPECS:
        raise InputError(f"--count: {count!r}: expected an integer from 1 to {k8s.MAX_SPECS} (the Job's completions)")
    return count


def _member(name: str, index: int, kinds: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """(the member's entry, None) when index INDEX is there, finished and verifies; else (None, why not)."""
    run_id = f"{name}-{index}"
    label = f"index {index} (run {run_id})"
    kind = kinds.get(run_id)
    if kind is None:
        return None, f"{label}: missing (no runs/{run_id}/)"
    if kind != "dir":
        what = "a symlink (tc never follows links)" if kind == "link" else "not a folder"
        return None, f"{label}: tampered: runs/{run_id} is {what}"
    folder = runs.run_dir(run_id)
    try:
        meta = runs.read_artifact(folder, "metadata")
    except InputError as exc:
        return None, f"{label}: tampered: {exc}"
    status = meta.get("status") if isinstance(meta, dict) else None
    if meta is None:
        return None, f"{label}: not finished (no metadata.json yet)"
    if status in UNFINISHED:
        return None, f"{label}: not finished (status {status}); collect again when its pod has finished"
    problems = verify.verify_run(folder)
    if problems:
        more = f" (and {len(problems) - 1} more: tc artifacts verify {run_id})" if len(problems) > 1 else ""
        return None, f"{label}: tampered: {problems[0]}{more}"
    if status not in FINISHED:
        return None, f"{label}: did not complete (status {status}): see `tc run show {run_id}`"
    manifest = runs.path_of(folder, "manifest")
    owner = fs.read_json(manifest).get("run_id")
    if owner != run_id or meta.get("run_id") != run_id:
        return None, f"{label}: tampered: its manifest.json and metadata.json name run {owner!r}, {meta.get('run_id')!r} (copied or renamed?)"
    return {"index": index, "run_id": run_id, "manifest_sha256": "sha256:" + fs.sha256_file(manifest)}, None


def _current(path: Any, doc: dict[str, Any]) -> dict[str, Any] | None:
    """The collection already at PATH when it records the same members (its seal intact), else None."""
    if not fs.exists(path):
        return None
    try:
        found = fs.read_json(path)
    except fs.LinkRefused:
        raise
    except (OSError, InputError):
        return None  # unreadable: written again
    if contracts.errors_for("collection_manifest", found, str(path)) or digests.stamp_problems(found, str(path)):
        return None
    same = all(found.get(k) == doc[k] for k in ("schema_version", "name", "count", "members", "digest"))
    return found if same else None


def collect(name: str, count: int, check: bool = False) -> Result:
    """Verify runs NAME-0 .. NAME-(COUNT-1) and write collections/NAME.json; exit 4 names each missing, unfinished or
    tampered index (nothing written); `ok` when the collection is already current; CHECK only plans."""
    k8s.check_name(name, "NAME")
    check_count(count)
    base = fs.root_for_read()
    kinds = dict(fs.entries(runs.runs_dir()))
    members, problems = [], []
    for index in range(count):
        entry, problem = _member(name, index, kinds)
        if entry:
            members.append(entry)
        else:
            problems.append(problem or "")
    path = contracts.artifact("collection").at(base, name)
    rel = fs.rel(path, base)
    data: dict[str, Any] = {"name": name, "count": count, "collection": rel, "members": members, "problems": problems}
    if problems:
        return Result("failed", f"collection {name}: {len(problems)} of {count} index(es) missing, unfinished or tampered; "
                      f"nothing written", data=data, exit_code=EXIT_CODES["check"], details=problems)
    digest = digests.collection_digest([(m["run_id"], m["manifest_sha256"]) for m in members])
    doc = {"schema_version": contracts.SCHEMA_VERSION, "name": name, "count": count, "members": members, "digest": digest}
    data["digest"] = digest
    verified = f"collection {name}: {count} run(s) verified, digest {digest}"
    if _current(path, doc) is not None:
        return Result("ok", f"{verified}; {rel} is current", [str(path)], data)
    doc = digests.stamp({**doc, "created_at": clock.now_iso()})
    contracts.ensure_valid("collection_manifest", doc, rel)
    if check:
        return Result("changed", f"{verified}; would write {rel}", [str(path)], data)
    fs.write_json(path, doc)
    return Result("changed", f"{verified}; wrote {rel}", [str(path)], data)
