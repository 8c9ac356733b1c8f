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
# report pages only ever render SVG (opslab/charts.py).
rm -rf "$site/matplotlib/mpl-data/sample_data" "$site/matplotlib/backends/web_backend"
# Debug symbols in libraries shipped unstripped (pyarrow, uvloop, PyYAML, and the Rust/C extensions of
# jsonschema-rs and aiohttp's stack; about 50 MB). numpy.libs and Pillow are left alone: auditwheel
# patched those files and strip can corrupt patched ELF files.
if command -v strip >/dev/null; then
  for so in "$site"/pyarrow/*.so* "$site"/uvloop/*.so "$site"/yaml/*.so "$site"/jsonschema_rs/*.so \
      "$site"/aiohttp/*.so "$site"/multidict/*.so "$site"/yarl/*.so "$site"/frozenlist/*.so "$site"/propcache/*.so; do
    [ -f "$so" ] && [ ! -L "$so" ] && strip --strip-unneeded "$so"
  done
fi
# The .pyc files stay: without them every container start would compile pandas and numpy again.
echo "prune-venv: $venv ${before} MB -> $(du -sm "$venv" | cut -f1) MB"
