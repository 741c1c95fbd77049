#!/usr/bin/env bash
# Load benchmark of dokko-api: a release build of the local stack (private PostgreSQL cluster and
# in-process S3 server), driven by wrk on loopback.
#
#   bench/dokko-load.sh            # 64 connections, 20 s per scenario
#   CONNECTIONS=128 DURATION=30s bench/dokko-load.sh
#
# Scenarios:
#   1. POST /api/v1/auth/service/login (argon2id verification of the client secret included),
#      with 1 connection (latency of one login) and with 8 (throughput on all cores);
#   2. GET /api/v1/repositories?document_source_id=…, authenticated with a service-account JWT,
#      on a tenant with 1,000 repositories: the first page (default size 10), page 50 of 10, and
#      page 5 of 100.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-20s}"
THREADS="${THREADS:-2}"
PORT=8082
B="http://127.0.0.1:$PORT/api/v1"

command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

cargo build --release -q -p stack --bin stack
work=$(mktemp -d)
data="target/bench-stack-dokko"
cleanup() {
  [ -n "${stack_pid:-}" ] && kill -INT "$stack_pid" 2>/dev/null && wait "$stack_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A data folder of its own, emptied each run so the tenant and its repositories are fresh.
rm -rf "$data"
export STACK_DATA_DIR="$data" STACK_POSTGRES_PORT=54349 STACK_S3_PORT=9019 RUST_LOG="${RUST_LOG:-warn}"
target/release/stack > "$work/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 600); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$work/stack.log"; exit 1; }

target/release/stack dokko-admin create-tenant --name bench --admin-email admin@bench.example > "$work/admin.out"
invitation=$(grep -o 'inv_[0-9a-f]*' "$work/admin.out" | head -1)
curl -fs -o /dev/null -X POST "$B/auth/invitations/accept" -H 'Content-Type: application/json' \
  -d "{\"token\": \"$invitation\", \"password\": \"bench-password\"}"
user_token=$(curl -fs -X POST "$B/auth/login" -H "X-Tenant: bench" -d "email=admin@bench.example" -d "password=bench-password" | json '["access_token"]')
account=$(curl -fs -X POST "$B/admin/service-accounts" -H "Authorization: Bearer $user_token" -H 'Content-Type: application/json' -d '{"name": "bench"}')
client_id=$(echo "$account" | json '["client_id"]')
client_secret=$(echo "$account" | json '["client_secret"]')
token=$(curl -fs -X POST "$B/auth/service/login" -H "X-Tenant: bench" -d "client_id=$client_id" -d "client_secret=$client_secret" | json '["access_token"]')
source_id=$(curl -fs "$B/document-sources" -H "Authorization: Bearer $token" | json '["items"][0]["id"]')

echo "creating 1,000 repositories"
seq -w 1000 | xargs -P 8 -I{} curl -fs -o /dev/null -X POST "$B/repositories" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d "{\"name\": \"repo-{}\", \"document_source_id\": \"$source_id\"}"
total=$(curl -fs "$B/repositories?document_source_id=$source_id" -H "Authorization: Bearer $token" | json '["total_records"]')
[ "$total" = 1000 ] || { echo "expected 1000 repositories, got $total"; exit 1; }
# What autovacuum does within a minute of a bulk load: statistics and the visibility map (so the
# count behind total_records is an index-only scan). Measure the steady state, not the first minute.
psql -q -h 127.0.0.1 -p "$STACK_POSTGRES_PORT" -U postgres platform -c 'VACUUM ANALYZE dokko.repositories'

cat > "$work/login.lua" <<LUA
wrk.method = "POST"
wrk.body = "client_id=$client_id&client_secret=$client_secret"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["X-Tenant"] = "bench"
LUA

echo "== POST /api/v1/auth/service/login, 1 connection, 10s"
wrk -t1 -c1 -d10s --latency -s "$work/login.lua" "$B/auth/service/login"
echo
echo "== POST /api/v1/auth/service/login, 8 connections, 10s"
wrk -t2 -c8 -d10s --latency -s "$work/login.lua" "$B/auth/service/login"
echo
echo "== GET /api/v1/repositories (1,000 repositories, first page), $CONNECTIONS connections, $THREADS wrk threads, $DURATION"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $token" \
  "$B/repositories?document_source_id=$source_id"
echo
echo "== GET /api/v1/repositories (1,000 repositories, page 50 of 10), $CONNECTIONS connections, $THREADS wrk threads, $DURATION"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $token" \
  "$B/repositories?document_source_id=$source_id&page_num=50&per_page=10"
echo
echo "== GET /api/v1/repositories (1,000 repositories, page 5 of 100), $CONNECTIONS connections, $THREADS wrk threads, $DURATION"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $token" \
  "$B/repositories?document_source_id=$source_id&page_num=5&per_page=100"
