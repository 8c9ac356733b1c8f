#!/bin/sh
# Proves the issue-16 promise: with only make, a container engine, git and the basic Unix tools on
# PATH (no python3), every Makefile target works (RUNTIME=auto picks the container). Runs on a
# machine where the images are already built (`make image` earlier in .ci/run), so nothing is built
# twice. Each target must exit 0; the first failure stops the run with its name.
set -eu
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
engine=podman; command -v podman >/dev/null || engine=docker
for tool in make sh bash env "$engine" git \
    cat cp mv rm ln ls mkdir mktemp chmod touch date id stat sort uniq head tail cut tr wc tee \
    sha256sum dirname basename readlink realpath printf echo test true false sleep timeout cmp \
    sed grep awk find xargs; do
  # The program file, not a shell builtin: make runs simple commands (echo, test) without a shell.
  for dir in /usr/local/bin /usr/bin /bin /usr/sbin /sbin; do
    if [ -x "$dir/$tool" ]; then ln -sf "$dir/$tool" "$bin/$tool"; break; fi
  done
done
PATH=$bin
export PATH
if command -v python3 >/dev/null || command -v python >/dev/null; then echo "no-python: python is still on PATH" >&2; exit 1; fi
artifacts=$(mktemp -d)/artifacts
export TC_ARTIFACTS_DIR="$artifacts"
# Ports and a project name of its own, so a stack left by another run cannot answer for this one.
export TC_STACK_PROJECT=opslab-nopython TC_METRICS_PORT=29108 TC_PROMETHEUS_PORT=29090 TC_GRAFANA_PORT=23000
export TC_ALERTMANAGER_PORT=29093 TC_ALERTS_PORT=29095
export TC_BENCH_ROUNDS=1 TC_BENCH_FINGERPRINT_MB=32 TC_BENCH_METRICS_RUNS=100 TC_BENCH_LOAD_S=3
passed=0
run() {
  echo "== no python3: make $*"
  out=$(mktemp)
  if make "$@" >"$out" 2>&1; then
    # each pytest pass's summary line (a target may run several passes), then the target's last lines
    grep -E '^=+ .*(passed|failed|skipped|deselected).* =+$' "$out" || true
    tail -n 3 "$out"; passed=$((passed + 1)); rm -f "$out"
  else
    tail -n 60 "$out"; echo "no-python: make $* failed" >&2; exit 1
  fi
}
run help
run image
run setup
case "$(make setup 2>&1)" in *"runtime: container"*) ;; *) echo "no-python: RUNTIME=auto did not pick the container" >&2; exit 1 ;; esac
run demo
# The unit tests in the image prove the container path of `make test`; the same engine's unit, CLI and integration tests ran
# natively just before (about 7 minutes more here for tests/cli again).
run test TESTS=tests/unit
run check
run docs
run drill NAME=mismatch
run bench QUICK=1
run stack-up
run stack-status
run stack-down
run clean
echo "no-python: all $passed make targets succeeded with no python3 on PATH"
