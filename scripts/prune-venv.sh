#!/bin/sh
# Removes from an installed venv what `tc` never uses at run time (run by the Containerfile's
# build stage; the runtime stage copies only the pruned venv). Each line says what goes and why;
# `make demo RUNTIME=container` and `make test RUNTIME=container` prove the rest is enough.
# Usage: scripts/prune-venv.sh VENV
set -eu
venv=${1:?usage: prune-venv.sh VENV}
site=$(echo "$venv"/lib/python3*/site-packages)
[ -d "$site" ] || { echo "prune-venv: no site-packages under $venv" >&2; exit 2; }
before=$(du -sm "$venv" | cut -f1)

# The installers: the runtime image installs nothing (the dev image brings pip back).
"$venv/bin/python" -m pip uninstall --yes --quiet pip setuptools wheel 2>/dev/null || true
# The dependencies' own test suites (pandas, numpy, pyarrow: about 55 MB), never imported by them.
find "$site" -depth -type d -name tests -exec rm -rf {} +
# Build-time sources and headers: Cython .pyx/.pxd/.pxi, C/C++ headers, pyarrow's include/ and src/.
find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.hpp' \
  -o -name '*.c' -o -name '*.cpp' -o -name '*.cc' \) -delete
rm -rf "$site/pyarrow/include" "$site/pyarrow/src" "$site"/pyarrow/_pyarrow_cpp_tests*
# Type stubs (.pyi) serve type checkers only; numpy's f2py generates Fortran bindings at build time.
find "$site" -type f -name '*.pyi' -delete
rm -rf "$site/numpy/f2py" "$venv/bin/f2py" "$venv/bin/numpy-config"
# pyarrow's optional Arrow Flight RPC and S3 filesystem: no lab code path imports pyarrow.flight or
# S3FileSystem (pyarrow.fs tolerates the missing _s3fs module), and together they are about 50 MB.
rm -f "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/libarrow_python_flight.so* "$site"/pyarrow/_flight.* \
  "$site"/pyarrow/libarrow_s3.so* "$site"/pyarrow/_s3fs.*
# pyarrow's wheel holds libarrow_python*.so three times (x.so, x.so.N, x.so.N.M: a wheel cannot hold
# symbolic links); the loader needs only the SONAME file (x.so.N), so the other two become links.
for lib in "$site"/pyarrow/libarrow_python*.so; do
  [ -f "$lib" ] || continue
  soname=$(ls "$lib".[0-9]* 2>/dev/null | awk 'length(f) == 0 || length($0) < length(f) {f = $0} END {print f}')
  [ -n "$soname" ] || continue
  for copy in "$lib" "$lib".[0-9]*; do
    if [ "$copy" != "$soname" ] && cmp -s "$copy" "$soname"; then ln -sf "$(basename "$soname")" "$copy"; fi
  done
done
# matplotlib's sample data (its examples' datasets) and its interactive backends' web assets: the
# report pages only ever render SVG (opslab/report/charts.py).
rm -rf "$site/matplotlib/mpl-data/sample_data" "$site/matplotlib/backends/web_backend"
# fontTools (about 23 MB): matplotlib's SVG output imports only fontTools.agl (through dviread), which
# needs the package root and misc.textTools/loggingTools; the rest serves the PDF/PS backends' font
# subsetting and font editing, which the lab never does.
if [ -d "$site/fontTools" ]; then
  find "$site/fontTools" -mindepth 1 -maxdepth 1 ! -name __init__.py ! -name agl.py ! -name misc ! -name __pycache__ -exec rm -rf {} +
  find "$site/fontTools/misc" -mindepth 1 -maxdepth 1 ! -name __init__.py ! -name textTools.py ! -name loggingTools.py ! -name __pycache__ -exec rm -rf {} +
  find "$site/fontTools" -path '*/__pycache__/*.pyc' ! -name '__init__.*' ! -name 'agl.*' ! -name 'textTools.*' ! -name 'loggingTools.*' -delete
  rm -f "$venv"/bin/fonttools "$venv"/bin/pyftmerge "$venv"/bin/pyftsubset "$venv"/bin/ttx
fi
# matplotlib: the charts set font.family "DejaVu Sans" and never parse mathtext (opslab/report/charts.py), so
# only those four faces and the Last Resort fallback font stay (no Serif, Mono, STIX, Computer Modern,
# PostScript metrics); no GUI toolbar icons; only the Agg and SVG backends the Figure API renders with.
rm -f "$site"/matplotlib/mpl-data/fonts/afm/* "$site"/matplotlib/mpl-data/fonts/pdfcorefonts/*
find "$site/matplotlib/mpl-data/fonts/ttf" -name '*.ttf' ! -name 'DejaVuSans.ttf' ! -name 'DejaVuSans-*.ttf' \
  ! -name 'LastResortHE-Regular.ttf' -delete
rm -rf "$site/matplotlib/mpl-data/images"
find "$site/matplotlib/backends" -mindepth 1 -maxdepth 1 ! -name __init__.py ! -name registry.py ! -name backend_agg.py \
  ! -name backend_svg.py ! -name backend_mixed.py ! -name '_backend_agg.*' ! -name __pycache__ -exec rm -rf {} +
find "$site/matplotlib/backends/__pycache__" -name '*.pyc' ! -name '__init__.*' ! -name 'registry.*' ! -name 'backend_agg.*' \
  ! -name 'backend_svg.*' ! -name 'backend_mixed.*' -delete
# Pillow's AVIF, WebP, FreeType, colour-management, ImageMath and Tk modules with their bundled libraries
# (about 13 MB): matplotlib needs only PIL.Image (PNG) and the lab draws no raster text.
rm -f "$site"/PIL/_avif.* "$site"/PIL/_webp.* "$site"/PIL/_imagingft.* "$site"/PIL/_imagingcms.* \
  "$site"/PIL/_imagingmath.* "$site"/PIL/_imagingtk.*
rm -f "$site"/pillow.libs/libavif-* "$site"/pillow.libs/libwebp* "$site"/pillow.libs/libsharpyuv-* \
  "$site"/pillow.libs/liblcms2-* "$site"/pillow.libs/libfreetype-* "$site"/pillow.libs/libharfbuzz-* \
  "$site"/pillow.libs/libbrotli* "$site"/pillow.libs/libpng16-*
# NautilusTrader's adapters for other venues (about 6 MB): the lab's node uses only the Binance adapter
# (and nautilus_trader.adapters.env, sandbox); test_kit stays (TestInstrumentProvider is the instrument).
if [ -d "$site/nautilus_trader/adapters" ]; then
  find "$site/nautilus_trader/adapters" -mindepth 1 -maxdepth 1 ! -name __init__.py ! -name env.py ! -name binance \
    ! -name sandbox ! -name __pycache__ -exec rm -rf {} +
fi
# numpy.distutils (a build tool, deprecated) and numpy's SIMD test module: nothing at run time imports them.
rm -rf "$site/numpy/distutils" "$site"/numpy/_core/_simd.*
# Debug symbols in libraries shipped unstripped (pyarrow, uvloop, PyYAML, the Rust/C extensions of
# jsonschema-rs and aiohttp's stack: about 50 MB; kiwisolver, matplotlib, contourpy, rpds, msgspec,
# websockets, numpy.random: about 10 MB more, 5 of them kiwisolver's).
if command -v strip >/dev/null; then
  for so in "$site"/pyarrow/*.so* "$site"/uvloop/*.so "$site"/yaml/*.so "$site"/jsonschema_rs/*.so \
      "$site"/aiohttp/*.so "$site"/aiohttp/_websocket/*.so "$site"/multidict/*.so "$site"/yarl/*.so "$site"/frozenlist/*.so \
      "$site"/propcache/*.so "$site"/kiwisolver/*.so "$site"/matplotlib/*.so "$site"/matplotlib/backends/*.so \
      "$site"/contourpy/*.so "$site"/rpds/*.so "$site"/msgspec/*.so "$site"/websockets/*.so "$site"/numpy/random/*.so; do
    [ -f "$so" ] && [ ! -L "$so" ] && strip --strip-unneeded "$so"
  done
  # auditwheel patched these (patchelf); stripped, they still load (the Containerfile imports them
  # right after) and give back about 3 MB. numpy.libs stays as shipped: stripped, its OpenBLAS no
  # longer loads ("ELF load command address/offset not page-aligned").
  for so in "$site"/numpy/_core/*.so "$site"/numpy/linalg/*.so "$site"/numpy/fft/*.so "$site"/PIL/*.so "$site"/pillow.libs/*.so*; do
    [ -f "$so" ] && [ ! -L "$so" ] && strip --strip-unneeded "$so"
  done
fi
# The .pyc files stay: without them every container start would compile pandas and numpy again.
echo "prune-venv: $venv ${before} MB -> $(du -sm "$venv" | cut -f1) MB"
