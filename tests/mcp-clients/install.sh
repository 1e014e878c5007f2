#!/usr/bin/env bash
# The official MCP SDKs the e2e tests run against a real stack (issue 17,
# tests/tests/e2e/mcp.rs `the_official_*_sdk_*`), exactly as pinned: the Python SDK
# (`mcp` on PyPI) in a virtualenv under target/, the TypeScript SDK
# (`@modelcontextprotocol/sdk` on npm) from package-lock.json. Idempotent; tests/run.sh
# calls it. Without them those tests skip, unless CLOSEDLOOP_REQUIRE_MCP_SDKS is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

python_version=2.3.0
venv="$root/target/mcp-python-venv"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$python_version')" 2>/dev/null; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "installing python3-venv…"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "mcp==$python_version"
fi

if [ ! -f tests/mcp-clients/node_modules/@modelcontextprotocol/sdk/package.json ]; then
  (cd tests/mcp-clients && npm ci --no-audit --no-fund --silent)
fi
