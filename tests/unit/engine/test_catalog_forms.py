"""engine/catalog_forms.py: the installed release's recorded forms are what that release gives (every engine profile)."""

from __future__ import annotations

import random

import pytest

from opslab.engine import catalog, catalog_forms, instruments


def test_the_installed_release_is_recorded_and_its_record_is_what_it_gives():
    import nautilus_trader

    assert nautilus_trader.__version__ in catalog_forms.RECORDED, (
        f"nautilus_trader {nautilus_trader.__version__} has no recorded catalog forms: add the line "
        "`python -m opslab.engine.catalog_forms` prints to RECORDED (imports then skip NautilusTrader's import)")
    assert catalog_forms.RECORDED[nautilus_trader.__version__] == catalog_forms.record()


def test_built_in_gives_nautilus_traders_own_definition(monkeypatch):
    recorded = instruments.built_in("test:BTCUSDT")
    monkeypatch.setattr(catalog_forms, "installed", lambda: None)
    assert recorded == instruments.built_in("test:BTCUSDT")


def test_file_name_is_nautilus_traders():
    from nautilus_trader.persistence.catalog.parquet import _timestamps_to_filename

    rng = random.Random(1)
    stamps = [0, 1, 999_999_999, 1_000_000_000, 1_709_251_260_000_000_000, 9_223_372_036_854_775_807 // 2]
    stamps += [rng.randrange(0, 9_000_000_000_000_000_000) for _ in range(500)]
    for a, b in zip(stamps, reversed(stamps), strict=True):
        assert catalog.file_name(a, b) == _timestamps_to_filename(a, b)


@pytest.mark.parametrize("version", [None, "0.0.1"])
def test_an_unrecorded_release_takes_nautilus_traders_path(monkeypatch, version):
    import importlib.metadata

    def fake(name):
        if version is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return version

    from opslab.engine import versions

    catalog_forms.installed.cache_clear()
    versions.release.cache_clear()
    monkeypatch.setattr(importlib.metadata, "version", fake)
    try:
        assert catalog_forms.installed() is None
        assert instruments.built_in("test:BTCUSDT") == instruments.built_in("test:BTCUSDT")  # NautilusTrader's own definition
    finally:
        catalog_forms.installed.cache_clear()
        versions.release.cache_clear()
