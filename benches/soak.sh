#!/usr/bin/env bash
# The soak run (tests/soak.rs): two replicas on a real Redis under a mixed load for
# [minutes] (default 30), loopback only. Prints a row a minute (resident memory, descriptors,
# threads per replica, the session requests' p99, answers by kind and status) and writes the
# table to test-artifacts/soak.md; fails when memory, descriptors or threads are not flat, or
# an answer is a 5xx other than 503 while Redis is down. The suite runs the same test for
# 2 minutes. Usage: benches/soak.sh [minutes]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
scripts/setup.sh
limit=$(python3 -c "print(int(float('$minutes') * 60 + 900))")
AUTHGATE_SOAK_MINUTES="$minutes" AUTHGATE_TEST_LIMIT="$limit" \
  setsid --wait cargo test --locked --test soak -- --nocapture
