#!/usr/bin/env bash
# Runs `npm start` the way a user does, waits for the page, grants an action
# through the printed instructions, then presses Ctrl-C and expects a clean stop.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
# Ports below Linux's ephemeral range (32768+), so no outgoing connection
# left by an earlier step can hold one of them.
export GATEWAY_PORT="${GATEWAY_PORT:-18080}"
export SCORE_PORT=25051 RANKING_PORT=25052 PUSH_PORT=25053
export SCORE_GRPC_PORT=25061 RANKING_GRPC_PORT=25062 PUSH_GRPC_PORT=25063
export SCORE_URL=http://127.0.0.1:25061 RANKING_URL=http://127.0.0.1:25062 PUSH_URL=http://127.0.0.1:25063
setsid npm start >"$log" 2>&1 &
pid=$!
cleanup() { kill -INT -- -"$pid" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 1 240); do
  grep -q "Scoreboard is running" "$log" && break
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "npm start exited early" >&2; exit 1; fi
  sleep 0.5
done
grep -q "Scoreboard is running" "$log" || { cat "$log"; echo "npm start did not become ready" >&2; exit 1; }

base="http://127.0.0.1:$GATEWAY_PORT"
curl -fsS "$base/" | grep -q "<title>Scoreboard" || { echo "demo page missing" >&2; exit 1; }
user="smoke-$(date +%s%N)"
token=$(npm run -s token -- "$user")
curl -fsS -X POST "$base/api/actions" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"actionId":"daily-login"}' | grep -q '"success":true' || { echo "grant failed" >&2; exit 1; }
for _ in $(seq 1 50); do
  curl -fsS "$base/api/leaderboard" | grep -q "\"$user\"" && break
  sleep 0.1
done
curl -fsS "$base/api/leaderboard" | grep -q "\"$user\"" || { echo "leaderboard did not show the grant" >&2; exit 1; }

trap - EXIT
kill -INT -- -"$pid"
status=0
wait "$pid" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then cat "$log"; echo "npm start exited with $status on Ctrl-C" >&2; exit 1; fi
if bash scripts/infra.sh status >/dev/null 2>&1; then echo "infrastructure still running after Ctrl-C" >&2; exit 1; fi
echo "npm start: ready, granted, stopped cleanly"
