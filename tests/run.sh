#!/usr/bin/env bash
# Runs every test of the workspace. On a fresh Debian machine it installs PostgreSQL
# and Redis when they are missing and starts private instances for the tests; where a
# PostgreSQL (5432) and a Redis (6379) already answer on localhost, it uses those.
# Extra arguments go to `cargo test` (e.g. a test name filter).
# CLOSEDLOOP_TEST_PRIVATE_STORES=1 always starts private stores, as on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
# The Okta sign-in tests: headless Chromium driven over WebDriver, and an independent
# OpenID Provider (tests/oidc-provider, oidc-provider on Node.js).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# deploy/check.py reads the Kubernetes manifests with PyYAML.
python3 -c 'import yaml' >/dev/null 2>&1 || need+=(python3-yaml)
# The observability test: promtool checks deploy/observability/alerts.yml and a private
# Prometheus scrapes a real stack (Debian's package brings both).
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need+=(prometheus)
if ((${#need[@]})); then
  echo "installing ${need[*]}…"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Fast first: the deployment artefacts agree with regions.toml (no cluster needed).
python3 deploy/check.py

# The code is formatted and lint-clean (CI fails on either, as on a test failure).
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

stores="$root/target/test-stores"
cleanup=()
on_exit() { for c in "${cleanup[@]}"; do eval "$c" || true; done; }
trap on_exit EXIT

if [ -z "${CLOSEDLOOP_TEST_PG:-}" ]; then
  if [ -z "${CLOSEDLOOP_TEST_PRIVATE_STORES:-}" ] &&
    psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'select 1' >/dev/null 2>&1; then
    export CLOSEDLOOP_TEST_PG="postgres://postgres@127.0.0.1:5432/postgres"
  else
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    port=55499
    run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    mkdir -p "$stores/pg"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$stores/pg"
    if [ ! -f "$stores/pg/data/PG_VERSION" ]; then
      run_pg "$bin/initdb" -D "$stores/pg/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
      printf "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 400\n" >>"$stores/pg/data/postgresql.conf"
    fi
    run_pg "$bin/pg_ctl" start -D "$stores/pg/data" -l "$stores/pg/postgres.log" -w \
      -o "-p $port -k $stores/pg -c listen_addresses=127.0.0.1" >/dev/null
    cleanup+=("run_pg '$bin/pg_ctl' stop -D '$stores/pg/data' -m fast >/dev/null")
    export CLOSEDLOOP_TEST_PG="postgres://postgres@127.0.0.1:$port/postgres"
  fi
fi

if [ -z "${CLOSEDLOOP_TEST_REDIS:-}" ]; then
  if [ -z "${CLOSEDLOOP_TEST_PRIVATE_STORES:-}" ] && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    export CLOSEDLOOP_TEST_REDIS="redis://127.0.0.1:6379/"
  else
    port=56499
    mkdir -p "$stores/redis"
    redis-server --port $port --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
      --dir "$stores/redis" --pidfile "$stores/redis/redis.pid" --logfile "$stores/redis/redis.log"
    cleanup+=("redis-cli -p $port shutdown nosave >/dev/null")
    for _ in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
    export CLOSEDLOOP_TEST_REDIS="redis://127.0.0.1:$port/"
  fi
fi

# Databases left by earlier runs (one per test) are dropped; migrated templates stay.
psql "$CLOSEDLOOP_TEST_PG" -Atqc "select datname from pg_database where datname like 'clt\_%' and not datistemplate" |
  while read -r db; do psql "$CLOSEDLOOP_TEST_PG" -qc "drop database if exists \"$db\"" >/dev/null || true; done

# The OpenID Provider's packages, exactly as locked.
if [ ! -d tests/oidc-provider/node_modules/oidc-provider ]; then
  (cd tests/oidc-provider && npm ci --no-audit --no-fund --silent)
fi
# axe-core, the accessibility rules the browser test runs on every page, exactly as locked.
if [ ! -f tests/a11y/node_modules/axe-core/axe.min.js ]; then
  (cd tests/a11y && npm ci --no-audit --no-fund --silent)
fi
# The official MCP SDKs (Python in target/, TypeScript as locked), exactly as pinned.
tests/mcp-clients/install.sh
# Those tests fail rather than skip when their tools are missing.
export CLOSEDLOOP_REQUIRE_BROWSER=1 CLOSEDLOOP_REQUIRE_NODE=1 CLOSEDLOOP_REQUIRE_PROMETHEUS=1
export CLOSEDLOOP_REQUIRE_MCP_SDKS=1

echo "test stores: postgres ${CLOSEDLOOP_TEST_PG%%/postgres}, redis $CLOSEDLOOP_TEST_REDIS"
cargo build --workspace --bins
cargo test --workspace "$@"

# --- schemathesis (issue 10, hostile input): begin ---
# The worker's OpenAPI document against real answers, fuzzed (a few minutes on 2 cores).
tests/schemathesis/run.sh
# --- schemathesis: end ---

# Fuzzing, CI-sized (issue 10): every cargo-fuzz target for FUZZ_SECONDS (default 20)
# over its committed seeds; fails on any crash. Long runs: fuzz/README.md.
fuzz/ci.sh

# Soak, CI-sized (issue 18): five minutes of mixed traffic through the gateway on the debug
# build at a quarter of tests/bench/soak.py's rates; fails unless memory levels off, no
# answer is an error and p99 stays flat. On in CI (CI=true) or with CLOSEDLOOP_SOAK=1.
if [ "${CI:-}" = true ] || [ -n "${CLOSEDLOOP_SOAK:-}" ]; then
  CLOSEDLOOP_BENCH_BIN="$root/target/debug" python3 tests/bench/soak.py --minutes 5 --scale 0.25 \
    --p99-factor 3 --p99-slack-ms 20
fi
