#!/usr/bin/env python3
"""Side-by-side load benchmark: authgate against the physical limit of its architecture
(bare pingora) and the gateways platform teams use today.

Everything runs on 127.0.0.1 on ephemeral ports, with the same upstream (its own nginx:
a 20-byte 200, or 16 KB at .../big), the same load generator (wrk), the same concurrency and
duration:

  direct                     wrk -> upstream
  nginx proxy                wrk -> nginx (plain reverse proxy, its own process) -> upstream
  bare pingora               wrk -> examples/bare_pingora.rs (filters do nothing) -> upstream
  authgate public            wrk -> authgate public route -> upstream
  authgate session           wrk -> authgate, valid session (cookie store), policy allows
  authgate session (memory)  the same with session.store: memory
  authgate session (redis)   the same with session.store: redis (a local redis-server)
  mellon                     wrk -> Apache + mod_auth_mellon, valid session -> upstream
  mod_auth_openidc           wrk -> Apache + mod_auth_openidc, valid session -> upstream

Each system is signed in for real (the OpenID provider in testenv/ for authgate and
mod_auth_openidc, Debian's SimpleSAMLphp for mellon). Every system runs with a tiny and a
16 KB response, in two variants: shared (wrk and the servers on all cores) and pinned
(every server on CPU 0, wrk on CPU 1: steadier). Rounds are interleaved; the best of each is
kept. A run with any non-2xx answer, connect or write error or timeout invalidates the
benchmark; socket read errors (a peer closing a keep-alive connection) are reported.
After each round, p99 latency is measured at one fixed rate, half of authgate's maximum; the
report gives the median over rounds of what authgate adds to bare pingora's p99. Beside the
best run's ratio it gives the median over rounds of each round's own ratio, to bare pingora's
figure drawn between its run before the system and its run again after the others (a drift of
the machine's speed within a round cancels), in req/s and in requests per second of the
server's CPU time (from /proc).

With --pairs N the issue's load targets are measured instead as paired experiments: each
target row alone, pinned, its N runs each between two runs of bare pingora, and p99 at half
load the same way; the report gives the median ratio of the pairs with the interval that holds
the true median with at least 95% (a sign test: no assumption about this machine's noise).

Usage (after scripts/setup.sh and a release build; benches/load.sh does both):
  benches/load.py [--duration 8] [--connections 32] [--threads 2] [--rounds 2]
                  [--only "authgate session,nginx proxy"] [--no-pinned] [--json out.json]
  benches/load.py --pairs 9 --duration 5 [--only ...] [--server-threads 1]
AUTHGATE_BIN and BARE_PINGORA_BIN name other builds to measure (default: target/release);
BENCH_SERVER_PRELOAD a library to preload into bare pingora and the gateways only.
"""
import argparse
import html
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTENV = os.path.join(ROOT, "testenv")
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
MODULES = "/usr/lib/apache2/modules"
# The binaries measured: this checkout's release build, or others (to compare two builds).
AUTHGATE_BIN = os.environ.get("AUTHGATE_BIN", os.path.join(ROOT, "target/release/authgate"))
BARE_PINGORA_BIN = os.environ.get("BARE_PINGORA_BIN",
                                  os.path.join(ROOT, "target/release/examples/bare_pingora"))
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(cmd, name, env=None, cwd=None, stdout=subprocess.DEVNULL):
    env = {**os.environ, **(env or {})}
    # BENCH_SERVER_PRELOAD=lib.so: bare pingora and the gateways only run with it preloaded
    # (a C library's malloc replacement, for instance; with the `jemalloc` feature the Rust
    # allocations of both servers go to their own jemalloc whatever is preloaded); the peers
    # do not.
    if os.environ.get("BENCH_SERVER_PRELOAD") and name.startswith(("bare-pingora", "authgate")):
        env["LD_PRELOAD"] = os.environ["BENCH_SERVER_PRELOAD"]
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=stdout,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    procs.append((name, p))
    return p


def stop_all():
    for _, p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for _, p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def wait_port(port, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {port}")


def browser():
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("Accept", "text/html"), ("User-Agent", "authgate-bench")]
    return opener, jar


def form_of(page):
    m = re.search(r'<form[^>]*action="([^"]*)"', page)
    fields = dict((n, html.unescape(v)) for n, v in re.findall(
        r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
    return (html.unescape(m.group(1)) if m else None), fields


def cookie(jar, name):
    for c in jar:
        if c.name == name:
            return c.value
    sys.exit(f"sign-in did not leave a {name} cookie")


def oidc_sign_in(start_url, user):
    """Through the OpenID provider's login form, as a browser would."""
    opener, jar = browser()
    r = opener.open(start_url)
    action, _ = form_of(r.read().decode())
    action = urllib.parse.urljoin(r.geturl(), action)
    data = urllib.parse.urlencode({"prompt": "login", "login": user, "password": "x"}).encode()
    r = opener.open(action, data)
    assert r.status == 200, f"OIDC sign-in ended with {r.status}"
    return jar


def saml_sign_in(start_url, user, password):
    """Through SimpleSAMLphp's login form and the auto-POST of the response."""
    opener, jar = browser()
    r = opener.open(start_url)
    page = r.read().decode()
    action, fields = form_of(page)
    action = urllib.parse.urljoin(r.geturl(), action or r.geturl())
    data = urllib.parse.urlencode({"username": user, "password": password,
                                   "AuthState": fields["AuthState"]}).encode()
    r = opener.open(action, data)
    action, fields = form_of(r.read().decode())
    data = urllib.parse.urlencode({k: fields[k] for k in ("SAMLResponse", "RelayState") if k in fields}).encode()
    r = opener.open(urllib.parse.urljoin(r.geturl(), action), data)
    assert r.status == 200, f"SAML sign-in ended with {r.status}"
    return jar


def status_of(url, cookie_header=None, accept=None):
    """The status one GET of `url` answers, redirects not followed."""
    headers = {"Cookie": cookie_header} if cookie_header else {}
    if accept:
        headers["Accept"] = accept
    req = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(NoRedirectHandler())
    try:
        return opener.open(req).status
    except urllib.error.HTTPError as e:
        return e.code


def check_200(url, cookie_header=None):
    status = status_of(url, cookie_header)
    if status != 200:
        sys.exit(f"{url} answers {status} with the benchmark's cookie: refusing to benchmark error pages")


class NoRedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


PACE_LUA = """
local d = tonumber(os.getenv("WRK_DELAY_MS"))
function delay() return d end
"""


def wrk(name, url, args, cookie_header=None, delay_ms=None, workdir=None, cpus=None):
    """One wrk run. Fails the benchmark on any non-2xx answer, connect or write error, or
    timeout; read errors (a peer closing a keep-alive connection under load: Apache does,
    a few per 100k) are counted and reported, not fatal."""
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    if cpus:
        cmd = ["taskset", "-c", cpus] + cmd
    if cookie_header:
        cmd += ["-H", f"Cookie: {cookie_header}"]
    env = dict(os.environ)
    if delay_ms is not None:
        lua = os.path.join(workdir, "pace.lua")
        with open(lua, "w") as f:
            f.write(PACE_LUA)
        cmd += ["-s", lua]
        env["WRK_DELAY_MS"] = f"{delay_ms:.3f}"
    out = subprocess.run(cmd + [url], capture_output=True, text=True, env=env).stdout
    errors = dict(re.findall(r"(connect|read|write|timeout) (\d+)", out.split("Socket errors:", 1)[1])) \
        if "Socket errors:" in out else {}
    errors = {k: int(v) for k, v in errors.items()}
    fatal = [f"{k} {v}" for k, v in errors.items() if k != "read" and v > 0]
    if "Non-2xx" in out or fatal:
        print(out)
        sys.exit(f"{name}: non-2xx responses or socket errors ({', '.join(fatal) or 'non-2xx'}): benchmark invalid")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        print(out)
        sys.exit(f"{name}: wrk printed no result")
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.M))
    done = re.search(r"(\d+) requests in", out)
    return {"name": name, "rps": float(m.group(1)), "p50": ms(lat["50"]), "p99": ms(lat["99"]),
            "read_errors": errors.get("read", 0), "requests": int(done.group(1)) if done else 0}


# The process group that serves each system (for its CPU time); "direct" has none of its own.
SERVER = {"nginx proxy": "nginx-proxy", "bare pingora": "bare-pingora", "bare pingora, again": "bare-pingora",
          "authgate public": "authgate",
          "authgate session": "authgate", "authgate session (memory)": "authgate-memory",
          "authgate session (redis)": "authgate-redis", "mellon": "apache-mellon",
          "mod_auth_openidc": "apache-openidc"}


def cpu_ticks(name):
    """User and system CPU time, in clock ticks, of every live process in the groups started
    as `name` (all their threads)."""
    pgids = {p.pid for n, p in procs if n == name}
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp, ..., utime (12th), stime (13th).
        if int(fields[2]) in pgids:
            total += int(fields[11]) + int(fields[12])
    return total


def measured(name, url, args, cookie_header=None, cpus=None):
    """One wrk run, with the CPU time the system's server spent per request (µs): steadier
    than req/s on a machine whose speed drifts, as it counts work, not waiting."""
    server = SERVER.get(name)
    before = cpu_ticks(server) if server else 0
    r = wrk(name, url, args, cookie_header, cpus=cpus)
    ticks = cpu_ticks(server) - before if server else 0
    r["cpu_us"] = ticks * 1e6 / os.sysconf("SC_CLK_TCK") / r["requests"] if server and r["requests"] else float("nan")
    return r


def ms(v):
    n, unit = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def apache(name, port, work, body, modules):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    loads = "\n".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in
                      ["mpm_event", "authn_core", "authz_core", "authz_user", "proxy", "proxy_http", "headers"] + modules)
    conf = f"""ServerRoot {d}
{loads}
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
PidFile {d}/httpd.pid
ErrorLog {d}/error.log
LogLevel warn
User nobody
Group nogroup
DefaultRuntimeDir {d}
StartServers 4
ServerLimit 8
ThreadsPerChild 32
MaxRequestWorkers 256
MinSpareThreads 64
MaxSpareThreads 256
KeepAlive On
MaxKeepAliveRequests 0
{body}
"""
    path = os.path.join(d, "httpd.conf")
    with open(path, "w") as f:
        f.write(conf)
    os.chmod(d, 0o755)
    start(["apache2", "-f", path, "-DFOREGROUND"], f"apache-{name}")
    wait_port(port, f"apache {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="runs per system; the best is kept")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--only", help="comma-separated systems to run (bare pingora always runs)")
    ap.add_argument("--no-pinned", action="store_true", help="skip the pinned variant")
    ap.add_argument("--train", type=int, metavar="SECONDS",
                    help="run each selected system for SECONDS and stop: a profile-guided "
                         "build's training (scripts/build-pgo.sh)")
    ap.add_argument("--pairs", type=int, metavar="N",
                    help="instead of rounds: for each target row, N runs of the system each "
                         "between two runs of bare pingora (pinned), and N pairs of p99 at half "
                         "load; the median pair ratio with its confidence interval")
    ap.add_argument("--server-threads", type=int, default=0, metavar="N",
                    help="worker threads of bare pingora and of each authgate (default: one per core)")
    ap.add_argument("--hold", action="store_true",
                    help="after signing in, print the systems as JSON and wait (for profiling)")
    args = ap.parse_args()
    # Stopped from outside (Ctrl-C, SIGTERM, a timeout): still end every process started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = tempfile.mkdtemp(prefix="authgate-bench-")
    os.chmod(work, 0o755)
    try:
        run(args, work)
    finally:
        stop_all()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def pin(cpus, names=None):
    """Moves the processes this benchmark started (all, or those named), their threads and
    children, to `cpus`."""
    pgids = {p.pid for n, p in procs if names is None or n in names}
    ps = subprocess.run(["ps", "-e", "-o", "pid=,pgid="], capture_output=True, text=True).stdout
    for line in ps.splitlines():
        pid, pgid = (int(x) for x in line.split())
        if pgid in pgids:
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True)


BIG = 16 * 1024


def start_authgate(cfg, name, admin, env=None):
    """Starts the release gateway with `cfg` and waits until its admin port says ready."""
    p = start([AUTHGATE_BIN, "run", "-c", cfg], name,
              env={"AUTHGATE_LOG": "warn", **(env or {})})
    wait_port(admin, f"{name} admin")
    for _ in range(100):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz").status == 200:
                break
        except Exception:
            time.sleep(0.1)
    return p


def start_nginxes(work, up, ngx):
    """The upstream (its own nginx: a tiny 200 anywhere, 16 KB at .../big) on `up`, and nginx
    as a plain reverse proxy in front of it, in a process of its own, on `ngx`."""
    www = os.path.join(work, "www")
    os.makedirs(os.path.join(www, "public"), exist_ok=True)
    for path in ("big", "public/big"):
        with open(os.path.join(www, path), "wb") as f:
            f.write(b"x" * BIG)
    for n in ("upstream", "proxy"):
        os.makedirs(os.path.join(work, n), exist_ok=True)
    with open(os.path.join(work, "upstream.conf"), "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {work}/upstream/nginx.pid; error_log {work}/upstream/err;
events {{ worker_connections 4096; }}
http {{ access_log off;
  server {{ listen 127.0.0.1:{up}; keepalive_requests 1000000;
    location ~ /big$ {{ root {www}; default_type application/octet-stream; }}
    location / {{ default_type text/plain; return 200 "hello from upstream\\n"; }} }}
}}
""")
    with open(os.path.join(work, "proxy.conf"), "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {work}/proxy/nginx.pid; error_log {work}/proxy/err;
events {{ worker_connections 4096; }}
http {{ access_log off;
  upstream app {{ server 127.0.0.1:{up}; keepalive 64; }}
  server {{ listen 127.0.0.1:{ngx}; keepalive_requests 1000000;
    location / {{ proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://app; }} }}
}}
""")
    start(["nginx", "-c", f"{work}/upstream.conf", "-p", f"{work}/upstream"], "nginx-upstream")
    start(["nginx", "-c", f"{work}/proxy.conf", "-p", f"{work}/proxy"], "nginx-proxy")
    wait_port(up, "upstream")
    wait_port(ngx, "nginx proxy")


def start_apaches(work, up, issuer, openidc, mellon, ssp_port):
    """Apache with mod_auth_openidc (against the OpenID provider) and with mod_auth_mellon
    (against SimpleSAMLphp), each at its (URL, port)."""
    aoi_url, oidc_ap = openidc
    mel_url, mel_ap = mellon
    mel_entity = f"{mel_url}/mellon/metadata"
    # Apache + mod_auth_openidc against the same provider.
    apache("openidc", oidc_ap, work, f"""
OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID bench
OIDCClientSecret bench-secret
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCRedirectURI {aoi_url}/redirect_uri
OIDCCryptoPassphrase {os.urandom(16).hex()}
OIDCScope "openid profile email"
OIDCPKCEMethod S256
OIDCRemoteUserClaim oid
OIDCSessionInactivityTimeout 3600
<Location />
  AuthType openid-connect
  Require valid-user
</Location>
ProxyPass /redirect_uri !
ProxyPass / http://127.0.0.1:{up}/ keepalive=On
""", ["auth_openidc"])

    # Apache + mod_auth_mellon against SimpleSAMLphp.
    md = urllib.request.urlopen(f"http://127.0.0.1:{ssp_port}/saml2/idp/metadata.php").read()
    mdir = os.path.join(work, "mellon")
    os.makedirs(mdir, exist_ok=True)
    with open(os.path.join(mdir, "idp.xml"), "wb") as f:
        f.write(md)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
                    "-subj", "/CN=mellon-bench", "-keyout", f"{mdir}/sp.key", "-out", f"{mdir}/sp.crt"],
                   check=True, capture_output=True)
    cert = "".join(l for l in open(f"{mdir}/sp.crt").read().splitlines() if "CERTIFICATE" not in l)
    with open(os.path.join(mdir, "sp.xml"), "w") as f:
        f.write(f"""<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{mel_entity}">
<SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>{cert}</X509Certificate></X509Data></KeyInfo></KeyDescriptor>
<SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{mel_url}/mellon/logout"/>
<AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{mel_url}/mellon/postResponse" index="0"/>
</SPSSODescriptor></EntityDescriptor>
""")
    for n in os.listdir(mdir):
        os.chmod(os.path.join(mdir, n), 0o644)
    os.chmod(mdir, 0o755)
    apache("mellon", mel_ap, work, f"""
<Location />
  MellonEnable auth
  MellonEndpointPath /mellon
  MellonSPPrivateKeyFile {mdir}/sp.key
  MellonSPCertFile {mdir}/sp.crt
  MellonSPMetadataFile {mdir}/sp.xml
  MellonIdPMetadataFile {mdir}/idp.xml
  MellonCookieSameSite lax
  AuthType Mellon
  Require valid-user
</Location>
ProxyPass /mellon !
ProxyPass / http://127.0.0.1:{up}/ keepalive=On
""", ["auth_mellon"])


def run(args, work):
    up, ngx, bare, gw, gwm, adm, admm, oidc_ap, mel_ap, op_port, ssp_port = (free_port() for _ in range(11))
    gwr, admr, redis_port = (free_port() for _ in range(3))
    start_nginxes(work, up, ngx)
    # The physical limit: pingora passing requests through, filters doing nothing.
    start([BARE_PINGORA_BIN, f"127.0.0.1:{bare}",
           f"127.0.0.1:{up}", str(args.server_threads)], "bare-pingora")
    wait_port(bare, "bare pingora")

    # The OpenID provider (for authgate and mod_auth_openidc) and SimpleSAMLphp (mellon).
    gw_url, gwm_url, aoi_url, mel_url = (f"http://127.0.0.1:{p}" for p in (gw, gwm, oidc_ap, mel_ap))
    gwr_url = f"http://127.0.0.1:{gwr}"
    # Debian's redis-server for the Redis store: loopback, no persistence.
    start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", work], "redis-server")
    wait_port(redis_port, "redis-server")
    op_out = os.path.join(work, "op.json")
    start(["node", "oidc-provider.mjs"], "oidc-provider", cwd=TESTENV, env={
        "PORT": str(op_port), "TENANT_ID": TENANT, "CLIENT_ID": "bench", "CLIENT_SECRET": "bench-secret",
        "REDIRECT_URIS": f"{gw_url}/_authgate/callback/entra,{gwm_url}/_authgate/callback/entra,{gwr_url}/_authgate/callback/entra,{aoi_url}/redirect_uri"},
        stdout=open(op_out, "w"))
    wait_port(op_port, "oidc-provider")
    instance = f"http://127.0.0.1:{op_port}"
    issuer = f"{instance}/{TENANT}/v2.0"

    ssp = os.path.join(work, "ssp")
    mel_entity = f"{mel_url}/mellon/metadata"
    subprocess.run([os.path.join(TESTENV, "simplesamlphp/make-config.sh"), ssp, str(ssp_port),
                    f"{gw_url}/sp/ssp", f"{gw_url}/_authgate/saml/ssp"], check=True,
                   env={**os.environ, "EXTRA_SP": f"{mel_entity}|{mel_url}/mellon/postResponse"})
    start(["php", "-S", f"127.0.0.1:{ssp_port}", "-t", "/usr/share/simplesamlphp/www"], "simplesamlphp",
          env={"SIMPLESAMLPHP_CONFIG_DIR": ssp, "PHP_CLI_SERVER_WORKERS": "4"}, cwd=ssp)
    wait_port(ssp_port, "SimpleSAMLphp")

    # authgate: the Entra preset against the local provider, one public and one protected
    # route; with the cookie, the memory and the Redis store.
    secret = os.urandom(36).hex()
    stores = (("authgate", gw, adm, "cookie"), ("authgate-memory", gwm, admm, "memory"),
              ("authgate-redis", gwr, admr, f"redis, redis: {{ url: \"redis://127.0.0.1:{redis_port}/0\" }}"))
    for name, port, admin, store in stores:
        url = f"http://127.0.0.1:{port}"
        cfg = os.path.join(work, f"{name}.yaml")
        with open(cfg, "w") as f:
            f.write(f"""listen: ["127.0.0.1:{port}"]
public_url: "{url}"
admin: {{ listen: "127.0.0.1:{admin}" }}
providers:
  - {{ name: entra, type: entra, instance: "{instance}", tenant: "{TENANT}", client_id: bench, client_secret: "${{BENCH_SECRET}}" }}
routes:
  - {{ name: app, upstream: "127.0.0.1:{up}", allow: {{ tenants: ["{TENANT}"] }} }}
  - {{ name: public, path_prefix: /public, upstream: "127.0.0.1:{up}", public: true }}
session: {{ secret: "${{BENCH_SESSION_SECRET}}", store: {store} }}
""" + (f"server: {{ threads: {args.server_threads} }}\n" if args.server_threads else ""))
        start_authgate(cfg, name, admin, {"BENCH_SECRET": "bench-secret", "BENCH_SESSION_SECRET": secret})

    start_apaches(work, up, issuer, (aoi_url, oidc_ap), (mel_url, mel_ap), ssp_port)

    # One real sign-in per system.
    aoi = cookie(oidc_sign_in(f"{aoi_url}/", "alice"), "mod_auth_openidc_session")
    mel = cookie(saml_sign_in(f"{mel_url}/", "alice", "alice-pw"), "mellon-cookie")

    def authgate_cookie(base):
        # A browser presents the cookie the gateway last re-issued (idle clock reset at most
        # once a minute); wrk cannot, so sign in again right before each authgate run.
        return lambda: "authgate_session=" + cookie(oidc_sign_in(f"{base}/", "alice"), "authgate_session")

    fixed = lambda c: (lambda: c)
    # name, tiny URL, 16 KB URL, cookie
    systems = [
        ("direct", f"http://127.0.0.1:{up}/x", f"http://127.0.0.1:{up}/big", fixed(None)),
        ("nginx proxy", f"http://127.0.0.1:{ngx}/x", f"http://127.0.0.1:{ngx}/big", fixed(None)),
        ("bare pingora", f"http://127.0.0.1:{bare}/x", f"http://127.0.0.1:{bare}/big", fixed(None)),
        ("authgate public", f"{gw_url}/public/x", f"{gw_url}/public/big", fixed(None)),
        ("authgate session", f"{gw_url}/x", f"{gw_url}/big", authgate_cookie(gw_url)),
        ("authgate session (memory)", f"{gwm_url}/x", f"{gwm_url}/big", authgate_cookie(gwm_url)),
        ("authgate session (redis)", f"{gwr_url}/x", f"{gwr_url}/big", authgate_cookie(gwr_url)),
        ("mellon", f"{mel_url}/x", f"{mel_url}/big", fixed(f"mellon-cookie={mel}")),
        ("mod_auth_openidc", f"{aoi_url}/x", f"{aoi_url}/big", fixed(f"mod_auth_openidc_session={aoi}")),
    ]
    only = set(args.only.split(",")) if args.only else None
    if only:
        systems = [s for s in systems if s[0] in only or s[0] == "bare pingora"]
    for name, tiny, big, c in systems:
        check_200(tiny, c())
        check_200(big, c())
    if args.train:
        train(args, systems)
        return
    if args.hold:
        pids = {n: p.pid for n, p in procs}
        print(json.dumps({"systems": [(n, t, b, c()) for n, t, b, c in systems], "pids": pids}), flush=True)
        while True:
            time.sleep(3600)
    if args.pairs:
        measure_pairs(args, systems, work)
        return
    measure(args, systems, work)


def train(args, systems):
    """The workload a profile-guided build learns from (scripts/build-pgo.sh): every system
    on both paths under wrk for --train seconds, with more sign-ins and requests without a
    session in between, so the code a gateway runs most is what the profile calls hot."""
    args.duration = args.train
    for name, tiny, big, c in systems:
        for url in (tiny, big):
            r = wrk(name, url, args, c())
            print(f"  trained {name:<28} {url:<40} {r['rps']:>8.0f} req/s", flush=True)
        if not name.startswith("authgate") or "public" in name:
            continue
        for _ in range(20):
            c()  # a sign-in: the redirect, the callback, the token exchange
        # Without a session: a browser is sent to sign in, anything else is answered 401.
        for accept, expected in (("text/html", 302), (None, 401)) * 100:
            status = status_of(tiny, accept=accept)
            if status != expected:
                sys.exit(f"{name}: a request without a session (Accept: {accept}) answered "
                         f"{status}, not {expected}")


def measure(args, systems, work):
    """The interleaved rounds: each variant, each size, each system in turn; then the half-load
    latencies; then the report."""
    cores = os.cpu_count()
    variants = [("shared", None, None), ("pinned", "0", "1")] if cores >= 2 and not args.no_pinned else [("shared", None, None)]
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; best of {args.rounds} interleaved rounds; "
          f"shared: {cores} cores shared by wrk and every server; pinned: the servers on CPU 0, wrk and the upstream on CPU 1",
          flush=True)
    best, rounds = {}, {}
    half_rounds = []
    for rnd in range(args.rounds):
        for variant, server_cpus, wrk_cpus in variants:
            pin(server_cpus or ",".join(str(i) for i in range(cores)))
            if wrk_cpus:
                # The upstream runs beside wrk: the core under test is the server's alone.
                pin(wrk_cpus, {"nginx-upstream"})
            for size in ("tiny", "16 KB"):
                # Bare pingora once more after the others: each system's ratio is to bare
                # pingora's figure drawn between the run before it and the run after it.
                again = [("bare pingora, again", *s[1:]) for s in systems if s[0] == "bare pingora"]
                runs = systems + again if len(systems) > 1 else systems
                for at, (name, tiny, big, c) in enumerate(runs):
                    r = measured(name, tiny if size == "tiny" else big, args, c(), cpus=wrk_cpus)
                    r["at"] = at
                    key = (variant, size, name)
                    rounds.setdefault(key, []).append(r)
                    print(f"  round {rnd + 1} {variant:<6} {size:<5} {name:<26} {r['rps']:>10.0f} req/s"
                          f" {r['cpu_us']:>8.1f} µs CPU/request", flush=True)
                    if key not in best or r["rps"] > best[key]["rps"]:
                        reads = best.get(key, {}).get("read_errors", 0)
                        best[key] = r
                        r["read_errors"] += reads
                    else:
                        best[key]["read_errors"] += r["read_errors"]
        pin(",".join(str(i) for i in range(cores)))
        half_rounds.append(half_load(args, systems, best, work))
    report(args, variants, systems, best, rounds, half_rounds)


# The issue's load targets: system, size, target (pinned, ÷ bare pingora).
TARGETS = [("authgate session", "tiny", 0.92), ("authgate session", "16 KB", 0.97),
           ("authgate public", "tiny", 0.97), ("authgate session (memory)", "tiny", 0.92),
           ("authgate session (redis)", "tiny", 0.92)]
LABELS = {"authgate session": "session", "authgate public": "public",
          "authgate session (memory)": "memory store", "authgate session (redis)": "redis store"}


def median_interval(xs, level=0.95):
    """The median of xs and the order statistics around it that cover the population median
    with at least `level` (the sign test's interval: no assumption about the distribution),
    with the coverage they give; (median, None, None, 0.0) when n is too small."""
    from math import comb
    xs = sorted(xs)
    n = len(xs)
    best = (None, None, 0.0)
    for k in range(n // 2):
        # x[k] lies above the median when at most k of the n fall below it: Bin(n, 1/2) <= k.
        cover = 1 - 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n
        if cover >= level:
            best = (xs[k], xs[n - 1 - k], cover)
    return (median(xs), *best)


def alternate(n, run_bare, run_x, show):
    """bare, x, bare, x, ..., bare: n runs of x, each between two of bare; prints each pair."""
    b_runs, x_runs = [run_bare()], []
    for i in range(n):
        x_runs.append(run_x())
        print(f"  {show(i + 1, x_runs[-1], b_runs[-1])}", flush=True)
        b_runs.append(run_bare())
    return b_runs, x_runs


def measure_pairs(args, systems, work):
    """Each target row as its own paired experiment, pinned (the servers on CPU 0, wrk and the
    upstream on CPU 1): bare pingora, the system, bare pingora, the system, ..., bare pingora;
    each run of the system is divided by the mean of the bare pingora runs on either side of
    it, so a drift of this machine's speed over a minute cancels, and the rows' order within a
    round no longer matters. Then p99 at half load the same way, bare pingora and the signed-in
    gateway alternating at one fixed rate (all cores). Reports the median ratio with the
    interval that holds the true median with ≥ 95% (sign test), and how many pairs met the
    target."""
    by_name = {s[0]: s for s in systems}
    bare = by_name["bare pingora"]
    cores = os.cpu_count()
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; {args.pairs} pairs per row; "
          f"pinned: the servers on CPU 0, wrk and the upstream on CPU 1", flush=True)
    results = []
    for name, size, target in TARGETS:
        if name not in by_name or cores < 2:
            continue
        pin("0")
        pin("1", {"nginx-upstream"})
        url = lambda s: s[1] if size == "tiny" else s[2]
        sysv = by_name[name]
        b_runs, x_runs = alternate(
            args.pairs,
            lambda: measured("bare pingora", url(bare), args, bare[3](), cpus="1"),
            lambda: measured(name, url(sysv), args, sysv[3](), cpus="1"),
            lambda i, x, b: f"{name:<26} {size:<5} pair {i}: {x['rps']:>8.0f} req/s ÷ bare {b['rps']:>8.0f}")
        rps = [x["rps"] / ((a["rps"] + b["rps"]) / 2) for x, a, b in zip(x_runs, b_runs, b_runs[1:])]
        cpu = [((1 / a["cpu_us"] + 1 / b["cpu_us"]) / 2) ** -1 / x["cpu_us"]
               for x, a, b in zip(x_runs, b_runs, b_runs[1:])]
        results.append((name, size, target, rps, cpu, b_runs, x_runs))
    pin(",".join(str(i) for i in range(cores)))
    session = by_name.get("authgate session")
    adds = []
    if session:
        top = measured("authgate session", session[1], args, session[3]())
        delay_ms = args.connections * 1000.0 / (top["rps"] / 2)
        b_runs, x_runs = alternate(
            args.pairs,
            lambda: wrk("bare pingora", bare[1], args, delay_ms=delay_ms, workdir=work),
            lambda: wrk("authgate session", session[1], args, session[3](), delay_ms=delay_ms, workdir=work),
            lambda i, x, b: f"p99 at {top['rps'] / 2:.0f} req/s, pair {i}: session {x['p99']:.2f} ms, "
                            f"bare pingora {b['p99']:.2f} ms")
        adds = [x["p99"] - (a["p99"] + b["p99"]) / 2 for x, a, b in zip(x_runs, b_runs, b_runs[1:])]
    print()
    print("| row | target | req/s ÷ bare, median of pairs | 95% interval (coverage) | pairs ≥ target "
          "| bare's CPU ÷ this, median | bare req/s (median) | server CPU µs/request, bare / this |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, target, rps, cpu, b_runs, x_runs in results:
        m, lo, hi, cover = median_interval(rps)
        iv = f"{lo:.3f}–{hi:.3f} ({cover:.0%})" if lo is not None else "n/a"
        print(f"| {name}, {size} | ≥ {target} | **{m:.3f}** | {iv} | {sum(r >= target for r in rps)} of {len(rps)} "
              f"| {median(cpu):.3f} | {median(r['rps'] for r in b_runs):.0f} "
              f"| {median(r['cpu_us'] for r in b_runs):.1f} / {median(r['cpu_us'] for r in x_runs):.1f} |")
    if adds:
        m, lo, hi, cover = median_interval(adds)
        iv = f"{lo:+.2f}–{hi:+.2f} ms ({cover:.0%})" if lo is not None else "n/a"
        print(f"| p99 at half load, session − bare | ≤ +0.3 ms | **{m:+.2f} ms** | {iv} "
              f"| {sum(a <= 0.3 for a in adds)} of {len(adds)} | | | |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"pairs": [{"row": f"{n}, {s}", "target": t, "rps_ratios": r, "cpu_ratios": c,
                                  "bare": b, "system": x} for n, s, t, r, c, b, x in results],
                       "p99_adds_ms": adds}, f, indent=1)


def half_load(args, systems, best, work):
    """p99 at half of authgate's maximum (shared, tiny; the best so far), the same fixed rate
    for each system, one after the other."""
    top = best.get(("shared", "tiny", "authgate session")) or best[("shared", "tiny", "bare pingora")]
    rate = top["rps"] / 2
    delay_ms = args.connections * 1000.0 / rate
    half = {"rate": rate}
    for name, tiny, _, c in systems:
        if name in ("direct", "nginx proxy", "bare pingora", "authgate public", "authgate session"):
            half[name] = wrk(name, tiny, args, c(), delay_ms=delay_ms, workdir=work)
    return half


def median(xs):
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return float("nan")
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def report(args, variants, systems, best, rounds, half_rounds):
    """The tables. Beside the best run's ratio (the way this benchmark has always measured):
    the median over rounds of each round's ratio to that round's bare pingora (run moments
    before it, so a drift of the machine's speed cancels), and the server's CPU per request,
    bare pingora's divided by the system's (the share of bare pingora's capacity it keeps)."""
    def paired(variant, size, a, b="bare pingora", cpu=False):
        """The median over rounds of a's req/s (or requests per CPU-second, `cpu`) ÷ b's in the
        same round; b = bare pingora: its figure drawn linearly between its run before a and
        its run again after the others."""
        ra, rb = rounds.get((variant, size, a), []), rounds.get((variant, size, b), [])
        after = rounds.get((variant, size, "bare pingora, again"), []) if b == "bare pingora" else []
        rate = (lambda r: 1 / r["cpu_us"]) if cpu else (lambda r: r["rps"])
        ratios = []
        for i, (x, y) in enumerate(zip(ra, rb)):
            ref = rate(y)
            if i < len(after):
                z = after[i]
                ref += (rate(z) - rate(y)) * (x["at"] - y["at"]) / (z["at"] - y["at"])
            ratios.append(rate(x) / ref)
        return median(ratios)

    def cpu(variant, size, name):
        return median(r["cpu_us"] for r in rounds.get((variant, size, name), []))

    for variant, _, _ in variants:
        for size in ("tiny", "16 KB"):
            bp = best[(variant, size, "bare pingora")]["rps"]
            print()
            print(f"{variant}, {size} response:")
            print()
            print("| system | req/s (best) | p50 ms | p99 ms | ÷ bare pingora (best) | ÷ bare (median of rounds) "
                  "| server CPU µs/request (median) | bare's CPU ÷ this |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for name, _, _, _ in systems:
                r = best[(variant, size, name)]
                c = cpu(variant, size, name)
                print(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps'] / bp:.3f} "
                      f"| {paired(variant, size, name):.3f} | {c:.1f} | {paired(variant, size, name, cpu=True):.3f} |")
    print()

    def ratio(variant, size, a, b):
        ka, kb = (variant, size, a), (variant, size, b)
        return best[ka]["rps"] / best[kb]["rps"] if ka in best and kb in best else float("nan")

    def line(label, size, a, b, target):
        print(f"  {label:<36} best {ratio(v, size, a, b):.3f}, median of rounds {paired(v, size, a, b):.3f}, "
              f"CPU {paired(v, size, a, b, cpu=True):.3f} (target ≥ {target})")
    v = "pinned" if len(variants) > 1 else "shared"
    print(f"targets ({v} variant; best run, median of paired rounds, bare's CPU per request ÷ this):")
    for name, size, target in TARGETS:
        line(f"{LABELS[name]} ÷ bare pingora, {size}:", size, name, "bare pingora", target)
    line("redis store ÷ cookie store, tiny:", "tiny", "authgate session (redis)", "authgate session", 0.9)
    line("redis store ÷ cookie store, 16 KB:", "16 KB", "authgate session (redis)", "authgate session", 0.9)
    print(f"  session ÷ mellon, tiny:        {ratio(v, 'tiny', 'authgate session', 'mellon'):.2f}")
    print(f"  session ÷ mod_auth_openidc:    {ratio(v, 'tiny', 'authgate session', 'mod_auth_openidc'):.2f}")
    for i, half in enumerate(half_rounds):
        if "authgate session" in half and "bare pingora" in half:
            print(f"  round {i + 1}, p99 at {half['rate']:.0f} req/s: "
                  + ", ".join(f"{n} {h['p99']:.2f} ms" for n, h in half.items() if n != "rate"))
    adds = [h["authgate session"]["p99"] - h["bare pingora"]["p99"] for h in half_rounds
            if "authgate session" in h and "bare pingora" in h]
    if adds:
        print(f"  p99 at half load: session adds {median(adds):.2f} ms over bare pingora, median of "
              f"{len(adds)} rounds ({', '.join(f'{a:+.2f}' for a in adds)}) (target ≤ 0.3)")
    reads = {f"{k[0]}/{k[1]}/{k[2]}": r["read_errors"] for k, r in best.items() if r["read_errors"]}
    print(f"  socket read errors (peers closing keep-alive connections; reported, not fatal): {reads or 'none'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"best": {" / ".join(k): r for k, r in best.items()},
                       "rounds": {" / ".join(k): rs for k, rs in rounds.items()},
                       "half_load": half_rounds}, f, indent=1)

if __name__ == "__main__":
    main()
