"""Foundation benchmarks: CLI start-up vs a Nautilus import, fingerprint vs openssl on 500 MB.

Targets (reported, not asserted): `tc spec validate` at most 0.12x of `import
nautilus_trader.backtest.engine`; `tc data fingerprint` within 1.25x of `openssl dgst -sha256`
and peak RSS under 128 MB.
"""

from __future__ import annotations

import os
import shutil
import sys

from harness import REPO, WORK, compare, installed_env, skipped

PY = sys.executable
SIZE_MB = int(os.environ.get("TC_BENCH_FINGERPRINT_MB", "500"))


def main() -> None:
    WORK.mkdir(exist_ok=True)
    env = installed_env(TC_ARTIFACTS_DIR=str(WORK / "artifacts"))
    compare("tc spec validate vs import nautilus_trader.backtest.engine",
            [PY, "-m", "opslab", "spec", "validate", str(REPO / "fixtures/specs/demo.yaml")],
            [PY, "-c", "import nautilus_trader.backtest.engine"], rounds=7, env=env, key="cli_start")

    blob = WORK / f"blob-{SIZE_MB}mb.bin"
    if not blob.exists() or blob.stat().st_size != SIZE_MB << 20:
        block = os.urandom(1 << 20)
        with blob.open("wb") as fh:
            for _ in range(SIZE_MB):
                fh.write(block)
    openssl = shutil.which("openssl")
    if not openssl:
        skipped("fingerprint", "openssl not installed (apt-get install openssl)")
        return
    result = compare(f"tc data fingerprint vs openssl dgst -sha256 ({SIZE_MB} MB)",
                     [PY, "-m", "opslab", "data", "fingerprint", str(blob)],
                     [openssl, "dgst", "-sha256", str(blob)], rounds=3, env=env, key="fingerprint")
    print(f"  fingerprint peak RSS {result['subject_rss_mib']:.1f} MiB (target < 128 MiB)")


if __name__ == "__main__":
    main()
