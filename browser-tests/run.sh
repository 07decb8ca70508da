#!/usr/bin/env bash
# Runs every browser-tests/*.test.mjs with node, one after another, against the real server.
#
#   LITEHOUSE_BIN=target/release/litehouse browser-tests/run.sh [FILTER]
#
# Each test starts its own `litehouse serve` from LITEHOUSE_BIN (default: the release binary)
# and drives Debian's /usr/bin/chromium (override with CHROMIUM) through playwright-core.
# Screenshots and other artefacts go to browser-tests/output/ (gitignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# A relative LITEHOUSE_BIN is taken from the caller's directory.
LITEHOUSE_BIN="$(realpath "${LITEHOUSE_BIN:-$here/../target/release/litehouse}")"
export LITEHOUSE_BIN
cd "$here"
[[ -x "$LITEHOUSE_BIN" ]] || { echo "no litehouse binary at $LITEHOUSE_BIN" >&2; exit 1; }
[[ -d node_modules/playwright-core ]] || npm ci --no-audit --no-fund
mkdir -p output
failed=0
for test in *.test.mjs; do
  [[ -n "${1:-}" && "$test" != *"$1"* ]] && continue
  echo "--- $test"
  if node --test-reporter=spec --test "$test"; then :; else failed=1; fi
done
exit "$failed"
