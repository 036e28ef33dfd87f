#!/usr/bin/env bash
# The whole test suite: unit tests, and integration tests that run the real gateway binary
# against real peers (OpenID provider, SimpleSAMLphp, nginx, Redis, ...) on loopback.
#
# The tests run in a session of their own (setsid), so that afterwards every process they
# started can be found, reparented or not (nginx workers, php's forks): if any is still
# running, it is named, stopped, and the command fails. `scripts/test.sh | tee log` returns.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# Every step that starts peers runs in a session of its own; their ids are kept here.
sid_file=$(mktemp)
trap 'rm -f "$sid_file"' EXIT
in_session() {
  setsid --wait bash -c 'echo $$ >> "$1"; shift; exec "$@"' _ "$sid_file" "$@"
}
# Ctrl-C or a CI timeout reaches this script only: pass it on to the tests' sessions.
stop_sessions() {
  for sid in $(cat "$sid_file" 2>/dev/null || true); do
    if [ "$sid" -gt 1 ]; then kill -TERM -- "-$sid" 2>/dev/null || true; fi
  done
  exit 130
}
trap stop_sessions INT TERM

status=0
in_session cargo test --locked --all-targets "$@" || status=$?

# The hot path's regression guard (issue #30): instruction counts under callgrind are
# deterministic, so a signed-in request (cookie and Redis stores) may cost at most
# AUTHGATE_GUARD instructions more than bare pingora, in a release build (15,000, as issue
# #30 asked: the sixth round measured up to +9,400 (Redis) and +11,300 (cookie), and bare
# pingora's own count moves by up to ~2,300 between runs). Skipped when the suite was asked for
# a subset (arguments given).
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
  guard="${AUTHGATE_GUARD:-15000}"
  cargo build --locked --release --bin authgate --example bare_pingora || status=$?
  if [ "$status" -eq 0 ]; then
    in_session cargo bench --locked --bench cpu_per_request -- 500 --guard "$guard" || status=$?
  fi
  # The profile-guided build (scripts/build-pgo.sh, BENCHMARKS.md "Profile-guided build"):
  # instrumented, trained on the load bench's gateways, rebuilt; then held to the same guard
  # against bare pingora built the same way, every answer checked as in the plain run.
  if [ "$status" -eq 0 ]; then
    in_session scripts/build-pgo.sh || status=$?
  fi
  if [ "$status" -eq 0 ]; then
    AUTHGATE_BIN="$PWD/target/pgo/authgate" BARE_PINGORA_BIN="$PWD/target/pgo/bare_pingora" in_session \
      cargo bench --locked --bench cpu_per_request -- 500 --guard "$guard" || status=$?
  fi
fi

# Anything still in the tests' sessions outlived the step that started it.
sleep 0.5
left=$(ps -e -o pid=,sid=,args= | awk -v list="$(tr '\n' ' ' < "$sid_file")" '
  BEGIN { n = split(list, ids, " "); for (i = 1; i <= n; i++) s[ids[i]] = 1 }
  ($2 in s) { print }')
if [ -n "$left" ]; then
  echo "test.sh: these processes started by the tests are still running:" >&2
  echo "$left" >&2
  echo "$left" | awk '{ print $1 }' | xargs -r kill -KILL 2>/dev/null || true
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
