#!/usr/bin/env bash
# Transfer benchmark of dokko-api's files: the same transfers through the API and directly
# against the S3 server, with the same client (curl; SigV4 for S3), on loopback.
#
#   bench/dokko-files.sh                 # 1,000 files of 10 KiB and one 1 GiB file
#   SMALL_FILES=200 BIG_MIB=256 bench/dokko-files.sh
#
# dokko-api runs as its own release process (so its peak memory, VmHWM, is its own), against the
# PostgreSQL cluster and the S3 server of a release stack. Reports seconds, MB/s and the ratio
# API / direct for: uploading the small files (100 per request through the API, one PUT each on
# one connection directly), downloading them (one request each), uploading the big file, and
# downloading it (streamed through the API with direct=true).
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL_FILES="${SMALL_FILES:-1000}"
SMALL_KIB="${SMALL_KIB:-10}"
BIG_MIB="${BIG_MIB:-1024}"
API_PORT=8092
S3_PORT=9029
B="http://127.0.0.1:$API_PORT/api/v1"
S3="http://127.0.0.1:$S3_PORT"
AK=stack-access-key
SK=stack-secret-key-for-local-use-only
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

cargo build --release -q -p stack -p dokko-api --bin stack --bin dokko-api
work=$(mktemp -d)
data="target/bench-stack-files"
cleanup() {
  [ -n "${api_pid:-}" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null || true
  [ -n "${stack_pid:-}" ] && kill -INT "$stack_pid" 2>/dev/null && wait "$stack_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rm -rf "$data"
export STACK_DATA_DIR="$data" STACK_POSTGRES_PORT=54359 STACK_S3_PORT=$S3_PORT RUST_LOG="${RUST_LOG:-warn}"
target/release/stack > "$work/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 600); do curl -fs "http://127.0.0.1:8082/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
target/release/stack dokko-admin create-tenant --name bench --admin-email admin@bench.example > "$work/admin.out"

DATABASE_URL="postgres://postgres@127.0.0.1:54359/platform" JWT_SECRET="local-stack-only-jwt-secret-never-use-in-production" \
  S3_ENDPOINT="$S3" S3_ACCESS_KEY_ID=$AK S3_SECRET_ACCESS_KEY=$SK LISTEN_ADDR="127.0.0.1:$API_PORT" \
  target/release/dokko-api > "$work/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 300); do curl -fs "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk -v k="$1:" '$1 == k { print int($2 / 1024) }' "/proc/$api_pid/status"; }
echo "dokko-api started: VmRSS $(rss VmRSS) MiB"

invitation=$(grep -o 'inv_[0-9a-f]*' "$work/admin.out" | head -1)
curl -fs -o /dev/null -X POST "$B/auth/invitations/accept" -H 'Content-Type: application/json' -d "{\"token\": \"$invitation\", \"password\": \"bench-password\"}"
token=$(curl -fs -X POST "$B/auth/login" -H "X-Tenant: bench" -d "email=admin@bench.example" -d "password=bench-password" | json '["access_token"]')
source=$(curl -fs "$B/document-sources" -H "Authorization: Bearer $token")
source_id=$(echo "$source" | json '["items"][0]["id"]')
bucket=$(echo "$source" | json '["items"][0]["identifier"]')
repo=$(curl -fs -X POST "$B/repositories" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d "{\"name\": \"bench\", \"document_source_id\": \"$source_id\"}" | json '["id"]')

mkdir -p "$work/small"
for i in $(seq -w "$SMALL_FILES"); do head -c $((SMALL_KIB * 1024)) /dev/urandom > "$work/small/f$i.txt"; done
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom > "$work/big.txt"
small_mb=$(python3 -c "print($SMALL_FILES * $SMALL_KIB * 1024 / 1e6)")
big_mb=$(python3 -c "print($BIG_MIB * 1024 * 1024 / 1e6)")
sigv4=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")

seconds() { python3 -c "import time; print(time.time())"; }
# CPU seconds (user + system) a process has used so far.
cpu() { python3 -c "import os; f=open('/proc/$1/stat').read().rsplit(')',1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf('SC_CLK_TCK'))"; }
cpu_line() { # label api_before api_after stack_before stack_after
  python3 -c "print(f'  CPU during $1: dokko-api {$3-$2:.2f} s, stack (S3 server, PostgreSQL client side) {$5-$4:.2f} s')"
}
report() { # name mb api_seconds direct_seconds
  python3 -c "n,mb,a,d='$1',$2,$3,$4; print(f'{n:<28} API {a:7.2f} s {mb/a:8.1f} MB/s | direct {d:7.2f} s {mb/d:8.1f} MB/s | API/direct time {a/d:5.2f}')"
}

# Small files up: 100 per multipart request through the API; one PUT each directly.
: > "$work/api-up.cfg"
files=("$work"/small/*.txt)
for ((i = 0; i < ${#files[@]}; i += 100)); do
  [ "$i" -gt 0 ] && echo "next" >> "$work/api-up.cfg"
  printf 'url = "%s/repositories/%s/items"\nheader = "Authorization: Bearer %s"\nsilent\nfail\noutput = "/dev/null"\n' "$B" "$repo" "$token" >> "$work/api-up.cfg"
  for f in "${files[@]:i:100}"; do printf 'form = "files=@%s;filename=small/%s"\n' "$f" "$(basename "$f")" >> "$work/api-up.cfg"; done
done
: > "$work/s3-up.cfg"
for f in "${files[@]}"; do printf 'url = "%s/%s/direct/small/%s"\nupload-file = "%s"\noutput = "/dev/null"\n' "$S3" "$bucket" "$(basename "$f")" "$f" >> "$work/s3-up.cfg"; done
t0=$(seconds); curl -K "$work/api-up.cfg"; t1=$(seconds)
curl -fsS "${sigv4[@]}" -K "$work/s3-up.cfg"; t2=$(seconds)
count=$(curl -fs "$B/repositories/$repo/items" -H "Authorization: Bearer $token" | json '["folders"]["small"]["files"].__len__()')
[ "$count" = "$SMALL_FILES" ] || { echo "expected $SMALL_FILES files, got $count"; exit 1; }
report "upload $SMALL_FILES x ${SMALL_KIB} KiB" "$small_mb" "$(python3 -c "print($t1-$t0)")" "$(python3 -c "print($t2-$t1)")"

# Small files down: one request each, on one connection.
: > "$work/api-down.cfg"; : > "$work/s3-down.cfg"
for f in "${files[@]}"; do
  name=$(basename "$f")
  [ -s "$work/api-down.cfg" ] && echo "next" >> "$work/api-down.cfg"
  printf 'url = "%s/repositories/%s/items/content"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "{\\"path\\": \\"small/%s\\", \\"direct\\": true}"\noutput = "/dev/null"\n' "$B" "$repo" "$token" "$name" >> "$work/api-down.cfg"
  printf 'url = "%s/%s/direct/small/%s"\noutput = "/dev/null"\n' "$S3" "$bucket" "$name" >> "$work/s3-down.cfg"
done
t0=$(seconds); curl -fsS -K "$work/api-down.cfg"; t1=$(seconds)
curl -fsS "${sigv4[@]}" -K "$work/s3-down.cfg"; t2=$(seconds)
report "download $SMALL_FILES x ${SMALL_KIB} KiB" "$small_mb" "$(python3 -c "print($t1-$t0)")" "$(python3 -c "print($t2-$t1)")"

# The big file, up and down.
a0=$(cpu $api_pid); s0=$(cpu $stack_pid); t0=$(seconds)
curl -fsS -o /dev/null "$B/repositories/$repo/items" -H "Authorization: Bearer $token" -F "files=@$work/big.txt;filename=big.txt"
t1=$(seconds); a1=$(cpu $api_pid); s1=$(cpu $stack_pid)
curl -fsS -o /dev/null "${sigv4[@]}" -T "$work/big.txt" "$S3/$bucket/direct/big.txt"
t2=$(seconds); s2=$(cpu $stack_pid)
report "upload ${BIG_MIB} MiB" "$big_mb" "$(python3 -c "print($t1-$t0)")" "$(python3 -c "print($t2-$t1)")"
cpu_line "the API upload" "$a0" "$a1" "$s0" "$s1"
cpu_line "the direct upload" 0 0 "$s1" "$s2"
t0=$(seconds)
curl -fsS -o "$work/big.down" "$B/repositories/$repo/items/content" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"path": "big.txt", "direct": true}'
t1=$(seconds)
curl -fsS -o /dev/null "${sigv4[@]}" "$S3/$bucket/direct/big.txt"
t2=$(seconds)
cmp -s "$work/big.txt" "$work/big.down" || { echo "the big file came back different"; exit 1; }
report "download ${BIG_MIB} MiB" "$big_mb" "$(python3 -c "print($t1-$t0)")" "$(python3 -c "print($t2-$t1)")"
echo "dokko-api peak memory (VmHWM): $(rss VmHWM) MiB; now (VmRSS): $(rss VmRSS) MiB"
