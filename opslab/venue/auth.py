"""Binance's request authentication, as the venue checks it.

Security types (Binance's names): NONE (market data), USER_STREAM (API key header only: listenKey),
SIGNED (API key header + `timestamp` + optional `recvWindow` + `signature`).

As https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-api-information
("SIGNED Endpoint security", "Timing security", "SIGNED Endpoint Examples") has it:
- `signature` may travel in the query string or in the form body; the signature payload is the query
  string concatenated without separator to the body (the `signature` field itself left out);
- an HMAC signature is hex and compared case-insensitively (RSA/Ed25519 ones are not served here);
- `timestamp` in milliseconds or microseconds; `recvWindow` in milliseconds with up to three
  decimals, default 5000, at most 60000; a request is valid while
  timestamp < serverTime + 1 s and serverTime - timestamp <= recvWindow.
Errors have Binance's codes: -2014 key format, -2015 key rejected, -1102 missing parameter,
-1101 duplicate parameter, -1100 illegal characters, -1022 bad signature, -1021 timestamp outside
recvWindow, -1131 recvWindow too large.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from decimal import Decimal
from urllib.parse import parse_qsl

from opslab.venue.exchange import VenueError

MAX_RECV_WINDOW_MS = Decimal(60_000)
DEFAULT_RECV_WINDOW_MS = Decimal(5_000)
FUTURE_TOLERANCE_MS = 1_000  # Binance refuses a timestamp more than 1 s ahead of server time
MICROSECONDS_FROM = 10**14  # a timestamp at or above this is in microseconds (ms timestamps have 13 digits until 2286)
_RECV_WINDOW = re.compile(r"\d{1,6}(\.\d{1,3})?")
_TIMESTAMP = re.compile(r"\d{1,17}")


def sign(secret: str, payload: str) -> str:
    """hex HMAC-SHA256 of PAYLOAD (what a Binance client appends as `signature`)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def check_key(header: str | None, api_key: str | None) -> None:
    """The X-MBX-APIKEY header must be present and equal the venue's key (a venue without one, the lab's, accepts none)."""
    if not header:
        raise VenueError(401, -2014, "API-key format invalid.")
    if api_key is None or not hmac.compare_digest(header.encode(), api_key.encode()):
        raise VenueError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def _take_signature(raw: str) -> tuple[str, list[str]]:
    """RAW (a query string or form body) without its `signature` fields, and their values."""
    kept, found = [], []
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            found.append(part[len("signature="):])
        else:
            kept.append(part)
    return "&".join(kept), found


def signed_payload(query: str, body: str) -> tuple[str, str]:
    """(payload, signature) of a SIGNED request: the query string then the body, each without `signature`."""
    query_rest, in_query = _take_signature(query)
    body_rest, in_body = _take_signature(body)
    found = in_query + in_body
    if not found or not found[0]:
        raise VenueError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    if len(found) > 1:
        raise VenueError(400, -1101, "Duplicate values for a parameter detected.")
    return query_rest + body_rest, found[0]


def check_signed(query: str, body: str, secret: str, now_ms: int | None = None) -> None:
    """Signature, timestamp and recvWindow of a SIGNED request (QUERY and BODY raw, as received)."""
    payload, signature = signed_payload(query, body)
    params = dict(parse_qsl(body, keep_blank_values=True))
    params.update(parse_qsl(query, keep_blank_values=True))  # a parameter in both: the query string's is used
    if not params.get("timestamp"):
        raise VenueError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    expected = sign(secret, payload)
    if not hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8", "replace")):
        raise VenueError(400, -1022, "Signature for this request is not valid.")
    if not _TIMESTAMP.fullmatch(params["timestamp"]):
        raise VenueError(400, -1100, "Illegal characters found in parameter 'timestamp'; legal range is '0' to '99999999999999999'.")
    raw_window = params.get("recvWindow") or ""
    if raw_window and not _RECV_WINDOW.fullmatch(raw_window):
        raise VenueError(400, -1100, "Illegal characters found in parameter 'recvWindow'; legal range is '0.001' to '60000' "
                                     "with at most three decimals.")
    window = Decimal(raw_window) if raw_window else DEFAULT_RECV_WINDOW_MS
    if not 0 < window <= MAX_RECV_WINDOW_MS:
        raise VenueError(400, -1131, "recvWindow must be less than 60000")
    ts = Decimal(params["timestamp"])
    if ts >= MICROSECONDS_FROM:
        ts /= 1000
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if ts >= now + FUTURE_TOLERANCE_MS:
        raise VenueError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now - ts > window:
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
