"""`tc run node` with a cache database (spec engine.node.cache_database, --cache-db-url): bad input is exit 2,
one line naming the file or option and the field, before anything of the run is written (no venue needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import SPECS, run_tc

NODE = SPECS / "node-demo.yaml"
CREDS = {"TC_BINANCE_API_KEY": "k-cache", "TC_BINANCE_API_SECRET": "s-cache"}


def _spec(tmp_path: Path, cache_database) -> Path:
    data = yaml.safe_load(NODE.read_text())
    if cache_database is not None:
        data["engine"]["node"]["cache_database"] = cache_database
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _one_line_exit_2(done, root: Path, needle: str) -> None:
    assert done.code == 2, done.err
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in done.err, lines
    assert not (root / "runs").exists()


def test_the_field_validates(tmp_path: Path):
    ok = run_tc("spec", "validate", str(_spec(tmp_path, {"flush_on_start": True, "buffer_interval_ms": 100})), artifacts=tmp_path / "a")
    assert ok.code == 0, ok.err


@pytest.mark.parametrize("block, needle", [
    ({"flush_on_start": "yes"}, "/engine/node/cache_database/flush_on_start"),
    ({"buffer_interval_ms": 5000}, "/engine/node/cache_database/buffer_interval_ms"),
    ({"host": "10.0.0.1"}, "/engine/node/cache_database"),  # where Redis listens is not the spec's: no host field at all
])
def test_a_bad_field_is_exit_2_naming_it(tmp_path: Path, block, needle):
    done = run_tc("spec", "validate", str(_spec(tmp_path, block)), artifacts=tmp_path / "a")
    assert done.code == 2 and needle in done.err, done.err


@pytest.mark.parametrize("url", ["redis://10.0.0.1:6379", "redis://localhost:6379", "redis://127.0.0.1:6379/0"])
def test_a_cache_db_url_off_loopback_is_refused(tmp_path: Path, url: str):
    root = tmp_path / "artifacts"
    done = run_tc("run", "node", "--spec", str(_spec(tmp_path, {})), "--cache-db-url", url, artifacts=root, timeout=60, **CREDS)
    _one_line_exit_2(done, root, f"--cache-db-url: {url!r}: expected redis://127.0.0.1:PORT")


def test_a_cache_db_url_without_a_cache_database_is_refused(tmp_path: Path):
    root = tmp_path / "artifacts"
    done = run_tc("run", "node", "--spec", str(_spec(tmp_path, None)), "--cache-db-url", "redis://127.0.0.1:6390", artifacts=root,
                  timeout=60, **CREDS)
    _one_line_exit_2(done, root, "/engine/node/cache_database is not set")


def test_a_cache_db_url_where_no_redis_answers_is_refused(tmp_path: Path):
    from venue_spec import closed_port

    root = tmp_path / "artifacts"
    with closed_port() as port:
        done = run_tc("run", "node", "--spec", str(_spec(tmp_path, {})), "--cache-db-url", f"redis://127.0.0.1:{port}", artifacts=root,
                      timeout=60, **CREDS)
    _one_line_exit_2(done, root, f"--cache-db-url: redis://127.0.0.1:{port}: no Redis answers PING (ConnectionRefusedError")
