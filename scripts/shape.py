#!/usr/bin/env python3
"""Measure the package's shape: rooms, floors, arrows, imports back up, import circles, rooms in a loop,
and (with --trace) the calls from `tc run backtest`'s handler to the artifacts.

A room is a top-level subpackage (its modules and subpackages together) or a top-level module. Every import counts, also the lazy
ones inside functions (they are dependencies too). Floors come from the room graph with its cycles cut
at a small set of arrows (greedy, Eades-Lin-Smyth): an arrow cut that way is an import "back up a
layer"; a room's floor is the longest chain of imports below it. Import circles are counted between
modules, loops between rooms. Calls are counted between rooms (distinct caller -> callee function pairs
whose rooms differ, from the moment the command's handler is entered until it returns); one runs back up
when the called room sits on a higher floor than the caller's. Measured the same way before and after a
change, so the figures compare.

    python scripts/shape.py [--json] [--trace SPEC]
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import sys
import tempfile
from pathlib import Path

PACKAGE = "opslab"
# The ground floor every room may call (the file layer, the registry, the clock, errors, ...): calls into it are
# counted apart ("calls_into_upper_rooms" leaves them out), named as docs/architecture.md names them.
GROUND = ("errors", "result", "clock", "fs", "contracts", "escaping", "digests", "journal", "spec", "strategy_source",
          "scenarios", "urls", "httpserver", "safety", "market")


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its body)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                wanted = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            else:
                continue
            if isinstance(node, ast.ImportFrom) and any(w in mods for w in wanted[1:]):
                # `from pkg import module` depends on that module (as import-linter's grimp counts it); the
                # package itself only when a name imported from it is not a module.
                wanted = [w for w in wanted[1:] if w in mods] + ([target] if not all(w in mods for w in wanted[1:]) else [])
            for item in wanted:
                if item in mods and item != name:
                    edges[name].add(item)
    return edges


def room_of(module: str, mods: dict[str, Path]) -> str:
    """The top-level subpackage a module belongs to, or the top-level module itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def sccs(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def feedback_arcs(nodes: list[str], edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    """A small set of arrows whose removal leaves no cycle (Eades-Lin-Smyth ordering)."""
    left = set(nodes)
    out = {v: set(edges[v]) & left for v in nodes}
    inn = {v: {u for u in nodes if v in out[u]} for v in nodes}
    head: list[str] = []
    tail: list[str] = []
    while left:
        changed = True
        while changed:
            changed = False
            for v in sorted(left):
                if not (out[v] & left):
                    tail.insert(0, v)
                    left.discard(v)
                    changed = True
                elif not (inn[v] & left):
                    head.append(v)
                    left.discard(v)
                    changed = True
        if left:
            v = max(sorted(left), key=lambda x: len(out[x] & left) - len(inn[x] & left))
            head.append(v)
            left.discard(v)
    order = {v: i for i, v in enumerate(head + tail)}  # importers first
    return {(a, b) for a in nodes for b in edges[a] if order[b] < order[a]}


def floors(nodes: list[str], edges: dict[str, set[str]]) -> dict[str, int]:
    memo: dict[str, int] = {}

    def floor(v: str) -> int:
        if v not in memo:
            memo[v] = 0
            memo[v] = 1 + max((floor(w) for w in edges[v]), default=-1)
        return memo[v]

    return {v: floor(v) for v in nodes}


def measure(root: Path) -> dict:
    mods = modules(root)
    edges = imports(mods)
    names = sorted(mods)
    cut = feedback_arcs(names, edges)
    acyclic = {v: {w for w in edges[v] if (v, w) not in cut} for v in names}
    module_floor = floors(names, acyclic)
    rooms = sorted({room_of(m, mods) for m in names})
    room_edges = {r: set() for r in rooms}
    for a in names:
        for b in edges[a]:
            ra, rb = room_of(a, mods), room_of(b, mods)
            if ra != rb:
                room_edges[ra].add(rb)
    room_cut = feedback_arcs(rooms, room_edges)
    room_floor = floors(rooms, {r: {s for s in room_edges[r] if (r, s) not in room_cut} for r in rooms})
    module_loops = [c for c in sccs(names, edges) if len(c) > 1]
    room_loops = [c for c in sccs(rooms, room_edges) if len(c) > 1]
    return {
        "modules": len(names), "rooms": len(rooms), "floors": 1 + max(room_floor.values()),
        "room_arrows": sum(len(v) for v in room_edges.values()),
        "imports_back_up": len(room_cut), "imports_back_up_list": sorted(f"{a} -> {b}" for a, b in room_cut),
        "module_imports_back_up": len(cut),
        "import_circles": len(module_loops), "import_circle_list": module_loops,
        "rooms_in_a_loop": sum(len(c) for c in room_loops), "room_loops": room_loops,
        "_module_floor": module_floor, "_room_floor": room_floor, "_mods": mods,
    }


def trace_backtest(root: Path, spec: str, handler: str, shape: dict) -> dict:
    """Run `tc run backtest --spec SPEC` in-process under a profiler; from the moment the CLI's HANDLER
    function is entered until it returns, count the distinct calls from one room into another (caller -> callee
    function pairs; comprehensions, lambdas, module and class bodies are attributed to the function around them), and
    those that run back up a floor."""
    floor = shape["_room_floor"]
    mods = shape["_mods"]
    files = {str(p.resolve()): m for m, p in shape["_mods"].items()}
    pairs: set[tuple[str, str]] = set()
    up: set[tuple[str, str]] = set()
    upper: set[tuple[str, str]] = set()
    ground = {f"{PACKAGE}.{name}" for name in GROUND}
    active: list[object] = []

    def fn(frame) -> tuple[str, str] | None:
        module = files.get(frame.f_code.co_filename)
        if module is None or "<" in frame.f_code.co_name or not frame.f_code.co_flags & inspect.CO_OPTIMIZED:
            return None  # comprehensions, lambdas, module and class bodies (a lazy import runs them): not calls
        return room_of(module, mods), f"{module}.{frame.f_code.co_qualname}"

    def profile(frame, event, arg) -> None:
        if event == "return" and active and frame is active[0]:
            active.clear()
        if event != "call":
            return
        callee = fn(frame)
        if callee is None:
            return
        if not active:
            if frame.f_code.co_name == handler:
                active.append(frame)
            return
        back = frame.f_back
        while back is not None and fn(back) is None:
            back = back.f_back  # a call through the standard library or a dependency still counts
        if back is None:
            return
        caller = fn(back)
        if caller[0] == callee[0]:
            return  # a call inside a room is the room's own business
        pair = (caller[1], callee[1])
        pairs.add(pair)
        if callee[0] not in ground:
            upper.add(pair)
        if floor[callee[0]] > floor[caller[0]]:
            up.add(pair)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TC_ARTIFACTS_DIR"] = tmp
        os.environ.setdefault("SOURCE_DATE_EPOCH", "1700000000")
        sys.path.insert(0, str(root.parent))
        cli = __import__(f"{PACKAGE}.cli", fromlist=["main"])
        sys.setprofile(profile)
        try:
            code = cli.main(["run", "backtest", "--spec", spec])
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.setprofile(None)
    return {"exit_code": code, "calls": len(pairs), "calls_back_up": len(up), "calls_back_up_list": sorted(f"{a} -> {b}" for a, b in up),
            "calls_into_upper_rooms": len(upper), "calls_into_upper_rooms_list": sorted(f"{a} -> {b}" for a, b in upper)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent / PACKAGE))
    parser.add_argument("--trace", metavar="SPEC", help="also count the calls of `tc run backtest --spec SPEC`")
    parser.add_argument("--handler", default="run_backtest", help="the CLI function that handles the command (default: run_backtest)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--list", action="store_true", help="also list the arrows back up and the circles")
    args = parser.parse_args()
    root = Path(args.root).resolve()
    shape = measure(root)
    if args.trace:
        shape.update(trace_backtest(root, args.trace, args.handler, shape))
    shown = {k: v for k, v in shape.items() if not k.startswith("_") and (args.list or args.json or not k.endswith("_list"))}
    if args.json:
        print(json.dumps(shown, indent=1, sort_keys=True))
    else:
        for key, value in shown.items():
            if isinstance(value, list):
                print(f"{key}:")
                for item in value:
                    print(f"  {item}")
            else:
                print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
