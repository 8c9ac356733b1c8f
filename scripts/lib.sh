# Shared by scripts/image and scripts/container-task (POSIX sh, sourced): the checkout, the
# version, the container engine and its Docker-API socket. Nothing here needs Python.

# The checkout is the folder above scripts/.
REPO=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO/opslab/__init__.py")
IMAGE=${TC_IMAGE:-localhost/opslab:$VERSION}
DEV_IMAGE=${TC_DEV_IMAGE:-localhost/opslab-dev:$VERSION}
INPUTS_LABEL=dev.opslab.inputs

# The newest engine profile (requirements/engine-*/) is the default image's (tagged VERSION); another
# profile's images (make image ENGINE=VERSION) are tagged VERSION-ntPROFILE. $TC_IMAGE / $TC_DEV_IMAGE still win.
NEWEST_ENGINE=$("$REPO/scripts/default-engine" --newest)
profile_images() {
  [ "$1" = "$NEWEST_ENGINE" ] && return 0
  IMAGE=${TC_IMAGE:-localhost/opslab:$VERSION-nt$1}
  DEV_IMAGE=${TC_DEV_IMAGE:-localhost/opslab-dev:$VERSION-nt$1}
}

say() { printf '%8s  %s\n' "$1" "$2"; }
die() { echo "error: $*" >&2; exit 2; }

# The engine: $TC_CONTAINER_ENGINE, else podman, else docker.
find_engine() {
  if [ -n "${TC_CONTAINER_ENGINE:-}" ]; then
    command -v "$TC_CONTAINER_ENGINE" >/dev/null || die "TC_CONTAINER_ENGINE=$TC_CONTAINER_ENGINE is not on PATH"
    ENGINE=$TC_CONTAINER_ENGINE
  elif command -v podman >/dev/null; then ENGINE=podman
  elif command -v docker >/dev/null; then ENGINE=docker
  else die "no container engine: install Podman or Docker (or set TC_CONTAINER_ENGINE)"
  fi
}

# The engine's Docker-API socket (a path), for tasks that drive containers from inside the dev
# image: $DOCKER_HOST (unix://...), else rootful Podman's, the user's Podman's, Docker's. Empty
# when none exists.
find_socket() {
  SOCKET=""
  case "${DOCKER_HOST:-}" in unix://*) SOCKET=${DOCKER_HOST#unix://} ;; esac
  for candidate in "$SOCKET" /run/podman/podman.sock "${XDG_RUNTIME_DIR:-/nonexistent}/podman/podman.sock" /var/run/docker.sock; do
    if [ -n "$candidate" ] && [ -S "$candidate" ]; then SOCKET=$candidate; return 0; fi
  done
  SOCKET=""
}
