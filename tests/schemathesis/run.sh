#!/usr/bin/env bash
# schemathesis (PyPI) against a real stack (issue 10, hostile input): a gateway and
# both regions' workers over the test Postgres and Redis, with real credentials for
# every security scheme of the worker's OpenAPI document (`/api/openapi.json`). It
# generates valid and invalid requests for every operation and fails on any 5xx and
# on any answer the document does not describe (status, content type, body schema).
#
# The stack and the credentials come from the e2e test
# `openapi::schemathesis_finds_no_server_error_and_no_answer_that_breaks_the_document`
# (tests/tests/e2e/openapi.rs), which runs schemathesis when CLOSEDLOOP_SCHEMATHESIS
# names its executable; this script installs schemathesis (pinned) in a virtualenv
# under target/ and runs that test. The stores are those of tests/run.sh
# (CLOSEDLOOP_TEST_PG, CLOSEDLOOP_TEST_REDIS; the harness defaults to localhost).
#
# CLOSEDLOOP_SCHEMATHESIS_MAX_EXAMPLES (default 40) and CLOSEDLOOP_SCHEMATHESIS_SEED
# (default 1) size and fix the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

version=4.32.5
venv="$root/target/schemathesis-venv"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$version"; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "installing python3-venv…"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi

export CLOSEDLOOP_SCHEMATHESIS="$venv/bin/schemathesis"
test=openapi::schemathesis_finds_no_server_error_and_no_answer_that_breaks_the_document
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo test -p closedloop-tests --test e2e -- --exact "$test" --nocapture 2>&1 | tee "$out"
# The filter must have run the test, not matched nothing.
grep -q "^test result: ok\. 1 passed" "$out" || {
  echo "schemathesis: the test did not run and pass" >&2
  exit 1
}
