"""Manifests: the sha256 of every file a folder holds, optionally keyed (HMAC-SHA256).

Without a key a manifest detects changes made by anything that does not also rewrite the manifest.
With TC_MANIFEST_KEY set, every manifest tc writes carries `hmac`, an HMAC-SHA256 over its canonical
JSON without that field, so rewriting a file AND its manifest is detected by anyone holding the key
(docs/security.md states the threat model).
"""

from __future__ import annotations

import hashlib
import hmac as hmac_lib
import os
from pathlib import Path
from typing import Any

from opslab import fs
from opslab.contracts import SCHEMA_VERSION

KEY_ENV = "TC_MANIFEST_KEY"


def key() -> bytes | None:
    """The manifest key from the environment, or None (unkeyed digests)."""
    text = os.environ.get(KEY_ENV)
    return text.encode("utf-8") if text else None


def seal(doc: dict[str, Any]) -> dict[str, Any]:
    """DOC with its `hmac` field set when a key is configured (and without one otherwise)."""
    body = {k: v for k, v in doc.items() if k != "hmac"}
    secret = key()
    if secret is None:
        return body
    return {**body, "hmac": "hmac-sha256:" + hmac_lib.new(secret, fs.canonical_json(body), hashlib.sha256).hexdigest()}


def seal_problems(doc: dict[str, Any], label: str) -> list[str]:
    """What is wrong with DOC's seal under the configured key (nothing to check without a key)."""
    secret = key()
    if secret is None:
        return []
    if "hmac" not in doc:
        return [f"{label}: no hmac, but {KEY_ENV} is set (written without the key, or the seal was removed)"]
    expected = seal(doc)["hmac"]
    if not hmac_lib.compare_digest(str(doc["hmac"]), expected):
        return [f"{label}: hmac does not match (the manifest or a file it lists was rewritten without the key)"]
    return []


def write_manifest(path: Path, owner: str, folder: Path, files: list[str]) -> bool:
    """Write the manifest of FOLDER listing FILES (relative paths); False when unchanged."""
    listed = {rel: "sha256:" + fs.sha256_file(folder / rel) for rel in files}
    return fs.write_json(path, seal({"schema_version": SCHEMA_VERSION, "run_id": owner, "files": listed}))


def check_manifest(path: Path, folder: Path, present: list[str], label: str) -> list[str]:
    """Problems of a folder against its manifest: unlisted, missing and modified files, the seal."""
    from opslab.contracts import errors_for
    from opslab.errors import InputError

    try:
        doc = fs.read_json(path)
    except FileNotFoundError:
        return [f"{label}/{path.name}: missing"]
    except (OSError, InputError) as exc:
        return [f"{label}/{path.name}: unreadable ({exc})"]
    problems = errors_for("manifest", doc, f"{label}/{path.name}")
    if problems:
        return problems
    problems += seal_problems(doc, f"{label}/{path.name}")
    listed = doc["files"]
    for rel in present:
        if rel not in listed:
            problems.append(f"{label}/{rel}: not in {path.name} (added after tc wrote it)")
    for rel, digest in sorted(listed.items()):
        if rel not in present:
            problems.append(f"{label}/{rel}: listed in {path.name} but missing")
        elif "sha256:" + fs.sha256_file(folder / rel) != digest:
            problems.append(f"{label}/{rel}: digest does not match {label}/{path.name} (that file or the manifest was modified)")
    return problems


def collection_digest(members: list[tuple[str, str]]) -> str:
    """The digest over a collection's members, (run_id, "sha256:<hex>" of its manifest.json) in index order: sha256 of
    one line `<hex>  runs/<run_id>/manifest.json` per member, which is what `sha256sum` prints in the artifacts root."""
    text = "".join(f"{sha.removeprefix('sha256:')}  runs/{run_id}/manifest.json\n" for run_id, sha in members)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- seals inside a document (artifacts rewritten in place: quality.json, the venue's state and stats) -----------

SEAL_FIELD = "seal"


def stamp(doc: dict[str, Any]) -> dict[str, Any]:
    """DOC with `seal` over its canonical JSON without that field: "hmac-sha256:..." with TC_MANIFEST_KEY set,
    "sha256:..." without (which finds an edit by anything that does not recompute it)."""
    body = {k: v for k, v in doc.items() if k != SEAL_FIELD}
    secret = key()
    if secret is None:
        return {**body, SEAL_FIELD: "sha256:" + hashlib.sha256(fs.canonical_json(body)).hexdigest()}
    return {**body, SEAL_FIELD: "hmac-sha256:" + hmac_lib.new(secret, fs.canonical_json(body), hashlib.sha256).hexdigest()}


def stamp_problems(doc: Any, label: str) -> list[str]:
    """What is wrong with DOC's `seal` (a keyed seal is only checked when TC_MANIFEST_KEY is set, like a manifest's hmac)."""
    if not isinstance(doc, dict) or not isinstance(doc.get(SEAL_FIELD), str):
        return [f"{label}: /{SEAL_FIELD}: missing (written by an older tc, or the seal was removed)"]
    found = doc[SEAL_FIELD]
    secret = key()
    if secret is not None and not found.startswith("hmac-sha256:"):
        return [f"{label}: /{SEAL_FIELD}: not keyed, but {KEY_ENV} is set (written without the key, or rewritten)"]
    if secret is None and found.startswith("hmac-sha256:"):
        return []  # sealed with a key this process does not hold: nothing to check against
    if not hmac_lib.compare_digest(found, stamp(doc)[SEAL_FIELD]):
        return [f"{label}: /{SEAL_FIELD}: does not match the content (edited after tc wrote it)"]
    return []
