#!/usr/bin/env python3
"""Benchmarks of the whole system, side by side in one run, with the project's load
generator. Starts a private release stack (closedloop-local: durable Postgres with
fsync and synchronous_commit on, Redis, one worker per region, the gateway) in
target/bench/, runs the chosen suites, and prints Markdown tables for BENCHMARKS.md.

    python3 tests/bench/bench.py ping          # worker directly vs through the gateway
    python3 tests/bench/bench.py scim          # 100k users, 50k-member group
    python3 tests/bench/bench.py ping scim --duration 10

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
BIN = ROOT / "target" / "release"
WORK = ROOT / "target" / "bench"
GATEWAY_PORT = 18080
BASE_PORT = 18400
US_API = "api.closedloop.localhost"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


class Stack:
    """The local launcher, started in the background on bench ports."""

    def __init__(self, fresh):
        if fresh and WORK.exists():
            # The stores run as the postgres user; stop a leftover stack first.
            shutil.rmtree(WORK, ignore_errors=True)
        WORK.mkdir(parents=True, exist_ok=True)
        stack_json = WORK / "stack" / "stack.json"
        if stack_json.exists():
            stack_json.unlink()
        env = dict(os.environ, CLOSEDLOOP_SCIM_RATE_PER_SECOND="0", RUST_LOG="warn")
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
VACUUM ANALYZE users; VACUUM ANALYZE groups; VACUUM ANALYZE group_members; VACUUM ANALYZE user_roles;
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suites", nargs="+", choices=["ping", "scim"])
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--only", help="comma-separated scenario numbers of the scim suite")
    p.add_argument("--keep", action="store_true", help="reuse target/bench from an earlier run")
    args = p.parse_args()
    stack = Stack(fresh=not args.keep)
    try:
        for suite in args.suites:
            {"ping": ping, "scim": scim}[suite](stack, args)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
