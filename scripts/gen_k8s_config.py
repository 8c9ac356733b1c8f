"""Copy the service configuration into the Kubernetes base (deploy/k8s/base/config/), issue 30.

Usage: python scripts/gen_k8s_config.py [--check] [--root CHECKOUT]

prometheus/, alertmanager/ and grafana/ at the top of the checkout are the source of truth (compose,
promtool and amtool use them). Kustomize's default load restrictor refuses files outside a
kustomization's folder, so the base's configMapGenerator reads byte-identical copies under
deploy/k8s/base/config/ (same paths below it as at the top of the checkout), which this script
writes, together with that folder's README.md. Copies whose source is gone are removed.

--check writes nothing: it prints one line per missing, stale or orphaned file and exits 1, or
exits 0 when every copy is current (`make check` runs it). --root points at another checkout
(the tests use a temporary one).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = Path("deploy") / "k8s" / "base" / "config"
# What the base's ConfigMaps are generated from, relative to the top of the checkout.
SOURCES = (
    "prometheus/prometheus.yml",
    "prometheus/rules/*.yml",
    "prometheus/targets/*.json",
    "prometheus/alertmanagers/*.json",
    "alertmanager/alertmanager.yml",
    "grafana/provisioning/datasources/*.yml",
    "grafana/provisioning/dashboards/*.yml",
    "grafana/dashboards/*.json",
)
README = "README.md"
COMMAND = "python scripts/gen_k8s_config.py"


def readme(sources: list[str]) -> bytes:
    listing = "".join(f"- `{src}`\n" for src in sources)
    return (
        "# Generated: do not edit\n\n"
        f"Every file in this folder is written by `{COMMAND}` (issue 30): a\n"
        "byte-identical copy of the file at the same path at the top of the checkout, which stays the\n"
        f"source of truth. Edit that file, then run `{COMMAND}`; `make check` fails\n"
        "while a copy is stale.\n\n"
        "The copies exist because Kustomize's default load restrictor refuses files outside a\n"
        "kustomization's folder: with them every overlay builds with plain `kubectl kustomize` and\n"
        "`kubectl apply -k`, Argo CD and Flux need no build options. The files copied:\n\n"
        f"{listing}"
    ).encode("utf-8")


def wanted(root: Path) -> dict[str, bytes]:
    """Path below the config folder (POSIX) -> the bytes it must hold."""
    sources = sorted({p.relative_to(root).as_posix() for pattern in SOURCES for p in root.glob(pattern) if p.is_file()})
    missing = [pattern for pattern in SOURCES if not any(root.glob(pattern))]
    if missing:
        raise SystemExit(f"gen_k8s_config: no source file matches {', '.join(missing)} in {root}")
    files = {src: (root / src).read_bytes() for src in sources}
    files[README] = readme(sources)
    return files


def source(name: str) -> str:
    return "the folder's generated note" if name == README else f"a copy of {name}"


def present(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def main(argv: list[str]) -> int:
    check = "--check" in argv
    root = Path(argv[argv.index("--root") + 1]).resolve() if "--root" in argv else REPO
    folder = root / CONFIG
    files = wanted(root)
    have = present(folder)
    missing = [name for name in files if name not in have]
    stale = [name for name in files if name in have and (folder / name).read_bytes() != files[name]]
    orphans = sorted(have - set(files))
    if check:
        for name in missing:
            print(f"{CONFIG / name}: missing ({source(name)}): run {COMMAND}", file=sys.stderr)
        for name in stale:
            print(f"{CONFIG / name}: stale ({source(name)}): run {COMMAND}", file=sys.stderr)
        for name in orphans:
            print(f"{CONFIG / name}: not generated (no source {name}): run {COMMAND}", file=sys.stderr)
        if missing or stale or orphans:
            return 1
        print(f"      ok  {CONFIG}/ holds current copies of prometheus/, alertmanager/, grafana/ ({len(files) - 1} files)")
        return 0
    for name in [*missing, *stale]:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(files[name])
        tmp.replace(path)
        print(f" changed  {CONFIG / name}")
    for name in orphans:
        (folder / name).unlink()
        print(f" removed  {CONFIG / name}")
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    print(f"      ok  {CONFIG}/: {len(files) - 1} copies current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
