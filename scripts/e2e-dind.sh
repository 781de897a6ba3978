#!/usr/bin/env bash
# make e2e-dind: runhost against a Docker-in-Docker daemon reached over mutual
# TLS, the way the DinD deployment runs it (docs/dind.md). It
#   a. builds runhost/dind:bookworm offline when missing (images/dind/build-offline.sh);
#   b. creates a bridge network, volumes for /var/lib/docker and /certs, and a
#      workspace directory on this machine, all named with a random suffix;
#   c. starts the DinD container on that network (alias `dind`), without
#      --privileged and without publishing a port;
#   d. waits until the daemon answers over TLS with the client certificate
#      copied out of the container;
#   e. loads the runtime images into the inner daemon through its API;
#   f. checks the API is closed to everything without the client certificate:
#      no plain 2375 from this machine, and neither 2375 nor 2376 from a
#      container on the DinD network or on the inner daemon's bridge;
#   g. runs the Go test internal/e2e/dind (TestDinD) against it;
#   h. on every exit: fails if the inner daemon still has containers labelled
#      runhost.managed, then removes the container, volumes, network and
#      temporary directories it created.
# Each phase prints how long it took.
#
#   E2E_DIND_IMAGE    DinD image to use (default runhost/dind:bookworm, built offline when missing)
#   E2E_DIND_IMAGES   runtime images loaded into the inner daemon
#                     (default "runhost/python:3.11 runhost/shell:bookworm": what TestDinD runs)
#   E2E_DIND_WAIT     seconds the daemon may take to answer over TLS (default 90)
#   E2E_DIND_MEMORY   memory limit of the DinD container, which bounds every run in it (default 4g)
#   E2E_DIND_GO_TEST  0 to stop after phase f (the set-up and the network checks)
#   E2E_DIND_KEEP     1 to leave everything running and print how to reach it
# (Not RUNHOST_*: the host refuses unknown RUNHOST_* settings, and the Go test
# starts a host with this environment.)
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

DIND_IMAGE=${E2E_DIND_IMAGE:-runhost/dind:bookworm}
read -r -a LOAD_IMAGES <<<"${E2E_DIND_IMAGES:-runhost/python:3.11 runhost/shell:bookworm}"
WAIT=${E2E_DIND_WAIT:-90}

log() { echo "e2e-dind: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
name=runhost-e2e-dind-$suffix
net=$name
libvol=$name-lib
certsvol=$name-certs
workspace=""
certdir=""
ip=""
created=()   # what cleanup removes, in order: "container X", "volume X", "network X"
timings=()

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# phase NAME FUNCTION: runs FUNCTION and records how long it took (cleanup
# records a phase that failed).
current=""
current_t0=""
phase() {
  current=$1 current_t0=$EPOCHREALTIME
  shift
  log "$current"
  "$@"
  local dt
  dt=$(since "$current_t0")
  timings+=("$(printf '%-40s %6s s' "$current" "$dt")")
  log "$current: done in $dt s"
  current=""
}

inner() {
  docker --tlsverify --tlscacert "$certdir/ca.pem" --tlscert "$certdir/cert.pem" --tlskey "$certdir/key.pem" \
    -H "tcp://$ip:2376" "$@"
}

# The probe run in containers: for each port, whether TCP connects and, on
# 2376, whether a TLS client without a certificate gets an answer. It targets
# argv[1], or the container's default gateway.
PROBE=$(cat <<'EOF'
import socket, ssl, sys
if len(sys.argv) > 1:
    target = sys.argv[1]
else:
    route = [l.split() for l in open('/proc/net/route').read().splitlines()[1:]]
    target = socket.inet_ntoa(bytes.fromhex(next(r[2] for r in route if r[1] == '00000000'))[::-1])
for port in (2375, 2376):
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((target, port))
    except OSError as e:
        print(target, port, 'closed', type(e).__name__); continue
    if port == 2375:
        print(target, port, 'OPEN'); continue
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    try:
        t = ctx.wrap_socket(s); t.sendall(b'GET /version HTTP/1.0\r\n\r\n'); print(target, port, 'ANSWERED', t.recv(100))
    except (ssl.SSLError, OSError) as e:
        print(target, port, 'tls-refused', type(e).__name__, e)
EOF
)

# check_probe OUTPUT WHERE: the probe's output must show both ports closed to it.
check_probe() {
  printf '%s\n' "$1" | sed 's/^/    /' >&2
  if ! grep -Eq ' 2375 closed' <<<"$1" || ! grep -Eq ' 2376 (closed|tls-refused)' <<<"$1"; then
    log "FAIL: the daemon's API answers $2"
    return 1
  fi
}

cleanup() {
  local rc=$? left
  trap - EXIT INT TERM
  set +e
  [ -n "$current" ] && timings+=("$(printf '%-40s %6s s  FAILED' "$current" "$(since "$current_t0")")")
  if [ -n "$ip" ] && [ -f "$certdir/key.pem" ]; then
    if ! left=$(inner ps -a --filter label=runhost.managed --format '{{.ID}} {{.Image}} {{.Status}} {{.Labels}}' 2>&1); then
      log "could not list the inner daemon's containers: $left"
    elif [ -n "$left" ]; then
      log "FAIL: containers labelled runhost.managed left on the inner daemon:"
      printf '    %s\n' "$left" >&2
      [ "$rc" = 0 ] && rc=1
    else
      log "no runhost.managed containers left on the inner daemon"
    fi
  fi
  if [ "$rc" != 0 ] && [[ " ${created[*]} " == *" container $name "* ]]; then
    log "the DinD container's entrypoint, errors and warnings:"
    docker logs "$name" 2>&1 | grep -E 'dind-entrypoint|level=(fatal|error|warning)' | grep -v 'snapshotter\|blkio\|containerd config version' \
      | tail -20 | sed 's/^/    /' >&2
  fi
  if [ "${E2E_DIND_KEEP:-0}" = 1 ] && [ -n "$ip" ]; then
    log "E2E_DIND_KEEP=1: left running; reach it with"
    echo "  export DOCKER_HOST=tcp://$ip:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$certdir DIND_ENABLED=true RUNHOST_WORKSPACE_ROOT=$workspace DIND_WORKSPACE_PATH=/workspaces" >&2
    echo "  remove with: docker rm -f $name; docker volume rm $libvol $certsvol; docker network rm $net; rm -rf $workspace $certdir" >&2
  else
    local t0=$EPOCHREALTIME item
    # Stop dockerd gracefully first so it stops its containers and unmounts.
    for item in "${created[@]}"; do
      case "$item" in
        "container "*) docker stop -t 20 "${item#container }" >/dev/null 2>&1
                       docker rm -f "${item#container }" >/dev/null 2>&1 || log "could not remove ${item}" ;;
      esac
    done
    docker rm -f "$name-probe" >/dev/null 2>&1
    for item in "${created[@]}"; do
      case "$item" in
        "volume "*) docker volume rm "${item#volume }" >/dev/null || log "could not remove ${item}" ;;
      esac
    done
    for item in "${created[@]}"; do
      case "$item" in
        "network "*) docker network rm "${item#network }" >/dev/null || log "could not remove ${item}" ;;
      esac
    done
    # The workspace holds files of the run user (1000); only root removes them.
    [ -n "$workspace" ] && as_root rm -rf "$workspace"
    [ -n "$certdir" ] && rm -rf "$certdir"
    timings+=("$(printf '%-40s %6s s' "h. clean up" "$(since "$t0")")")
  fi
  log "phases:"
  printf '    %s\n' "${timings[@]}" >&2
  if [ "$rc" = 0 ]; then log "passed"; else log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_image() {
  if [ -n "${E2E_DIND_IMAGE:-}" ]; then
    docker image inspect "$DIND_IMAGE" >/dev/null
  else
    images/dind/build-offline.sh
  fi
}

create_resources() {
  docker network create --label "runhost.e2e-dind=$suffix" "$net" >/dev/null
  created+=("network $net")
  docker volume create --label "runhost.e2e-dind=$suffix" "$libvol" >/dev/null
  created+=("volume $libvol")
  docker volume create --label "runhost.e2e-dind=$suffix" "$certsvol" >/dev/null
  created+=("volume $certsvol")
  # The shared workspace: the host (this machine, as RUNHOST_WORKSPACE_ROOT)
  # and the inner daemon (as /workspaces) see the same directory. 0700 is
  # enough: the host runs as root and gives each session directory to the run
  # user itself, the daemon is root in the DinD container, and a run gets its
  # session directory bind-mounted, so it never walks the parent. 0777 would
  # let any local user plant sessions or symlinks for the host to serve.
  workspace=$(mktemp -d /tmp/runhost-e2e-dind-ws.XXXXXX)
  chmod 0700 "$workspace"
  certdir=$(mktemp -d /tmp/runhost-e2e-dind-certs.XXXXXX)
  log "network $net, volumes $libvol $certsvol, workspace $workspace"
}

start_dind() {
  # No --privileged (it fails where CAP_SYS_RESOURCE is outside the bounding
  # set): every other capability, no seccomp/AppArmor confinement, writable
  # /proc/sys and the host's cgroup hierarchy. No -p: the host reaches the
  # daemon at the container's address on the network made above.
  created+=("container $name")
  docker run -d --name "$name" --hostname "$name" \
    --label "runhost.e2e-dind=$suffix" \
    --network "$net" --network-alias dind \
    --memory "${E2E_DIND_MEMORY:-4g}" \
    --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    -v "$libvol:/var/lib/docker" \
    -v "$certsvol:/certs" \
    -v "$workspace:/workspaces" \
    -e "DOCKER_TLS_SAN=$name" \
    "$DIND_IMAGE" >/dev/null
  ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$name")
  [ -n "$ip" ] || { log "the DinD container has no address on $net"; return 1; }
  log "DinD container $name at $ip"
}

wait_tls() {
  local deadline=$((SECONDS + WAIT)) out
  while :; do
    if [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
      log "the DinD container stopped"
      return 1
    fi
    # client/ is complete once the entrypoint made it (it is the last step).
    if docker cp "$name:/certs/client/." "$certdir/" >/dev/null 2>&1 && [ -s "$certdir/key.pem" ]; then
      chmod 0600 "$certdir/key.pem"
      if out=$(inner version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>&1); then
        log "inner daemon answers over TLS: $out"
        return 0
      fi
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "no answer over TLS within $WAIT s: ${out:-no client certificate yet}"
      return 1
    fi
    sleep 1
  done
}

load_images() {
  local missing=() img
  for img in "${LOAD_IMAGES[@]}"; do
    docker image inspect "$img" >/dev/null 2>&1 || missing+=("$img")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "building missing runtime images: ${missing[*]}"
    images/images.sh "${missing[@]}"
  fi
  docker save "${LOAD_IMAGES[@]}" | inner load -q >&2
}

check_closed() {
  # From this machine: nothing listens on plain 2375.
  if timeout 5 bash -c "exec 3<>/dev/tcp/$ip/2375" 2>/dev/null; then
    log "FAIL: $ip:2375 accepts connections"
    return 1
  fi
  log "this machine -> $ip:2375: closed"
  # From a container on the DinD network (what code-server's neighbours
  # see): no 2375, and 2376 refuses a client without a certificate.
  check_probe "$(docker run --rm --name "$name-probe" --network "$net" --user 1000:1000 --cap-drop ALL \
    "${LOAD_IMAGES[0]}" python3 -c "$PROBE" "$ip" 2>&1)" "to a container on the DinD network"
  # From a container on the inner daemon's default bridge (what an install
  # step with network sees): the same, towards its gateway.
  check_probe "$(inner run --rm --user 1000:1000 --cap-drop ALL "${LOAD_IMAGES[0]}" python3 -c "$PROBE" 2>&1)" \
    "to a container on the inner daemon's bridge"
}

go_test() {
  if [ "${E2E_DIND_GO_TEST:-1}" = 0 ]; then
    log "E2E_DIND_GO_TEST=0: skipped"
    return 0
  fi
  # TestDinD is built only with -tags dind. No RUNHOST_E2E_DIND=1: the host
  # the test starts refuses unknown RUNHOST_* settings, and the test knows it
  # runs here from DOCKER_HOST and DIND_ENABLED.
  DOCKER_HOST=tcp://$ip:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$certdir \
    DIND_ENABLED=true RUNHOST_WORKSPACE_ROOT=$workspace DIND_WORKSPACE_PATH=/workspaces \
    CI=${CI:-} \
    "${GO:-go}" test -tags dind -count=1 -race -timeout 20m -run 'TestDinD' -v ./internal/e2e/dind/
}

phase "a. DinD image" build_image
phase "b. network, volumes, workspace" create_resources
phase "c. start the DinD container" start_dind
phase "d. daemon answers over TLS" wait_tls
phase "e. load runtime images" load_images
phase "f. API closed without the client cert" check_closed
phase "g. go test TestDinD" go_test
