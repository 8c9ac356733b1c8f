"""The dataset a spec names, resolved once per operation: prepared or checked intact, its quality gate,
and the catalog and instrument handed to the engine.

An operation calls `converge_for_spec` before it opens the run and hands the Result to
`runs.open(spec, dataset=...)`: the run object itself imports no dataset code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opslab import contracts, digests, fs
from opslab.datasets import quality, store
from opslab.datasets.imports import quality_path
from opslab.errors import CheckFailed, InputError
from opslab.result import Result


def dataset_id_for_spec(spec_data: dict[str, Any]) -> str:
    """The dataset id a spec names (imported) or derives (synthetic)."""
    block = spec_data["dataset"]
    if block["kind"] == "imported":
        return block["id"]
    return store.DatasetParams.from_spec(spec_data).dataset_id


def converge_for_spec(spec_data: dict[str, Any], check: bool = False) -> Result:
    """The spec's dataset: a synthetic one is prepared (store.prepare); an imported one must exist intact."""
    if spec_data["dataset"]["kind"] != "imported":
        return store.prepare(store.DatasetParams.from_spec(spec_data), check=check)
    dataset_id = spec_data["dataset"]["id"]
    folder = store.dataset_dir(dataset_id)
    if not (fs.root().is_dir() and fs.exists(store.manifest_path(folder))):
        raise InputError(f"dataset {dataset_id}: not found under {store.datasets_dir()}; run `tc data import --csv FILE --id {dataset_id}`")
    manifest = store.check_intact(folder)
    if manifest["kind"] != "imported":
        raise InputError(f"dataset {dataset_id}: is a {manifest['kind']} dataset, the spec says imported")
    if manifest["instrument"] != spec_data["instrument"]:
        raise InputError(f"dataset {dataset_id}: holds {manifest['instrument']} bars, the spec trades {spec_data['instrument']} "
                         "(/instrument must be the dataset's)")
    return Result("ok", f"dataset {dataset_id} is intact ({manifest['rows']} bars)", [str(folder)], {"manifest": manifest})


def quality_problems(folder: Path, manifest: dict[str, Any], label: str) -> list[str]:
    """What is wrong with a dataset's quality record: schema, seal, or missing for an imported dataset (the import
    writes one; a synthetic dataset has one only after `tc data check`). Empty when it verifies."""
    path = quality_path(folder)
    try:
        doc = fs.read_json(path)
    except FileNotFoundError:
        return [f"{label}: missing (an imported dataset's quality record was deleted)"] if manifest["kind"] == "imported" else []
    except (OSError, InputError) as exc:
        return [f"{label}: not readable JSON ({getattr(exc, 'strerror', None) or exc})"]
    return contracts.errors_for("dataset_quality", doc, label) or digests.stamp_problems(doc, label)


def quality_gate(spec: Any) -> None:
    """CheckFailed (exit 4) when the spec's dataset has a failed quality artifact the spec does not accept;
    InputError (exit 2) when its quality artifact does not verify (schema or seal: edited by hand).

    Called by the run commands before anything of the run is written. A quality artifact for other
    bytes (an old fingerprint) is ignored here: the dataset's intact check speaks for those.
    """
    dataset_id = dataset_id_for_spec(spec.data)
    folder = store.dataset_dir(dataset_id)
    if not fs.root().is_dir():
        return
    path = quality_path(folder)
    if not fs.exists(store.manifest_path(folder)):
        return
    manifest = store.load_manifest(folder)
    problems = quality_problems(folder, manifest, str(path))
    if problems:  # an edited or deleted record ("passed": true by hand) must not open the gate
        raise InputError(f"{problems[0]}; the quality record does not verify: run `tc data check {dataset_id}` to check the data again")
    if not fs.exists(path):
        return
    doc = fs.read_json(path)
    if not isinstance(doc, dict) or doc.get("fingerprint") != manifest["fingerprint"] or doc.get("passed", False):
        return
    failed = doc.get("failed_checks", [])
    fatal = [name for name in failed if name in quality.ENGINE_FATAL]
    accepted = spec.data["safety"].get("accept_failed_data_quality", False)
    if accepted and not fatal:
        return
    why = (f"{', '.join(fatal)} cannot be accepted (NautilusTrader refuses such bars)" if accepted else
           "set safety.accept_failed_data_quality: true in the spec to run on it anyway")
    raise CheckFailed(f"dataset {dataset_id}: quality failed ({', '.join(failed)}; {path}); {why}")


def dataset_catalog(manifest: dict[str, Any]) -> tuple[Path, Any]:
    """(catalog folder, instrument) of a dataset the run checked intact (catalog and instrument.json
    against the manifest, no links). Bars come through the catalog's own reader (engine/catalog.py);
    the instrument from instrument.json, the same definition the catalog holds, by NautilusTrader's
    from_dict: reading it from the catalog loads pyarrow's dataset layer, 9 MB for one row."""
    from opslab.engine import instruments  # NautilusTrader, only when a run is about to trade

    entry = manifest["catalog"]
    folder = store.dataset_dir(manifest["dataset_id"])
    if entry.get("refused"):
        raise store.DatasetError(f"dataset {manifest['dataset_id']}: has no catalog to run on: {entry['refused']}")
    path = store.instrument_path(folder)
    return store.catalog_dir(folder), instruments.build(fs.read_json(path, instruments.MAX_BYTES), str(path))
