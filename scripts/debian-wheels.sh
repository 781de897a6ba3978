#!/usr/bin/env bash
# Fetches the Debian packages the tests' package index turns into wheels
# (internal/e2e/pkgindex DebianWheels): `requests` and `flask`, which the
# seed's Advanced Example installs, and every Python package they depend
# on, as the machine's Debian release ships them. No PyPI: `apt-get
# download`, then `dpkg-deb` extracts each package to
# .cache/debian-wheels/<package>/ (its control file in DEBIAN/). Cached: a
# second run with the same list does nothing. `make test` runs it; so do
# the tests that need it when the cache is missing.
# Exits non-zero, saying why, when it cannot fetch (no apt-get, no mirror).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${DEBIAN_WHEELS_CACHE:-$ROOT/.cache/debian-wheels}
# python3-requests and python3-flask and what they need of each other's
# Python packages: their Depends, less what upstream makes an extra or
# Windows-only (requests' chardet, click's colorama). pkgindex refuses a
# package that needs one not listed here.
PACKAGES=(
	python3-requests python3-certifi python3-charset-normalizer python3-idna python3-urllib3 python3-six
	python3-flask python3-click python3-itsdangerous python3-jinja2 python3-markupsafe python3-werkzeug
)
log() { echo "debian-wheels: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

want=$(printf '%s\n' "${PACKAGES[@]}")
if [ -f "$CACHE/.packages" ] && [ "$(cat "$CACHE/.packages")" = "$want" ]; then
	exit 0
fi
for tool in apt-get dpkg-deb; do
	command -v "$tool" >/dev/null || { log "$tool is missing: this needs a Debian machine"; exit 1; }
done

mkdir -p "$(dirname "$CACHE")"
tmp=$(mktemp -d "$(dirname "$CACHE")/.debian-wheels.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/debs" "$tmp/out"
# As root, apt would download as _apt, which cannot write here.
download() { (cd "$tmp/debs" && apt-get -q -o APT::Sandbox::User=root download "${PACKAGES[@]}" >/dev/null); }
if ! download; then
	log "apt-get download failed; updating the package lists and trying again"
	as_root apt-get update -qq || true
	download || { log "cannot fetch ${PACKAGES[*]} with apt-get download (see above)"; exit 1; }
fi
for deb in "$tmp"/debs/*.deb; do
	pkg=$(dpkg-deb --field "$deb" Package)
	dpkg-deb --extract "$deb" "$tmp/out/$pkg"
	dpkg-deb --control "$deb" "$tmp/out/$pkg/DEBIAN"
done
echo "$want" >"$tmp/out/.packages"
rm -rf "$CACHE"
mv "$tmp/out" "$CACHE"
log "fetched ${#PACKAGES[@]} packages into $CACHE"
