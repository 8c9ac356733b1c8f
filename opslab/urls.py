"""The loopback URL contract of the probe, checked on the text before any lookup or connection.

Accepted: http or https, host exactly 127.0.0.1, localhost or [::1], an optional port 1-65535, an
optional path and query of printable ASCII. Everything else is refused: other hosts, userinfo,
alternative IPv4 spellings (2130706433, 0177.0.0.1, 0x7f.1, 127.1), IPv4-mapped IPv6, other
schemes, whitespace or control characters, backslashes, fragments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opslab.errors import InputError

_URL = re.compile(r"(?P<scheme>https?)://(?P<host>127\.0\.0\.1|localhost|\[::1\])(?::(?P<port>[1-9][0-9]{0,4}))?(?P<rest>[/?][!-~]*)?")
CONNECT_ADDRESS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "[::1]": "::1"}


@dataclass(frozen=True)
class LoopbackURL:
    """A validated loopback URL and the literal address to connect to (no DNS)."""

    url: str
    scheme: str
    host: str
    address: str
    port: int
    path: str


def parse(url: str) -> LoopbackURL:
    """Validate URL; InputError (exit 2) naming what is wrong."""
    bad = next((ch for ch in url if ord(ch) <= 0x20 or ord(ch) >= 0x7F), None)
    if bad is not None:
        raise InputError(f"--url: {url!r} contains whitespace, a control or a non-ASCII character ({bad!r}); only loopback http(s) URLs are probed")
    if "\\" in url:
        raise InputError(f"--url: {url!r} contains a backslash; only loopback http(s) URLs are probed")
    if "#" in url:
        raise InputError(f"--url: {url!r} has a fragment; fragments are refused (they can hide a host)")
    match = _URL.fullmatch(url)
    if not match:
        raise InputError(f"--url: {url!r} is not allowed: expected http(s)://127.0.0.1, localhost or [::1] with an optional port and path")
    port = int(match["port"]) if match["port"] else (443 if match["scheme"] == "https" else 80)
    if port > 65535:
        raise InputError(f"--url: port {port} is out of range (1-65535)")
    rest = match["rest"] or "/"
    if rest.startswith("?"):
        rest = "/" + rest
    if rest.startswith("//"):
        raise InputError(f"--url: {url!r}: a path starting with // is refused (it reads as another host)")
    host = match["host"]
    return LoopbackURL(url, match["scheme"], host, CONNECT_ADDRESS[host], port, rest)
