"""The safe file layer: every read and write of an artifact goes through here.

Paths beneath the artifacts root are opened by walking one component at a time from a directory
file descriptor with O_NOFOLLOW (openat-style), so no symlink anywhere under the root is followed,
and a link swapped in between a check and a use is still refused: the kernel refuses it at the
open. We walk with dir fds rather than resolving with realpath() and then opening, because a
realpath check is a separate step an attacker can race. The root itself may be a link (an operator's
choice); nothing beneath it may.

Writes are atomic (a temp file in the same folder, fsync, rename, fsync of the folder) and say
whether anything changed; appends are one write() with fsync; files are created 0666 and folders
0777 minus the umask (0644/0755 by default), so an exporter running as another user reads them.
Reads are capped BEFORE parsing; JSON is parsed strictly (no NaN/Infinity, no duplicate keys,
bounded nesting and number length).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from opslab.errors import InputError, LockedError

ROOT_ENV = "TC_ARTIFACTS_DIR"
GENERATION = ".generation"  # one line per write under the root (the path written): the exporter's change feed
GENERATION_MAX_BYTES = 1 << 20  # then the feed starts over in a new file
CHUNK = 1 << 16  # 64 KiB stays in L2 cache: measurably faster than 1 MiB with OpenSSL sha256
MAX_JSON_BYTES = 64 << 20  # an artifact (orders of a 100k-bar run are a few MB)
MAX_INPUT_BYTES = 1 << 20  # a spec, an expected/observed state, an HTTP body
MAX_DEPTH = 64  # nesting of any JSON/YAML document tc reads
MAX_NUMBER_CHARS = 64  # digits of one number
TEMP_SUFFIX = ".tmp"
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LinkRefused(InputError):
    """A symlink (or other non-regular entry) was found where tc reads or writes an artifact."""


# --- the root ---------------------------------------------------------------------------------

def root() -> Path:
    """The artifacts root: $TC_ARTIFACTS_DIR, default ./artifacts."""
    return Path(os.environ.get(ROOT_ENV) or "artifacts")


def root_for_read() -> Path:
    """The root of a command that only reads: it must exist and be a folder (InputError otherwise)."""
    base = root()
    if not base.exists():
        raise InputError(f"artifacts root {base}: does not exist; set {ROOT_ENV} to the folder tc writes into")
    if not base.is_dir():
        raise InputError(f"artifacts root {base}: is not a directory; set {ROOT_ENV}")
    return base


def root_for_write() -> Path:
    """The root of a command that writes: created if missing; InputError if it cannot be written."""
    base = root()
    try:
        base.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"artifacts root {base}: is not a directory; set {ROOT_ENV}") from None
    except OSError as exc:
        raise InputError(f"artifacts root {base}: cannot create it ({exc.strerror}); set {ROOT_ENV}") from None
    if not base.is_dir():
        raise InputError(f"artifacts root {base}: is not a directory; set {ROOT_ENV}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"artifacts root {base}: is not writable; set {ROOT_ENV} to a writable folder")
    return base


def rel(path: Path | str, base: Path | None = None) -> str:
    """PATH relative to the root, as posix text (InputError when it is not beneath it)."""
    return "/".join(_parts(Path(path), base or root()))


def _parts(path: Path, base: Path) -> list[str]:
    try:
        parts = Path(os.path.abspath(path)).relative_to(os.path.abspath(base)).parts
    except ValueError:
        raise InputError(f"{path}: is not beneath the artifacts root {base}") from None
    if any(p in ("", ".", "..") for p in parts):
        raise InputError(f"{path}: is not a plain path beneath the artifacts root {base}")
    return list(parts)


# --- walking without following links ----------------------------------------------------------

def _open_root(base: Path) -> int:
    try:
        return os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        if os.path.abspath(base) != os.path.abspath(root()):
            raise  # the folder of a path outside the root: simply missing
        raise InputError(f"artifacts root {base}: does not exist; set {ROOT_ENV}") from None
    except NotADirectoryError:
        raise InputError(f"artifacts root {base}: is not a directory; set {ROOT_ENV}") from None


def _refuse(base: Path, parts: list[str], why: str) -> LinkRefused:
    where = base.joinpath(*parts)
    rule = "tc never follows links under the artifacts root" if "link" in why else "tc reads and writes only regular files under the artifacts root"
    return LinkRefused(f"{where}: {why}; {rule} (remove it; `tc artifacts verify --all` lists every one)")


def _open_dir(base: Path, parts: list[str], create: bool) -> int:
    """A file descriptor of the folder BASE/PARTS, walking with O_NOFOLLOW (creating when asked)."""
    return _descend(_open_root(base), base, [], parts, create)


def _descend(fd: int, base: Path, above: list[str], parts: list[str], create: bool) -> int:
    """From FD (the folder BASE/ABOVE, taken over: closed here), the folder PARTS below it, a component at a time
    with O_NOFOLLOW (creating when asked); a link or a non-folder on the way is refused (LinkRefused)."""
    try:
        for i, name in enumerate(parts):
            try:
                nxt = os.open(name, _NOFOLLOW_DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
                nxt = os.open(name, _NOFOLLOW_DIR, dir_fd=fd)
            except (NotADirectoryError, OSError) as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    kind = "is a symlink" if _is_link(fd, name) else "is not a directory"
                    raise _refuse(base, above + parts[: i + 1], kind) from None
                raise
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _base_of(path: Path) -> Path:
    """The folder walks start from: the artifacts root for a path beneath it. A path elsewhere (a test's
    folder, a server given another root) starts from its nearest existing folder, so only what lies
    below that is guarded against links."""
    base = root()
    absolute = Path(os.path.abspath(path))
    try:
        absolute.relative_to(os.path.abspath(base))
        return base
    except ValueError:
        folder = absolute.parent
        while not folder.is_dir() and folder != folder.parent:  # created beneath its nearest existing folder
            folder = folder.parent
        return folder


@contextlib.contextmanager
def _dir(path: Path, create: bool = False, base: Path | None = None) -> Iterator[tuple[int, Path, list[str]]]:
    base = base or _base_of(Path(path) / "x")
    parts = _parts(path, base)
    fd = _open_dir(base, parts, create)
    try:
        yield fd, base, parts
    finally:
        os.close(fd)


def _open_file(path: Path, flags: int, mode: int = 0o666, create_dirs: bool = False) -> int:
    """Open a file beneath the root with O_NOFOLLOW on every component; refuses non-regular files.

    The open itself is non-blocking: a FIFO (or a device) planted under the root would otherwise hang it
    until a peer appears; fstat then refuses anything but a regular file before a byte is read or
    written, and the descriptor goes back to blocking mode (which a regular file ignores anyway)."""
    base = _base_of(path)
    parts = _parts(path, base)
    if not parts:
        raise InputError(f"{path}: is the artifacts root, not a file")
    dfd = _open_dir(base, parts[:-1], create_dirs)
    try:
        try:
            fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse(base, parts, "is a symlink") from None
            if exc.errno == errno.EISDIR:
                raise InputError(f"{path}: is a directory, expected a file") from None
            if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
                raise _refuse(base, parts, "is not a regular file (a FIFO)") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise _refuse(base, parts, "is not a regular file")
        os.set_blocking(fd, True)
        return fd
    finally:
        os.close(dfd)


# --- reads --------------------------------------------------------------------------------------

def _read_capped(fd: int, limit: int, label: str) -> bytes:
    chunks, size = [], 0
    while size <= limit:
        chunk = os.read(fd, min(CHUNK * 16, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise InputError(f"{label}: larger than {limit} bytes (the limit for this file); nothing was read further")
    return b"".join(chunks)


def read_bytes(path: Path, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of an artifact beneath the root, at most LIMIT (InputError beyond it)."""
    fd = _open_file(Path(path), os.O_RDONLY)
    try:
        return _read_capped(fd, limit, str(path))
    finally:
        os.close(fd)


def read_input(path: Path | str, what: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a file a user names (a spec, a state file): bounded, one clear line on any problem.

    Such files may live anywhere and may be links (they are inputs, not artifacts); devices and
    pipes are read only up to LIMIT, so /dev/zero costs LIMIT bytes of memory, not all of it.
    """
    path = Path(path)
    fd = _open_input(path, what)
    try:
        os.set_blocking(fd, True)
        try:
            return _read_capped(fd, limit, f"{path}")
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)


def open_input(path: Path | str, what: str) -> Any:
    """A binary file object (unbuffered) for streaming a file a user names; one clear InputError when it cannot be read."""
    return os.fdopen(_open_input(Path(path), what), "rb", buffering=0)


def _open_input(path: Path, what: str) -> int:
    """A read-only descriptor of a file a user names (never a folder; O_NONBLOCK so a FIFO without a
    writer cannot hang the open), or one clear InputError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (expected a {what} file)") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a {what} file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise InputError(f"{path}: is {kind}, expected a {what} file")
    os.set_blocking(fd, True)
    return fd


def exists(path: Path) -> bool:
    """True when PATH names an entry beneath the root (a link counts: callers then get LinkRefused)."""
    try:
        with _dir(Path(path).parent) as (dfd, _, _):
            os.stat(Path(path).name, dir_fd=dfd, follow_symlinks=False)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number tc accepts")


def _number(kind: type) -> Any:
    def parse(text: str) -> Any:
        if len(text) > MAX_NUMBER_CHARS:
            raise ValueError(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
        value = kind(text)
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{text} is out of range for a number")
        return value
    return parse


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def check_document(doc: Any, label: str, limit: int = MAX_DEPTH) -> None:
    """InputError when DOC nests deeper than LIMIT or holds a number that is huge or not finite
    (iterative: no recursion on hostile input)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                raise InputError(f"{label}: nested deeper than {limit} levels")
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
        elif isinstance(node, float) and not math.isfinite(node):
            raise InputError(f"{label}: {node} is not a number tc accepts (NaN and infinities are refused)")
        elif isinstance(node, int) and not isinstance(node, bool) and node.bit_length() > 212:
            raise InputError(f"{label}: a number of more than {MAX_NUMBER_CHARS} digits")


def parse_json(raw: bytes, label: str) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, numbers and nesting bounded."""
    try:
        doc = json.loads(raw, parse_constant=_reject_constant, parse_int=_number(int), parse_float=_number(float),
                         object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise InputError(f"{label}: nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: not valid UTF-8 (byte {exc.start})") from None
    except ValueError as exc:
        raise InputError(f"{label}: not valid JSON ({str(exc).splitlines()[0]})") from None
    check_document(doc, label)
    return doc


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """A JSON artifact beneath the root, bounded and strictly parsed (InputError names the file)."""
    return parse_json(read_bytes(path, limit), str(path))


# --- writes -------------------------------------------------------------------------------------

def canonical_json(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace (what hashes are computed over)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def pretty_json(obj: Any) -> bytes:
    """The on-disk form of JSON artifacts: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


_swept: set[tuple[int, int]] = set()  # folders whose leftover temp files this process already removed


def _temp_pid(name: str) -> int | None:
    """The writer's pid in a temp name `.<file>.<pid>.<token>.tmp`, or None when it is not one."""
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return None
    fields = name[: -len(TEMP_SUFFIX)].rsplit(".", 2)
    return int(fields[1]) if len(fields) == 3 and fields[1].isdigit() else None


def pid_alive(pid: int) -> bool:
    """True when a process PID exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_temp_name(name: str) -> bool:
    """True for the name of a temp file or staging folder (its writer may still be at work)."""
    return _temp_pid(name) is not None


def is_leftover_temp(name: str) -> bool:
    """True for a temp file whose writer is gone (a crash between create and rename)."""
    pid = _temp_pid(name)
    return pid is not None and pid != os.getpid() and not pid_alive(pid)


def leftover_temps(dir_fd: int) -> list[str]:
    """Leftover temp files in a folder."""
    return [entry.name for entry in os.scandir(dir_fd) if is_leftover_temp(entry.name)]


def _sweep_temps(dir_fd: int) -> None:
    key = (os.fstat(dir_fd).st_dev, os.fstat(dir_fd).st_ino)
    if key in _swept:
        return
    _swept.add(key)
    for name in leftover_temps(dir_fd):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                shutil.rmtree(name, dir_fd=dir_fd)  # a staging folder (install_dir); fd-based, never through a link
            else:
                os.unlink(name, dir_fd=dir_fd)


def _same_content(dfd: int, name: str, data: bytes) -> bool:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)  # a FIFO must not hang it
    except FileNotFoundError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
            return False
        return _read_capped(fd, len(data), name) == data
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> bool:
    """Write DATA to PATH beneath the root atomically; False (nothing written) when it already holds DATA."""
    path = Path(path)
    with _dir(path.parent, create=True) as (dfd, base, parts):
        if _is_link(dfd, path.name):
            raise _refuse(base, parts + [path.name], "is a symlink")
        if _same_content(dfd, path.name, data):
            return False
        _install(dfd, path.name, [data])
    bump_generation(path)
    return True


def write_stream_atomic(path: Path, chunks: Iterator[bytes]) -> tuple[int, str]:
    """Write CHUNKS to PATH atomically; returns (bytes, sha256 hex) of what was written."""
    path = Path(path)
    with _dir(path.parent, create=True) as (dfd, base, parts):
        if _is_link(dfd, path.name):
            raise _refuse(base, parts + [path.name], "is a symlink")
        written = _install(dfd, path.name, chunks)
    bump_generation(path)
    return written


def _install(dfd: int, name: str, chunks: Iterable[bytes]) -> tuple[int, str]:
    """The atomic write itself: a temp file beside NAME (created, never followed), fsync, rename over
    NAME, fsync of the folder. A crash leaves the old file or the new one, and at most a temp file
    that the next writer of the folder removes. Returns (bytes, sha256 hex)."""
    _sweep_temps(dfd)
    tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dfd)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    os.fsync(dfd)
    return size, digest.hexdigest()


@contextlib.contextmanager
def install_dir(path: Path) -> Iterator[Path]:
    """A fresh staging folder beside PATH for a writer that is not tc (NautilusTrader's catalog writer),
    put in PATH's place by rename when the block ends without error, removed otherwise.

    The staging folder has a temp name (a crashed writer's is swept like a temp file). Before the
    install every entry in it must be a regular file or folder (a link planted there is refused),
    and every file and folder is fsynced. A folder cannot be renamed over a non-empty one, so an old
    PATH is first renamed aside and removed after: a crash between the two renames leaves no PATH,
    which the dataset's manifest check reports, never a mixed folder.
    """
    path = Path(path)
    with _dir(path.parent, create=True) as (dfd, base, parts):
        _sweep_temps(dfd)
        if _is_link(dfd, path.name):
            raise _refuse(base, parts + [path.name], "is a symlink")
        tmp = f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
        os.mkdir(tmp, 0o777, dir_fd=dfd)
        try:
            yield path.parent / tmp
            _sync_tree(path.parent / tmp)
            old = None
            if _exists_at(dfd, path.name):
                old = f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
                os.rename(path.name, old, src_dir_fd=dfd, dst_dir_fd=dfd)
            os.rename(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
            os.fsync(dfd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(tmp, dir_fd=dfd)
            raise
        if old:
            shutil.rmtree(old, dir_fd=dfd)
    bump_generation(path)


def _sync_tree(folder: Path) -> None:
    """fsync every file and folder beneath FOLDER; LinkRefused on anything else."""
    for relpath, kind in [("", "dir"), *walk(folder)]:
        if kind not in ("file", "dir"):
            raise _refuse(folder, relpath.split("/"), f"is a {kind}, not a file or folder")
        target = folder / relpath if relpath else folder
        if kind == "dir":
            with _dir(target) as (fd, _, _):
                os.fsync(fd)
            continue
        fd = _open_file(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def write_json(path: Path, obj: Any) -> bool:
    """Atomic write of a JSON artifact in its on-disk form; False when unchanged."""
    return write_atomic(path, pretty_json(obj))


@contextlib.contextmanager
def private_dir(path: Path) -> Iterator[int]:
    """A descriptor of the folder PATH beneath the root, created (with its parents) when missing and
    kept to its owner (mode 0700): for what only this user may reach, such as the nodes' wake sockets.
    Refuses a link, a non-folder, or a folder another user owns (InputError)."""
    path = Path(path)
    with _dir(path.parent, create=True) as (pfd, base, parts):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.name, 0o700, dir_fd=pfd)
        try:
            fd = os.open(path.name, _NOFOLLOW_DIR, dir_fd=pfd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _refuse(base, parts + [path.name], "is a symlink" if _is_link(pfd, path.name) else "is not a directory") from None
            raise
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            raise InputError(f"{path}: belongs to user id {st.st_uid}, not to this user ({os.getuid()}); tc keeps it private to its owner")
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o700)
        yield fd
    finally:
        os.close(fd)


def mkdirs(path: Path) -> None:
    """Create the folder PATH beneath the root (and its parents), never through a link."""
    with _dir(Path(path), create=True):
        pass


def _repair_torn_tail(fd: int) -> None:
    """Cut a torn last line (a crash in the middle of a write) so a chained log can go on.

    Lines are written with one write() each and fsynced, so a line without its newline was never
    complete; keeping it would make every later line unreadable. FD was opened with O_NOFOLLOW, so
    this truncates the log itself, never a file a link points at.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = max(0, size - (1 << 20))
    while True:
        tail = os.pread(fd, size - start, start)
        cut = tail.rfind(b"\n")
        if cut >= 0 or start == 0:
            os.ftruncate(fd, start + cut + 1 if cut >= 0 else 0)
            os.fsync(fd)
            return
        start = max(0, start - (1 << 20))


def last_line(path: Path) -> bytes | None:
    """The last complete line of a log beneath the root (None when empty or missing), read from its tail."""
    try:
        fd = _open_file(Path(path), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        start = size
        while start > 0:
            start = max(0, start - CHUNK)
            tail = os.pread(fd, size - start, start)
            body = tail[: tail.rfind(b"\n") + 1] if start + len(tail) == size else tail
            lines = body.rstrip(b"\n").rsplit(b"\n", 1)
            if len(lines) == 2 or start == 0:
                return lines[-1] if lines[-1] else None
        return None
    finally:
        os.close(fd)


def append_line(path: Path, line: bytes, repair: bool = True) -> None:
    """Append one LINE (ending in a newline) to a log beneath the root: one write, fsync'd, no link followed."""
    fd = _open_file(Path(path), os.O_RDWR | os.O_APPEND | os.O_CREAT, create_dirs=True)
    try:
        if repair:
            _repair_torn_tail(fd)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def bump_generation(path: Path) -> None:
    """Tell readers of the root (the exporter) that PATH changed: one line with its path relative to
    the root, appended to <root>/.generation. Past GENERATION_MAX_BYTES the feed starts over in a new
    file; readers notice and re-read everything once."""
    base = root()
    try:
        text = "/".join(_parts(Path(path), base))
    except InputError:
        return
    feed = base / GENERATION
    with contextlib.suppress(OSError):
        if os.stat(feed, follow_symlinks=False).st_size > GENERATION_MAX_BYTES:
            with _dir(base) as (dfd, _, _):
                tmp = f"{GENERATION}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=dfd)
                try:  # a random first line: readers tell this feed from the last one even when the inode is reused
                    os.write(fd, b"#" + os.urandom(8).hex().encode() + b"\n")
                finally:
                    os.close(fd)
                os.rename(tmp, GENERATION, src_dir_fd=dfd, dst_dir_fd=dfd)
    append_line(feed, text.encode("utf-8", "surrogateescape") + b"\n", repair=False)


def truncate_log(path: Path, keep: list[bytes]) -> None:
    """Replace a log with its lines KEEP (retention), atomically."""
    write_atomic(Path(path), b"".join(keep))


# --- locks, listings, digests -------------------------------------------------------------------

@contextlib.contextmanager
def locked(folder: Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive flock on FOLDER itself (created if missing; no lock file is left behind).

    wait=False refuses at once with LockedError (exit 5) when another process holds it.
    """
    with _dir(Path(folder), create=True) as (fd, _, _):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockedError(f"{what} is in use by another tc process ({folder}); retry when it has finished") from None
            raise
        yield


def entries(folder: Path) -> list[tuple[str, str]]:
    """(name, kind) of every entry of a folder beneath the root; kind is file, dir, link, socket or other.
    A missing folder has none."""
    try:
        with _dir(Path(folder)) as (fd, _, _):
            return _listing(fd)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _listing(fd: int) -> list[tuple[str, str]]:
    out = []
    for entry in os.scandir(fd):
        mode = entry.stat(follow_symlinks=False).st_mode
        kind = ("link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode)
                else "socket" if stat.S_ISSOCK(mode) else "other")
        out.append((entry.name, kind))
    return sorted(out)


def walk(folder: Path, prune: Callable[[str], bool] | None = None) -> Iterator[tuple[str, str]]:
    """(relative path, kind) of everything beneath FOLDER, never descending through a link, nor into
    folders for which PRUNE(relative path) is true. FOLDER is opened once, as every path beneath the root is; each
    folder below it is opened from there a component at a time with O_NOFOLLOW (not from the root again: the
    exporter's first scrape walks every run, and on Python 3.13 the path arithmetic of opening from the root was a
    third of it)."""
    try:
        with _dir(Path(folder)) as (top, base, parts):
            stack = [""]
            while stack:
                prefix = stack.pop()
                for name, kind in _listing_below(top, base, parts, prefix):
                    relpath = f"{prefix}/{name}" if prefix else name
                    if kind == "dir" and not (prune and prune(relpath)):
                        stack.append(relpath)
                    yield relpath, kind
    except (FileNotFoundError, NotADirectoryError):
        return  # FOLDER is missing: nothing beneath it


def _listing_below(top: int, base: Path, parts: list[str], prefix: str) -> list[tuple[str, str]]:
    """The listing of TOP's subfolder PREFIX (TOP itself for ""); none when it vanished meanwhile."""
    if not prefix:
        return _listing(top)
    try:
        fd = _descend(os.dup(top), base, parts, prefix.split("/"), False)
    except FileNotFoundError:
        return []
    try:
        return _listing(fd)
    finally:
        os.close(fd)


def open_read(path: Path) -> Any:
    """A binary file object for reading a file beneath the root (no link followed); close it."""
    return os.fdopen(_open_file(Path(path), os.O_RDONLY), "rb")


def iter_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of a file beneath the root in 1 MiB chunks (no link followed)."""
    fd = _open_file(Path(path), os.O_RDONLY)
    try:
        while chunk := os.read(fd, CHUNK * 16):
            yield chunk
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    """Streamed sha256 of a file beneath the root (64 KiB at a time), as hex; no link followed."""
    fd = _open_file(Path(path), os.O_RDONLY)
    try:
        return _sha256_fd(fd)
    finally:
        os.close(fd)


def sha256_input(path: Path | str) -> tuple[str, int]:
    """Streamed sha256 (hex) and size of a file a user names (`tc data fingerprint`)."""
    path = Path(path)
    fd = _open_input(path, "data")
    try:
        st = os.fstat(fd)
        os.set_blocking(fd, True)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: is not a regular file (a device or pipe has no fixed content to fingerprint)")
        return _sha256_fd(fd), st.st_size
    finally:
        os.close(fd)


def _sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with os.fdopen(os.dup(fd), "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            digest.update(view[:n])
    return digest.hexdigest()


def mtime_ns(path: Path | str) -> int | None:
    """Modification time of an entry (not followed), or None when missing."""
    try:
        return os.stat(path, follow_symlinks=False).st_mtime_ns
    except OSError:
        return None


def age_seconds(path: Path) -> float | None:
    """Seconds since PATH last changed, or None when missing."""
    ns = mtime_ns(path)
    return None if ns is None else time.time() - ns / 1e9
