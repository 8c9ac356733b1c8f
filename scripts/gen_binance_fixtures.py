"""Write fixtures/data/binance/: small files in Binance's public kline format (data.binance.vision), values generated.

Deterministic (a seeded random walk, fixed zip timestamps), no network. The format is Binance's: no header, 12 columns,
prices with 8 decimals, open/close times in epoch ms (microseconds in spot files from 2025-01-01), close_time the bar's
last millisecond. The files: two consecutive days trimmed to 240 bars each (zipped, ms), a 2025 day in us (CSV),
a 1h day (CSV, 24 bars), an ETHUSDT 15m day (CSV, 96 bars: another instrument, another interval) and a SOLUSDT 5m
day (CSV, 288 bars: an instrument the lab's venue does not list, for backtests and paper runs). `python scripts/gen_binance_fixtures.py [--check]`.
"""

from __future__ import annotations

import io
import random
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "binance"


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def rows(start: str, bars: int, minutes: int, seed: int, price: float, micro: bool = False) -> str:
    """BARS klines of MINUTES from START (UTC), as Binance writes them."""
    rng, unit = random.Random(seed), 1000 if micro else 1
    step, t, out = minutes * 60_000, _ms(start), []
    for _ in range(bars):
        scale = price * 0.0004 * minutes ** 0.5
        close = round(max(1.0, price + rng.gauss(0, scale)), 2)
        high = round(max(price, close) + abs(rng.gauss(0, scale / 3)), 2)
        low = round(min(price, close) - abs(rng.gauss(0, scale / 3)), 2)
        volume = round(rng.uniform(0.2, 6.0) * minutes, 5)
        quote = round(volume * (price + close) / 2, 8)
        count = rng.randint(150, 900) * minutes
        taker = round(volume * rng.uniform(0.3, 0.7), 5)
        out.append(f"{t * unit},{price:.8f},{high:.8f},{low:.8f},{close:.8f},{volume:.8f},{(t + step) * unit - 1},{quote:.8f},"
                   f"{count},{taker:.8f},{round(taker * close, 8):.8f},0\n")
        t, price = t + step, close
    return "".join(out)


def zipped(name: str, text: str, when: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        info = zipfile.ZipInfo(name, date_time=when)
        info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
        archive.writestr(info, text)
    return buf.getvalue()


def files() -> dict[str, bytes]:
    day1 = rows("2024-03-01T20:00:00", 240, 1, 1, 61000.0)
    close = float(day1.rsplit("\n", 2)[-2].split(",")[4])
    day2 = rows("2024-03-02T00:00:00", 240, 1, 2, close)
    return {
        "BTCUSDT-1m-2024-03-01.zip": zipped("BTCUSDT-1m-2024-03-01.csv", day1, (2024, 3, 2, 8, 0, 0)),
        "BTCUSDT-1m-2024-03-02.zip": zipped("BTCUSDT-1m-2024-03-02.csv", day2, (2024, 3, 3, 8, 0, 0)),
        "BTCUSDT-1m-2025-01-01.csv": rows("2025-01-01T00:00:00", 240, 1, 3, 93500.0, micro=True).encode(),
        "BTCUSDT-1h-2024-03-01.csv": rows("2024-03-01T00:00:00", 24, 60, 4, 61000.0).encode(),
        "ETHUSDT-15m-2024-03-01.csv": rows("2024-03-01T00:00:00", 96, 15, 5, 3400.0).encode(),
        "SOLUSDT-5m-2024-03-01.csv": rows("2024-03-01T00:00:00", 288, 5, 6, 130.0).encode(),
    }


def main(argv: list[str]) -> int:
    stale = [name for name, data in files().items() if not (OUT / name).is_file() or (OUT / name).read_bytes() != data]
    if "--check" in argv:
        for name in stale:
            print(f"{OUT / name}: out of date (python scripts/gen_binance_fixtures.py)", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in files().items():
        (OUT / name).write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
