"""`tc data import --csv` of Binance's public kline files as they are (opslab/datasets/klines.py): zips, ms/us, several days."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO

BINANCE = FIXTURES / "data" / "binance"
DAY1, DAY2 = BINANCE / "BTCUSDT-1m-2024-03-01.zip", BINANCE / "BTCUSDT-1m-2024-03-02.zip"
MICRO, HOURLY = BINANCE / "BTCUSDT-1m-2025-01-01.csv", BINANCE / "BTCUSDT-1h-2024-03-01.csv"
ETHUSDT = BINANCE / "ETHUSDT-15m-2024-03-01.csv"
ETHUSDT_FILE = FIXTURES / "instruments" / "ethusdt-binance-spot.json"
SOLUSDT = BINANCE / "SOLUSDT-5m-2024-03-01.csv"
SOLUSDT_FILE = FIXTURES / "instruments" / "solusdt-binance-spot.json"
WITH_HEADER = FIXTURES / "data" / "btcusdt-1m-binance-format.csv"  # Binance's futures files carry this header


def _import(lab, *files: Path, extra: tuple[str, ...] = (), dataset: str = "k"):
    argv = [a for f in files for a in ("--csv", str(f))]
    return lab("data", "import", *argv, "--id", dataset, "--json", *extra)


def _manifest(lab, dataset: str = "k") -> dict:
    return json.loads((lab.root / f"datasets/{dataset}/manifest.json").read_text())


def _refused(lab, needle: str, *files: Path, extra: tuple[str, ...] = ()) -> str:
    result = lab("data", "import", *[a for f in files for a in ("--csv", str(f))], "--id", "bad", *extra)
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert needle in result.err and "Traceback" not in result.err, result.err
    assert not lab.root.exists()
    return result.err


def _member(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(archive.namelist()[0])


def test_fixtures_are_what_their_script_writes():
    done = subprocess.run([sys.executable, "scripts/gen_binance_fixtures.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("files, bars, first, last", [
    ((DAY1,), 240, "2024-03-01T20:01:00Z", "2024-03-02T00:00:00Z"),  # a zip, epoch ms, no header
    ((MICRO,), 240, "2025-01-01T00:01:00Z", "2025-01-01T04:00:00Z"),  # a CSV, epoch us (spot from 2025)
    ((DAY2, DAY1), 480, "2024-03-01T20:01:00Z", "2024-03-02T04:00:00Z"),  # two days, given out of order
    ((WITH_HEADER,), 180, "2024-03-01T00:01:00Z", "2024-03-01T03:00:00Z"),  # Binance's header line
])
def test_kline_files_import_as_they_are(lab, files, bars, first, last):
    result = _import(lab, *files)
    assert result.code == 0, result.err
    assert result.json()["data"]["quality"]["passed"] is True
    manifest = _manifest(lab)
    assert (manifest["rows"], manifest["first_bar_close"], manifest["last_bar_close"]) == (bars, first, last)
    assert manifest["params"]["format"] == "binance-klines"
    # the close time is close_time + 1 ms: the first bar's open time plus one minute
    assert (lab.root / "datasets/k/bars.csv").read_text().splitlines()[1].startswith(first + ",")
    assert _import(lab, *files).json()["status"] == "ok"
    assert lab("artifacts", "verify", "--all").code == 0


def test_several_files_name_each_in_time_order(lab):
    assert _import(lab, DAY2, DAY1).code == 0
    params = _manifest(lab)["params"]
    assert params["source_file"] == DAY1.name
    assert [f["file"] for f in params["source_files"]] == [DAY1.name, DAY2.name]


def test_a_zip_and_its_csv_give_the_same_bars(lab, tmp_path):
    csv = tmp_path / "day1.csv"
    csv.write_bytes(_member(DAY1))
    assert _import(lab, DAY1, dataset="zipped").code == 0
    assert _import(lab, csv, dataset="plain").code == 0
    bars = [(lab.root / f"datasets/{d}/bars.csv").read_bytes() for d in ("zipped", "plain")]
    assert bars[0] == bars[1]
    # the zip's own sha256 identifies the source, not its CSV's
    assert _manifest(lab, "zipped")["params"]["source_sha256"] != _manifest(lab, "plain")["params"]["source_sha256"]


@pytest.mark.parametrize("recipe", [("--map", "ts_close=close_time"), ("--map", "ts_close=open_time", "--time-is", "open"), ()])
def test_close_time_is_the_bars_end_whichever_time_is_mapped(lab, recipe):
    result = _import(lab, WITH_HEADER, extra=recipe)
    assert result.code == 0, result.err
    # Binance's close_time 00:00:59.999 is the bar's last millisecond; the lab stamps the bar at its end
    assert (lab.root / "datasets/k/bars.csv").read_text().splitlines()[1] == "2024-03-01T00:01:00Z,61000.00,61003.08,60968.74,60976.82,0.415055"


def test_a_gap_between_files_is_reported_by_the_quality_checks(lab):
    result = _import(lab, DAY1, MICRO)
    assert result.code == 4, result.err
    gaps = next(c for c in result.json()["data"]["quality"]["checks"] if c["name"] == "gaps")
    assert gaps["count"] == 1 and gaps["examples"][0]["line"] == 242


@pytest.mark.parametrize("file, extra, instrument, interval, bars, first, last, bar_type, gap_seconds", [
    (HOURLY, (), "BTCUSDT", "1h", 24, "2024-03-01T01:00:00Z", "2024-03-02T00:00:00Z", "BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL", 3600),
    (ETHUSDT, ("--instrument-file", str(ETHUSDT_FILE)), "ETHUSDT", "15m", 96, "2024-03-01T00:15:00Z", "2024-03-02T00:00:00Z",
     "ETHUSDT.BINANCE-15-MINUTE-LAST-EXTERNAL", 900),
    (SOLUSDT, ("--instrument-file", str(SOLUSDT_FILE)), "SOLUSDT", "5m", 288, "2024-03-01T00:05:00Z", "2024-03-02T00:00:00Z",
     "SOLUSDT.BINANCE-5-MINUTE-LAST-EXTERNAL", 300),  # an instrument the lab knows only from its file
])
def test_the_files_interval_and_instrument_become_the_datasets_bar_type(lab, file, extra, instrument, interval, bars, first, last,
                                                                        bar_type, gap_seconds):
    result = _import(lab, file, extra=extra)
    assert result.code == 0, result.err
    manifest = _manifest(lab)
    assert (manifest["instrument"], manifest["interval"], manifest["rows"]) == (instrument, interval, bars)
    assert (manifest["first_bar_close"], manifest["last_bar_close"]) == (first, last)
    assert manifest["catalog"]["bar_type"] == bar_type
    assert {rel.split("/")[2] for rel in manifest["catalog"]["files"]} == {bar_type, f"{instrument}.BINANCE"}
    quality = result.json()["data"]["quality"]
    assert quality["passed"] is True and quality["interval_seconds"] == gap_seconds  # gaps measured in the file's interval
    assert (lab.root / "datasets/k/bars.csv").read_text().splitlines()[1].startswith(first + ",")
    assert lab("artifacts", "verify", "--all").code == 0


def test_a_missing_hour_is_a_gap_of_one_hourly_bar(lab, tmp_path):
    rows = HOURLY.read_text().splitlines(keepends=True)
    path = tmp_path / "holed.csv"
    path.write_text("".join(rows[:10] + rows[11:]))
    result = _import(lab, path)
    assert result.code == 4, result.err
    gaps = next(c for c in result.json()["data"]["quality"]["checks"] if c["name"] == "gaps")
    assert gaps["count"] == 1 and gaps["examples"][0]["detail"] == "1 bar(s) missing after line 11"


def test_files_of_two_intervals_do_not_mix(lab):
    _refused(lab, "files of different intervals in one dataset", DAY1, HOURLY)


def test_monthly_klines_are_refused_in_one_line(lab, tmp_path):
    path = tmp_path / "BTCUSDT-1M-2024-02.csv"  # February 2024: 29 days
    path.write_text("1706745600000,1,1,1,1,1,1709251199999,1,1,1,1,0\n")
    err = _refused(lab, "1M klines", path)
    assert "the lab runs Binance's fixed intervals 1s, 1m," in err and "1w" in err


def test_an_ethusdt_file_needs_its_instrument_file(lab):
    err = _refused(lab, "Binance's file of ETHUSDT, the instrument is BTCUSDT", ETHUSDT)
    assert "--instrument-file fixtures/instruments/ethusdt-binance-spot.json" in err


@pytest.mark.parametrize("twice", [False, True])
def test_overlapping_files_are_refused(lab, tmp_path, twice):
    other = DAY1
    if not twice:  # the same bars, other bytes
        other = tmp_path / "day1.csv"
        other.write_bytes(_member(DAY1))
    _refused(lab, "the same bytes as" if twice else "bars that overlap those of", DAY1, other)


def _rows(path: Path) -> list[str]:
    return _member(path).decode().splitlines(keepends=True)


def test_a_file_that_mixes_ms_and_us_is_refused(lab, tmp_path):
    rows = _rows(DAY1)
    fields = rows[100].split(",")
    fields[0], fields[6] = fields[0] + "000", fields[6] + "999"
    rows[100] = ",".join(fields)
    path = tmp_path / "mixed.csv"
    path.write_text("".join(rows))
    err = _refused(lab, "line 101: column open_time", path)
    assert "is in us (16 digits) where the file's first row is in ms (13 digits)" in err


def test_a_bar_of_another_length_is_refused_with_its_line(lab, tmp_path):
    rows = _rows(DAY1)
    fields = rows[9].split(",")
    fields[6] = str(int(fields[6]) - 1000)
    rows[9] = ",".join(fields)
    path = tmp_path / "short.csv"
    path.write_text("".join(rows))
    _refused(lab, "line 10: column close_time", path)


def _zip(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "k.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _patched(tmp_path: Path, declared: int) -> Path:
    """DAY1 with its member's declared (uncompressed) size set to DECLARED in both headers."""
    data = bytearray(DAY1.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 22:local + 26] = declared.to_bytes(4, "little")
    data[central + 24:central + 28] = declared.to_bytes(4, "little")
    path = tmp_path / "patched.zip"
    path.write_bytes(bytes(data))
    return path


def test_zip_bombs_and_broken_zips_are_refused_in_one_line(lab, tmp_path):
    csv = _member(DAY1)
    _refused(lab, "a ZIP archive of 2 members, expected one", _zip(tmp_path, {"a.csv": csv, "b.csv": csv}))
    _refused(lab, "inflates to 4000000000 bytes, more than 268435456", _patched(tmp_path, 4_000_000_000))
    # a size declared smaller than the stream: zipfile stops there, and the CRC says the archive is damaged
    _refused(lab, "a damaged ZIP archive", _patched(tmp_path, 1000))
    corrupt = bytearray(DAY1.read_bytes())
    corrupt[3000:3100] = bytes(b ^ 0x5A for b in corrupt[3000:3100])
    (tmp_path / "corrupt.zip").write_bytes(bytes(corrupt))
    _refused(lab, "a damaged ZIP archive", tmp_path / "corrupt.zip")
    (tmp_path / "cut.zip").write_bytes(DAY1.read_bytes()[:5000])
    _refused(lab, "a damaged ZIP archive (no end-of-archive record)", tmp_path / "cut.zip")
    _refused(lab, "not a Binance kline CSV", _zip(tmp_path, {"bars.csv": b"ts_close,open,high,low,close,volume\n"}))


def test_a_zip_bomb_by_ratio_is_bounded_by_its_declared_size(lab, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.csv", b"0" * (300 << 20))  # 300 MiB in about 300 KB
    (tmp_path / "bomb.zip").write_bytes(buf.getvalue())
    _refused(lab, "more than 268435456 (the limit for a CSV); nothing was inflated", tmp_path / "bomb.zip")


@pytest.mark.parametrize("extra, needle", [
    (("--map", "close=open"), "--map close=open (--time-is close): a Binance kline file has fixed columns"),
    (("--time-is", "open"), "--time-is open: a Binance kline file has both times"),
    (("--format", "csv"), "is a ZIP archive"),
])
def test_options_that_do_not_fit_klines_are_refused(lab, extra, needle):
    _refused(lab, needle, DAY1, extra=extra)


def test_format_csv_keeps_reading_a_header_file_as_a_plain_csv(lab):
    result = _import(lab, WITH_HEADER, extra=("--format", "csv", "--map", "ts_close=open_time", "--time-is", "open"))
    assert result.code == 0, result.err
    assert _manifest(lab)["params"]["format"] == "csv" and _manifest(lab)["rows"] == 180


def test_kline_files_and_other_csvs_do_not_mix(lab, tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("ts_close,open,high,low,close,volume\n2024-03-02T04:01:00Z,1,1,1,1,1\n")
    _refused(lab, "Binance kline files and other CSVs in one dataset", DAY2, path)


def test_a_catalogs_hourly_bars_import_as_an_hourly_dataset(lab):
    assert _import(lab, HOURLY, dataset="csv").code == 0
    catalog = lab.root / "datasets/csv/catalog"
    hourly = "BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL"
    result = lab("data", "import", "--catalog", str(catalog), "--id", "cat", "--bar-type", hourly, "--json")
    assert result.code == 0, result.err
    manifest = _manifest(lab, "cat")
    assert (manifest["interval"], manifest["rows"], manifest["catalog"]["bar_type"]) == ("1h", 24, hourly)
    assert (lab.root / "datasets/cat/bars.csv").read_bytes() == (lab.root / "datasets/csv/bars.csv").read_bytes()
    refused = lab("data", "import", "--catalog", str(catalog), "--id", "bad", "--bar-type", "ETHUSDT.BINANCE-1-HOUR-LAST-EXTERNAL")
    assert refused.code == 2 and "the lab's engine runs BTCUSDT.BINANCE's bars of a Binance interval" in refused.err, refused.err


# --- a plain CSV of another interval: --interval --------------------------------------------------------------------

def _plain_hourly(tmp_path: Path, drop: int | None = None) -> Path:
    """The hourly kline fixture as a plain CSV (a header, close times in ISO form): what a user's own export looks like."""
    rows = [line.split(",") for line in HOURLY.read_text().splitlines()]
    out = ["ts_close,open,high,low,close,volume"]
    for i, row in enumerate(rows):
        if i != drop:
            close = datetime.fromtimestamp((int(row[6]) + 1) / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append(",".join([close, *row[1:6]]))
    path = tmp_path / "hourly-plain.csv"
    path.write_text("\n".join(out) + "\n")
    return path


def test_a_plain_csv_of_hourly_bars_imports_with_interval(lab, tmp_path):
    path = _plain_hourly(tmp_path)
    assert _import(lab, path).code == 4, "without --interval the hourly rows are 1-minute bars with gaps between them"
    result = _import(lab, path, dataset="h", extra=("--interval", "1h"))
    assert result.code == 0, result.err
    manifest = _manifest(lab, "h")
    assert (manifest["interval"], manifest["rows"], manifest["catalog"]["bar_type"]) == ("1h", 24, "BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL")
    assert manifest["params"]["interval"] == "1h" and result.json()["data"]["quality"]["interval_seconds"] == 3600
    again = _import(lab, path, dataset="h", extra=("--interval", "1h"))
    assert again.code == 0 and again.json()["status"] == "ok", "the same file and interval: up to date"
    other = lab("data", "import", "--csv", str(path), "--id", "h", "--interval", "4h")
    assert other.code == 2 and "already exists from other input" in other.err, "another interval is other input"
    assert lab("artifacts", "verify", "--all").code == 0


def test_interval_time_is_open_shifts_by_the_interval(lab, tmp_path):
    rows = [line.split(",") for line in HOURLY.read_text().splitlines()]
    path = tmp_path / "open-times.csv"
    path.write_text("open_time,open,high,low,close,volume\n" + "".join(",".join(r[:6]) + "\n" for r in rows))
    result = _import(lab, path, extra=("--interval", "1h", "--map", "ts_close=open_time", "--time-is", "open"))
    assert result.code == 0, result.err
    assert (_manifest(lab)["first_bar_close"], _manifest(lab)["last_bar_close"]) == ("2024-03-01T01:00:00Z", "2024-03-02T00:00:00Z")


def test_a_missing_hour_in_a_plain_hourly_csv_is_one_gap(lab, tmp_path):
    result = _import(lab, _plain_hourly(tmp_path, drop=10), extra=("--interval", "1h"))
    assert result.code == 4, result.err
    gaps = next(c for c in result.json()["data"]["quality"]["checks"] if c["name"] == "gaps")
    assert gaps["count"] == 1 and gaps["examples"][0]["detail"].startswith("1 bar(s) missing")


@pytest.mark.parametrize("files, extra, needle", [
    ("plain", ("--interval", "7m"), "--interval '7m': expected a Binance kline interval (1s, 1m, 3m"),
    ("klines", ("--interval", "1h"), "--interval 1h: Binance kline files say their own interval"),
])
def test_interval_is_refused_where_it_does_not_fit(lab, tmp_path, files, extra, needle):
    _refused(lab, needle, _plain_hourly(tmp_path) if files == "plain" else HOURLY, extra=extra)


def test_interval_is_refused_for_a_catalog(lab):
    result = lab("data", "import", "--catalog", str(lab.root), "--id", "cat", "--interval", "1h")
    assert result.code == 2 and result.err.count("\n") == 1 and "--interval 1h: for --csv; a catalog's interval is its --bar-type's" in result.err
