#!/usr/bin/env bash
# Makes sure a Docker engine answers: installs Debian's docker.io (and
# debootstrap, for offline image builds) when missing, and starts dockerd in
# the background when nothing is listening. Does nothing when DOCKER_HOST
# points elsewhere and answers.
set -euo pipefail

log() { echo "ensure-engine: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v docker >/dev/null || need+=(docker.io)
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi

if docker info >/dev/null 2>&1; then
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
