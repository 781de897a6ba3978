#!/usr/bin/env bash
# Pulls the seed's images (images/seed-images.txt) the engine lacks, when a
# registry answers: one quick probe, and no failure when none does (runhost
# then answers requests for them with the images it can run, and
# RUNHOST_IMAGE_ALIASES maps the names to local images).
set -euo pipefail
cd "$(dirname "$0")/.."

PROBE_TIMEOUT=${SEED_PULL_TIMEOUT:-15}
log() { echo "images: $*" >&2; }

missing=()
while read -r image; do
  [[ -z "$image" || "$image" == \#* ]] && continue
  if docker image inspect "$image" >/dev/null 2>&1; then
    log "$image: present"
  else
    missing+=("$image")
  fi
done < images/seed-images.txt
[ ${#missing[@]} -eq 0 ] && exit 0

# The probe is the first pull: where no registry answers it fails fast (or
# is cut after PROBE_TIMEOUT seconds) and nothing else is tried.
if ! timeout "$PROBE_TIMEOUT" docker pull -q "${missing[0]}" >/dev/null 2>&1; then
  log "no registry answers; not pulled: ${missing[*]} (map them to local images with RUNHOST_IMAGE_ALIASES, e.g. python:3.11-slim=runhost/python:3.11,node:20-alpine=runhost/node:20)"
  exit 0
fi
log "${missing[0]}: pulled"
for image in "${missing[@]:1}"; do
  if docker pull -q "$image" >/dev/null 2>&1; then
    log "$image: pulled"
  else
    log "$image: pull failed; not pulled"
  fi
done
