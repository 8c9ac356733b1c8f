"""The artifacts root and run layout, atomic writes, locks, the run manifest and its digests."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from opslab.contracts import SCHEMA_VERSION
from opslab.errors import InputError, LockedError

GENERATION = ".generation"  # one line per write under the root (the path written): the exporter's change feed
GENERATION_MAX_BYTES = 1 << 20  # then the feed starts over in a new file
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MANIFEST = "manifest.json"
CHUNK = 1 << 16  # 64 KiB stays in L2 cache: measurably faster than 1 MiB with OpenSSL sha256


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace (what hashes are computed over)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def pretty_json(obj: Any) -> bytes:
    """The on-disk form of JSON artifacts: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def sha256_file(path: Path) -> str:
    """Streamed sha256 of a file, as hex (64 KiB at a time)."""
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as fh:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            digest.update(view[:n])
    return digest.hexdigest()


def root() -> Path:
    """The artifacts root: $TC_ARTIFACTS_DIR, default ./artifacts."""
    return Path(os.environ.get("TC_ARTIFACTS_DIR") or "artifacts")


def ensure_writable_root() -> Path:
    """The artifacts root, created if missing; InputError if it cannot be written."""
    base = root()
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"artifacts root {base}: cannot create it ({exc.strerror}); set TC_ARTIFACTS_DIR") from None
    if not base.is_dir():
        raise InputError(f"artifacts root {base}: is not a directory; set TC_ARTIFACTS_DIR")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"artifacts root {base}: is not writable; set TC_ARTIFACTS_DIR to a writable folder")
    return base


def check_run_id(run_id: str) -> str:
    """Return RUN_ID if it matches the strict pattern, else InputError (it can never leave the root)."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise InputError(
            f"run_id {run_id!r}: expected letters, digits, '_' or '-', starting with a letter or digit, at most 64 characters"
        )
    return run_id


def runs_dir() -> Path:
    """artifacts/runs."""
    return root() / "runs"


def run_dir(run_id: str) -> Path:
    """The folder of one run (the id is validated first)."""
    return runs_dir() / check_run_id(run_id)


def write_bytes_atomic(path: Path, data: bytes) -> bool:
    """Write DATA to PATH atomically (temp file in the same folder, fsync, rename).

    Returns False and leaves the file alone when it already holds exactly DATA.
    """
    path = Path(path)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    bump_generation(path)
    return True


def bump_generation(path: Path) -> None:
    """Tell readers of the artifacts root (the metrics exporter) that PATH changed: one line with
    its path relative to the root, appended to <root>/.generation. Past GENERATION_MAX_BYTES the
    feed starts over in a new file; readers notice and re-read everything once."""
    base = root()
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(base)).as_posix()
    except ValueError:
        return  # outside this root (a drill's sandbox): no reader of this root cares
    feed = base / GENERATION
    with contextlib.suppress(OSError):
        if feed.stat().st_size > GENERATION_MAX_BYTES:
            fd, tmp = tempfile.mkstemp(prefix=f"{GENERATION}.", dir=base)
            os.fchmod(fd, 0o644)  # as readable as the feed it replaces (the exporter may run as another user)
            os.close(fd)
            os.replace(tmp, feed)
    with contextlib.suppress(OSError):
        fd = os.open(feed, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, rel.encode("utf-8", "surrogateescape") + b"\n")  # one write: appends do not interleave
        finally:
            os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> bool:
    """Atomic write of a JSON artifact in its on-disk form; False when unchanged."""
    return write_bytes_atomic(path, pretty_json(obj))


def read_json(path: Path) -> Any:
    """Parse a JSON file (errors propagate to the caller, who names the file)."""
    with Path(path).open("rb") as fh:
        return json.load(fh)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def locked(folder: Path, what: str) -> Iterator[None]:
    """Hold an exclusive, non-blocking flock on FOLDER itself (no lock file is left behind)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockedError(f"{what} is in use by another tc process ({folder}); retry when it has finished") from None
            raise
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def waiting_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive flock on FOLDER, waiting for other holders (short critical sections)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def run_files(folder: Path) -> list[str]:
    """Every file in a run folder except the manifest and temp files, as sorted relative paths."""
    found = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        if rel == MANIFEST or path.name.startswith("."):
            continue
        found.append(rel)
    return sorted(found)


def write_manifest(folder: Path, run_id: str) -> bool:
    """Recompute manifest.json over every other file of the run; False when unchanged."""
    files = {rel: "sha256:" + sha256_file(folder / rel) for rel in run_files(folder)}
    return write_json_atomic(folder / MANIFEST, {"schema_version": SCHEMA_VERSION, "run_id": run_id, "files": files})


def write_validated(path: Path, obj: Any, schema: str, validate: bool = True) -> bool:
    """Validate OBJ against SCHEMA, then write it atomically. An invalid artifact is a bug: never written.

    validate=False is for bulk listings built row by row by one function (orders, fills): validating
    thousands of rows costs more than the engine run; `tc artifacts verify` and the tests check them.
    """
    from opslab.contracts import errors_for

    problems = errors_for(schema, obj, str(path)) if validate else []
    if problems:
        raise AssertionError("refusing to write an invalid artifact: " + "; ".join(problems))
    return write_json_atomic(path, obj)


def same_except_volatile(path: Path, obj: Any, schema: str) -> bool:
    """True when PATH already holds OBJ up to the fields SCHEMA marks x-volatile (top level).

    Observations (a probe, a drill) are rewritten only when what they observed changed, so
    repeating an operation leaves the artifacts as they were.
    """
    from opslab.contracts import volatile_fields

    try:
        old = read_json(path)
    except (OSError, ValueError):
        return False
    skip = {p.strip("/") for p in volatile_fields(schema) if p.count("/") == 1}
    strip = lambda doc: {k: v for k, v in doc.items() if k not in skip} if isinstance(doc, dict) else doc  # noqa: E731
    return strip(old) == strip(obj)
