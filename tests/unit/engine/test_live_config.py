"""The node's NautilusTrader config from the spec: continuous reconciliation and its start-up delay reach
LiveExecEngineConfig as written, and stay NautilusTrader's own defaults when the spec leaves them out."""

from __future__ import annotations

from pathlib import Path

import pytest

from opslab.engine import live


def _settings(**node) -> live.Settings:
    return live.Settings(spec={}, run_spec=None, run_id="r", log_dir=Path("/nonexistent"), api_key="k", api_secret="s",
                         http_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:2", duration_s=10, bars=None, heartbeat_s=1.0,
                         connect_timeout_s=5, **node)


@pytest.mark.parametrize("node, interval, open_only, delay", [
    ({}, None, True, 10.0),
    ({"open_check_s": 1.0}, 1.0, False, 10.0),
    ({"open_check_s": 2.5, "open_check_delay_s": 20}, 2.5, False, 20.0),
    ({"open_check_delay_s": 20}, None, True, 10.0),  # the delay alone changes nothing: it is the continuous check's
])
def test_continuous_reconciliation_reaches_the_exec_engine_config(node, interval, open_only, delay):
    engine = live._config(_settings(**node)).exec_engine
    assert (engine.open_check_interval_secs, engine.open_check_open_only, engine.reconciliation_startup_delay_secs) == (interval, open_only, delay)


def test_no_cache_database_keeps_the_cache_in_memory():
    assert live._config(_settings()).cache is None


@pytest.mark.parametrize("flush, buffer", [(False, None), (True, 100)])
def test_the_cache_database_reaches_nautilus_cache_config(flush, buffer):
    db = {"host": "127.0.0.1", "port": 6390, "flush_on_start": flush, "buffer_interval_ms": buffer}
    cache = live._config(_settings(cache_db=db)).cache
    assert (cache.database.type, cache.database.host, cache.database.port) == ("redis", "127.0.0.1", 6390)
    assert (cache.flush_on_start, cache.buffer_interval_ms, cache.encoding) == (flush, buffer, "msgpack")
    # a restart has a new instance id: keys without it, so the restarted node finds what the killed one wrote
    assert (cache.use_trader_prefix, cache.use_instance_id) == (True, False)
