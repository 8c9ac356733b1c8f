"""Strategy resolution: the one function every engine (backtest, paper, node) calls to get the strategy.

The spec's strategy block is NautilusTrader's ImportableStrategyConfig (strategy_path, config_path,
config); the built-in scenario is written out in the same form by normalization. Resolution imports
the code (it runs with the user's rights: that is what naming a strategy means), checks it is a
Strategy with a StrategyConfig, parses the config, and checks the imported file is the one whose
sha256 the config hash covers. Every problem is an InputError (exit 2) naming the module and the
reason, raised before a run writes anything: the run commands call check() before runs.open().
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path
from typing import Any

from opslab import fs, market
from opslab.errors import InputError
from opslab.spec import RunSpec
from opslab.strategy_source import MAX_SOURCE_BYTES

# Values the lab supplies when the config class declares the field and the spec's config leaves it out.


def _search_path(spec: RunSpec) -> Path | None:
    rel = spec.data["strategy"].get("search_path")
    return spec.resolve(rel) if rel else None


def _import(spec: RunSpec, key: str) -> type:
    """The class named by strategy.<KEY> ("package.module:Class"), imported; InputError naming it."""
    path = spec.data["strategy"][key]
    module_name, _, attr = path.partition(":")
    where = f"{spec.path}: /strategy/{key}: {path}"
    search = _search_path(spec)
    if search is not None and str(search) not in sys.path:
        sys.path.insert(0, str(search))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may raise anything while importing
        raise InputError(f"{where}: importing module {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise InputError(f"{where}: module {module_name!r} has no class {attr!r}")
    _check_source(spec, module_name, module, where)
    return cls


def _check_source(spec: RunSpec, module_name: str, module: Any, where: str) -> None:
    """The imported file must be the one the spec's source identity (and so its config hash) covers."""
    expected = {s["module"]: s["sha256"] for s in spec.data["strategy"].get("source", [])}.get(module_name)
    file = getattr(module, "__file__", None)
    if expected is None or file is None:
        raise InputError(f"{where}: module {module_name!r} has no source identity (load the spec with opslab.spec.load)")
    actual = hashlib.sha256(fs.read_input(file, "strategy module", limit=MAX_SOURCE_BYTES)).hexdigest()
    if actual != expected:
        raise InputError(f"{where}: module {module_name!r} was imported from {file}, whose sha256 differs from the file "
                         "the spec's config hash covers (changed since the spec was loaded, or shadowed on the Python path)")


def importable(spec: RunSpec, total_bars: int, bar_type: str | None = None) -> Any:
    """NautilusTrader's ImportableStrategyConfig for SPEC, with the lab's fields filled in (BAR_TYPE: the dataset's, else
    the instrument's 1-minute bars); InputError on any problem."""
    from nautilus_trader.config import ImportableStrategyConfig, StrategyConfig
    from nautilus_trader.trading.strategy import Strategy

    strategy_cls = _import(spec, "strategy_path")
    config_cls = _import(spec, "config_path")
    block = spec.data["strategy"]
    if not issubclass(strategy_cls, Strategy):
        raise InputError(f"{spec.path}: /strategy/strategy_path: {block['strategy_path']} is not a NautilusTrader Strategy subclass")
    if not issubclass(config_cls, StrategyConfig):
        raise InputError(f"{spec.path}: /strategy/config_path: {block['config_path']} is not a NautilusTrader StrategyConfig subclass")
    instrument_id = market.instrument_id(spec.data)
    lab = {"instrument_id": instrument_id, "bar_type": bar_type or market.bar_type(instrument_id), "total_bars": total_bars}
    fields = set(getattr(config_cls, "__struct_fields__", ()))
    unknown = sorted(set(block["config"]) - fields)
    if unknown:  # msgspec would drop them silently: a typo must not run with the default instead
        raise InputError(f"{spec.path}: /strategy/config: not a valid {block['config_path']}: unknown field(s) {', '.join(unknown)}; "
                         f"it has {', '.join(sorted(fields))}")
    config = {k: v for k, v in lab.items() if k in fields and k not in block["config"]}
    config.update(block["config"])
    try:
        config_cls.parse(_json(config))
    except Exception as exc:  # msgspec.ValidationError and friends: the reason is the message
        raise InputError(f"{spec.path}: /strategy/config: not a valid {block['config_path']}: {exc}") from None
    return ImportableStrategyConfig(strategy_path=block["strategy_path"], config_path=block["config_path"], config=config)


def _json(config: dict[str, Any]) -> bytes:
    import json

    return json.dumps(config).encode()


def check(spec: RunSpec) -> None:
    """Import and configure the spec's strategy without running it: InputError (exit 2) on any problem."""
    create(spec, total_bars=1)


def create(spec: RunSpec, total_bars: int, bar_type: str | None = None) -> Any:
    """The strategy instance for SPEC: NautilusTrader's StrategyFactory.create, with one workaround.

    NautilusTrader 1.221's StrategyConfig.parse turns `strategy_id` into a StrategyId, which
    Strategy.__init__ then refuses (it expects the str); the parsed config gets the str back.
    """
    import msgspec
    from nautilus_trader.common.config import resolve_config_path, resolve_path
    from nautilus_trader.model.identifiers import StrategyId

    config = importable(spec, total_bars, bar_type)
    try:
        strategy_cls = resolve_path(config.strategy_path)
        parsed = resolve_config_path(config.config_path).parse(_json(config.config))
        if isinstance(parsed.strategy_id, StrategyId):
            parsed = msgspec.structs.replace(parsed, strategy_id=parsed.strategy_id.value)
        return strategy_cls(config=parsed)
    except Exception as exc:  # the user's __init__ may raise anything
        raise InputError(f"{spec.path}: /strategy/strategy_path: {config.strategy_path}: creating the strategy failed: "
                         f"{type(exc).__name__}: {exc}") from None
