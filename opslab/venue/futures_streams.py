"""The USD-M Futures WebSocket streams, on their own port (Binance's fstream host): streams.Hub with the futures market.

Market streams (futures_contract.MARKET_STREAMS: aggTrade, trade, markPrice[@1s], kline_1m, bookTicker, depth[@100ms|@250ms|@500ms]
with U/u/pu) on /ws/<stream>, /ws and /stream?streams=..., SUBSCRIBE and the rest as on Spot; the user data stream on a
listen key from POST /fapi/v1/listenKey, named in the path as Spot's were (/ws/<key>, /stream?streams=<key>: NautilusTrader
1.221) or in the query (/ws?listenKey=<key>, /private/ws?listenKey=<key>: 1.231's get_futures_user_stream_url). No
WebSocket API here (Binance's /ws-fapi/v1 signs in with Ed25519 keys only). The bounds, the send queues and the fault switch
are the hub's (streams.py); its counters are its own, so Spot's stats.json counts Spot alone.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opslab.venue import faults as fault_switch
from opslab.venue import futures_contract, streams
from opslab.venue.exchange import USER_STREAM, now_ms

USER_PATHS = ("/ws", "/ws/", "/private/ws", "/private/ws/", "/private")


class FuturesHub(streams.Hub):
    """The futures market streams and listen-key user streams (exchange: a futures.FuturesAccount)."""

    ws_api_path = None

    def streams_of_market(self) -> frozenset[str]:
        return frozenset(futures_contract.MARKET_STREAMS)

    def valid(self, stream: str) -> bool:
        return stream in self.market_streams or self.exchange.has_listen_key(stream)

    def streams_of(self, path: str) -> tuple[bool, list[str]] | None:
        split = urlsplit(path)
        key = parse_qs(split.query).get("listenKey", [""])[0]
        if split.path in USER_PATHS and key:
            return False, [key]
        for prefix in ("/market", "/public"):  # Binance's routed paths (/market/stream?streams=...) name the same streams
            if split.path.startswith(prefix + "/"):
                return streams.parse_path(split.path[len(prefix):] + ("?" + split.query if split.query else ""))
        return streams.parse_path(path)

    def publish(self, stream: str, data: dict[str, Any]) -> None:
        """As the hub publishes, but a market stream nobody subscribed to costs nothing: the futures events ride on every
        Spot print (under Spot's lock), so an unwatched perpetual must not slow Spot's replay down."""
        if stream != USER_STREAM:
            with self.lock:
                watched = any(stream in c.subs for c in self.clients.values())
            if not watched:
                return
        super().publish(stream, data)

    def _end_user_streams(self, record: dict[str, Any]) -> None:
        """user_stream_expiry (the fault switch is the venue's one): the futures user stream ends as Spot's listen-key streams do."""
        keys = self.expire_listen_keys(silent=record["silent"])
        fault_switch.ended(self.switch, record, 0, len(keys))

    def expire_listen_keys(self, silent: bool = False) -> list[str]:
        """Every listen key expires now (as 60 minutes without a keepalive would): listenKeyExpired on each stream that
        carried one (unless SILENT), the stream ends (the connection stays open), a keepalive answers -1125. The keys."""
        keys = self.exchange.expire_listen_keys()
        with self.lock:
            keyed = [(c, key) for c in self.clients.values() if not c.gone for key in sorted(c.subs) if key in keys]
            for client, key in keyed:
                client.subs.discard(key)
        for client, key in [] if silent else keyed:
            raw = json.dumps({"e": "listenKeyExpired", "E": now_ms(), "listenKey": key}, separators=(",", ":"))
            client.offer("text", f'{{"stream":{json.dumps(key)},"data":{raw}}}' if client.combined else raw)
        return keys
