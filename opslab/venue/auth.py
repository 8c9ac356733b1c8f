"""Binance's request authentication, as the venue checks it.

Security types (Binance's names): NONE (market data), USER_STREAM (API key header only: listenKey),
SIGNED (API key header + `timestamp` + optional `recvWindow` + `signature` = hex
HMAC-SHA256(secret, the query string before `&signature=`, followed by the body when there is one)).
Errors have Binance's codes: -2014 key format, -2015 key rejected, -1102 missing parameter,
-1022 bad signature, -1021 timestamp outside recvWindow, -1131 recvWindow too large.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import parse_qsl

from opslab.venue.exchange import VenueError

MAX_RECV_WINDOW_MS = 60_000
FUTURE_TOLERANCE_MS = 1_000  # Binance refuses a timestamp more than 1 s ahead of server time


def sign(secret: str, payload: str) -> str:
    """hex HMAC-SHA256 of PAYLOAD (what a Binance client appends as `signature`)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def check_key(header: str | None, api_key: str | None) -> None:
    """The X-MBX-APIKEY header must be present and equal the venue's key (a venue without one, the lab's, accepts none)."""
    if not header:
        raise VenueError(401, -2014, "API-key format invalid.")
    if api_key is None or not hmac.compare_digest(header.encode(), api_key.encode()):
        raise VenueError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def check_signed(query: str, body: str, secret: str, now_ms: int | None = None) -> None:
    """Signature, timestamp and recvWindow of a SIGNED request (QUERY is the raw query string)."""
    payload, sep, signature = query.rpartition("&signature=")
    if not sep:
        if query.startswith("signature="):
            payload, signature = "", query[len("signature="):]
        else:
            raise VenueError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    params = dict(parse_qsl(payload + ("&" + body if body else ""), keep_blank_values=True))
    if "timestamp" not in params:
        raise VenueError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    signed = payload + body if body and payload else (payload or body)
    expected = sign(secret, signed)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise VenueError(400, -1022, "Signature for this request is not valid.")
    try:
        ts = int(params["timestamp"])
        window = int(params.get("recvWindow") or 5000)
    except ValueError:
        raise VenueError(400, -1100, "Illegal characters found in parameter 'timestamp' or 'recvWindow'.") from None
    if not 0 < window <= MAX_RECV_WINDOW_MS:
        raise VenueError(400, -1131, "recvWindow must be less than 60000")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if ts > now + FUTURE_TOLERANCE_MS or now - ts > window:
        raise VenueError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def ws_payload(params: dict[str, object]) -> str:
    """What a WebSocket API request signs: every param but `signature`, sorted by name, `name=value` joined by `&`
    (https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/request-security)."""
    def text(value: object) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)
    return "&".join(f"{name}={text(params[name])}" for name in sorted(params) if name != "signature")


def check_ws_signed(params: dict[str, object], api_key: str | None, secret: str | None, now_ms: int | None = None) -> None:
    """apiKey, timestamp, recvWindow and signature of a signed WebSocket API request (session.logon,
    userDataStream.subscribe.signature); raises VenueError with Binance's code (status 400: the WS API has no 401)."""
    for name in ("apiKey", "signature", "timestamp"):
        if params.get(name) in (None, ""):
            raise VenueError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    key, signature = params["apiKey"], params["signature"]
    if not isinstance(key, str) or not isinstance(signature, str):
        raise VenueError(400, -1100, f"Illegal characters found in parameter '{'apiKey' if not isinstance(key, str) else 'signature'}'.")
    if api_key is None or secret is None or not hmac.compare_digest(key.encode(), api_key.encode()):
        raise VenueError(400, -2015, "Invalid API-key, IP, or permissions for action.")
    if not hmac.compare_digest(sign(secret, ws_payload(params)).encode(), signature.encode()):
        raise VenueError(400, -1022, "Signature for this request is not valid.")
    try:
        ts = int(str(params["timestamp"]))
        window = int(str(params.get("recvWindow") or 5000))
    except ValueError:
        raise VenueError(400, -1100, "Illegal characters found in parameter 'timestamp' or 'recvWindow'.") from None
    if not 0 < window <= MAX_RECV_WINDOW_MS:
        raise VenueError(400, -1131, "recvWindow must be less than 60000")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if ts > now + FUTURE_TOLERANCE_MS or now - ts > window:
        raise VenueError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
