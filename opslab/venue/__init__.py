"""The lab's Binance-compatible venue: Binance Spot REST + WebSocket on 127.0.0.1.

exchange.py  the account: dataset replay (trades + a book), deterministic matching, balances,
             persisted state (artifacts/venue/<name>/state.json)
auth.py      Binance request signing rules (API key header, HMAC-SHA256, timestamp + recvWindow)
rest.py      the REST surface the NautilusTrader spot data and execution clients call
streams.py   the WebSocket surface (market streams, user data stream), built on `websockets`
server.py    BinanceVenue: one object that starts and stops all of the above

It is a fake only because an exchange cannot exist here; the protocol it speaks is Binance's
(shapes checked against nautilus_trader 1.221.0's msgspec decoders).
"""
