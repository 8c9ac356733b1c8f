"""The lab's one venue, Binance-compatible: Binance Spot and USD-M Futures REST + WebSocket on 127.0.0.1, and its one client.

faults.py    the fault switch: the fault registry (FAULT_NAMES), parsing, what a fault does to a request
exchange.py  the account: dataset replay (trades + a book), deterministic matching, balances,
             persisted state (artifacts/venue/<name>/state.json); on demand without a spec
auth.py      Binance request signing rules (API key header, HMAC-SHA256, timestamp + recvWindow)
rest.py      the REST surface (one route table) the NautilusTrader spot clients and the drills call,
             and /admin/faults
streams.py   the WebSocket surface (market streams, user data stream), built on `websockets`
futures.py   Binance USD-M Futures beside Spot: a perpetual BTCUSDT priced from Spot's replay, one-way positions, a USDT
             wallet; futures_contract.py the listing and the position math, futures_rest.py its /fapi routes (served by
             rest.Handler), futures_streams.py its streams (own port)
stats.py     the venue's counters and artifacts/venue/<name>/stats.json
server.py    BinanceVenue: one object that starts and stops all of the above, for a spec (a node's
             account) or without one (the lab's built-in dataset: the probe and the lab drills)
client.py    VenueClient: public GETs with bounded retries, signed GETs, the venue's record of the
             account; DepthTracker (sequence gaps, a stale book)

Imports go one way: server imports rest and streams, which take the venue by duck type and never
import server; faults imports nothing of the venue.

It is a fake only because an exchange cannot exist here; the protocol it speaks is Binance's
(shapes checked against nautilus_trader 1.221.0's msgspec decoders).
"""
