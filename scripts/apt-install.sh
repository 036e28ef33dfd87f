#!/usr/bin/env bash
# Installs the Debian packages named, without letting them start their services (nginx,
# redis-server, apache2 would stay running after the tests): policy-rc.d says no for the
# length of the install, unless one exists already.
# Usage: scripts/apt-install.sh PACKAGE...   (the callers name only what is missing)
set -euo pipefail
[ "$#" -gt 0 ] || exit 0
echo "installing $*"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  policy=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
fi
status=0
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" || status=$?
if [ -n "$policy" ]; then $SUDO rm -f "$policy"; fi
exit "$status"
