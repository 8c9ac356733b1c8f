"""The installed NautilusTrader release and what the lab does differently by release (docs/engine-profiles.md).

The one place engine/ asks which release it drives; everything release-specific in engine/ branches on
the predicates here, so a new engine profile shows up as a new line in this file.
"""

from __future__ import annotations

import importlib.metadata
from functools import cache

WS_API_PATH = "/ws-api/v3"  # Binance Spot's WebSocket API, where the lab's venue serves it too (docs/node.md)
FIRST_WS_API_USER_STREAM = (1, 223)  # the Spot exec client signs in over the WebSocket API from 1.223 (listenKey before)
# Measured on the profiles: 1.231.0's file logger prints this line on stderr at every log file rotation; 1.221.0 prints
# nothing (the releases in between are no profile: the first one past 1.221 is assumed to print it).
ROTATION_NOTE = b"[NAUTILUS] Rotated log file"
FIRST_ROTATION_NOTE = (1, 222)


@cache
def release() -> str | None:
    """The installed release exactly as its metadata states it ("1.221.0"); None when NautilusTrader is not installed."""
    try:
        return importlib.metadata.version("nautilus_trader")
    except importlib.metadata.PackageNotFoundError:
        return None


@cache
def nautilus() -> tuple[int, int, int]:
    """The installed release as (major, minor, patch); a pre-release suffix is ignored (2.0.0rc3 -> (2, 0, 0))."""
    text = importlib.metadata.version("nautilus_trader")
    parts = []
    for piece in text.split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return tuple((parts + [0, 0, 0])[:3])  # type: ignore[return-value]


def ws_api_user_stream() -> bool:
    """True when the Spot execution client opens its user data stream over the WebSocket API
    (session.logon + userDataStream.subscribe) rather than a REST listenKey."""
    return nautilus()[:2] >= FIRST_WS_API_USER_STREAM


def exec_ws_url(ws_url: str) -> str:
    """The Spot execution client's base_url_ws for a venue whose market streams are at WS_URL: the same
    URL up to 1.222 (the listenKey stream lives there), the WebSocket API URL (WS_URL + /ws-api/v3) from
    1.223, where NautilusTrader connects to base_url_ws as given."""
    if not ws_api_user_stream():
        return ws_url
    base = ws_url.rstrip("/")
    return base if base.endswith(WS_API_PATH) else base + WS_API_PATH


def futures_exec_ws(ws_url: str) -> dict[str, str]:
    """The USD-M execution client's WebSocket URLs for a venue whose futures streams are at WS_URL. With an HMAC key it
    signs its user stream with a REST listenKey on every release and reads it from the futures stream host:
    base_url_ws up to 1.230, base_url_ws_stream once 1.231 gave the stream host a field of its own (base_url_ws is
    then the WebSocket API, which takes Ed25519 keys only)."""
    from nautilus_trader.adapters.binance import BinanceExecClientConfig

    urls = {"base_url_ws": ws_url}
    if "base_url_ws_stream" in BinanceExecClientConfig.__struct_fields__:
        urls["base_url_ws_stream"] = ws_url
    return urls


def prints_rotation_notes() -> bool:
    """True when NautilusTrader's file logger prints ROTATION_NOTE lines on stderr when it rotates a log file."""
    return nautilus()[:2] >= FIRST_ROTATION_NOTE
