"""A strategy's source identity, found WITHOUT importing (or running) it: module path + file sha256.

`tc spec validate` must stay fast and must not execute the code a spec names, so the files are
located the way the import system would find them (the spec's search_path first, then the Python
path; a package already imported is searched through its own __path__) and hashed. The engine
imports the code later (opslab/engine/strategies.py) and checks it came from the same file.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from opslab import fs
from opslab.scenarios import get as get_scenario
from opslab.errors import InputError

MAX_SOURCE_BYTES = 16 * 1024 * 1024


def builtin_block(scenario: str) -> dict[str, Any]:
    """The importable form of a built-in scenario's strategy (what normalization writes out)."""
    s = get_scenario(scenario)
    return {"strategy_path": s.strategy_path, "config_path": s.config_path, "config": dict(s.config)}


def search_dirs(search_path: Path | None) -> list[Path]:
    """Where a top-level module is looked for: the spec's folder first, then sys.path (as import does)."""
    dirs = [search_path] if search_path else []
    for entry in sys.path:
        path = Path(entry or ".")
        if path.is_dir():
            dirs.append(path)
    return dirs


def locate(module: str, search_path: Path | None) -> Path:
    """The file that defines MODULE; InputError naming the module when there is none."""
    parts = module.split(".")
    top = sys.modules.get(parts[0])
    bases = [Path(p) for p in getattr(top, "__path__", [])] if top is not None and len(parts) > 1 else None
    if bases is not None:
        rest = parts[1:]
    else:
        bases, rest = search_dirs(search_path), parts
    for base in bases:
        folder = base.joinpath(*rest[:-1])
        for candidate in (folder / f"{rest[-1]}.py", folder / rest[-1] / "__init__.py"):
            if candidate.is_file():
                return candidate.resolve()
    where = f"{search_path} or the Python path" if search_path else "the Python path"
    raise InputError(f"module {module!r} not found in {where}")


def identity(block: dict[str, Any], search_path: Path | None) -> list[dict[str, str]]:
    """[{module, sha256}] of the files defining the strategy and its config class (one entry when the same)."""
    seen: dict[str, str] = {}
    for key in ("strategy_path", "config_path"):
        module = block[key].split(":", 1)[0]
        if module in seen:
            continue
        path = locate(module, search_path)
        raw = fs.read_input(path, "strategy module", limit=MAX_SOURCE_BYTES)
        seen[module] = hashlib.sha256(raw).hexdigest()
    return [{"module": m, "sha256": h} for m, h in seen.items()]
