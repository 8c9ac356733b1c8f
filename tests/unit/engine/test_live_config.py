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
