"""The registry of running nodes (state/nodes/) and the wake that halts them at once: the kill switch's fast path.

A node registers before it can trade: it binds a Unix domain socket, state/nodes/<run_id>.sock, in a folder
only its owner may enter (0700; the node also refuses a caller of another user id, SO_PEERCRED), then writes
state/nodes/<run_id>.json atomically (schema node_registration). `tc killswitch engage` writes the switch,
lists the registry and wakes every registered node at once: one request line (at most REQUEST_MAX_BYTES);
the node sets the RiskEngine's HALTED, waits (bounded) until none of its orders is in flight, and answers
one line. The node's poll of the switch file stays the fallback.

Why no node is missed (docs/safety.md): a node registers before its own start-up check of the switch, and
engage lists the registry after writing the switch. Either the node's check sees the switch engaged, or
engage sees the node.

Socket addresses go through /proc/self/fd/<folder fd>/<name>, so a deep artifacts root does not hit the
~107-byte limit of a Unix socket path, and the folder is the one walked without following links. Nothing
here imports NautilusTrader: the node hands its halt in as a callable (engine/live.py).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

from opslab import clock, contracts, fs
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import InputError

REQUEST_MAX_BYTES = 512  # {"op": "halt", "reason": <= 200 characters}
REPLY_MAX_BYTES = 4096
REGISTRATION_MAX_BYTES = 4096
IO_TIMEOUT_S = 1.0  # the node waits this long for a caller's request line
MAX_ENTRIES = 1024  # names in state/nodes/ engage looks at
MAX_HANDLERS = 4  # wakes a node answers at once; more are told busy
MAX_WAKERS = 64  # nodes engage wakes in parallel
WAKE_TIMEOUT_S = 5.0  # engage's default wait for every acknowledgement
SUN_PATH_MAX = 104  # the smallest sun_path of the platforms tc runs on (macOS), with its NUL
REASON_MAX = 200


class WakeError(Exception):
    """A wake request or answer that is not what the protocol allows (too large, not JSON, too slow, ...)."""


def folder(base: Path | None = None) -> Path:
    """state/nodes/ under BASE (default: the artifacts root)."""
    return contracts.artifact("node_registration").at(base or fs.root(), "x").parent


def _registration_name(run_id: str) -> str:
    return contracts.artifact("node_registration").at(Path("."), run_id).name


def _socket_name(run_id: str) -> str:
    return contracts.artifact("node_wake_socket").at(Path("."), run_id).name


def _socket_rel(run_id: str) -> str:
    """The wake socket of RUN_ID relative to the root, as a registration names it."""
    return contracts.artifact("node_wake_socket").at(Path(), run_id).as_posix()


def _sun_path(dfd: int, path: Path) -> str:
    """The address of socket PATH, whose folder is open as DFD."""
    proc = f"/proc/self/fd/{dfd}"
    if os.path.isdir(proc):
        return f"{proc}/{path.name}"
    if len(os.fsencode(os.path.abspath(path))) >= SUN_PATH_MAX:
        raise InputError(f"{path}: longer than a Unix socket path may be ({SUN_PATH_MAX - 1} bytes); use a shorter artifacts root")
    return os.path.abspath(path)


@contextlib.contextmanager
def _registry(base: Path | None) -> Iterator[int]:
    """state/nodes/ open (private to its owner) and flock-ed: registering, removing and cleaning never interleave."""
    with fs.private_dir(folder(base)) as dfd:
        fcntl.flock(dfd, fcntl.LOCK_EX)
        yield dfd


def _line(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def read_line(conn: socket.socket, limit: int, deadline: float) -> bytes:
    """One line (without its newline) from CONN, at most LIMIT bytes, before DEADLINE (time.monotonic)."""
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WakeError("no complete line in time")
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(limit + 1 - len(buf))
        except socket.timeout:
            continue
        except OSError as exc:
            raise WakeError(f"connection failed ({exc.strerror or exc})") from None
        if not chunk:
            raise WakeError("connection closed before a complete line")
        buf += chunk
        if len(buf) > limit and b"\n" not in buf[:limit]:
            raise WakeError(f"line larger than {limit} bytes")
    return buf.split(b"\n", 1)[0]


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = fs.parse_json(raw, what)
    except InputError as exc:
        raise WakeError(str(exc)) from None
    if not isinstance(doc, dict):
        raise WakeError(f"{what}: expected a JSON object")
    return doc


def parse_request(raw: bytes) -> str:
    """The reason of a halt request line; WakeError naming what is wrong."""
    doc = _json_object(raw, "request")
    if set(doc) != {"op", "reason"} or doc["op"] != "halt":
        raise WakeError('request: expected {"op": "halt", "reason": TEXT}')
    reason = doc["reason"]
    if not isinstance(reason, str) or not reason.strip() or len(reason) > REASON_MAX:
        raise WakeError(f"request: reason must be a non-empty text of at most {REASON_MAX} characters")
    return reason


def _peer_uid(conn: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None  # the folder's 0700 still keeps other users out
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)[1]


# --- the node's side --------------------------------------------------------------------------------

class Registration:
    """This process's entry in the registry, and the thread that answers wakes (a context manager).

    The node's halt is attached once its ops actor starts (`attach`, under the lock, returns the reason
    of a wake that came earlier, so the actor starts HALTED); `detach` when it no longer trades. A wake
    before `attach` is answered at once: the node has not traded and will start HALTED; after `detach`:
    it trades no more."""

    def __init__(self, run_id: str, base: Path | None = None) -> None:
        self.run_id, self.base = run_id, base or fs.root()
        self.lock = threading.Lock()
        self.wakes = 0
        self._act: Callable[[str], dict[str, Any]] | None = None
        self._requested: str | None = None
        self._finished = False
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._handlers = threading.BoundedSemaphore(MAX_HANDLERS)
        self._doc: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        return contracts.artifact("node_registration").at(self.base, self.run_id)

    @property
    def socket_path(self) -> Path:
        return contracts.artifact("node_wake_socket").at(self.base, self.run_id)

    @property
    def finished(self) -> bool:
        return self._finished

    def __enter__(self) -> "Registration":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> "Registration":
        """Bind the wake socket, then write the registration (the order engage relies on); start answering."""
        doc = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, "pid": os.getpid(), "host": socket.gethostname()[:255] or "localhost",
               "started_at": clock.now_iso(), "wake_socket": _socket_rel(self.run_id)}
        contracts.ensure_valid("node_registration", doc, str(self.path))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _registry(self.base) as dfd:
                with contextlib.suppress(FileNotFoundError):  # left by a crashed node of this run (its run lock keeps two apart)
                    os.unlink(self.socket_path.name, dir_fd=dfd)
                listener.bind(_sun_path(dfd, self.socket_path))
                listener.listen(16)
                fs.write_json(self.path, doc)
        except BaseException:
            listener.close()
            raise
        listener.settimeout(0.2)  # accept returns at once on a connection; the timeout only bounds close()
        self._listener, self._doc = listener, doc
        self._thread = threading.Thread(target=self._serve, name=f"tc-wake-{self.run_id}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Remove the registration, then the socket (a clean stop leaves nothing behind)."""
        self.detach()
        self._closing.set()
        if self._listener is None:
            return
        try:
            with _registry(self.base) as dfd:
                if _same_entry(dfd, self.run_id, self._doc):
                    os.unlink(_registration_name(self.run_id), dir_fd=dfd)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.socket_path.name, dir_fd=dfd)
        finally:
            self._listener.close()
            if self._thread is not None:
                self._thread.join(timeout=2)
            self._listener = None

    def attach(self, act: Callable[[str], dict[str, Any]]) -> str | None:
        """The node can now halt through ACT(reason); returns the reason of a wake that came before."""
        with self.lock:
            self._act = act
            requested, self._requested = self._requested, None
            return requested

    def detach(self) -> None:
        """The node trades no more: later wakes are answered `stopped`."""
        with self.lock:
            self._act = None
            self._finished = True

    def halt(self, reason: str) -> dict[str, Any]:
        """What a wake does: halt through the attached node (or note it for its start); the answer."""
        started = time.monotonic()
        with self.lock:
            act = self._act
            if act is None:
                phase = "stopped" if self._finished else "starting"
                if phase == "starting":
                    self._requested = self._requested or reason
                answer: dict[str, Any] = {"ok": True, "phase": phase, "trading_state": "HALTED" if phase == "starting" else "STOPPED",
                                          "orders_in_flight": 0}
        if act is not None:
            try:
                answer = act(reason)
            except Exception as exc:  # the node's halt must answer something; the caller then names this node
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        self.wakes += 1
        return {**answer, "run_id": self.run_id, "handled_ms": round((time.monotonic() - started) * 1000, 3)}

    def _serve(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while not self._closing.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._closing.is_set():
                    return
                time.sleep(0.01)
                continue
            if not self._handlers.acquire(blocking=False):
                with conn, contextlib.suppress(OSError):
                    conn.settimeout(IO_TIMEOUT_S)
                    conn.sendall(_line({"ok": False, "run_id": self.run_id, "error": f"busy: more than {MAX_HANDLERS} wakes at once"}))
                continue
            threading.Thread(target=self._handle, args=(conn,), name=f"tc-wake-{self.run_id}-conn", daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            with conn:
                try:
                    uid = _peer_uid(conn)
                    if uid is not None and uid != os.getuid():
                        raise WakeError(f"refused: user id {uid} is not the node's owner")
                    reply = self.halt(parse_request(read_line(conn, REQUEST_MAX_BYTES, time.monotonic() + IO_TIMEOUT_S)))
                except WakeError as exc:
                    reply = {"ok": False, "run_id": self.run_id, "error": str(exc)}
                with contextlib.suppress(OSError):
                    conn.settimeout(IO_TIMEOUT_S)
                    conn.sendall(_line(reply))
        finally:
            self._handlers.release()


# --- engage's side ----------------------------------------------------------------------------------

def _read_entry(dfd: int, name: str) -> dict[str, Any]:
    """A registration file read without following a link or blocking on a FIFO, bounded, schema-checked."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WakeError("is a symlink; tc never follows links under the artifacts root") from None
        raise WakeError(f"cannot open ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise WakeError("is not a regular file (a FIFO or a device?)")
        if st.st_uid != os.getuid():
            raise WakeError(f"belongs to user id {st.st_uid}, not to this user")
        raw = os.read(fd, REGISTRATION_MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > REGISTRATION_MAX_BYTES:
        raise WakeError(f"larger than {REGISTRATION_MAX_BYTES} bytes")
    doc = _json_object(raw, "registration")
    problems = contracts.errors_for("node_registration", doc, "registration")
    if problems:
        raise WakeError(problems[0])
    if _registration_name(doc["run_id"]) != name or doc["wake_socket"] != _socket_rel(doc["run_id"]):
        raise WakeError(f"names run {doc['run_id']!r} and socket {doc['wake_socket']!r}, not its own file name")
    return doc


def _same_entry(dfd: int, run_id: str, doc: dict[str, Any] | None) -> bool:
    try:
        current = _read_entry(dfd, _registration_name(run_id))
    except WakeError:
        return False
    return doc is not None and (current["pid"], current["host"], current["started_at"]) == (doc["pid"], doc["host"], doc["started_at"])


def registered(base: Path | None = None) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(registrations, refused entries {entry, why}) in state/nodes/; nothing when the folder is missing."""
    where = folder(base)
    docs, refused = [], []
    label = fs.rel(where, base or fs.root())
    try:
        if not fs.exists(where):
            return [], []
        with _registry(base) as dfd:
            names = sorted(os.listdir(dfd))
            if len(names) > MAX_ENTRIES:
                refused.append({"entry": label, "why": f"{len(names)} entries, more than {MAX_ENTRIES}; only the first are woken"})
                names = names[:MAX_ENTRIES]
            for name in names:
                if not name.endswith(".json") or fs.is_temp_name(name):
                    continue
                try:
                    docs.append(_read_entry(dfd, name))
                except WakeError as exc:
                    refused.append({"entry": f"{label}/{name}", "why": str(exc)})
    except (InputError, OSError) as exc:
        refused.append({"entry": label, "why": str(getattr(exc, "strerror", None) or exc)})
    return docs, refused


def _wake_one(dfd: int, base: Path, doc: dict[str, Any], reason: str, t0: float, deadline: float) -> tuple[str, dict[str, Any]]:
    run_id = doc["run_id"]
    name = _socket_name(run_id)
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return _gone(doc, "its wake socket is missing")
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        what = "is a symlink" if stat.S_ISLNK(st.st_mode) else "is not a socket" if not stat.S_ISSOCK(st.st_mode) else "belongs to another user"
        return "not_acknowledged", {"run_id": run_id, "why": f"its wake socket {doc['wake_socket']} {what}; refused"}
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            conn.connect(_sun_path(dfd, base / doc["wake_socket"]))
        except (ConnectionRefusedError, FileNotFoundError):
            return _gone(doc, "its wake socket refuses connections")
        except (socket.timeout, OSError) as exc:
            return "not_acknowledged", {"run_id": run_id, "why": f"cannot connect to its wake socket ({getattr(exc, 'strerror', None) or exc})"}
        try:
            conn.sendall(_line({"op": "halt", "reason": reason}))
            answer = _json_object(read_line(conn, REPLY_MAX_BYTES, deadline), "answer")
        except (WakeError, OSError) as exc:
            return "not_acknowledged", {"run_id": run_id, "why": f"no HALTED acknowledgement: {exc}"}
    finally:
        conn.close()
    latency = round((time.monotonic() - t0) * 1000, 3)
    if answer.get("ok") is not True or answer.get("run_id") != run_id:
        why = str(answer.get("error") or "answered without ok")[:300]
        return "not_acknowledged", {"run_id": run_id, "why": f"answered but did not confirm HALTED: {why}", "latency_ms": latency}
    fields = {k: answer.get(k) for k in ("phase", "trading_state", "orders_in_flight", "waited_for", "drain_ms")}
    return "acknowledged", {"run_id": run_id, "latency_ms": latency, **fields}


def _gone(doc: dict[str, Any], why: str) -> tuple[str, dict[str, Any]]:
    """Stale only when provably gone: its pid is dead on this host. A live pid, or a node on another host (a
    container, a pod: its pid means nothing here), is named instead (fail closed)."""
    remove = f"remove state/nodes/{doc['run_id']}.json and .sock once you know that node stopped"
    if doc["host"] != (socket.gethostname()[:255] or "localhost"):
        return "not_acknowledged", {"run_id": doc["run_id"], "why": f"{why}; it registered on host {doc['host']}, so tc cannot tell "
                                    f"whether it still runs ({remove})"}
    if fs.pid_alive(doc["pid"]):
        return "not_acknowledged", {"run_id": doc["run_id"], "why": f"{why}, yet its process {doc['pid']} is alive ({remove})"}
    return "stale", {"run_id": doc["run_id"], "why": f"{why}; its process {doc['pid']} is gone", "pid": doc["pid"]}


def wake_all(reason: str, timeout_s: float = WAKE_TIMEOUT_S, base: Path | None = None) -> dict[str, Any]:
    """Wake every registered node at once and wait (at most TIMEOUT_S) for each HALTED acknowledgement.

    {acknowledged: [{run_id, latency_ms, phase, trading_state, orders_in_flight (after the wait: 0), waited_for (orders
     in flight at the wake), drain_ms}],
     not_acknowledged: [{run_id, why}], stale: [{run_id, why}] (removed), refused: [{entry, why}]}."""
    base = base or fs.root()
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    report: dict[str, Any] = {"acknowledged": [], "not_acknowledged": [], "stale": [], "refused": []}
    docs, report["refused"] = registered(base)
    if not docs:
        return report
    with fs.private_dir(folder(base)) as dfd:  # the socket addresses go through this descriptor
        with ThreadPoolExecutor(max_workers=min(len(docs), MAX_WAKERS), thread_name_prefix="tc-wake") as pool:
            outcomes = list(pool.map(lambda d: _wake_one(dfd, base, d, reason, t0, deadline), docs))
    stale = []
    for (kind, record), doc in zip(outcomes, docs, strict=True):
        report[kind].append(record)
        if kind == "stale":
            stale.append(doc)
    if stale:
        with _registry(base) as dfd:
            for doc in stale:  # removed only when unchanged: a new node of the same run may have registered since
                if _same_entry(dfd, doc["run_id"], doc):
                    os.unlink(_registration_name(doc["run_id"]), dir_fd=dfd)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(_socket_name(doc["run_id"]), dir_fd=dfd)
    return report
