#!/usr/bin/env python3
"""Memory per session on the real path: the gateway process's resident set after N real
sign-ins (through the OpenID provider in testenv/, Entra claims, 20 group IDs: the user
`many`), one proxied request each, for the memory and the cookie store.

It reports the resident set before, at N/3, 2N/3 and N, and the growth per session over the
last third (the marginal cost, past start-up, allocator warm-up and the bounded caches
filling: prepared identity headers 16 MiB, opened cookies 8 MiB by weight with a server-side store and
32 MiB with the cookie store), and that growth extrapolated to 100,000 sessions. Whatever the sign-in path leaves behind (replay state, caches,
allocations) is in the number, unlike benches/session_memory.rs, which counts the store
alone.

Usage (after scripts/setup.sh and a release build; benches/load.sh --memory runs it):
  benches/session_rss.py [--sessions 30000] [--workers 6] [--store memory,cookie]
"""
import argparse
import concurrent.futures
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the benchmark's helpers: processes, ports, sign-in)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sign_in_and_request(gw_url):
    jar = load.oidc_sign_in(f"{gw_url}/", "many")
    c = load.cookie(jar, "authgate_session")
    req = urllib.request.Request(f"{gw_url}/x", headers={"Cookie": f"authgate_session={c}"})
    with urllib.request.urlopen(req) as r:
        if r.status != 200:
            raise RuntimeError(f"request with a fresh session answered {r.status}")
    return len(c)


def measure(store, n, workers, work):
    up, gw, adm, op_port = (load.free_port() for _ in range(4))
    with open(os.path.join(work, f"upstream-{store}.conf"), "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {work}/up-{store}.pid; error_log {work}/up-{store}.err;
events {{ worker_connections 1024; }}
http {{ access_log off; server {{ listen 127.0.0.1:{up};
  location / {{ default_type text/plain; return 200 "ok\\n"; }} }} }}
""")
    load.start(["nginx", "-c", f"{work}/upstream-{store}.conf", "-p", work], f"nginx-{store}")
    gw_url = f"http://127.0.0.1:{gw}"
    load.start(["node", "oidc-provider.mjs"], f"op-{store}", cwd=load.TESTENV, env={
        "PORT": str(op_port), "TENANT_ID": load.TENANT, "CLIENT_ID": "bench", "CLIENT_SECRET": "bench-secret",
        "REDIRECT_URIS": f"{gw_url}/_authgate/callback/entra"})
    load.wait_port(op_port, "oidc-provider")
    cfg = os.path.join(work, f"gateway-{store}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""listen: ["127.0.0.1:{gw}"]
public_url: "{gw_url}"
admin: {{ listen: "127.0.0.1:{adm}" }}
providers:
  - {{ name: entra, type: entra, instance: "http://127.0.0.1:{op_port}", tenant: "{load.TENANT}", client_id: bench, client_secret: "bench-secret" }}
routes:
  - {{ name: app, upstream: "127.0.0.1:{up}" }}
session: {{ secret: "{os.urandom(24).hex()}", store: {store}, max_sessions: {max(n * 2, 1000)} }}
""")
    p = load.start_authgate(cfg, f"authgate-{store}", adm)
    points = [(0, rss_kib(p.pid))]
    done = 0
    t0 = time.time()
    cookie_bytes = 0
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for target in (n // 3, 2 * n // 3, n):
            for size in pool.map(lambda _: sign_in_and_request(gw_url), range(target - done)):
                cookie_bytes = size
            done = target
            time.sleep(1)  # let caches settle their pending work
            points.append((done, rss_kib(p.pid)))
            print(f"  {store}: {done:>7} sessions, {points[-1][1] / 1024:7.1f} MiB resident "
                  f"({done / (time.time() - t0):.0f} sign-ins/s)", flush=True)
    (n1, r1), (n2, r2) = points[-2], points[-1]
    per = (r2 - r1) / (n2 - n1)
    return {"store": store, "points": points, "kib_per_session": per,
            "base_mib": points[0][1] / 1024, "at_100k_mib": (r2 + per * (100_000 - n2)) / 1024,
            "cookie_bytes": cookie_bytes}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=30000)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--store", default="memory,cookie")
    args = ap.parse_args()
    load.signal.signal(load.signal.SIGTERM, lambda *_: sys.exit(143))
    work = load.tempfile.mkdtemp(prefix="authgate-rss-")
    os.chmod(work, 0o755)
    results = []
    try:
        for store in args.store.split(","):
            results.append(measure(store, args.sessions, args.workers, work))
            load.stop_all()
            load.procs.clear()
    finally:
        load.stop_all()
        load.shutil.rmtree(work, ignore_errors=True)
    print()
    print("| store | resident at start | KiB per session (last third) | 100,000 sessions (extrapolated) | cookie |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['store']} | {r['base_mib']:.1f} MiB | {r['kib_per_session']:.2f} | "
              f"{r['at_100k_mib']:.0f} MiB | {r['cookie_bytes']} B |")


if __name__ == "__main__":
    main()
