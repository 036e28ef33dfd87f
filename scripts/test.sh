#!/usr/bin/env bash
# The whole test suite: unit tests, and integration tests that run the real gateway binary
# against a real OpenID provider (npm oidc-provider) and a real upstream on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --locked --all-targets "$@"
