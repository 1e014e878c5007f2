#!/usr/bin/env python3
"""What the revocation watermark (issue 14 §5) costs on the hot path: two release builds
of the stack, before and after, started one after the other in one run (alternating,
so that a busy machine weighs on both alike), measured with the project's loadgen
through the gateway with bench.py's launcher.

    BEFORE_BIN=/path/to/old/target/release AFTER_BIN=target/release \\
        python3 tests/bench/revocation_cost.py [--rounds 2] [--duration 8]

Each directory holds closedloop-local, region-worker, gateway and loadgen, built with
cargo build --release --bins -p region-worker -p gateway -p deploy -p closedloop-tests
(for example in a `git worktree` of the commit before). The failed-authentication limit
is off, so that the repeated unknown bearers reach the token check.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def measure(label, duration, connections):
    stack = bench.Stack(fresh=True, env={"CLOSEDLOOP_AUTH_RATE_PER_SECOND": "0"})
    try:
        us = stack.us
        ws = us["demo_workspace"]
        team, admin = ws["team_id"], ws["admin_user_id"]
        pg = us["postgres_url"]
        epoch = bench.sh(["psql", pg, "-qtAc",
                          f"SELECT token_epoch FROM users WHERE team_id = '{team}' AND id = '{admin}'"]).strip()
        api, h = bench.new_token("us", "api")
        bench.sh(["psql", pg, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                  "INSERT INTO tokens (hash, team_id, kind, user_id, user_epoch, name, created_by, expires_at, id) "
                  f"VALUES ('\\x{h}', '{team}', 'api', '{admin}', {epoch}, 'bench', 'bench', "
                  "now() + interval '30 days', gen_random_uuid())"])
        env = dict(os.environ, **us["env"])
        scim = json.loads(bench.sh([str(bench.BIN / "region-worker"), "token", "issue", "--config",
                                    stack.info["config"], "--region", "us", "--team", team,
                                    "--kind", "scim"], env=env))["token"]
        fake_scim, _ = bench.new_token("us", "scim")
        fake_api, _ = bench.new_token("us", "api")
        gw = f"http://127.0.0.1:{bench.GATEWAY_PORT}"
        spc = f"{gw}/api/scim/v2/{team}/ServiceProviderConfig"
        for name, url, token in (("GET /api/me (API token)", f"{gw}/api/me", api),
                                 ("SCIM GET /ServiceProviderConfig (operator token)", spc, scim),
                                 ("one unknown API bearer, repeated (GET /api/me)", f"{gw}/api/me", fake_api),
                                 ("one unknown SCIM bearer, repeated", spc, fake_scim)):
            r = bench.loadgen(url, bench.US_API, connections, duration,
                              headers=[f"Authorization: Bearer {token}"])
            print(bench.row(f"{name}, {label}", r), flush=True)
    finally:
        stack.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=int, default=8)
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args()
    builds = (("before", Path(os.environ["BEFORE_BIN"])), ("after", Path(os.environ["AFTER_BIN"])))
    print("| check | req/s | p50 ms | p99 ms | p99.9 ms | max ms | non-2xx or errors |")
    print("|---|---|---|---|---|---|---|")
    for rnd in range(1, args.rounds + 1):
        for label, binary in builds:
            bench.BIN = binary
            bench.WORK = bench.WORK.parent / f"bench-revocation-{label}"
            measure(f"{label}, round {rnd}", args.duration, args.connections)


if __name__ == "__main__":
    main()
