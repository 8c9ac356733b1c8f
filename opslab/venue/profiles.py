"""Which Binance the venue plays: today's (2026, the default) or the one before the listenKey retirement (2025).

Binance removed the Spot listenKey endpoints (POST/PUT/DELETE /api/v3/userDataStream) on 2026-02-20
(https://developers.binance.com/docs/binance-spot-api-docs/CHANGELOG#2026-01-21); account events come
over the WebSocket API (/ws-api/v3, opslab/venue/wsapi.py), which both profiles serve. Clients that
still call a removed endpoint get HTTP 410 Gone (seen by clients since the retirement:
https://github.com/ccxt/node-binance-api/issues/995).

The one registry of profiles; the CLI's choices and help are built from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LISTEN_KEY_PATH = "/api/v3/userDataStream"
FIRST_WS_API_NAUTILUS = (1, 223)  # NautilusTrader signs in over the WebSocket API from 1.223 on (listenKey before)


@dataclass(frozen=True)
class Profile:
    name: str
    listen_key: bool  # the REST listenKey endpoints and listenKey streams on /stream and /ws/
    summary: str


PROFILES: dict[str, Profile] = {
    "2026": Profile("2026", False, "today's Binance: user data over the WebSocket API only; listenKey endpoints answer 410 Gone"),
    "2025": Profile("2025", True, "before 2026-02-20: the listenKey endpoints and streams as well as the WebSocket API"),
}
DEFAULT = "2026"


def get(name: str) -> Profile:
    return PROFILES[name]


def help_text() -> str:
    return "; ".join(f"{p.name}: {p.summary}" for p in PROFILES.values()) + f" (default {DEFAULT})"


def for_nautilus(version: str) -> str:
    """The profile a NautilusTrader of VERSION needs (runs.versions()["nautilus_trader"]): below 1.223 it
    opens its user data stream with a listenKey (2025), from 1.223 over the WebSocket API (2026)."""
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            return DEFAULT  # "not installed" or unparseable: today's Binance
        parts.append(int(digits))
    return "2025" if tuple(parts) < FIRST_WS_API_NAUTILUS else "2026"


def retired(profile: Profile, path: str) -> tuple[int, dict[str, Any]] | None:
    """(status, body) for a REST path this profile no longer serves, else None."""
    if path == LISTEN_KEY_PATH and not profile.listen_key:
        return 410, {"code": -1000, "msg": "This endpoint has been retired (2026-02-20); subscribe to the User Data Stream "
                                           "over the WebSocket API (userDataStream.subscribe)."}
    return None
