#!/usr/bin/env bash
# The side-by-side load benchmark (see benches/load.py and BENCHMARKS.md): installs the peers
# (nginx, wrk, Apache with mod_auth_mellon and mod_auth_openidc, from Debian), builds authgate
# in release mode and runs everything on 127.0.0.1.
# Usage: benches/load.sh [--duration 8] [--connections 32] [--rounds 2] [--json out.json]
#        benches/load.sh --memory [--sessions 30000]   (resident memory after real sign-ins)
set -euo pipefail
cd "$(dirname "$0")/.."
benches/peers.sh
cargo build --release --locked --bin authgate --example bare_pingora
if [ "${1:-}" = "--memory" ]; then
  shift
  exec python3 benches/session_rss.py "$@"
fi
exec python3 benches/load.py "$@"
