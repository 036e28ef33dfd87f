#!/usr/bin/env bash
# The load benchmark's peers, installed if missing: what scripts/setup.sh installs for the
# tests (nginx, Redis, the OpenID provider, SimpleSAMLphp), and wrk and Apache with
# mod_auth_mellon and mod_auth_openidc from Debian. Used by benches/load.sh and
# scripts/build-pgo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
need=()
for pkg in wrk apache2 libapache2-mod-auth-mellon libapache2-mod-auth-openidc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
scripts/apt-install.sh ${need[@]+"${need[@]}"}
