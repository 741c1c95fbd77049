#!/usr/bin/env bash
# Fuzzes each service's OpenAPI document against the running stack with schemathesis (pinned,
# from the Python registry): no server errors, and answers that conform to the document (status
# codes, content types, schemas). Bounded: SCHEMATHESIS_MAX_EXAMPLES per operation (default 25)
# and SCHEMATHESIS_MAX_TIME seconds per service (default 60).
#
# The stack runs on a loopback address of its own (STACK_BIND_HOST, default 127.0.0.57) with its
# own data folder, PostgreSQL and S3 ports, so it does not meet a developer's stack; the fake
# GitHub of the test kit stands in for GitHub. Credentials: a dokko organisation's admin token
# (create-tenant, accept, login), a docora app token (onboard-app) and the dashboard admin's
# session, a fake-GitHub token for giistr, and a service token for dokko-ingest.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-60}"
HOST="${STACK_BIND_HOST:-127.0.0.57}"
WORK="$(mktemp -d)"
VENV="target/schemathesis-venv"
INTERNAL_SECRET="schemathesis-internal-token-secret-0123456789abcdef"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$VENV/bin/st" ] && "$VENV/bin/pip" show schemathesis 2>/dev/null | grep -q "^Version: $SCHEMATHESIS_VERSION$" || {
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"; }

cargo build --quiet --locked -p stack -p testkit --bin stack --bin fake-github

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export STACK_BIND_HOST="$HOST" STACK_DATA_DIR="$WORK/stack" STACK_POSTGRES_PORT="$(free_port)" \
  STACK_S3_PORT="$(free_port)" EMBEDDINGS=none INTERNAL_TOKEN_SECRET="$INTERNAL_SECRET" \
  INGEST_URL="http://$HOST:8083" DOKKO_API_URL="http://$HOST:8082" PUBLIC_URL="http://$HOST:8082" \
  GITHUB_WEBHOOK_SECRET="schemathesis-push-secret" RUST_LOG="${RUST_LOG:-warn}"

target/debug/fake-github 1 > "$WORK/github.out" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do grep -q '^TOKEN=' "$WORK/github.out" && break; sleep 0.1; done
GITHUB_API_URL="$(sed -n 's/^GITHUB_API_URL=//p' "$WORK/github.out")"
GITHUB_TOKEN="$(sed -n 's/^TOKEN=//p' "$WORK/github.out" | head -1)"
export GITHUB_API_URL
[ -n "$GITHUB_TOKEN" ] || { cat "$WORK/github.out" >&2; echo "fake GitHub did not start" >&2; exit 1; }

target/debug/stack > "$WORK/stack.out" 2>&1 & PIDS+=($!)
for _ in $(seq 600); do grep -q '^ready' "$WORK/stack.out" && break; sleep 0.2; done
grep -q '^ready' "$WORK/stack.out" || { cat "$WORK/stack.out" >&2; echo "the stack did not start" >&2; exit 1; }

# dokko: an organisation, its admin's invitation accepted, a token.
target/debug/stack dokko-admin create-tenant --name fuzz --admin-email admin@fuzz.example > "$WORK/tenant.out"
INVITATION="$(sed -n 's/.*"token": "\([^"]*\)".*/\1/p' "$WORK/tenant.out")"
PASSWORD="schemathesis password"
curl -fsS -X POST "http://$HOST:8082/api/v1/auth/invitations/accept" -H 'Content-Type: application/json' \
  -d "{\"token\": \"$INVITATION\", \"password\": \"$PASSWORD\"}" > /dev/null
DOKKO_TOKEN="$(curl -fsS -X POST "http://$HOST:8082/api/v1/auth/login" -H 'X-Tenant: fuzz' \
  --data-urlencode email=admin@fuzz.example --data-urlencode "password=$PASSWORD" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

# docora: an app's token (repository API) and the dashboard admin's session (admin API).
target/debug/stack docora-admin onboard-app --name Fuzz --base-url "http://$HOST:9/hooks" \
  --email dev@fuzz.example --client-auth-key fuzz-client-auth-key-0123 > "$WORK/app.out"
DOCORA_TOKEN="$(grep -o 'docora_[0-9a-f]\{64\}' "$WORK/app.out" | head -1)"
curl -fsS -c "$WORK/cookies" -X POST "http://$HOST:8081/admin/api/login" -H 'Content-Type: application/json' \
  -d '{"username": "admin", "password": "local-admin-password"}' > "$WORK/login.json"
CSRF="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["csrf_token"])' "$WORK/login.json")"
SESSION="$(awk '$6 == "docora_admin" {print $7}' "$WORK/cookies")"

# dokko-ingest: a service token as dokko-api signs it (HS256, audience dokko:internal).
INGEST_TOKEN="$(python3 - "$INTERNAL_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "dokko-api", "aud": "dokko:internal", "iat": now, "exp": now + 3600}).encode())
sig = b64(hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
)"

status=0
fuzz() {
  local name="$1" port="$2"; shift 2
  printf '\n== schemathesis: %s\n' "$name"
  "$VENV/bin/st" run "http://$HOST:$port/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --seed 17 --workers 2 \
    --generation-allow-x00 true --generation-database none --no-color --report junit --report-junit-path "target/schemathesis/$name.xml" \
    "$@" || status=1
}
mkdir -p target/schemathesis
fuzz giistr-tags 8084 -H "X-Github-Token: $GITHUB_TOKEN"
fuzz dokko-api 8082 -H "Authorization: Bearer $DOKKO_TOKEN" -H "X-Tenant: fuzz"
fuzz dokko-ingest 8083 -H "Authorization: Bearer $INGEST_TOKEN"
# Logging out would end the session the admin API is fuzzed with.
fuzz docora-watcher 8081 --exclude-path /admin/api/logout -H "Authorization: Bearer $DOCORA_TOKEN" -H "Cookie: docora_admin=$SESSION" -H "X-CSRF-Token: $CSRF"
exit "$status"
