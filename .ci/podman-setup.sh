#!/usr/bin/env bash
# Container engine setup for the build and CI machines (see shared/CONTAINERS-HERE.md):
# Podman with runc and explicit ulimits, the Docker-API socket for testcontainers, a locally
# built debian:bookworm-slim base (and each engine profile's, e.g. trixie-slim) when no registry answers, and a Prometheus image from Debian's
# package. Idempotent: reuses images already present. Prints the environment to export.
set -euo pipefail

BASE=docker.io/library/debian:bookworm-slim
PROM_IMAGE=localhost/opslab-prometheus:debian
here=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
  apt-get install -y -qq podman runc podman-compose debootstrap >/dev/null
fi
conf=/etc/containers/containers.conf
if ! grep -q 'runtime = "runc"' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  cat >"$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
fi
SOCK=/run/podman/podman.sock
# A socket file can outlive its service (a machine restored from a snapshot): ask it, not the file.
socket_answers() {
  python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1]); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n"); ok=s.recv(64).startswith(b"HTTP/1."); s.close(); sys.exit(0 if ok else 1)' "$SOCK" 2>/dev/null
}
# A service started from a folder that was deleted since (an earlier CI clone) answers pings but
# cannot start containers: stop it so it is started again below.
for pid in $(pgrep -f "podman system service" || true); do
  case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in
    *" (deleted)") kill "$pid" 2>/dev/null && sleep 1 ;;
  esac
done
if ! socket_answers; then
  rm -f "$SOCK"
  mkdir -p /run/podman
  # From /: conmon inherits the service's working directory, and a checkout can be deleted
  # ("[conmon:e] Failed to get working directory", then every container start fails).
  # Every descriptor is redirected for the whole background job, so the service holds none of
  # this script's own (a caller reading its output through a pipe would wait for it for ever).
  (cd / && exec setsid podman system service --time=0 "unix://$SOCK") \
    </dev/null >/tmp/podman-service.log 2>&1 &
  for _ in $(seq 1 100); do socket_answers && break; sleep 0.2; done
  socket_answers || { echo "podman-setup: the Docker-API socket $SOCK does not answer; see /tmp/podman-service.log" >&2; exit 1; }
fi
# A base made here is slimmed like the official one (.ci/slim-rootfs.sh) and labelled so; one made
# by an older version of this script (no label, no CMD: the official image has CMD bash) is slimmed
# once in place. Bases: bookworm (the default image, Prometheus) and each engine profile's
# (requirements/engine-*/base-image, e.g. trixie for 1.231.0).
slim_import() {  # ROOTFS IMAGE: slim ROOTFS and import it as IMAGE
  sh "$here/.ci/slim-rootfs.sh" "$1"
  tar -C "$1" -c . | podman import --change 'LABEL dev.opslab.base=slim' - "$2" >/dev/null
}
ensure_base() {  # IMAGE (docker.io/library/debian:SUITE-slim)
  image=$1
  suite=${image##*:}; suite=${suite%-slim}
  if ! podman image exists "$image"; then
    if ! timeout 60 podman pull -q "$image" >/dev/null 2>&1; then
      echo "podman-setup: no registry answers; building $image with debootstrap" >&2
      rootfs=$(mktemp -d)
      debootstrap --variant=minbase "$suite" "$rootfs" http://deb.debian.org/debian >"/tmp/debootstrap-$suite.log" 2>&1
      slim_import "$rootfs" "$image"
      rm -rf "$rootfs"
    fi
  elif [ "$(podman image inspect --format '{{index .Config.Labels "dev.opslab.base"}}{{.Config.Cmd}}' "$image" 2>/dev/null)" = "[]" ]; then
    echo "podman-setup: slimming the locally made $image like the official image" >&2
    rootfs=$(mktemp -d)
    cid=$(podman create "$image" true)
    podman export "$cid" | tar -C "$rootfs" -x
    podman rm "$cid" >/dev/null
    slim_import "$rootfs" "$image"
    rm -rf "$rootfs"
  fi
}
ensure_base "$BASE"
for file in "$here"/requirements/engine-*/base-image; do
  [ -f "$file" ] && ensure_base "$(cat "$file")"
done
if ! podman image exists "$PROM_IMAGE"; then
  podman build -q -t "$PROM_IMAGE" -f "$here/prometheus/Containerfile.debian" "$here/prometheus" >/dev/null
fi
echo "export DOCKER_HOST=unix:///run/podman/podman.sock"
echo "export TESTCONTAINERS_RYUK_DISABLED=true"
echo "export TESTCONTAINERS_CONNECTION_MODE=docker_host"
echo "export TC_PROMETHEUS_IMAGE=$PROM_IMAGE"
