#!/usr/bin/env bash
# Throughput of authenticated requests vs a public route through the same gateway, side by
# side in one run: nginx as the upstream, the real OpenID provider for one real sign-in, wrk
# as the load generator. Everything on 127.0.0.1, ephemeral ports, bounded duration.
# Usage: benches/authn_vs_public.sh [seconds per run (10)] [connections (32)]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}; CONN=${2:-32}
scripts/setup.sh
for b in nginx wrk; do command -v $b >/dev/null || { apt-get install -y -qq --no-install-recommends nginx-light wrk >/dev/null; break; }; done
cargo build --release --locked --bin authgate >/dev/null

work=$(mktemp -d); pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
UP=$(port); GWP=$(port); ADM=$(port)

cat > "$work/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$UP; keepalive_requests 100000;
  location / { default_type text/plain; return 200 "hello from upstream\n"; } } }
NGX
nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)

GW=http://127.0.0.1:$GWP
(cd testenv && PORT=0 CLIENT_ID=bench CLIENT_SECRET=bench-secret REDIRECT_URIS="$GW/_authgate/callback/bench" \
  exec node oidc-provider.mjs > "$work/op.out" 2>/dev/null) & pids+=($!)
for _ in $(seq 100); do [ -s "$work/op.out" ] && break; sleep 0.1; done
ISSUER=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["issuer"])' "$work/op.out")

cat > "$work/gateway.yaml" <<YAML
listen: ["127.0.0.1:$GWP"]
public_url: "$GW"
admin: { listen: "127.0.0.1:$ADM" }
providers: [{ name: bench, type: oidc, issuer: "$ISSUER", client_id: bench, client_secret: "\${BENCH_SECRET}", user_claim: oid }]
routes:
  - { name: app, upstream: "127.0.0.1:$UP" }
  - { name: public, path_prefix: /public, upstream: "127.0.0.1:$UP", public: true }
session: { secret: "\${BENCH_SESSION_SECRET}" }
YAML
BENCH_SECRET=bench-secret BENCH_SESSION_SECRET=$(head -c 48 /dev/urandom | base64) AUTHGATE_LOG=warn \
  ./target/release/authgate run -c "$work/gateway.yaml" & pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ADM/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# One real sign-in: follow to the provider's login form, post it, follow back.
jar=$work/jar
form_url=$(curl -sL -c "$jar" -b "$jar" -H 'Accept: text/html' -o "$work/form.html" -w '%{url_effective}' "$GW/")
action=$(grep -o 'action="[^"]*"' "$work/form.html" | head -1 | sed 's/action="//;s/"$//')
action=$(python3 -c 'import sys,urllib.parse as u;print(u.urljoin(sys.argv[1],sys.argv[2]))' "$form_url" "$action")
code=$(curl -sL -c "$jar" -b "$jar" -H 'Accept: text/html' -o /dev/null -w '%{http_code}' \
  -d prompt=login -d login=alice -d password=x "$action" || true)
SESSION=$(awk '$6=="authgate_session"{print $7}' "$jar")
[ "$code" = 200 ] && [ -n "$SESSION" ] || { echo "sign-in failed (HTTP $code)"; exit 1; }

run() { # name url [cookie]
  local out; out=$(wrk -t2 -c"$CONN" -d"${DUR}s" --latency ${3:+-H "Cookie: authgate_session=$3"} "$2")
  local non2xx; non2xx=$(echo "$out" | awk '/Non-2xx/{print $4}')
  [ -z "$non2xx" ] || { echo "$1: $non2xx non-2xx responses: benchmark invalid"; echo "$out"; exit 1; }
  printf '%-22s %10s req/s   p50 %-9s p99 %s\n' "$1" "$(echo "$out" | awk '/Requests\/sec/{print $2}')" \
    "$(echo "$out" | awk '$1=="50%"{print $2}')" "$(echo "$out" | awk '$1=="99%"{print $2}')"
}
echo "wrk -t2 -c$CONN -d${DUR}s, $(nproc) cores shared by wrk, authgate and nginx"
run "direct upstream"      "http://127.0.0.1:$UP/"
run "authgate public"      "$GW/public/x"
run "authgate signed-in"   "$GW/x" "$SESSION"
run "authgate public (2)"  "$GW/public/x"
run "authgate signed-in(2)" "$GW/x" "$SESSION"
