#!/usr/bin/env bash
# Fuzz a running `litehouse serve` with schemathesis, driven by the server's own
# /api/openapi.json: every check, the stateful phase (OpenAPI links), bounded examples.
#
#   .ci/schemathesis.sh sqlite              # a fresh SQLite file in a temp directory
#   .ci/schemathesis.sh postgres            # a fresh schema in $LITEHOUSE_TEST_PG, dropped after
#
# Environment:
#   LITEHOUSE_BIN     the binary to serve (default target/release/litehouse)
#   ST                the schemathesis command (default: `st` on PATH)
#   ST_MAX_EXAMPLES   examples per operation and phase (default 40)
#   LITEHOUSE_TEST_PG PostgreSQL URL for the postgres run
#   ST_REPORT_DIR     where the JUnit report goes (default target/schemathesis)
#
# One worker: CPython 3.11 can fail "AST constructor recursion depth mismatch" when two
# threads parse at once (python/cpython#106905), which hypothesis does for strategy names.
#
# GET /api/realtime is left out: its answer is an endless text/event-stream, which a fuzzer
# can only time out on. Its own tests (crates/litehouse-server/tests/realtime.rs and
# browser-tests/realtime.test.mjs) cover its statuses and events.
# POST /api/sync/push and GET /api/sync/pull are left out too: a fuzzed push becomes real
# device state (producer epochs and sequences) that later fuzzed pushes then fail against by
# design (403 stale epoch, 409 gap); crates/litehouse-server/tests/sync.rs and the
# litehouse-sync tests cover their statuses and bodies.
#
# Exits non-zero when schemathesis finds any failure; the server is stopped (and the
# PostgreSQL schema dropped) whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

backend="${1:-sqlite}"
bin="${LITEHOUSE_BIN:-$root/target/release/litehouse}"
st="${ST:-st}"
max_examples="${ST_MAX_EXAMPLES:-40}"
report_dir="${ST_REPORT_DIR:-$root/target/schemathesis}"
[[ "$bin" = /* ]] || bin="$root/$bin"
[[ -x "$bin" ]] || { echo "no litehouse binary at $bin (cargo build --release -p litehouse-cli)" >&2; exit 1; }

work="$(mktemp -d)"
token="st-admin-$RANDOM$RANDOM"
server_pid=""
pg_schema=""

cleanup() {
  local status=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ -n "$pg_schema" ]]; then
    psql -q "$LITEHOUSE_TEST_PG" -c "SET client_min_messages = warning" \
      -c "DROP SCHEMA IF EXISTS \"$pg_schema\" CASCADE" >/dev/null || status=1
  fi
  if [[ $status -ne 0 && -f "$work/server.err" ]]; then
    echo "--- server stderr (last lines)" >&2
    tail -n 20 "$work/server.err" >&2
    # The server logs into its log database: show its warnings and errors.
    local logs="$work/litehouse-logs.db"
    [[ "$backend" == sqlite ]] && logs="$work/st-logs.db"
    echo "--- server log, warn and up (kept in $report_dir/$backend-logs.db)" >&2
    "$bin" logs --db "$logs" --level warn --limit 30 >&2 || true
    cp "$logs" "$report_dir/$backend-logs.db" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case "$backend" in
  sqlite) db="sqlite:$work/st.db" ;;
  postgres)
    : "${LITEHOUSE_TEST_PG:?set LITEHOUSE_TEST_PG to a PostgreSQL URL}"
    pg_schema="lh_st_$$_$RANDOM"
    separator='?'
    [[ "$LITEHOUSE_TEST_PG" == *\?* ]] && separator='&'
    db="$LITEHOUSE_TEST_PG${separator}schema=$pg_schema"
    ;;
  *) echo "usage: $0 sqlite|postgres" >&2; exit 2 ;;
esac

# Port 0: the server prints the address it got. The working directory is the temp directory,
# so a PostgreSQL server's log database and token files land there too.
(cd "$work" && exec "$bin" serve --db "$db" --bind 127.0.0.1:0 --admin-token "$token" \
  >"$work/server.out" 2>"$work/server.err") &
server_pid=$!

base=""
for _ in $(seq 300); do
  base="$(sed -n 's#^API: *\(http://[^ ]*\)/api/collections$#\1#p' "$work/server.out" 2>/dev/null || true)"
  [[ -n "$base" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "litehouse serve exited early" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$base" ]] || { echo "litehouse serve printed no address" >&2; exit 1; }
for _ in $(seq 100); do
  curl -fsS "$base/api/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/api/ready" >/dev/null
echo "schemathesis: $backend server at $base"

mkdir -p "$report_dir"
"$st" --config-file "$root/.ci/schemathesis.toml" run "$base/api/openapi.json" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$max_examples" \
  --workers 1 \
  --request-timeout 10 \
  --seed 1 \
  --exclude-operation-id realtime \
  --exclude-operation-id syncPush \
  --exclude-operation-id syncPull \
  --header "Authorization: Bearer $token" \
  --report junit --report-junit-path "$report_dir/$backend.xml" \
  --warnings off
