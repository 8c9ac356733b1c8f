#!/bin/sh
# Removes from the runtime image's root file system (Debian slim + python3, run as root in the
# Containerfile's runtime-root stage) what a container that never installs packages, logs in or
# manages disks does not need. The runtime stage then copies the result into an empty image as one
# layer: files deleted here are really gone (a later layer could only hide them). The dev image is
# built from the unslimmed stage and keeps apt.
# Each package's files are taken from dpkg's own lists (no maintainer scripts run), minus any path
# a kept package also lists; the check at the end fails the build if an executable or library left
# in the image (python3, the venv's extensions, sh, coreutils) misses a shared library.
# Usage: scripts/slim-runtime-root.sh [ROOT-CHECK-DIRS...]   (default check: /usr /opt/venv)
set -eu
info=/var/lib/dpkg/info
[ -d "$info" ] || { echo "slim-runtime-root: no dpkg database (already slimmed?)" >&2; exit 2; }
before=$(du -sxm / | cut -f1)

# The package manager and what only it uses: apt, dpkg (and its database below), debconf, perl-base
# (dpkg's and debconf's scripts), the archive keyring and gpgv, and the libraries only these link:
# gnutls with its nettle/gmp/idn2/unistring/p11-kit/tasn1, gcrypt, systemd/udev, zstd, lz4, xxhash,
# seccomp, libmd.
pkgs="apt libapt-pkg6.0 dpkg debconf libdebconfclient0 perl-base debian-archive-keyring gpgv
  libgnutls30 libnettle8 libhogweed6 libgmp10 libidn2-0 libunistring2 libp11-kit0 libtasn1-6
  libgcrypt20 libgpg-error0 libsystemd0 libudev1 libzstd1 liblz4-1 libxxhash0 libseccomp2 libmd0
  init-system-helpers"
# The same on Debian 13 (64-bit time_t library names; apt 3's own verifier, sqv).
pkgs="$pkgs libapt-pkg7.0 sqv libgnutls30t64 libnettle8t64 libhogweed6t64 libunistring5"
ldso=$(ls /lib*/ld-linux*.so* 2>/dev/null | head -n 1)
multiarch=$(ls -d /usr/lib/*-linux-gnu | head -n 1)
# Accounts and logins: the image user exists (useradd ran in the os stage; /etc/passwd, /etc/group
# and /etc/shadow stay), nothing logs in or changes passwords; PAM, audit and SELinux policy tools.
pkgs="$pkgs passwd login adduser libpam0g libpam-modules libpam-modules-bin libpam-runtime
  libaudit1 libaudit-common libcap-ng0 libsemanage2 libsemanage-common libsepol2"
# Disks, mounts, terminals and services: util-linux and mount (and their libraries), e2fsprogs,
# sysvinit-utils, ncurses' terminal tools (the terminfo database in ncurses-base stays).
pkgs="$pkgs util-linux util-linux-extra mount bsdutils libmount1 libblkid1 libsmartcols1 e2fsprogs
  libext2fs2 libss2 logsave sysvinit-utils ncurses-bin"
# Archivers and diff tools nothing in the lab runs (Python's tarfile, gzip and difflib are built in).
pkgs="$pkgs tar diffutils"

present=""
for p in $pkgs; do
  for f in "$info/$p.list" "$info/$p":*.list; do
    if [ -f "$f" ]; then present="$present $p"; break; fi
  done
done
tmp=$(mktemp -d)
canon() { while IFS= read -r path; do [ -e "$path" ] && readlink -f "$path"; done | LC_ALL=C sort -u; }
plan() {  # $tmp/gone: the files of the $present packages that no other package also lists
  for p in $present; do cat "$info/$p.list" "$info/$p":*.list 2>/dev/null || true; done | LC_ALL=C sort -u >"$tmp/remove"
  # Paths also listed by a package that stays (shared directories, diverted files) are not touched.
  for f in "$info"/*.list; do
    name=$(basename "$f" .list); name=${name%%:*}
    case " $present " in *" $name "*) continue ;; esac
    cat "$f"
  done | LC_ALL=C sort -u >"$tmp/keep"
  sed -n 's/^\(\/.*\)$/\1/p' /var/lib/dpkg/diversions 2>/dev/null | LC_ALL=C sort -u >>"$tmp/keep"
  LC_ALL=C sort -u -o "$tmp/keep" "$tmp/keep"
  LC_ALL=C comm -23 "$tmp/remove" "$tmp/keep" >"$tmp/gone"
}
plan
# A listed library that something kept links (ld.so lists the whole tree) stays, with its package:
# what the tools need differs between releases (Debian 13's OpenSSL links zstd, its coreutils link
# gmp and systemd; Debian 12's do not).
canon <"$tmp/gone" >"$tmp/gone.real"
find /usr -type f \( -perm -u+x -o -name '*.so' -o -name '*.so.*' \) 2>/dev/null | canon >"$tmp/files"
LC_ALL=C comm -23 "$tmp/files" "$tmp/gone.real" | while IFS= read -r f; do
  "$ldso" --list "$f" 2>/dev/null | sed -n 's/.* => \(\/[^ ]*\) .*/\1/p'
done | canon >"$tmp/needed"
LC_ALL=C comm -12 "$tmp/needed" "$tmp/gone.real" >"$tmp/needed.gone"
if [ -s "$tmp/needed.gone" ]; then
  still=""
  for p in $present; do
    if cat "$info/$p.list" "$info/$p":*.list 2>/dev/null | canon | LC_ALL=C comm -12 - "$tmp/needed.gone" | grep -q .; then
      echo "slim-runtime-root: keeping $p (linked by a kept file)"
    else
      still="$still $p"
    fi
  done
  present=$still
  plan
fi
# Files and symbolic links first (never a directory, nor a link to one such as /bin or /lib), then
# the directories that became empty, deepest first.
while IFS= read -r path; do
  if [ -L "$path" ] || { [ -e "$path" ] && [ ! -d "$path" ]; }; then
    if [ -L "$path" ] && [ -d "$path" ]; then continue; fi
    rm -f "$path"
  fi
done <"$tmp/gone"
LC_ALL=C sort -r "$tmp/gone" | while IFS= read -r path; do
  if [ -d "$path" ] && [ ! -L "$path" ]; then rmdir "$path" 2>/dev/null || true; fi
done
rm -rf "$tmp"

# dpkg's and apt's state, caches and logs; glibc's iconv modules (Python's codecs are its own, and
# nothing the lab loads calls iconv); documentation other than the kept packages' copyright files.
rm -rf /var/lib/dpkg /var/lib/apt /var/cache/* /var/log/* /etc/apt /etc/dpkg /var/lib/pam \
  "$multiarch/gconv" /usr/share/lintian /usr/share/bug /usr/share/info /usr/share/man
find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find /usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true

# Every executable and shared library left must still find all it links. A direct dependency that is
# gone is "not found" on stdout; one missing deeper down makes ld.so fail with "cannot open shared
# object file" on stderr (how the zstd case above showed): both count.
[ $# -gt 0 ] || set -- /usr /opt/venv
missing=$(find "$@" -type f \( -perm -u+x -o -name '*.so' -o -name '*.so.*' \) 2>/dev/null | while IFS= read -r f; do
  "$ldso" --list "$f" 2>&1 | grep -E 'not found|cannot open shared object' | sed "s|^|$f: |" || true
done)
if [ -n "$missing" ]; then
  echo "slim-runtime-root: shared libraries missing after the cut:" >&2
  echo "$missing" >&2
  exit 1
fi
echo "slim-runtime-root: removed$present; / ${before} MB -> $(du -sxm / | cut -f1) MB"
