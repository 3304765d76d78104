#!/usr/bin/env bash
# Installs Debian's headless-capable `chromium`, which test/browser/report.test.ts opens the HTML
# report in (the vitest project `browser` runs this from its global setup when chromium is missing).
# A no-op when `chromium` (or $QUESTA_CHROMIUM) already runs. Needs apt-get and root; otherwise it
# fails with the command to run by hand. Safe to run concurrently: a lock serialises installers.
set -euo pipefail

log() { printf '[install-chromium] %s\n' "$*" >&2; }

usable() { "$1" --version >/dev/null 2>&1; }

if usable "${QUESTA_CHROMIUM:-chromium}"; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]]; then
  log "chromium is not installed and this script can only install it with apt-get as root;"
  log "install it by hand (Debian/Ubuntu: sudo apt-get install -y chromium), or set QUESTA_CHROMIUM to a Chromium or Chrome binary"
  exit 1
fi
CACHE="${QUESTA_CACHE:-$HOME/.cache/questa}"
mkdir -p "$CACHE"
exec 9>"$CACHE/chromium-install.lock"
flock 9
if usable chromium; then exit 0; fi
log "installing chromium with apt-get (a few hundred MB the first time)"
# the package lists may be stale or absent (fresh containers): update once if the first try fails
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; then
  apt-get update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null
fi
usable chromium || { log "apt-get installed chromium, but \`chromium --version\` fails"; exit 1; }
log "installed $(chromium --version)"
