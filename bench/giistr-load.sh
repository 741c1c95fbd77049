#!/usr/bin/env bash
# Load benchmark of giistr-tags: a release build of the local stack against a warm private
# PostgreSQL cluster and the fake GitHub, driven by wrk on loopback.
#
#   bench/giistr-load.sh            # 64 connections, 20 s per scenario
#   CONNECTIONS=128 DURATION=30s bench/giistr-load.sh
#
# Scenarios: GET /api/v1/tags for a user with 50 tags, then POST /api/v1/tag (new names).
# Prints wrk's requests/s and latency percentiles for each.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-20s}"
THREADS="${THREADS:-2}"
PORT=8084

command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }

cargo build --release -q -p stack -p testkit --bin stack --bin fake-github
work=$(mktemp -d)
cleanup() {
  [ -n "${stack_pid:-}" ] && kill -INT "$stack_pid" 2>/dev/null && wait "$stack_pid" 2>/dev/null || true
  [ -n "${gh_pid:-}" ] && kill "$gh_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

target/release/fake-github 1 > "$work/github" &
gh_pid=$!
for _ in $(seq 50); do grep -q TOKEN "$work/github" 2>/dev/null && break; sleep 0.1; done
GITHUB_API_URL=$(sed -n 's/^GITHUB_API_URL=//p' "$work/github")
TOKEN=$(sed -n 's/^TOKEN=//p' "$work/github")

# A data folder of its own, emptied each run: the fake GitHub's user is the same every run, so a
# database kept from the last run would already hold its tags.
rm -rf target/bench-stack
STACK_DATA_DIR="target/bench-stack" STACK_POSTGRES_PORT=54339 GITHUB_API_URL="$GITHUB_API_URL" \
  RUST_LOG="${RUST_LOG:-warn}" target/release/stack > "$work/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 300); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$work/stack.log"; exit 1; }

# A fresh user with 50 tags (a new fake GitHub user each run).
for i in $(seq 50); do
  curl -fs -o /dev/null -X POST "http://127.0.0.1:$PORT/api/v1/tag" -H "X-Github-Token: $TOKEN" \
    -H 'Content-Type: application/json' -d "{\"name\":\"tag-$i\"}"
done
count=$(curl -fs "http://127.0.0.1:$PORT/api/v1/tags" -H "X-Github-Token: $TOKEN" | grep -o '"id"' | wc -l)
[ "$count" = 50 ] || { echo "expected 50 tags, got $count"; exit 1; }

cat > "$work/post.lua" <<LUA
local counter = 0
local thread_tag = tostring(math.random(1, 1e9))
function setup(thread) thread:set("seed", tostring(math.random(1, 1e9))) end
function init(args) math.randomseed(os.time() + tonumber(seed or 0)); thread_tag = tostring(math.random(1, 1e9)) end
request = function()
  counter = counter + 1
  local body = '{"name":"bench-' .. thread_tag .. '-' .. counter .. '"}'
  return wrk.format("POST", "/api/v1/tag", {["Content-Type"] = "application/json", ["X-Github-Token"] = "$TOKEN"}, body)
end
LUA

echo "== GET /api/v1/tags (50 tags), $CONNECTIONS connections, $THREADS wrk threads, $DURATION"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "X-Github-Token: $TOKEN" "http://127.0.0.1:$PORT/api/v1/tags"
echo
echo "== POST /api/v1/tag, $CONNECTIONS connections, $THREADS wrk threads, $DURATION"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/post.lua" "http://127.0.0.1:$PORT/api/v1/tag"
