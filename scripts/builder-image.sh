#!/usr/bin/env bash
# The builder image Dockerfile builds run in (on Docker and on Kubernetes), made offline (no registry):
# BuildKit (buildkitd, buildctl) and rootlesskit built from the Go module proxy, crane (to
# read back what a build pushed), on a debootstrapped Debian with runc and uidmap, and
# images/builder's entry script, default buildkitd.toml and runhost-runc (the runc BuildKit
# runs RUN steps with: it gives a granted build's steps the host's CA bundle). Prints the image name, and tags it
# runhost/builder:latest too (the Docker executor's default RUNHOST_BUILDER_IMAGE).
#
# Debian's newuidmap/newgidmap are setuid root and built without libcap: they would write
# the uid map as root, which needs CAP_SYS_ADMIN. The image gives them file capabilities
# instead (cap_setuid/cap_setgid), so a build pod needs only SETUID and SETGID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
BUILDKIT=v0.34.2
ROOTLESSKIT=v2.3.6
CRANE=v0.22.1
CACHE=${BUILDER_CACHE:-$ROOT/.cache/builder}
TAG=$(cat images/builder/* scripts/builder-image.sh | sha256sum | cut -c1-12)
IMAGE=runhost/builder:$TAG
LATEST=runhost/builder:latest
# What the host expects of the image (3: RUNHOST_BUILD_PROCESS_SANDBOX, RUNHOST_BUILD_CA): the Docker
# executor refuses a builder image without this label value (internal/executor/docker/builder.go).
PROTOCOL=3
log() { printf '[builder-image] %s\n' "$*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
	docker tag "$IMAGE" "$LATEST"
	echo "$IMAGE"
	exit 0
fi
if ! command -v debootstrap >/dev/null || ! command -v setcap >/dev/null; then
	log "installing debootstrap and libcap2-bin"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap libcap2-bin >/dev/null
fi

BIN=$CACHE/bin-$BUILDKIT
mkdir -p "$BIN"
export CGO_ENABLED=0
if [ ! -x "$BIN/buildkitd" ] || [ ! -x "$BIN/buildctl" ]; then
	log "building BuildKit $BUILDKIT (a few minutes, once)"
	# BuildKit's go.mod has exclude directives, so `go install pkg@version` refuses it:
	# build in a copy of the module.
	$GO mod download "github.com/moby/buildkit@$BUILDKIT"
	src=$(mktemp -d)
	cp -r "$($GO env GOMODCACHE)/github.com/moby/buildkit@$BUILDKIT/." "$src"
	chmod -R u+w "$src"
	for c in buildkitd buildctl; do
		(cd "$src" && $GO build -mod=mod -trimpath -ldflags="-s -w -X github.com/moby/buildkit/version.Version=$BUILDKIT" -o "$BIN/$c" "./cmd/$c")
	done
	rm -rf "$src"
fi
[ -x "$BIN/rootlesskit" ] || GOBIN=$BIN $GO install -trimpath -ldflags='-s -w' "github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit@$ROOTLESSKIT"
[ -x "$BIN/crane" ] || GOBIN=$BIN $GO install -trimpath -ldflags='-s -w' "github.com/google/go-containerregistry/cmd/crane@$CRANE"
# runhost-runc is this checkout's (images/builder, in the image's tag): never cached.
$GO build -trimpath -ldflags='-s -w' -o "$CACHE/runhost-runc" ./images/builder

log "root filesystem (debootstrap, runc, uidmap)"
fs=$(mktemp -d)
trap 'umount "$fs/proc" 2>/dev/null || true; rm -rf "$fs"' EXIT
debootstrap --variant=minbase bookworm "$fs" >/dev/null
mount -t proc proc "$fs/proc"
chroot "$fs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runc uidmap ca-certificates >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*'
umount "$fs/proc"
chroot "$fs" sh -c 'useradd -u 1000 -m -s /bin/sh build && echo build:100000:65536 >/etc/subuid && echo build:100000:65536 >/etc/subgid && mkdir -p /etc/buildkit /home/build/.local/share/buildkit && chown -R build:build /home/build'
install -m 0644 images/builder/buildkitd.toml "$fs/etc/buildkit/buildkitd.toml"
install -m 0755 images/builder/runhost-build "$CACHE/runhost-runc" "$BIN/buildkitd" "$BIN/buildctl" "$BIN/rootlesskit" "$BIN/crane" "$fs/usr/local/bin/"
rm -rf "$fs"/usr/share/doc/* "$fs"/usr/share/man/* "$fs"/var/cache/apt/*
# No setuid or setgid program at all (newuidmap/newgidmap included): the Docker executor runs the
# builder without no-new-privileges (file capabilities need it), so none may make a process root.
find "$fs" -xdev -type f -perm /6000 -exec chmod ug-s {} +
setcap cap_setuid=ep "$fs/usr/bin/newuidmap"
setcap cap_setgid=ep "$fs/usr/bin/newgidmap"
# --xattrs keeps the file capabilities.
tar --xattrs --xattrs-include='security.capability' -C "$fs" -c . |
	docker import -c 'USER 1000:1000' -c 'ENV HOME=/home/build' -c 'WORKDIR /home/build' \
		-c 'ENTRYPOINT ["/usr/local/bin/runhost-build"]' -c "LABEL runhost.managed=true runhost.builder=$PROTOCOL" - "$IMAGE" >/dev/null
docker tag "$IMAGE" "$LATEST"
log "built $IMAGE"
echo "$IMAGE"
