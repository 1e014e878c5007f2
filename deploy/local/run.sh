#!/usr/bin/env bash
# Builds and runs the whole system locally: a private Postgres and Redis per region
# (data in .local/, reused on the next run), one worker per region and the gateway on
# http://127.0.0.1:8080. Installs PostgreSQL and Redis with apt when they are missing.
# Ctrl-C stops everything. Extra arguments go to closedloop-local (see --help).
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need+=(postgresql)
if ((${#need[@]})); then
  echo "installing ${need[*]}…"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --bins -p region-worker -p gateway -p deploy -p closedloop-tests
exec target/release/closedloop-local "$@"
