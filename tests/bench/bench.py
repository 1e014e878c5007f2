#!/usr/bin/env python3
"""Benchmarks of the whole system, side by side in one run, with the project's load
generator. Starts a private release stack (closedloop-local: durable Postgres with
fsync and synchronous_commit on, Redis, one worker per region, the gateway) in
target/bench/, runs the chosen suites, and prints Markdown tables for BENCHMARKS.md.

    python3 tests/bench/bench.py ping          # worker directly vs through the gateway
    python3 tests/bench/bench.py scim          # 100k users, 50k-member group
    python3 tests/bench/bench.py ping scim --duration 10
    python3 tests/bench/bench.py proxy         # gateway vs nginx (HTTP/1.1, TLS), failover
    python3 tests/bench/bench.py tokens        # token checks, Universal Logout of 10k tokens
    python3 tests/bench/bench.py flood         # real SCIM clients while made-up bearers flood
    python3 tests/bench/bench.py pages         # People, Groups, Activity at 100k users, 1M events
    python3 tests/bench/bench.py ceilings      # SCIM against pgbench -S/-N and /api/ping, one run
    python3 tests/bench/bench.py tracing       # traces off, at 0.01 and at 1.0: ping, SCIM lookup

Build first: cargo build --release --bins -p region-worker -p gateway -p deploy -p closedloop-tests
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Overridable so that a run can use another build and not collide with a stack already
# running on the default ports.
BIN = Path(os.environ.get("CLOSEDLOOP_BENCH_BIN", ROOT / "target" / "release"))
WORK = Path(os.environ.get("CLOSEDLOOP_BENCH_WORK", ROOT / "target" / "bench"))
GATEWAY_PORT = int(os.environ.get("CLOSEDLOOP_BENCH_PORT", "18080"))
BASE_PORT = int(os.environ.get("CLOSEDLOOP_BENCH_BASE_PORT", "18400"))
US_API = "api.closedloop.localhost"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


class Stack:
    """The local launcher, started in the background on bench ports."""

    def __init__(self, fresh, env=None):
        if fresh and WORK.exists():
            # The stores run as the postgres user; stop a leftover stack first.
            shutil.rmtree(WORK, ignore_errors=True)
        WORK.mkdir(parents=True, exist_ok=True)
        stack_json = WORK / "stack" / "stack.json"
        if stack_json.exists():
            stack_json.unlink()
        env = dict(os.environ, CLOSEDLOOP_SCIM_RATE_PER_SECOND="0", RUST_LOG="warn", **(env or {}))
        self.log = open(WORK / "launcher.log", "w")
        self.proc = subprocess.Popen(
            [str(BIN / "closedloop-local"), "--dir", str(WORK / "stack"),
             "--port", str(GATEWAY_PORT), "--base-port", str(BASE_PORT)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.time() + 180
        while not stack_json.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the stack did not start; see {WORK / 'launcher.log'}")
            time.sleep(0.2)
        self.info = json.loads(stack_json.read_text())
        self.us = self.info["regions"]["us"]

    def worker_pid(self, region="us"):
        out = sh(["pgrep", "-f", f"region-worker serve .* --region {region}"]).split()
        return int(out[0])

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


class RssSampler(threading.Thread):
    """Samples a process's resident memory every 100 ms; keeps the maximum."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.max_kb, self.stop_flag = pid, 0, False

    def run(self):
        while not self.stop_flag:
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.max_kb = max(self.max_kb, int(line.split()[1]))
            except OSError:
                return
            time.sleep(0.1)


def loadgen(url, host, connections, duration, method="GET", body=None, headers=(), extra=()):
    cmd = [str(BIN / "loadgen"), "--url", url, "--host", host, "-c", str(connections),
           "-d", f"{duration}s", "-w", "1s", "-m", method, "--json"]
    for h in headers:
        cmd += ["-H", h]
    if body is not None:
        cmd += ["--body", body]
    cmd += list(extra)
    return json.loads(sh(cmd))


def row(name, r, rss_mb=None):
    cells = [name, f"{r['rps']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
             f"{r['p999_ms']:.2f}", f"{r['max_ms']:.1f}", str(r["non_2xx"] + r["errors"])]
    if rss_mb is not None:
        cells.append(f"{rss_mb:.0f}")
    return "| " + " | ".join(cells) + " |"


def ping(stack, args):
    gateway = f"http://127.0.0.1:{GATEWAY_PORT}/api/ping"
    direct = f"http://{stack.us['worker']}/api/ping"
    print("\n### /api/ping: worker directly vs through the gateway\n")
    print(f"{args.connections} connections, {args.duration} s each, HTTP/1.1 keep-alive, release build.\n")
    print("| path | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |")
    print("|---|---|---|---|---|---|---|")
    results = {}
    for rnd in range(args.rounds):
        for name, url in (("worker directly", direct), ("through the gateway", gateway)):
            r = loadgen(url, US_API, args.connections, args.duration)
            results.setdefault(name, []).append(r)
            print(row(f"{name} (round {rnd + 1})", r))
    d = sum(r["rps"] for r in results["worker directly"]) / args.rounds
    g = sum(r["rps"] for r in results["through the gateway"]) / args.rounds
    dp = sum(r["p50_ms"] for r in results["worker directly"]) / args.rounds
    gp = sum(r["p50_ms"] for r in results["through the gateway"]) / args.rounds
    print(f"\nGateway/direct throughput ratio: {g / d:.2f}; added p50: {(gp - dp) * 1000:.0f} µs.")


SEED_SQL = """
BEGIN;
DELETE FROM users WHERE team_id = '{team}' AND user_name LIKE '%@bench.test';
DELETE FROM groups WHERE team_id = '{team}' AND display_name = 'Bench half';
INSERT INTO users (team_id, id, user_name, external_id, active, email, display_name, given_name, family_name, resource)
SELECT '{team}', ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
       'user' || n || '@bench.test', '00u' || n, true, 'user' || n || '@bench.test',
       'User ' || n, 'User', n::text,
       jsonb_build_object(
         'schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User'),
         'userName', 'user' || n || '@bench.test', 'externalId', '00u' || n, 'active', true,
         'displayName', 'User ' || n,
         'name', jsonb_build_object('givenName', 'User', 'familyName', n::text),
         'emails', jsonb_build_array(jsonb_build_object('value', 'user' || n || '@bench.test', 'type', 'work', 'primary', true)))
FROM generate_series(1, {users}) AS n;
INSERT INTO user_roles (team_id, user_id, role_id)
SELECT u.team_id, u.id, r.id FROM users u JOIN roles r ON r.team_id = u.team_id AND r.key = 'member'
WHERE u.team_id = '{team}' AND u.user_name LIKE '%@bench.test';
INSERT INTO groups (team_id, id, display_name, resource) VALUES
  ('{team}', '00000000-0000-4000-9000-000000000001', 'Bench half',
   '{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Bench half"}}');
INSERT INTO groups (team_id, id, display_name, resource)
SELECT '{team}', gen_random_uuid(), 'Team ' || n,
       jsonb_build_object('schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:Group'), 'displayName', 'Team ' || n)
FROM generate_series(1, 200) AS n;
INSERT INTO group_members (team_id, group_id, user_id)
SELECT '{team}', '00000000-0000-4000-9000-000000000001', ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid
FROM generate_series(1, {members}) AS n;
COMMIT;
VACUUM ANALYZE users; VACUUM ANALYZE groups; VACUUM ANALYZE resource_counts; VACUUM ANALYZE group_members; VACUUM ANALYZE user_roles;
"""

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def scim(stack, args):
    us = stack.us
    team = us["demo_workspace"]["team_id"]
    pg = us["postgres_url"]
    t0 = time.time()
    sh(["psql", pg, "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
       input=SEED_SQL.format(team=team, users=args.users, members=args.users // 2))
    seeded = time.time() - t0
    env = dict(os.environ, **us["env"])
    token = json.loads(sh([str(BIN / "region-worker"), "token", "issue", "--config", stack.info["config"],
                           "--region", "us", "--team", team, "--kind", "scim"], env=env))["token"]
    auth = f"Authorization: Bearer {token}"
    json_ct = "Content-Type: application/json"
    base = f"http://127.0.0.1:{GATEWAY_PORT}/api/scim/v2/{team}"
    n_users, c, d = args.users, args.connections, args.duration
    uid = "00000000-0000-4000-8000-{n12}"
    gid = "00000000-0000-4000-9000-000000000001"
    scenarios = [
        ("userName eq lookup", dict(url=f"{base}/Users?filter=userName%20eq%20%22user{{n}}%40bench.test%22",
                                    extra=["--counter-start", "1", "--counter-wrap", str(n_users)])),
        ("user create", dict(url=f"{base}/Users", method="POST", headers=[json_ct],
                             body=json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                              "userName": "new{n}@bench.test", "name": {"givenName": "New", "familyName": "{n}"},
                                              "emails": [{"value": "new{n}@bench.test", "primary": True, "type": "work"}],
                                              "active": True, "password": "x"}),
                             extra=["--counter-start", str(int(time.time()))+"000"])),
        ("deactivate PATCH", dict(url=f"{base}/Users/{uid}", method="PATCH", headers=[json_ct],
                                  body=json.dumps({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}),
                                  extra=["--counter-start", "1", "--counter-wrap", str(n_users)])),
        ("add one member to the 50k group", dict(url=f"{base}/Groups/{gid}", method="PATCH", headers=[json_ct],
                                                 body=json.dumps({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}),
                                                 extra=["--counter-start", str(n_users // 2 + 1), "--counter-wrap", str(n_users // 2)])),
        ("remove one member of the 50k group", dict(url=f"{base}/Groups/{gid}", method="PATCH", headers=[json_ct],
                                                    body=json.dumps({"schemas": [PATCH], "Operations": [{"op": "remove", "path": f"members[value eq \"{uid}\"]"}]}),
                                                    extra=["--counter-start", "1", "--counter-wrap", str(n_users // 2)])),
        ("page of 100 users (all pages in turn)", dict(url=f"{base}/Users?startIndex={{n}}&count=100",
                                                       extra=["--counter-start", "1", "--counter-step", "100", "--counter-wrap", str(n_users)])),
        ("GET /Groups?excludedAttributes=members", dict(url=f"{base}/Groups?excludedAttributes=members")),
    ]
    only = set(args.only.split(",")) if args.only else None
    print(f"\n### SCIM at {n_users:,} users and a {n_users // 2:,}-member group\n")
    print(f"Through the gateway, {c} connections, {d} s each (1 s warm-up), release build, "
          f"Postgres with fsync and synchronous_commit on; seeded in {seeded:.1f} s.\n")
    print("| scenario | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | worker RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    pid = stack.worker_pid()
    for i, (name, s) in enumerate(scenarios):
        if only and str(i) not in only:
            continue
        sampler = RssSampler(pid)
        sampler.start()
        r = loadgen(s["url"], US_API, c, d, method=s.get("method", "GET"), body=s.get("body"),
                    headers=[auth] + s.get("headers", []), extra=s.get("extra", []))
        sampler.stop_flag = True
        sampler.join()
        print(row(name, r, sampler.max_kb / 1024), flush=True)
        if r["non_2xx"]:
            print(f"<!-- {name}: status counts {r['status_counts']} -->")


# ---------------------------------------------------------------- proxy suite
# The gateway against nginx, the proxy an operator would otherwise put in front of the
# workers: worker directly, through the gateway, through nginx (deploy/bench/nginx.conf),
# plain HTTP/1.1 and TLS, side by side in one run; then two workers per region with one
# killed mid-run. Everything lives under target/bench/proxy/.

PROXY = WORK / "proxy"
GW_HTTP, GW_TLS, GW_ADMIN = 18500, 18501, 18502
NG_HTTP, NG_TLS = 18510, 18511
FO_GW_HTTP, FO_GW_ADMIN, FO_NG_HTTP, FO_NG_TLS = 18530, 18531, 18540, 18541
FO_WORKERS = [(18520, 18521), (18522, 18523)]
HOSTS = ["api.closedloop.localhost", "app.closedloop.localhost",
         "eu.api.closedloop.localhost", "eu.app.closedloop.localhost"]


def wait_port(port, proc=None, timeout=120):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"process for port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def make_certs():
    """A CA and one certificate for the four hosts (openssl), as an operator would."""
    d = PROXY / "tls"
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.pem", "leaf.key", "leaf.csr", "leaf.pem"))
    sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=bench CA"])
    sh(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=api.closedloop.localhost"])
    ext = d / "san.ext"
    ext.write_text("subjectAltName=" + ",".join(f"DNS:{h}" for h in HOSTS) + "\n")
    sh(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)])
    for f in d.iterdir():
        f.chmod(0o644)
    return ca, cert, key


def gateway_map(us, eu, http_port, admin_port, tls_port=None, cert=None, key=None):
    """A region map for a bench gateway: workers as (public, admin) pairs."""
    def entries(ws):
        return ", ".join(f'{{ addr = "{w}", admin = "{a}" }}' for w, a in ws)
    tls = ""
    if tls_port:
        hosts = ", ".join(f'"{h}"' for h in HOSTS)
        tls = (f'tls_listen = "127.0.0.1:{tls_port}"\n'
               f'certificates = [{{ hosts = [{hosts}], cert = "{cert}", key = "{key}" }}]\n')
    return f"""development = true
[gateway]
listen = "127.0.0.1:{http_port}"
admin_listen = "127.0.0.1:{admin_port}"
{tls}max_connections_per_ip = 10000
[regions.us]
app_url = "http://app.closedloop.localhost"
api_url = "http://api.closedloop.localhost"
workers = [{entries(us)}]
postgres = {{ env = "UNUSED" }}
redis = {{ env = "UNUSED" }}
[regions.eu]
app_url = "http://eu.app.closedloop.localhost"
api_url = "http://eu.api.closedloop.localhost"
workers = [{entries(eu)}]
postgres = {{ env = "UNUSED" }}
redis = {{ env = "UNUSED" }}
"""


class Background:
    """A process of the suite, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, name, cmd, env=None):
        self.name = name
        self.log = open(PROXY / f"{name}.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env or dict(os.environ), start_new_session=True)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_gateway(name, map_text):
    path = PROXY / f"{name}.toml"
    path.write_text(map_text)
    env = dict(os.environ, RUST_LOG="warn")
    return Background(name, [str(BIN / "gateway"), "--config", str(path)], env)


def start_nginx(name, us, eu, http_port, tls_port, cert, key):
    work = PROXY / name
    work.mkdir(parents=True, exist_ok=True)
    template = (ROOT / "deploy" / "bench" / "nginx.conf").read_text()
    servers = lambda ws: "\n        ".join(f"server {w};" for w, _ in ws)
    conf = (template.replace("@WORK@", str(work)).replace("@US_WORKERS@", servers(us))
            .replace("@EU_WORKERS@", servers(eu)).replace("@HTTP_PORT@", str(http_port))
            .replace("@TLS_PORT@", str(tls_port)).replace("@CERT@", str(cert)).replace("@KEY@", str(key)))
    (work / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return Background(name, [nginx, "-p", str(work), "-c", str(work / "nginx.conf"),
                             "-e", str(work / "nginx-error.log")])


def wrk(url, host, connections, duration):
    """wrk's figures (req/s, p50/p99 ms, errors) for a second opinion."""
    out = sh(["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--latency",
              "-H", f"Host: {host}", url])
    def ms(text):
        for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
            if text.endswith(unit):
                return float(text[: -len(unit)]) * scale
        return float(text)
    r = {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "errors": 0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            r["rps"] = float(parts[1])
        elif parts[:1] == ["50%"]:
            r["p50_ms"] = ms(parts[1])
        elif parts[:1] == ["99%"]:
            r["p99_ms"] = ms(parts[1])
        elif "Non-2xx" in line or line.strip().startswith("Socket errors"):
            r["errors"] += sum(int(x.strip(",")) for x in parts if x.strip(",").isdigit())
    return r


def cpu_seconds(pids):
    """User + system CPU time of `pids`, in seconds."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def proxy(stack, args):
    shutil.rmtree(PROXY, ignore_errors=True)
    PROXY.mkdir(parents=True)
    ca, cert, key = make_certs()
    us = [(stack.us["worker"], stack.us["worker_admin"])]
    eu_info = stack.info["regions"]["eu"]
    eu = [(eu_info["worker"], eu_info["worker_admin"])]
    gw = start_gateway("gateway", gateway_map(us, eu, GW_HTTP, GW_ADMIN, GW_TLS, cert, key))
    ng = start_nginx("nginx", us, eu, NG_HTTP, NG_TLS, cert, key)
    procs = [gw, ng]
    try:
        for port, p in ((GW_HTTP, gw.proc), (GW_TLS, gw.proc), (NG_HTTP, ng.proc), (NG_TLS, ng.proc)):
            wait_port(port, p)
        c, d = args.connections, args.duration
        tls_extra = ["--cacert", str(ca)]
        targets = [
            ("worker directly", f"http://{stack.us['worker']}/api/ping", []),
            ("gateway, HTTP/1.1", f"http://127.0.0.1:{GW_HTTP}/api/ping", []),
            ("nginx, HTTP/1.1", f"http://127.0.0.1:{NG_HTTP}/api/ping", []),
            ("gateway, TLS + HTTP/1.1", f"https://127.0.0.1:{GW_TLS}/api/ping", tls_extra),
            ("nginx, TLS + HTTP/1.1", f"https://127.0.0.1:{NG_TLS}/api/ping", tls_extra),
        ]
        print(f"\n### Gateway vs nginx: GET /api/ping (US worker), loadgen\n")
        print(f"{c} keep-alive connections, {d} s each after 1 s warm-up, release build, "
              f"{args.rounds} rounds interleaved; load before: {os.getloadavg()[0]:.2f}.\n")
        print("| path | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |")
        print("|---|---|---|---|---|---|---|")
        results = {}
        for rnd in range(args.rounds):
            for name, url, extra in targets:
                r = loadgen(url, US_API, c, d, extra=extra)
                results.setdefault(name, []).append(r)
                print(row(f"{name} (round {rnd + 1})", r), flush=True)
        mean = lambda name, key: sum(r[key] for r in results[name]) / args.rounds
        print("\n| comparison (means of the rounds) | throughput ratio | added p50 µs over direct |")
        print("|---|---|---|")
        for name in ("gateway, HTTP/1.1", "nginx, HTTP/1.1", "gateway, TLS + HTTP/1.1", "nginx, TLS + HTTP/1.1"):
            ratio = mean(name, "rps") / mean("worker directly", "rps")
            added = (mean(name, "p50_ms") - mean("worker directly", "p50_ms")) * 1000
            print(f"| {name} vs worker directly | {ratio:.2f} | {added:.0f} |")
        for kind in ("HTTP/1.1", "TLS + HTTP/1.1"):
            g, n = mean(f"gateway, {kind}", "rps"), mean(f"nginx, {kind}", "rps")
            print(f"| gateway / nginx, {kind} | {g / n:.2f} | {(mean(f'gateway, {kind}', 'p50_ms') - mean(f'nginx, {kind}', 'p50_ms')) * 1000:+.0f} (vs nginx) |")

        print("\n### Latency of one request at a time (1 connection), loadgen\n")
        print("What the hop itself adds, without queueing behind other requests.\n")
        print("| path | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |")
        print("|---|---|---|---|---|---|---|")
        single = {}
        for rnd in range(args.rounds):
            for name, url, extra in targets:
                r = loadgen(url, US_API, 1, d, extra=extra)
                single.setdefault(name, []).append(r)
                print(row(f"{name} (round {rnd + 1})", r), flush=True)
        p50 = lambda name: sum(r["p50_ms"] for r in single[name]) / args.rounds
        print("\n| added p50 over the worker directly, 1 connection | µs |")
        print("|---|---|")
        for name, _, _ in targets[1:]:
            print(f"| {name} | {(p50(name) - p50('worker directly')) * 1000:.0f} |")

        print("\n### CPU per request at a fixed 6,000 req/s (plain HTTP/1.1, loadgen --rate)\n")
        print("The proxy's own CPU time (user + system, from /proc) over the run.\n")
        print("| proxy | round | req/s | p50 ms | CPU µs per request |")
        print("|---|---|---|---|---|")
        nginx_pids = [int(p) for p in sh(["pgrep", "-P", str(ng.proc.pid)]).split()]
        for rnd in range(args.rounds + 1):
            for name, url, pids in (("gateway", targets[1][1], [gw.proc.pid]),
                                    ("nginx", targets[2][1], nginx_pids)):
                before = cpu_seconds(pids)
                r = loadgen(url, US_API, c, 5, extra=["--rate", "6000"])
                used = cpu_seconds(pids) - before
                # loadgen's 1 s warm-up is inside the CPU interval too.
                per = used / (r["requests"] + r["rps"]) * 1e6
                print(f"| {name} | {rnd + 1} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {per:.1f} |", flush=True)

        if shutil.which("wrk"):
            print("\n### Second opinion: wrk (2 threads, plain HTTP/1.1)\n")
            print("| path | req/s | p50 ms | p99 ms | errors |")
            print("|---|---|---|---|---|")
            for rnd in range(args.rounds):
                for name, url, extra in targets[:3]:
                    r = wrk(url, US_API, c, d)
                    print(f"| {name} (round {rnd + 1}) | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
                          f"{r['p99_ms']:.2f} | {r['errors']} |", flush=True)
    finally:
        for p in procs:
            p.stop()
    failover(stack, args, cert, key)


def failover(stack, args, cert, key):
    """Two US workers behind the gateway and behind nginx; one is SIGKILLed mid-run."""
    env = dict(os.environ, **stack.us["env"], RUST_LOG="warn", CLOSEDLOOP_SCIM_RATE_PER_SECOND="0")
    eu_info = stack.info["regions"]["eu"]
    eu = [(eu_info["worker"], eu_info["worker_admin"])]
    print("\n### Two workers per region, one killed (SIGKILL) mid-run: GET /api/ping\n")
    print(f"{args.connections} connections, {args.duration} s, the first US worker killed "
          f"{args.duration // 2} s in; failed = non-2xx + connection errors + timeouts.\n")
    print("| proxy | req/s | p50 ms | p99 ms | max ms | failed requests |")
    print("|---|---|---|---|---|---|")
    for proxy_name in ("gateway", "nginx"):
        workers, procs = [], []
        try:
            for public, admin in FO_WORKERS:
                w = Background(f"worker-{public}", [
                    str(BIN / "region-worker"), "serve", "--config", stack.info["config"], "--region", "us",
                    "--listen", f"127.0.0.1:{public}", "--admin-listen", f"127.0.0.1:{admin}"], env)
                workers.append(w)
                wait_port(public, w.proc)
            us = [(f"127.0.0.1:{p}", f"127.0.0.1:{a}") for p, a in FO_WORKERS]
            if proxy_name == "gateway":
                procs.append(start_gateway("gateway-failover",
                                           gateway_map(us, eu, FO_GW_HTTP, FO_GW_ADMIN)))
                port = FO_GW_HTTP
            else:
                procs.append(start_nginx("nginx-failover", us, eu, FO_NG_HTTP, FO_NG_TLS, cert, key))
                port = FO_NG_HTTP
            wait_port(port, procs[-1].proc)
            timer = threading.Timer(1 + args.duration / 2, workers[0].kill)
            timer.start()
            r = loadgen(f"http://127.0.0.1:{port}/api/ping", US_API, args.connections, args.duration)
            timer.join()
            failed = r["non_2xx"] + r["errors"] + r["timeouts"]
            print(f"| {proxy_name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                  f"{r['max_ms']:.1f} | {failed} |", flush=True)
        finally:
            for p in procs + workers:
                p.stop()


# --- Tokens and Universal Logout (issue 7) -------------------------------------------

def b64url(data):
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_token(region, kind):
    """A token in the product's format and the hex SHA-256 the stores keep."""
    import hashlib
    secret = f"clk_{region}_{kind}_{b64url(os.urandom(32))}"
    return secret, hashlib.sha256(secret.encode()).hexdigest()


class OktaKeys:
    """A stand-in Okta org for the benchmark: an RS256 key, its JWKS served on a loopback
    port (the issuer), and Universal Logout JWTs signed with it. Needs `cryptography`."""

    def __init__(self):
        import http.server
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()
        as_bytes = lambda i: i.to_bytes((i.bit_length() + 7) // 8, "big")
        self.kid = "bench-" + b64url(os.urandom(6))
        jwks = json.dumps({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                                     "n": b64url(as_bytes(numbers.n)), "e": b64url(as_bytes(numbers.e))}]}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if not self.path.startswith("/oauth2/v1/keys"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "max-age=3600")
                self.send_header("Content-Length", str(len(jwks)))
                self.end_headers()
                self.wfile.write(jwks)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def logout_jwt(self, client_id, aud):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        now = int(time.time())
        header = {"alg": "RS256", "kid": self.kid, "typ": "global-token-revocation+jwt"}
        claims = {"jti": b64url(os.urandom(16)), "iss": self.issuer, "sub": client_id, "aud": aud,
                  "iat": now, "nbf": now - 300, "exp": now + 300}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(sig)}"


LOGOUT_SEED_SQL = """
BEGIN;
DELETE FROM tokens WHERE team_id = '{team}' AND created_by = 'bench';
DELETE FROM users WHERE team_id = '{team}' AND user_name LIKE 'logout%@bench.test';
DELETE FROM okta_settings WHERE team_id = '{team}';
-- The org: only Universal Logout runs in this suite, so the sealed client secret is a
-- placeholder that nothing opens.
INSERT INTO okta_settings (team_id, okta_domain, issuer, client_id, client_secret_sealed, key_id)
VALUES ('{team}', '{domain}', '{issuer}', '{client_id}', '\\x00', 'bench');
INSERT INTO users (team_id, id, user_name, email, active, resource, source)
SELECT '{team}', ('00000000-0000-4000-a000-' || lpad(n::text, 12, '0'))::uuid,
       'logout' || n || '@bench.test', 'logout' || n || '@bench.test', true,
       jsonb_build_object('schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User'),
                          'userName', 'logout' || n || '@bench.test', 'active', true), 'scim'
FROM generate_series(1, {all_users}) AS n;
-- Heavy users (1..{heavy}): {tokens} live API tokens and {sessions} live sessions each.
INSERT INTO tokens (hash, team_id, kind, user_id, user_epoch, name, created_by, expires_at, id)
SELECT sha256(('bench-api-' || u || '-' || t)::bytea), '{team}', 'api',
       ('00000000-0000-4000-a000-' || lpad(u::text, 12, '0'))::uuid, 0, 'bench ' || t, 'bench',
       now() + interval '30 days', gen_random_uuid()
FROM generate_series(1, {heavy}) AS u, generate_series(1, {tokens}) AS t;
INSERT INTO tokens (hash, team_id, kind, user_id, user_epoch, created_by, expires_at)
SELECT sha256(('bench-ses-' || u || '-' || s)::bytea), '{team}', 'ses',
       ('00000000-0000-4000-a000-' || lpad(u::text, 12, '0'))::uuid, 0, 'bench', now() + interval '12 hours'
FROM generate_series(1, {heavy}) AS u, generate_series(1, {sessions}) AS s;
INSERT INTO browser_sessions (token_hash, team_id, user_id, method, last_seen_at)
SELECT sha256(('bench-ses-' || u || '-' || s)::bytea), '{team}',
       ('00000000-0000-4000-a000-' || lpad(u::text, 12, '0'))::uuid, 'sign-in-link', now()
FROM generate_series(1, {heavy}) AS u, generate_series(1, {sessions}) AS s;
-- One known API token per user, to see it work before the logout and fail after.
INSERT INTO tokens (hash, team_id, kind, user_id, user_epoch, name, created_by, expires_at, id) VALUES
{known};
COMMIT;
VACUUM ANALYZE tokens; VACUUM ANALYZE users; VACUUM ANALYZE browser_sessions;
"""


def percentiles(samples_ms):
    s = sorted(samples_ms)
    pick = lambda q: s[min(len(s) - 1, int(round(q * (len(s) - 1))))]
    return pick(0.5), pick(0.99), s[-1]


def tokens(stack, args):
    """Token checks through the gateway, and Universal Logout of users holding 10,000
    tokens and 100 sessions against users holding one."""
    import http.client
    us = stack.us
    ws = us["demo_workspace"]
    team, admin = ws["team_id"], ws["admin_user_id"]
    pg = us["postgres_url"]
    c, d = args.token_connections, args.duration
    gateway = f"http://127.0.0.1:{GATEWAY_PORT}"

    # 1. Checks: an API token and an MCP token of the demo admin (recorded as the product
    # records them: hashes only), against /api/ping as the ceiling of the same path.
    epoch = sh(["psql", pg, "-qtAc", f"SELECT token_epoch FROM users WHERE team_id = '{team}' AND id = '{admin}'"]).strip()
    api, api_hash = new_token("us", "api")
    mcp, mcp_hash = new_token("us", "mcp")
    rows = ",".join(
        f"('\\x{h}', '{team}', '{k}', '{admin}', {epoch}, 'bench {k}', 'bench', now() + interval '30 days', gen_random_uuid())"
        for k, h in (("api", api_hash), ("mcp", mcp_hash)))
    sh(["psql", pg, "-q", "-v", "ON_ERROR_STOP=1", "-c",
        f"INSERT INTO tokens (hash, team_id, kind, user_id, user_epoch, name, created_by, expires_at, id) VALUES {rows}"])
    print("\n### Token checks through the gateway\n")
    print(f"{c} connections, {d} s each (1 s warm-up), HTTP/1.1 keep-alive, release build; "
          f"each check reads the token entry and the user's revocation epoch in one Redis round trip.\n")
    print("| endpoint | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | worker RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    # This stack's worker (another stack may be running on other ports).
    pid = int(sh(["pgrep", "-f", f"serve --config {WORK / 'stack' / 'regions.toml'} --region us"]).split()[0])
    for rnd in range(args.rounds):
        direct = f"http://{us['worker']}"
        for name, base, path, token in (("GET /api/ping (no check)", gateway, "/api/ping", None),
                                        ("GET /api/me (API token)", gateway, "/api/me", api),
                                        ("GET /api/mcp/whoami (MCP token)", gateway, "/api/mcp/whoami", mcp),
                                        ("GET /api/me, worker directly", direct, "/api/me", api)):
            sampler = RssSampler(pid)
            sampler.start()
            headers = [f"Authorization: Bearer {token}"] if token else []
            r = loadgen(f"{base}{path}", US_API, c, d, headers=headers)
            sampler.stop_flag = True
            sampler.join()
            print(row(f"{name}, round {rnd + 1}", r, sampler.max_kb / 1024), flush=True)
            if r["non_2xx"]:
                print(f"<!-- {name}: status counts {r['status_counts']} -->")
        # The target as a rate: latency at the required throughput rather than at
        # saturation (open loop, late requests timed from their scheduled slot).
        for name, path, token in (("GET /api/ping at 10,000 req/s (paced)", "/api/ping", None),
                                  ("GET /api/me at 10,000 req/s (paced)", "/api/me", api)):
            sampler = RssSampler(pid)
            sampler.start()
            headers = [f"Authorization: Bearer {token}"] if token else []
            r = loadgen(f"{gateway}{path}", US_API, c, d, headers=headers, extra=["--rate", "10000"])
            sampler.stop_flag = True
            sampler.join()
            print(row(f"{name}, round {rnd + 1}", r, sampler.max_kb / 1024), flush=True)

    # 2. Universal Logout: heavy users hold N tokens and M sessions, light users one
    # token; each is logged out once, sequentially, with a fresh signed JWT. The next
    # request with the user's known token follows the 204 at once and must be refused.
    okta = OktaKeys()
    client_id = "0oabench" + b64url(os.urandom(4)).replace("-", "a").replace("_", "b")
    heavy, light = args.logout_users, args.logout_users
    known = {}
    values = []
    for n in range(1, heavy + light + 1):
        secret, h = new_token("us", "api")
        uid = f"00000000-0000-4000-a000-{n:012d}"
        known[n] = secret
        values.append(f"('\\x{h}', '{team}', 'api', '{uid}', 0, 'known', 'bench', now() + interval '30 days', gen_random_uuid())")
    t0 = time.time()
    sh(["psql", pg, "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
       input=LOGOUT_SEED_SQL.format(team=team, issuer=okta.issuer, domain=okta.issuer.removeprefix("http://"),
                                    client_id=client_id, all_users=heavy + light, heavy=heavy,
                                    tokens=args.logout_tokens, sessions=args.logout_sessions,
                                    known=",\n".join(values)))
    seeded = time.time() - t0
    aud = f"{us['api_url']}/api/okta/universal-logout"
    conn = http.client.HTTPConnection("127.0.0.1", GATEWAY_PORT, timeout=30)

    def request(method, path, token=None, body=None):
        headers = {"Host": US_API}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        start = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, (time.perf_counter() - start) * 1000, time.perf_counter()

    # Warm the worker's key cache and connections with one logout nobody answers to.
    status, _, _ = request("POST", "/api/okta/universal-logout", okta.logout_jwt(client_id, aud),
                           json.dumps({"sub_id": {"format": "email", "email": "nobody@bench.test"}}))
    assert status == 404, status
    results = {"heavy": [], "light": []}
    gaps = []
    refused_next = 0
    order = [n for pair in zip(range(1, heavy + 1), range(heavy + 1, heavy + light + 1)) for n in pair]
    for n in order:
        kind = "heavy" if n <= heavy else "light"
        before, _, _ = request("GET", "/api/me", known[n])
        assert before == 200, f"user {n}: {before} before the logout"
        jwt = okta.logout_jwt(client_id, aud)
        body = json.dumps({"sub_id": {"format": "email", "email": f"logout{n}@bench.test"}})
        status, ms, done = request("POST", "/api/okta/universal-logout", jwt, body)
        assert status == 204, f"user {n}: {status}"
        results[kind].append(ms)
        after, _, refused_at = request("GET", "/api/me", known[n])
        if after == 401:
            refused_next += 1
        gaps.append((refused_at - done) * 1000)
    print(f"\n### Universal Logout: one request, whatever the user holds\n")
    print(f"Sequential `POST /api/okta/universal-logout` through the gateway with a fresh RS256 JWT each "
          f"(signed before timing), {heavy} users holding {args.logout_tokens:,} live API tokens and "
          f"{args.logout_sessions} live sessions each, interleaved with {light} users holding one token; "
          f"{heavy * (args.logout_tokens + args.logout_sessions + 1) + light:,} credentials seeded in {seeded:.0f} s.\n")
    print("| users | logouts | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for kind, label in (("heavy", f"{args.logout_tokens:,} tokens + {args.logout_sessions} sessions each"),
                        ("light", "1 token each")):
        p50, p99, mx = percentiles(results[kind])
        print(f"| {label} | {len(results[kind])} | {p50:.2f} | {p99:.2f} | {mx:.1f} |")
    p50, p99, mx = percentiles(gaps)
    print(f"\nThe request right after each `204` (`GET /api/me` with one of the user's API tokens) was refused "
          f"{refused_next} times out of {len(order)}; from the `204` to that `401`: p50 {p50:.2f} ms, "
          f"p99 {p99:.2f} ms, max {mx:.1f} ms (one request's round trip).")
    okta.server.shutdown()


# ---------------------------------------------------------------- flood suite
# Issue 14, section 6: made-up but well-formed SCIM bearer tokens, each new (so no cache
# can answer them), sent at the worker's full speed from one attacker address, while a
# real SCIM client reads users at a steady rate through the gateway. The attacker's
# requests go straight to the worker from loopback (a trusted proxy) naming their client
# in X-Forwarded-For, as the gateway would; the real client is the gateway's own address.
# Run with the failed-authentication limit on (the default) and off, side by side.

def flood_round(stack, args, label):
    us = stack.us
    team = us["demo_workspace"]["team_id"]
    env = dict(os.environ, **us["env"])
    token = json.loads(sh([str(BIN / "region-worker"), "token", "issue", "--config", stack.info["config"],
                           "--region", "us", "--team", team, "--kind", "scim"], env=env))["token"]
    real = dict(url=f"http://127.0.0.1:{GATEWAY_PORT}/api/scim/v2/{team}/Users?count=1", host=US_API,
                connections=4, duration=args.duration, headers=[f"Authorization: Bearer {token}"],
                extra=["--rate", str(args.flood_real_rate)])
    idle = loadgen(**real)
    attacker = subprocess.Popen(
        [str(BIN / "loadgen"), "--url", f"http://{us['worker']}/api/scim/v2/{team}/Users?count=1",
         "--host", US_API, "-c", str(args.connections), "-d", f"{args.duration + 2}s", "--json",
         "-H", "X-Forwarded-For: 203.0.113.66",
         "--bearer", "clk_us_scim_{n12}" + "x" * 31, "--counter-start", str(int(time.time()))],
        stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    loaded = loadgen(**real)
    out, _ = attacker.communicate(timeout=args.duration + 60)
    flood = json.loads(out)
    rows = [
        row(f"{label}: real client, idle", idle),
        row(f"{label}: real client, under the flood", loaded),
        row(f"{label}: the flood ({flood['status_counts']})", flood),
    ]
    return rows, loaded["p99_ms"] / max(idle["p99_ms"], 0.001)


def flood(stack, args):
    print("\n### Made-up bearer tokens at full speed vs a real SCIM client\n")
    print(f"Real client: 4 connections through the gateway at {args.flood_real_rate} req/s "
          f"(GET /Users?count=1), {args.duration} s; attacker: {args.connections} connections "
          "straight to the worker, closed loop, a new well-formed clk_us_scim_ token per request.\n")
    print("| scenario | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | ")
    print("|---|---|---|---|---|---|---|")
    rows, ratio_on = flood_round(stack, args, "limit on")
    for r in rows:
        print(r, flush=True)
    stack.stop()
    off = Stack(fresh=True, env={"CLOSEDLOOP_AUTH_RATE_PER_SECOND": "0"})
    try:
        rows, ratio_off = flood_round(off, args, "limit off")
        for r in rows:
            print(r, flush=True)
    finally:
        off.stop()
    print(f"\np99 under the flood / idle p99: limit on {ratio_on:.2f}x, limit off {ratio_off:.2f}x")
    return "stopped"



# ---------------------------------------------------------------- pages suite
# The admin pages at scale: People and Groups at 100,000 users, Activity at 1,000,000
# audit events, as an admin's browser asks for them (a session cookie from the
# operator's one-time link). The mean server time of each page is read from the worker's
# own histogram (worker_http_request_duration_seconds, its sum and count before and
# after the row) beside the latency the client measured.

AUDIT_SEED_SQL = """
BEGIN;
DELETE FROM audit_events WHERE team_id = '{team}' AND actor = 'bench';
INSERT INTO audit_events (team_id, at, actor, action, target, detail, request_id)
SELECT '{team}', now() - make_interval(secs => ({events} - n) * 2),
       'bench',
       (ARRAY['scim.user.created','scim.user.patched','scim.user.deactivated','scim.group.patched',
              'session.signed_in.okta','oidc.sign_in.failed','okta.universal_logout','token.created'])[1 + n % 8],
       ('00000000-0000-4000-8000-' || lpad((1 + n % {users})::text, 12, '0')),
       jsonb_build_object('status', 200, 'n', n),
       'bench-' || n
FROM generate_series(1, {events}) AS n;
COMMIT;
VACUUM ANALYZE audit_events;
"""


def admin_cookie(stack, team):
    """Signs the demo admin in with a fresh one-time link; returns the Cookie header."""
    import http.client
    import urllib.parse
    us = stack.us
    env = dict(os.environ, **us["env"])
    link = json.loads(sh([str(BIN / "region-worker"), "workspace", "sign-in-link", "--config", stack.info["config"],
                          "--region", "us", "--team", team, "--email", "admin@example.com"], env=env))["sign_in_url"]
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["code"][0]
    conn = http.client.HTTPConnection("127.0.0.1", GATEWAY_PORT, timeout=30)
    conn.request("POST", "/auth/link", body=urllib.parse.urlencode({"code": code}),
                 headers={"Host": us["app_host"], "Origin": us["app_url"],
                          "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    cookies = [v.split(";", 1)[0] for k, v in r.getheaders() if k.lower() == "set-cookie"]
    if r.status != 303 or not cookies:
        raise SystemExit(f"signing the bench admin in failed: {r.status}")
    return "Cookie: " + "; ".join(cookies)


def route_time(stack, route):
    """The worker's (sum of seconds, count) of requests to the route template `route`."""
    text = urllib.request.urlopen(f"http://{stack.us['worker_admin']}/metrics", timeout=10).read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if f'route="{route}"' not in line:
            continue
        if line.startswith("worker_http_request_duration_seconds_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("worker_http_request_duration_seconds_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count


def pages(stack, args):
    us = stack.us
    team = us["demo_workspace"]["team_id"]
    pg = us["postgres_url"]
    t0 = time.time()
    sh(["psql", pg, "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
       input=SEED_SQL.format(team=team, users=args.users, members=args.users // 2))
    sh(["psql", pg, "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
       input=AUDIT_SEED_SQL.format(team=team, users=args.users, events=args.audit_events))
    seeded = time.time() - t0
    cookie = admin_cookie(stack, team)
    app = us["app_host"]
    base = f"http://127.0.0.1:{GATEWAY_PORT}"
    gid = "00000000-0000-4000-9000-000000000001"
    uid = "00000000-0000-4000-8000-000000042424"
    scenarios = [
        ("People, first page", "/people"),
        ("People, search by email", "/people?q=user42424%40bench.test"),
        ("People, search by name", "/people?q=User%2042424"),
        ("People, filter deactivated", "/people?status=deactivated"),
        ("People, filter role admin", "/people?role=admin"),
        ("One person", f"/people/{uid}"),
        ("Groups, first page", "/groups"),
        ("The 50k-member group, first page", f"/groups/{gid}"),
        ("Activity, first page", "/activity"),
        ("Activity, kind scim", "/activity?kind=scim"),
        ("Activity, one user", f"/activity?user={uid}"),
        ("Activity, a day a week ago", "/activity?from={frm}&to={to}"),
    ]
    import datetime
    day = datetime.date.today() - datetime.timedelta(days=7)
    c = args.page_connections
    print(f"\n### Admin pages at {args.users:,} users and {args.audit_events:,} audit events\n")
    print(f"Through the gateway with an admin's session cookie, {c} connection(s), {args.duration} s each "
          f"(1 s warm-up), release build; seeded in {seeded:.1f} s. With one connection, latency is "
          f"the page's server time plus a loopback round trip.\n")
    print("| page | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | worker RSS MB | mean server ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    pid = stack.worker_pid()
    for name, path in scenarios:
        path = path.format(frm=day.isoformat(), to=(day + datetime.timedelta(days=1)).isoformat())
        route = path.split("?", 1)[0].replace(uid, "{id}").replace(gid, "{id}")
        before = route_time(stack, route)
        sampler = RssSampler(pid)
        sampler.start()
        r = loadgen(f"{base}{path}", app, c, args.duration, headers=[cookie])
        sampler.stop_flag = True
        sampler.join()
        after = route_time(stack, route)
        served = after[1] - before[1]
        server_ms = (after[0] - before[0]) / served * 1000 if served else float("nan")
        print(row(name, r, sampler.max_kb / 1024)[:-1] + f"| {server_ms:.2f} |", flush=True)
        if r["non_2xx"]:
            print(f"<!-- {name}: status counts {r['status_counts']} -->")
    # The whole export: every event of the workspace, streamed.
    for fmt in ("jsonl", "csv"):
        import urllib.request as ur
        req = ur.Request(f"{base}/activity/export?format={fmt}", headers={"Host": app, "Cookie": cookie[len("Cookie: "):]})
        sampler = RssSampler(pid)
        sampler.start()
        t = time.perf_counter()
        n = 0
        with ur.urlopen(req, timeout=600) as resp:
            while chunk := resp.read(1 << 20):
                n += chunk.count(b"\n")
        took = time.perf_counter() - t
        sampler.stop_flag = True
        sampler.join()
        print(f"\nExport as {fmt}: {n:,} lines in {took:.1f} s ({n / took:,.0f} lines/s), "
              f"worker RSS at most {sampler.max_kb / 1024:.0f} MB.")


# ---------------------------------------------------------------- ceilings suite
# Issue 18: each SCIM scenario against what the parts themselves do in the same run on the
# same stores. First the ceilings: pgbench select-only (-S) and simple-update (-N) at the
# same connection count on the stack's own Postgres (a scratch database beside the
# product's), and /api/ping; then each scenario straight to the worker and through the
# gateway, and the token check against /api/ping through the gateway.

def pgbench(db_url, mode, connections, duration):
    """pgbench's tps and mean latency (ms) for `mode` (-S select-only, -N simple update),
    with prepared statements (as the worker's are): the higher, stricter ceiling."""
    out = sh(["pgbench", "-n", mode, "-M", "prepared", "-c", str(connections), "-j", "2",
              "-T", str(duration), db_url])
    tps = [l for l in out.splitlines() if l.startswith("tps =")]
    lat = [l for l in out.splitlines() if l.startswith("latency average")]
    return float(tps[-1].split()[2]), float(lat[-1].split()[3]) if lat else float("nan")


class CpuMeter:
    """CPU time (user + system) spent by each part of the stack over a row: the worker,
    the gateway, the stack's Postgres (postmaster and every backend) and Redis, and the
    load generator (this script's children). Divided by the requests of the row, it is
    where a request's cost goes, and it holds steadier than req/s on a busy machine."""

    def __init__(self, stack):
        def pids(pattern):
            out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
            return [int(p) for p in out.split()]
        work = WORK / "stack"
        self.parts = {
            "worker": lambda: pids(f"serve --config {work / 'regions.toml'} --region us"),
            "gateway": lambda: pids(f"gateway --config {work / 'regions.toml'}"),
            "postgres": lambda: self.postgres_pids(),
            "redis": lambda: pids(f"redis-server 127.0.0.1:{urlsplit_port(stack.us['redis_url'])}$"),
        }
        self.pg_port = urlsplit_port(stack.us["postgres_url"])

    def postgres_roots(self):
        out = subprocess.run(["pgrep", "-f", f"postgres -D .* -p {self.pg_port} "], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def postgres_pids(self):
        roots = self.postgres_roots()
        kids = []
        for root in roots:
            kids += [int(p) for p in subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout.split()]
        return roots + kids

    def snapshot(self):
        import resource
        snap = {}
        for name, find in self.parts.items():
            total = 0.0
            for pid in find():
                try:
                    total += cpu_seconds([pid])
                except OSError:
                    pass
            snap[name] = total
        # Backends that have exited (pgbench's, at its end) count in the postmaster's
        # children's times.
        for root in self.postgres_roots():
            try:
                fields = Path(f"/proc/{root}/stat").read_text().rsplit(")", 1)[1].split()
                snap["postgres"] += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        snap["loadgen"] = ru.ru_utime + ru.ru_stime
        return snap

    @staticmethod
    def per_request(before, after, requests):
        """µs of CPU per request of each part."""
        return {k: (after[k] - before[k]) * 1e6 / max(requests, 1) for k in before}


def urlsplit_port(url):
    from urllib.parse import urlsplit
    return urlsplit(url).port


def ceilings(stack, args):
    us = stack.us
    team = us["demo_workspace"]["team_id"]
    pg = us["postgres_url"]
    c, d = args.ceiling_connections, args.duration
    t0 = time.time()
    sh(["psql", pg, "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
       input=SEED_SQL.format(team=team, users=args.users, members=args.users // 2))
    seeded = time.time() - t0
    # pgbench's tables live in a database of their own on the same server.
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(pg)
    bench_db = urlunsplit(parts._replace(path="/pgbench"))
    sh(["psql", pg, "-qc", "DROP DATABASE IF EXISTS pgbench"])
    sh(["psql", pg, "-qc", "CREATE DATABASE pgbench"])
    sh(["pgbench", "-i", "-q", "-s", str(args.pgbench_scale), bench_db])
    env = dict(os.environ, **us["env"])
    token = json.loads(sh([str(BIN / "region-worker"), "token", "issue", "--config", stack.info["config"],
                           "--region", "us", "--team", team, "--kind", "scim"], env=env))["token"]
    admin = us["demo_workspace"]["admin_user_id"]
    epoch = sh(["psql", pg, "-qtAc", f"SELECT token_epoch FROM users WHERE team_id = '{team}' AND id = '{admin}'"]).strip()
    api, api_hash = new_token("us", "api")
    sh(["psql", pg, "-q", "-v", "ON_ERROR_STOP=1", "-c",
        f"INSERT INTO tokens (hash, team_id, kind, user_id, user_epoch, name, created_by, expires_at, id) VALUES "
        f"('\\x{api_hash}', '{team}', 'api', '{admin}', {epoch}, 'bench api', 'bench', now() + interval '30 days', gen_random_uuid())"])
    auth = f"Authorization: Bearer {token}"
    json_ct = "Content-Type: application/json"
    n_users = args.users
    uid = "00000000-0000-4000-8000-{n12}"
    gid = "00000000-0000-4000-9000-000000000001"
    stamp = str(int(time.time()))
    half = n_users // 2

    def scenarios(offset):
        """The SCIM scenarios; `offset` keeps the second pass (through the gateway) on
        resources the first pass has not touched."""
        return [
            ("userName eq lookup", "S", 0.30, 3.0,
             dict(path="/Users?filter=userName%20eq%20%22user{n}%40bench.test%22",
                  extra=["--counter-start", "1", "--counter-wrap", str(n_users)])),
            ("user create", "N", 0.60, None,
             dict(path="/Users", method="POST", headers=[json_ct],
                  body=json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                   "userName": "new{n}@bench.test", "name": {"givenName": "New", "familyName": "{n}"},
                                   "emails": [{"value": "new{n}@bench.test", "primary": True, "type": "work"}],
                                   "active": True}),
                  extra=["--counter-start", f"{stamp}{offset}000000"])),
            ("deactivate PATCH", "N", 0.70, None,
             dict(path=f"/Users/{uid}", method="PATCH", headers=[json_ct],
                  body=json.dumps({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}),
                  extra=["--counter-start", str(1 + offset * half), "--counter-wrap", str(half)])),
            ("one-member PATCH of the 50k group", "N", 0.60, 15.0,
             dict(path=f"/Groups/{gid}", method="PATCH", headers=[json_ct],
                  body=json.dumps({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}),
                  extra=["--counter-start", str(half + 1 + offset * (half // 2)), "--counter-wrap", str(half // 2)])),
            ("page of 100 users", None, None, None,
             dict(path="/Users?startIndex={n}&count=100",
                  extra=["--counter-start", "1", "--counter-step", "100", "--counter-wrap", str(n_users)])),
        ]

    worker = f"http://{us['worker']}"
    gateway = f"http://127.0.0.1:{GATEWAY_PORT}"
    print(f"\n### Against the ceilings, one run ({n_users:,} users, a {half:,}-member group)\n")
    print(f"{c} connections, {d} s per row (1 s warm-up), release build, durable Postgres "
          f"(fsync, synchronous_commit on), seeded in {seeded:.0f} s; pgbench scale {args.pgbench_scale} "
          f"in a database of its own on the same server, `-M prepared -j 2`.\n")
    meter = CpuMeter(stack)
    cost = {}
    before = meter.snapshot()
    s_tps, s_lat = pgbench(bench_db, "-S", c, d)
    after = meter.snapshot()
    cost["S"] = meter.per_request(before, after, s_tps * d)
    n_tps, n_lat = pgbench(bench_db, "-N", c, d)
    cost["N"] = meter.per_request(after, meter.snapshot(), n_tps * d)
    before = meter.snapshot()
    ping_direct = loadgen(f"{worker}/api/ping", US_API, c, d)
    # The load generator's rows include a 1 s warm-up at about the measured rate.
    cost["ping"] = meter.per_request(before, meter.snapshot(), ping_direct["rps"] * (d + 1))
    print("| ceiling | per s | mean latency ms | Postgres µs CPU each | worker µs CPU each |")
    print("|---|---|---|---|---|")
    print(f"| pgbench -S (select-only) | {s_tps:,.0f} | {s_lat:.2f} | {cost['S']['postgres']:.0f} | — |")
    print(f"| pgbench -N (simple update) | {n_tps:,.0f} | {n_lat:.2f} | {cost['N']['postgres']:.0f} | — |")
    print(f"| /api/ping, worker directly | {ping_direct['rps']:,.0f} | — | — | {cost['ping']['worker']:.0f} |\n")
    print("µs of CPU per request: W worker, G gateway, P Postgres, R Redis, L load generator "
          "(pgbench's own client is not counted in its row).\n")
    print("| scenario | path | req/s | p50 ms | p99 ms | max ms | errors | of ceiling | target | gateway/direct | W / G / P / R / L µs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ceiling = {"S": s_tps, "N": n_tps}
    for offset, (name, base) in enumerate((("worker directly", worker), ("through the gateway", gateway))):
        for scen, kind, share, p99_max, s in scenarios(offset):
            before = meter.snapshot()
            r = loadgen(f"{base}/api/scim/v2/{team}{s['path']}", US_API, c, d, method=s.get("method", "GET"),
                        body=s.get("body"), headers=[auth] + s.get("headers", []), extra=s.get("extra", []))
            used = meter.per_request(before, meter.snapshot(), r["rps"] * (d + 1))
            split = " / ".join(f"{used[k]:.0f}" for k in ("worker", "gateway", "postgres", "redis", "loadgen"))
            errors = r["non_2xx"] + r["errors"]
            if kind:
                of = f"{r['rps'] / ceiling[kind]:.0%} of -{kind}"
                target = f"≥ {share:.0%}" + (f", p99 < {p99_max:g} ms" if p99_max else "")
            else:
                of, target = "—", "≥ 2,000/s"
            ratio = ""
            if offset == 1:
                direct = stack.bench_direct.get(scen)
                ratio = f"{r['rps'] / direct:.0%} (≥ 85 %)" if direct else ""
            else:
                stack.bench_direct = getattr(stack, "bench_direct", {})
                stack.bench_direct[scen] = r["rps"]
            print(f"| {scen} | {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} "
                  f"| {errors} | {of} | {target} | {ratio} | {split} |", flush=True)
            if r["non_2xx"]:
                print(f"<!-- {scen}: status counts {r['status_counts']} -->")
    tc = args.token_connections
    ping_gw = loadgen(f"{gateway}/api/ping", US_API, tc, d)
    me_gw = loadgen(f"{gateway}/api/me", US_API, tc, d, headers=[f"Authorization: Bearer {api}"])
    print(f"\nToken check through the gateway, {tc} connections:\n")
    print("| endpoint | req/s | p50 ms | p99 ms | max ms | errors |")
    print("|---|---|---|---|---|---|")
    for name, r in (("GET /api/ping", ping_gw), ("GET /api/me (API token)", me_gw)):
        print(f"| {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['non_2xx'] + r['errors']} |")
    print(f"\n/api/me is {me_gw['rps'] / ping_gw['rps']:.0%} of /api/ping through the gateway (target ≥ 40 %, p99 < 5 ms).")


# --- Tracing's cost (issue 19) -------------------------------------------------------
# The same gateway + worker pair three times, differing only in traces: off, sampled at
# 0.01, and every request (1.0), exporting OTLP/HTTP to a local sink that accepts and
# discards. /api/ping and a SCIM userName lookup through each, rounds alternating.


class OtlpSink(threading.Thread):
    """An OTLP/HTTP receiver that answers 200 to every POST /v1/traces and keeps only
    counts (requests, bytes): the collector's own cost stays out of the figures."""

    def __init__(self, port):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        super().__init__(daemon=True)
        sink = self
        self.posts, self.bytes = 0, 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(n)
                sink.posts += 1
                sink.bytes += n
                # An empty body is an empty ExportTraceServiceResponse: all accepted.
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)

    def run(self):
        self.server.serve_forever()

    def stop(self):
        self.server.shutdown()


def tracing(stack, args):
    us = stack.us
    team = us["demo_workspace"]["team_id"]
    pg = us["postgres_url"]
    n_users = min(args.users, 10_000)
    sh(["psql", pg, "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
       input=SEED_SQL.format(team=team, users=n_users, members=n_users // 2))
    base_env = {k: v for k, v in dict(os.environ, **us["env"]).items() if not k.startswith("OTEL_")}
    token = json.loads(sh([str(BIN / "region-worker"), "token", "issue", "--config", stack.info["config"],
                           "--region", "us", "--team", team, "--kind", "scim"], env=base_env))["token"]
    PROXY.mkdir(parents=True, exist_ok=True)
    sink_port = BASE_PORT + 250
    sink = OtlpSink(sink_port)
    sink.start()
    eu_info = stack.info["regions"]["eu"]
    eu = [(eu_info["worker"], eu_info["worker_admin"])]
    configs = [("off", None), ("ratio 0.01", "0.01"), ("ratio 1.0", "1.0")]
    ports, procs = {}, []
    try:
        for i, (name, ratio) in enumerate(configs):
            env = dict(base_env, RUST_LOG="warn", CLOSEDLOOP_SCIM_RATE_PER_SECOND="0")
            if ratio is not None:
                env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink_port}",
                           OTEL_TRACES_SAMPLER_ARG=ratio)
            public, admin, gw, gw_admin = (BASE_PORT + 260 + 4 * i + k for k in range(4))
            w = Background(f"tracing-worker-{i}", [
                str(BIN / "region-worker"), "serve", "--config", stack.info["config"], "--region", "us",
                "--listen", f"127.0.0.1:{public}", "--admin-listen", f"127.0.0.1:{admin}"], env)
            procs.append(w)
            wait_port(public, w.proc)
            path = PROXY / f"tracing-gateway-{i}.toml"
            path.write_text(gateway_map([(f"127.0.0.1:{public}", f"127.0.0.1:{admin}")], eu, gw, gw_admin))
            g = Background(f"tracing-gateway-{i}", [str(BIN / "gateway"), "--config", str(path)], env)
            procs.append(g)
            wait_port(gw, g.proc)
            ports[name] = gw
        scenarios = [
            ("/api/ping", "/api/ping", [], []),
            ("SCIM userName eq lookup",
             f"/api/scim/v2/{team}/Users?filter=userName%20eq%20%22user{{n}}%40bench.test%22",
             [f"Authorization: Bearer {token}"],
             ["--counter-start", "1", "--counter-wrap", str(n_users)]),
        ]
        c, d = args.connections, args.duration
        print("\n### Tracing's cost: traces off, sampled at 0.01, every request\n")
        build = "release build" if BIN.name == "release" else f"binaries of {BIN}"
        print(f"Through the gateway (gateway and worker both tracing), {c} connections, {d} s each "
              f"(1 s warm-up), rounds alternating, {build}; OTLP/HTTP to a local sink "
              f"that accepts and discards (batched: the SDK's default 5 s delay, 2,048-span queue).\n")
        print("| scenario | traces | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |")
        print("|---|---|---|---|---|---|---|---|")
        results = {}
        for rnd in range(args.rounds):
            for scenario, path, headers, extra in scenarios:
                for name, _ in configs:
                    r = loadgen(f"http://127.0.0.1:{ports[name]}{path}", US_API, c, d,
                                headers=headers, extra=extra)
                    results.setdefault((scenario, name), []).append(r)
                    cells = row(f"{scenario} (round {rnd + 1})", r).split(" | ")
                    cells.insert(1, name)
                    print(" | ".join(cells), flush=True)
        print("\nMeans over the rounds, against traces off:\n")
        print("| scenario | traces | req/s | vs off | p50 ms | p99 ms |")
        print("|---|---|---|---|---|---|")
        for scenario, *_ in scenarios:
            off = sum(r["rps"] for r in results[(scenario, "off")]) / args.rounds
            for name, _ in configs:
                rs = results[(scenario, name)]
                rps = sum(r["rps"] for r in rs) / len(rs)
                p50 = sum(r["p50_ms"] for r in rs) / len(rs)
                p99 = sum(r["p99_ms"] for r in rs) / len(rs)
                print(f"| {scenario} | {name} | {rps:,.0f} | {(rps / off - 1) * 100:+.1f}% | "
                      f"{p50:.2f} | {p99:.2f} |")
        # Spans still queued are exported within the batch delay; wait for them.
        time.sleep(6)
        print(f"\nThe sink received {sink.posts} exports, {sink.bytes / 1e6:.1f} MB of spans in all.")
    finally:
        for p in procs:
            p.stop()
        sink.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suites", nargs="+", choices=["ping", "scim", "proxy", "tokens", "flood", "pages", "ceilings", "tracing"])
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--only", help="comma-separated scenario numbers of the scim suite")
    p.add_argument("--keep", action="store_true", help="reuse target/bench from an earlier run")
    p.add_argument("--token-connections", type=int, default=64, help="connections of the tokens suite's check scenarios")
    p.add_argument("--logout-users", type=int, default=50, help="users logged out per kind in the tokens suite")
    p.add_argument("--logout-tokens", type=int, default=10_000, help="live API tokens each heavy user holds")
    p.add_argument("--logout-sessions", type=int, default=100, help="live sessions each heavy user holds")
    p.add_argument("--flood-real-rate", type=int, default=400, help="req/s of the real client in the flood suite")
    p.add_argument("--audit-events", type=int, default=1_000_000, help="audit events seeded for the pages suite")
    p.add_argument("--page-connections", type=int, default=1, help="connections of the pages suite")
    p.add_argument("--ceiling-connections", type=int, default=16, help="connections of the ceilings suite (pgbench and SCIM)")
    p.add_argument("--pgbench-scale", type=int, default=10, help="pgbench's scale factor in the ceilings suite")
    p.add_argument("--hold", type=int, default=0, help="keep the stack up this many seconds after the suites (for EXPLAIN)")
    args = p.parse_args()
    stack = Stack(fresh=not args.keep)
    try:
        for suite in args.suites:
            suites = {"ping": ping, "scim": scim, "proxy": proxy, "tokens": tokens, "flood": flood, "pages": pages, "ceilings": ceilings, "tracing": tracing}
            if suites[suite](stack, args) == "stopped":
                # The suite ran stacks of its own after this one: start it again.
                stack = Stack(fresh=False)
        time.sleep(args.hold)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
