#!/usr/bin/env bash
# Provides every runtime image listed in images/images.txt that the engine
# does not have yet. Two ways, chosen per image:
#   registry: `docker build` of the image's Dockerfile (pulls official images);
#   offline:  debootstrap a minimal Debian root filesystem from Debian's
#             packages, install the runtime with apt in a chroot, add the
#             non-root user 1000 and `docker import` the result.
# An image's directory may hold `setup`, an executable run as root in the
# image once its packages are installed (offline: in the chroot; registry:
# the image's Dockerfile runs it), e.g. to prebuild caches a read-only run
# cannot write.
# RUNHOST_IMAGE_SOURCE=auto (default) tries the registry first and falls back
# to offline; `registry` or `offline` forces one. Root filesystems and .debs
# are cached under RUNHOST_IMAGE_CACHE (default .cache/images).
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE=${RUNHOST_IMAGE_SOURCE:-auto}
LIST=${IMAGES_LIST:-images/images.txt} # another list: an out-of-tree plugin's images
CACHE=${RUNHOST_IMAGE_CACHE:-$PWD/.cache/images}
MIRROR=${RUNHOST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ONLY=("$@") # optional: build only these images

log() { echo "images: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

registry_reachable=""
can_pull() {
  if [ -z "$registry_reachable" ]; then
    if timeout 30 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
      registry_reachable=yes
    else
      registry_reachable=no
      log "no registry answers; building offline from Debian packages"
    fi
  fi
  [ "$registry_reachable" = yes ]
}

# base_rootfs SUITE prints the path of a cached minbase tarball for SUITE.
base_rootfs() {
  local suite=$1 tarball="$CACHE/rootfs/$suite-minbase.tar"
  if [ ! -f "$tarball" ]; then
    mkdir -p "$CACHE/rootfs" "$CACHE/debs/$suite"
    local dir
    dir=$(mktemp -d "$CACHE/rootfs/$suite.XXXX")
    log "debootstrap $suite (about a minute)"
    as_root debootstrap --variant=minbase --cache-dir="$CACHE/debs/$suite" "$suite" "$dir" "$MIRROR" >"$CACHE/rootfs/$suite.log" 2>&1 \
      || { tail -20 "$CACHE/rootfs/$suite.log" >&2; exit 1; }
    as_root tar -C "$dir" -cf "$tarball.tmp" .
    as_root mv "$tarball.tmp" "$tarball"
    as_root rm -rf "$dir"
  fi
  echo "$tarball"
}

build_offline() {
  local image=$1 dir_=$2 suite=$3; shift 3
  local base root
  base=$(base_rootfs "$suite")
  root=$(mktemp -d "$CACHE/build.XXXX")
  trap 'as_root umount "$root/proc" 2>/dev/null || true; as_root rm -rf "$root"' RETURN
  as_root tar -C "$root" -xf "$base"
  as_root cp /etc/resolv.conf "$root/etc/resolv.conf"
  as_root mount -t proc proc "$root/proc"
  log "$image: apt-get install $*"
  local apt="apt-get -o APT::Sandbox::User=root -o Dpkg::Use-Pty=0"
  as_root chroot "$root" sh -c "$apt update -qq && DEBIAN_FRONTEND=noninteractive $apt install -y -qq --no-install-recommends $*" \
    >"$CACHE/apt-${image//[\/:]/_}.log" 2>&1 \
    || { tail -20 "$CACHE/apt-${image//[\/:]/_}.log" >&2; log "$image: apt-get failed"; exit 1; }
  as_root chroot "$root" useradd --uid 1000 --user-group --create-home --shell /bin/bash runner
  if [ -f "$dir_/setup" ]; then
    log "$image: $dir_/setup"
    as_root install -m 0755 "$dir_/setup" "$root/tmp/runhost-image-setup"
    as_root chroot "$root" /tmp/runhost-image-setup >>"$CACHE/apt-${image//[\/:]/_}.log" 2>&1 \
      || { tail -20 "$CACHE/apt-${image//[\/:]/_}.log" >&2; log "$image: $dir_/setup failed"; exit 1; }
    as_root rm -f "$root/tmp/runhost-image-setup"
  fi
  as_root mkdir -p "$root/code"
  as_root umount "$root/proc"
  # Trim what a runtime image does not need.
  as_root chroot "$root" apt-get clean
  as_root rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/var/log/* "$root"/var/cache/debconf/*-old "$root"/etc/resolv.conf
  # The image's environment is the Dockerfile's ENV lines, so both ways agree.
  local changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  while read -r line; do changes+=(--change "$line"); done < <(grep '^ENV ' "$dir_/Dockerfile")
  as_root tar -C "$root" -c . | docker import "${changes[@]}" \
    --change 'USER 1000:1000' \
    --change 'WORKDIR /code' \
    --change "LABEL runhost.recipe=$recipe runhost.source=offline runhost.suite=$suite" \
    - "$image" >/dev/null
}

build_registry() {
  local image=$1 dir_=$2
  docker build -q --label "runhost.recipe=$recipe" --label runhost.source=registry -t "$image" "$dir_" >/dev/null
}

while read -r image dir_ suite packages; do
  [[ -z "$image" || "$image" == \#* ]] && continue
  if [ ${#ONLY[@]} -gt 0 ] && [[ ! " ${ONLY[*]} " == *" $image "* ]]; then continue; fi
  # The recipe hash changes when the image's line, a file of its directory
  # (the Dockerfile, setup) or this script changes; an image built from
  # another recipe is rebuilt.
  recipe=$(cat <(echo "$image $dir_ $suite $packages") <(cd "$dir_" && find . -maxdepth 1 -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) "$0" | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{index .Config.Labels "runhost.recipe"}}' "$image" 2>/dev/null || true)
  if [ "$have" = "$recipe" ]; then
    log "$image: present"
    continue
  fi
  [ -n "$have" ] && log "$image: built from another recipe; rebuilding"
  start=$(date +%s)
  case "$SOURCE" in
    registry) build_registry "$image" "$dir_" ;;
    offline) build_offline "$image" "$dir_" "$suite" $packages ;;
    auto) if can_pull; then build_registry "$image" "$dir_"; else build_offline "$image" "$dir_" "$suite" $packages; fi ;;
    *) log "RUNHOST_IMAGE_SOURCE=$SOURCE: want auto, registry or offline"; exit 2 ;;
  esac
  log "$image: built in $(( $(date +%s) - start )) s"
done < "$LIST"
