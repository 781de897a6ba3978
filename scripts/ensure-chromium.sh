#!/usr/bin/env bash
# Makes sure a Chromium is installed for the playground's browser tests
# (internal/e2e/playground_test.go): installs Debian's chromium when neither
# `chromium` on PATH nor /usr/bin/chromium exists. Non-interactive; as root
# or through sudo.
set -euo pipefail

log() { echo "ensure-chromium: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if command -v chromium >/dev/null || [ -x /usr/bin/chromium ]; then
  exit 0
fi
log "installing chromium"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || { log "chromium still missing after apt-get install"; exit 1; }
