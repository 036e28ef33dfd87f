#!/usr/bin/env bash
# Local demo, no Entra tenant needed: a local OpenID provider (Entra-shaped claims, two test
# users), a sample upstream that shows the headers it receives, and authgate in front of it.
# Open the URL it prints; sign in as "alice", "bob" or "carol" (any password). Ctrl-C stops
# everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --locked --bin authgate

GW=http://127.0.0.1:8080
export DEMO_CLIENT_SECRET=demo-client-secret
export AUTHGATE_SESSION_SECRET="${AUTHGATE_SESSION_SECRET:-$(head -c 48 /dev/urandom | base64)}"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

(cd testenv && PORT=3000 exec node upstream.mjs >/dev/null) & pids+=($!)
(cd testenv && PORT=9000 CLIENT_ID=authgate-demo CLIENT_SECRET="$DEMO_CLIENT_SECRET" \
  REDIRECT_URIS="$GW/_authgate/callback/demo" POST_LOGOUT_REDIRECT_URIS="$GW/_authgate/signed_out" \
  exec node oidc-provider.mjs 2> >(grep -v WARNING >&2) >/dev/null) & pids+=($!)
./target/debug/authgate run -c gateway.yaml & pids+=($!)

for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:9090/readyz >/dev/null 2>&1 && break
  sleep 0.2
done
cat <<MSG

  authgate demo is running.
    Open:      $GW/          (sign in as alice, bob or carol, any password)
    Admins:    $GW/admin/    (only alice: the others see the access-denied page)
    Public:    $GW/public/   (no sign-in)
    Sign out:  $GW/_authgate/sign_out
    Metrics:   http://127.0.0.1:9090/metrics
  Ctrl-C to stop.

MSG
wait
