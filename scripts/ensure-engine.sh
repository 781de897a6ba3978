#!/usr/bin/env bash
# Makes sure a Docker engine answers: installs Debian's docker.io (and
# debootstrap, for offline image builds, and runsc, gVisor's runtime) when
# missing, registers runsc with the engine when /etc/docker/daemon.json does
# not exist yet, and starts dockerd in the background when nothing is
# listening. Does nothing when DOCKER_HOST points elsewhere and answers.
# RUNHOST_GVISOR=0 skips gVisor.
set -euo pipefail

log() { echo "ensure-engine: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v docker >/dev/null || need+=(docker.io)
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ "${RUNHOST_GVISOR:-1}" != 0 ]; then
  command -v runsc >/dev/null || need+=(runsc)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi

# gVisor as an engine runtime. Runs never have a network (--network=none);
# install steps reach the egress proxy through a unix socket (--host-uds=open).
registered=""
if [ "${RUNHOST_GVISOR:-1}" != 0 ] && command -v runsc >/dev/null; then
  if [ ! -e /etc/docker/daemon.json ]; then
    as_root mkdir -p /etc/docker
    echo '{"runtimes":{"runsc":{"path":"'"$(command -v runsc)"'","runtimeArgs":["--network=none","--host-uds=open"]}}}' | as_root tee /etc/docker/daemon.json >/dev/null
    registered=yes
    log "registered runsc (gVisor) in /etc/docker/daemon.json"
  elif ! grep -q runsc /etc/docker/daemon.json; then
    log "/etc/docker/daemon.json exists without runsc; not changing it (gVisor tests need runsc registered)"
  fi
fi

if docker info >/dev/null 2>&1; then
  if [ -n "$registered" ]; then
    as_root pkill -HUP -x dockerd || true # dockerd reloads its runtimes on SIGHUP
    sleep 1
  fi
  exit 0
fi
if [ -n "${DOCKER_HOST:-}" ] && [[ "$DOCKER_HOST" != unix://* ]]; then
  log "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local engine"
  exit 1
fi

log "starting dockerd (log: /var/log/runhost-dockerd.log)"
as_root sh -c 'nohup setsid dockerd >/var/log/runhost-dockerd.log 2>&1 &'
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "engine is up ($(docker version --format '{{.Server.Version}} API {{.Server.APIVersion}}'))"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within 60 s; last log lines:"
tail -20 /var/log/runhost-dockerd.log >&2 || true
exit 1
