"""tests/cli/: acceptance tests that run `tc` in a subprocess (exit codes, messages, files written).

Every test collected here is marked `cli`, so `make test-fast` (-m "not cli") leaves them out and
`make test` runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.cli)
