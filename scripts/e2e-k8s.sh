#!/usr/bin/env bash
# runhost's Kubernetes executor against a real single-node cluster (make e2e-k8s):
# cluster up -> images into the cluster's containerd -> the k8s suite (go test -tags k8s:
# the executor from outside the cluster, the manifests applied with client-go, the host's
# Deployment smoke-tested through its Service's endpoints, latency on both executors) ->
# teardown, always. Each phase prints its duration. K8S_KEEP=1 leaves the cluster up.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
CLUSTER=scripts/k8s-cluster.sh
T0=$(date +%s)

log() { printf '[e2e-k8s] %s\n' "$*" >&2; }
phase() {
	local name=$1 s
	shift
	s=$(date +%s.%N)
	"$@"
	log "$(printf 'phase %-10s %6.1fs' "$name" "$(echo "$(date +%s.%N) - $s" | bc)")"
}

teardown() {
	local rc=$?
	[ -z "${REGISTRY_PID:-}" ] || kill "$REGISTRY_PID" 2>/dev/null || true
	if [ "${K8S_KEEP:-}" = 1 ]; then
		log "K8S_KEEP=1: the cluster stays up ($($CLUSTER env)); stop it with $CLUSTER down"
	else
		phase down "$CLUSTER" down || rc=1
	fi
	log "total $(($(date +%s) - T0))s"
	exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

for f in bin/host bin/runhost-init bin/runhost-egress; do
	[ -x "$f" ] || { log "$f missing: run make build"; exit 1; }
done

# The init image (runhost-init alone at /init) and the egress proxy's (runhost-egress at
# /egress), named by their binary's hash as the host names them (executor/docker.InitImage,
# EgressImage), so the host derives the same names from the same binaries.
INIT_IMAGE=runhost/init:$(sha256sum bin/runhost-init | cut -c1-12)
EGRESS_IMAGE=runhost/egress:$(sha256sum bin/runhost-egress | cut -c1-12)
one_file_image() { # IMAGE NAME BINARY
	docker image inspect "$1" >/dev/null 2>&1 && return 0
	local d
	d=$(mktemp -d)
	install -m 0755 "$3" "$d/$2"
	tar -C "$d" -c "$2" | docker import -c 'LABEL runhost.managed=true' - "$1" >/dev/null
	rm -rf "$d"
}

# The host image from the built bin/: images/host.Dockerfile (no registry needed).
host_image() {
	local d
	d=$(mktemp -d)
	cp bin/host bin/runhost-init bin/runhost-egress "$d/"
	cp -r bin/plugins "$d/plugins"
	DOCKER_BUILDKIT=0 docker build -q -f images/host.Dockerfile -t runhost/host:latest "$d" >/dev/null 2>&1
	rm -rf "$d"
}

RUNTIME_IMAGES=$(awk '!/^#/ && NF {print $1}' images/images.txt)
BUILDER_IMAGE=
load_images() {
	BUILDER_IMAGE=$(scripts/builder-image.sh)
	one_file_image "$INIT_IMAGE" init bin/runhost-init
	one_file_image "$EGRESS_IMAGE" egress bin/runhost-egress
	host_image
	# shellcheck disable=SC2086
	"$CLUSTER" load $RUNTIME_IMAGES "$INIT_IMAGE" "$EGRESS_IMAGE" "$BUILDER_IMAGE" runhost/host:latest
}

# The registry Dockerfile builds push to and pull their base images from: crane's, on
# the address the cluster's containerd knows as plain HTTP (k8s-cluster.sh), with the
# base images the suite's Dockerfiles use in it (the builder reaches docker.io names
# through it as a mirror).
TEST_REGISTRY=10.244.0.1:5000
BASE_IMAGES="runhost/python:3.11 runhost/shell:bookworm"
registry() {
	local crane=.cache/tools/crane d img
	[ -x "$crane" ] || GOBIN=$ROOT/.cache/tools CGO_ENABLED=0 $GO install github.com/google/go-containerregistry/cmd/crane@v0.22.1
	"$crane" registry serve --address ":${TEST_REGISTRY#*:}" >/tmp/runhost-e2e-registry.log 2>&1 &
	REGISTRY_PID=$!
	for _ in $(seq 50); do "$crane" catalog --insecure "127.0.0.1:${TEST_REGISTRY#*:}" >/dev/null 2>&1 && break; sleep 0.2; done
	d=$(mktemp -d)
	for img in $BASE_IMAGES; do
		docker save "$img" -o "$d/image.tar"
		"$crane" push --insecure "$d/image.tar" "127.0.0.1:${TEST_REGISTRY#*:}/$img" >/dev/null 2>>/tmp/runhost-e2e-registry.log
	done
	rm -rf "$d"
}

run_suite() {
	local kubeconfig
	kubeconfig=$($CLUSTER env | sed 's/^KUBECONFIG=//')
	RUNHOST_K8S_KUBECONFIG=$kubeconfig RUNHOST_K8S_INIT_IMAGE=$INIT_IMAGE RUNHOST_K8S_EGRESS_IMAGE=$EGRESS_IMAGE \
		RUNHOST_K8S_BUILDER_IMAGE=$BUILDER_IMAGE RUNHOST_K8S_TEST_REGISTRY=$TEST_REGISTRY CI=${CI:-true} \
		$GO test -tags k8s -count=1 -timeout 30m -v ${K8S_TEST_RUN:+-run "$K8S_TEST_RUN"} ./internal/e2e/k8s/
}

phase cluster "$CLUSTER" up
phase images load_images
phase registry registry
phase tests run_suite
