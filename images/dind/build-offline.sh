#!/usr/bin/env bash
# Builds runhost/dind:bookworm without a registry: the cached bookworm
# minbase root filesystem of `make images` (debootstrapped here when missing),
# Debian's docker.io, openssl, iptables and ca-certificates installed with apt
# in a chroot, the entrypoint copied in, and `docker import` with the
# Dockerfile's ENV, VOLUME and ENTRYPOINT. The result runs the same daemon
# with the same entrypoint as `docker build images/dind`.
#
# The image carries the label runhost.recipe, a hash of the Dockerfile, the
# entrypoint and this script; an image with the same label is not rebuilt.
#
#   RUNHOST_IMAGE_CACHE    root filesystems and .debs (default .cache/images)
#   RUNHOST_DEBIAN_MIRROR  the Debian mirror (default http://deb.debian.org/debian)
#   RUNHOST_DIND_IMAGE     the tag to build (default runhost/dind:bookworm)
set -euo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$SELF")/../.."

IMAGE=${RUNHOST_DIND_IMAGE:-runhost/dind:bookworm}
SUITE=bookworm
DIR=images/dind
CACHE=${RUNHOST_IMAGE_CACHE:-$PWD/.cache/images}
MIRROR=${RUNHOST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES="docker.io openssl iptables ca-certificates"

log() { echo "images: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

recipe=$(cat <(echo "$IMAGE $SUITE $PACKAGES") "$DIR/Dockerfile" "$DIR/dind-entrypoint.sh" "$SELF" | sha256sum | cut -c1-16)
have() { docker image inspect -f '{{index .Config.Labels "runhost.recipe"}}' "$IMAGE" 2>/dev/null || true; }
if [ "$(have)" = "$recipe" ]; then
  log "$IMAGE: present"
  exit 0
fi

mkdir -p "$CACHE"
# One build at a time per cache (a second `make e2e-dind` waits, then finds
# the image present).
exec 9>"$CACHE/dind.lock"
flock 9
existing=$(have)
if [ "$existing" = "$recipe" ]; then
  log "$IMAGE: present"
  exit 0
fi
[ -n "$existing" ] && log "$IMAGE: built from another recipe; rebuilding"
start=$(date +%s)

# The same cached minbase tarball images/images.sh makes and uses.
tarball="$CACHE/rootfs/$SUITE-minbase.tar"
if [ ! -f "$tarball" ]; then
  command -v debootstrap >/dev/null || { log "debootstrap missing: run scripts/ensure-engine.sh"; exit 1; }
  mkdir -p "$CACHE/rootfs" "$CACHE/debs/$SUITE"
  base=$(mktemp -d "$CACHE/rootfs/$SUITE.XXXX")
  trap 'as_root rm -rf "$base"' EXIT
  log "debootstrap $SUITE (about a minute)"
  as_root debootstrap --variant=minbase --cache-dir="$CACHE/debs/$SUITE" "$SUITE" "$base" "$MIRROR" >"$CACHE/rootfs/$SUITE.log" 2>&1 \
    || { tail -20 "$CACHE/rootfs/$SUITE.log" >&2; exit 1; }
  as_root tar -C "$base" -cf "$tarball.tmp.$$" .
  as_root mv "$tarball.tmp.$$" "$tarball"
  as_root rm -rf "$base"
  trap - EXIT
fi

root=$(mktemp -d "$CACHE/build.XXXX")
cleanup() {
  as_root umount "$root/proc" 2>/dev/null || true
  as_root rm -rf "$root"
}
trap cleanup EXIT
as_root tar -C "$root" -xf "$tarball"
as_root cp /etc/resolv.conf "$root/etc/resolv.conf"
as_root mount -t proc proc "$root/proc"
# No service may start in the chroot while packages are configured.
printf '#!/bin/sh\nexit 101\n' | as_root tee "$root/usr/sbin/policy-rc.d" >/dev/null
as_root chmod 0755 "$root/usr/sbin/policy-rc.d"

log "$IMAGE: apt-get install $PACKAGES"
apt="apt-get -o APT::Sandbox::User=root -o Dpkg::Use-Pty=0"
as_root chroot "$root" sh -c "$apt update -qq && DEBIAN_FRONTEND=noninteractive $apt install -y -qq --no-install-recommends $PACKAGES" \
  >"$CACHE/apt-dind.log" 2>&1 \
  || { tail -20 "$CACHE/apt-dind.log" >&2; log "$IMAGE: apt-get failed"; exit 1; }
as_root umount "$root/proc"

as_root install -m 0755 "$DIR/dind-entrypoint.sh" "$root/usr/local/bin/dind-entrypoint.sh"
# Trim what the daemon does not need.
as_root chroot "$root" apt-get clean
as_root rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/info/* "$root"/var/log/* "$root"/var/cache/debconf/*-old \
  "$root"/etc/resolv.conf "$root"/usr/sbin/policy-rc.d

# The image's configuration is the Dockerfile's ENV, VOLUME and ENTRYPOINT
# lines, so both ways agree.
changes=()
while read -r line; do changes+=(--change "$line"); done < <(grep -E '^(ENV|VOLUME|ENTRYPOINT) ' "$DIR/Dockerfile")
as_root tar -C "$root" -c . | docker import "${changes[@]}" \
  --change "LABEL runhost.recipe=$recipe runhost.source=offline runhost.suite=$SUITE" \
  - "$IMAGE" >/dev/null
log "$IMAGE: built in $(( $(date +%s) - start )) s"
