"""RunSpec: load (safe YAML or JSON), validate against schemas/runspec.schema.json, normalize, hash."""

from __future__ import annotations

import copy
import os
import hashlib
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from opslab import fs, market, scenarios
from opslab.contracts import errors_for, load_schema
from opslab.errors import InputError


class RunSpec(NamedTuple):
    """A validated, normalized spec and where it came from."""

    path: Path
    data: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    @property
    def config_hash(self) -> str:
        return config_hash(self.data)

    def resolve(self, relative: str) -> Path:
        """A path named in the spec, relative to the spec file's folder."""
        return (self.path.parent / relative).resolve()


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and anchors/aliases (no alias bombs)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen[key] = True
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _AliasRefusingComposer(_StrictLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not allowed in a RunSpec", event.start_mark
            )
        return super().compose_node(parent, index)


def parse_document(path: Path, what: str = "spec") -> Any:
    """Read PATH and parse it as one safe YAML (or JSON) document; InputError names the file."""
    path = Path(path)
    raw = fs.read_input(path, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise InputError(f"{path}: is empty, expected a {what} mapping")
    try:
        docs = list(yaml.load_all(text, Loader=_AliasRefusingComposer))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "could not determine a constructor" in str(exc):
            problem = "unsupported YAML tag (only plain YAML is accepted; tags such as !!python are refused)"
        raise InputError(f"{path}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise InputError(f"{path}: nested deeper than {fs.MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise InputError(f"{path}: not a value tc accepts ({str(exc).splitlines()[0][:120]})") from None
    if len(docs) != 1:
        raise InputError(f"{path}: holds {len(docs)} YAML documents, expected exactly one")
    fs.check_document(docs[0], str(path))
    return docs[0]


def apply_defaults(schema: dict[str, Any], instance: Any) -> Any:
    """Fill the schema's `default` values into INSTANCE (objects only, recursively)."""
    if isinstance(instance, dict) and "if" in schema:  # a tagged union: then when the kind matches, else otherwise
        want = schema["if"]["properties"]["kind"]["const"]
        return apply_defaults(schema["then"] if instance.get("kind") == want else schema["else"], instance)
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return instance
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            instance[key] = apply_defaults(sub, instance[key])
    return instance


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """The normalized spec: defaults from the schema filled in, the built-in strategy written out in
    its importable form (what the config hash covers, with the source identity added by load)."""
    out = apply_defaults(load_schema("runspec"), copy.deepcopy(data))
    if "strategy_path" not in out["strategy"]:
        from opslab.strategy_source import builtin_block

        out["strategy"].update(builtin_block(out["scenario"]["name"]))
    out["strategy"].setdefault("config", {})
    return out


def config_hash(normalized: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of a normalized spec, as sha256:<hex>."""
    return "sha256:" + hashlib.sha256(fs.canonical_json(normalized)).hexdigest()


def engine_config_hash(config: str, nautilus_trader: str) -> str:
    """The config hash qualified by the engine that ran it: sha256 over `<config hash> nautilus_trader==<version>`,
    as sha256:<hex>. One spec run on two engine releases keeps its config_hash and differs here."""
    return "sha256:" + hashlib.sha256(f"{config} nautilus_trader=={nautilus_trader}".encode()).hexdigest()


def validation_errors(data: Any, source: str) -> list[str]:
    """Every problem of DATA as a RunSpec, one line each (file, JSON pointer, expectation)."""
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else type(data).__name__
        return [f"{source}: /: expected a mapping of RunSpec fields, got a {kind}"]
    lines = errors_for("runspec", data, source)
    if lines:
        return lines
    # Checks a JSON Schema cannot express, kept next to it. The scenario versions are generated into
    # the schema from the scenario registry (scripts/gen_runspec_scenarios.py), so no engine import.
    versions = load_schema("runspec")["$defs"]["scenario_versions"]["default"]
    name, version = data["scenario"]["name"], data["scenario"]["version"]
    if version not in versions[name]:
        lines.append(f"{source}: /scenario/version: {name} has no version {version!r}; known: {', '.join(versions[name])}")
    if data["dataset"]["kind"] != "imported" and data["instrument"] != market.SYMBOL:
        lines.append(f"{source}: /instrument: {data['instrument']} needs an imported dataset (a synthetic one is {market.SYMBOL}): "
                     f"`tc data import --csv FILE --instrument-file {data['instrument'].lower()}-binance-spot.json --id ID` (its "
                     "NautilusTrader definition; fixtures/instruments/ has ETHUSDT's and SOLUSDT's), then dataset: {kind: imported, id: ID}")
    if data["engine"]["kind"] == "node" and data["instrument"] not in market.SYMBOLS:
        lines.append(f"{source}: /instrument: a node trades what the lab's venue lists ({', '.join(market.SYMBOLS)}), not "
                     f"{data['instrument']}; a backtest or a paper run trades it (engine.kind backtest or paper)")
    if market.account_type(data) == market.USDT_FUTURES and data["instrument"] != market.SYMBOL:
        lines.append(f"{source}: /engine/node/account_type: usdt_futures trades the venue's one perpetual, {market.SYMBOL}-PERP; "
                     f"expected instrument {market.SYMBOL}, got {data['instrument']}")
    needs = scenarios.get(name).account_type
    if needs is not None and market.account_type(data) != needs:
        lines.append(f"{source}: /scenario/name: {name} trades {needs} (it goes short); expected engine.kind node with "
                     f"engine.node.account_type {needs}")
    return lines + _connectivity_block_problems(data, source)


def _connectivity_block_problems(data: dict[str, Any], source: str) -> list[str]:
    """Checks of the connectivity_readiness block that JSON Schema cannot express (one line each)."""
    block = data.get("connectivity_readiness")
    if not block:
        return []
    lines = []
    if block["venue"] != data["venue"]:
        lines.append(f"{source}: /connectivity_readiness/venue: {block['venue']!r} must equal the spec's venue {data['venue']!r}")
    roles: dict[str, str] = {}
    for i, item in enumerate(block["placeholders"]):
        name, role = item["env"], item["role"]
        if name in roles:
            what = "used twice" if roles[name] == role else f"used for two roles ({roles[name]} and {role})"
            lines.append(f"{source}: /connectivity_readiness/placeholders/{i}/env: {name} is {what}")
        roles.setdefault(name, role)
    return lines


def load(path: Path | str) -> RunSpec:
    """Load, validate and normalize a RunSpec; InputError with one line per problem."""
    path = Path(path)
    data = parse_document(path)
    lines = validation_errors(data, str(path))
    if lines:
        raise InputError("\n".join(lines))
    spec = RunSpec(path=path, data=normalize(data))
    _add_source_identity(spec)
    return spec


def _add_source_identity(spec: RunSpec) -> None:
    """strategy.source: module + sha256 of the files defining the strategy, located without importing them."""
    from opslab.strategy_source import identity

    block = spec.data["strategy"]
    search = spec.resolve(block["search_path"]) if block.get("search_path") else None
    if search is not None and not search.is_dir():
        raise InputError(f"{spec.path}: /strategy/search_path: {search} is not a folder")
    try:
        block["source"] = identity(block, search)
    except InputError as exc:
        raise InputError(f"{spec.path}: /strategy/strategy_path: {exc}") from None


def credentials(spec: RunSpec) -> tuple[str, str]:  # the credentials rule: the node run and the venue read it here
    """(api_key, api_secret) from the env names the spec's connectivity_readiness block declares."""
    block = spec.data.get("connectivity_readiness")
    if not block:
        raise InputError(f"{spec.path}: /connectivity_readiness: not set; the node and the venue read the API key and secret "
                         "from the environment variables its placeholders name")
    names = {p["role"]: p["env"] for p in block["placeholders"]}
    values = []
    for role in ("api_key", "api_secret"):
        if role not in names:
            raise InputError(f"{spec.path}: /connectivity_readiness/placeholders: no {role} placeholder")
        value = os.environ.get(names[role], "")
        if not value:
            raise InputError(f"{names[role]}: not set or empty (the {role} named by {spec.path} /connectivity_readiness); "
                             "set it in the environment, see `tc connectivity readiness`")
        values.append(value)
    return values[0], values[1]
