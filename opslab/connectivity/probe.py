"""The connectivity probe: one HTTP(S) GET to a loopback URL, recorded as an artifact.

The URL is validated before any socket exists (urls.parse). The connection goes to the literal
loopback address (localhost is 127.0.0.1, no DNS). Redirects are never followed: a 3xx is recorded
as the answer it is.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import Any

from opslab import clock, runs
from opslab import urls
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result
from opslab.spec import RunSpec

MAX_TIMEOUT_MS = 60_000


def probe_url(target: urls.LoopbackURL, timeout_ms: int) -> dict[str, Any]:
    """Perform the GET; outcome up/down, HTTP status, latency (ms), error class and message."""
    timeout = timeout_ms / 1000.0
    if target.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(target.address, target.port, timeout=timeout,
                                                                       context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(target.address, target.port, timeout=timeout)
    watch = clock.Stopwatch()
    status, error_class, error = None, None, None
    try:
        conn.request("GET", target.path, headers={"Host": target.host, "User-Agent": "opslab-probe", "Connection": "close"})
        response = conn.getresponse()
        response.read(1 << 16)
        status = response.status
        if status >= 400:
            error_class, error = "http_error", f"HTTP {status} {response.reason}"
    except ssl.SSLError as exc:
        error_class, error = "tls", str(exc)
    except ConnectionRefusedError as exc:
        error_class, error = "refused", str(exc)
    except (socket.timeout, TimeoutError) as exc:
        error_class, error = "timeout", f"no answer within {timeout_ms} ms ({exc})"
    except (http.client.HTTPException, ConnectionResetError, BrokenPipeError) as exc:
        error_class, error = "protocol", f"{type(exc).__name__}: {exc}"
    except OSError as exc:
        error_class, error = "network", f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    latency = watch.elapsed_ms()
    up = error_class is None
    return {"outcome": "up" if up else "down", "http_status": status, "latency_ms": latency if up else None,
            "error_class": error_class, "error": error}


def run_probe(spec: RunSpec, url: str, timeout_ms: int, check: bool = False) -> Result:
    """The `tc connectivity probe` operation: records a new observation; exit 0 up, 4 down."""
    target = urls.parse(url)
    if not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
        raise InputError(f"--timeout-ms: {timeout_ms} is out of range (1-{MAX_TIMEOUT_MS})")
    if check:
        return Result("changed", f"would probe {target.url} and record the observation in run {spec.run_id}",
                      [str(runs.path_of(runs.run_dir(spec.run_id), "connectivity_probe"))])
    seen = probe_url(target, timeout_ms)
    doc = {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "target": target.url, "timeout_ms": timeout_ms, **seen,
           "probed_at": clock.now_iso()}
    with runs.open(spec) as run:
        run.observe("connectivity_probe", doc, "connectivity_probe_evaluated",
                    {"target": target.url, "outcome": seen["outcome"], "http_status": seen["http_status"], "error_class": seen["error_class"]},
                    {"target": target.url, "outcome": seen["outcome"], "http_status": seen["http_status"], "error_class": seen["error_class"],
                     "latency_ms": seen["latency_ms"], "probed_at": doc["probed_at"]})
    where = [str(run.path("connectivity_probe"))]
    if seen["outcome"] == "up":
        return Result("changed", f"probe {target.url}: up, HTTP {seen['http_status']} in {seen['latency_ms']:.1f} ms", where, {"probe": doc})
    return Result("changed", f"probe {target.url}: DOWN ({seen['error_class']}: {seen['error']})", where, {"probe": doc},
                  exit_code=EXIT_CODES["check"], details=["runbook: docs/runbooks/probe.md"])
