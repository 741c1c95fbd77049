#!/usr/bin/env bash
# Transfer benchmark of dokko-api's files: the same transfers through the API and directly
# against the S3 server, with the same client (curl; SigV4 for S3), on loopback.
#
#   bench/dokko-files.sh                 # 1,000 files of 10 KiB and one 1 GiB file
#   SMALL_FILES=200 BIG_MIB=256 bench/dokko-files.sh
#   CONC_FILES=0 bench/dokko-files.sh    # without the 8-client rows
#   CONC_ROUNDS=3 bench/dokko-files.sh   # the 8-client rows alternated three times (default 2)
#
# dokko-api runs as its own release process (so its peak memory, VmHWM, is its own), against the
# PostgreSQL cluster and the S3 server of a release stack. Reports seconds, MB/s and the ratio
# API / direct for: uploading the small files (100 per request through the API, one PUT each on
# one connection directly), downloading them (one request each), uploading the big file (directly:
# one PUT, and a multipart upload in 8 MiB parts as the API must do for a body of unknown length),
# and downloading it (streamed through the API with direct=true). Then 8 clients at once, each
# uploading CONC_FILES small files (requests of 50) and one CONC_MIB file, into one repository,
# into eight repositories, and directly (one PUT per object).
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL_FILES="${SMALL_FILES:-1000}"
SMALL_KIB="${SMALL_KIB:-10}"
BIG_MIB="${BIG_MIB:-1024}"
CONC_FILES="${CONC_FILES:-250}"
CONC_MIB="${CONC_MIB:-64}"
CONC_ROUNDS="${CONC_ROUNDS:-2}"
PART_MIB=8
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
  rm -rf "$work" "$data"
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

# multipart_put key parts-dir tag: a direct multipart upload of the split parts in parts-dir, in
# order on one connection, then completed.
multipart_put() {
  local upload_id n=0 part
  upload_id=$(curl -fsS "${sigv4[@]}" -X POST "$S3/$bucket/$1?uploads=" | python3 -c "import sys,re; print(re.search(r'<UploadId>([^<]+)</UploadId>', sys.stdin.read()).group(1))")
  : > "$work/parts-$3.cfg"
  for part in "$2"/p*; do
    n=$((n + 1))
    printf 'url = "%s/%s/%s?partNumber=%d&uploadId=%s"\nupload-file = "%s"\noutput = "/dev/null"\nwrite-out = "%%header{etag}\\n"\n' "$S3" "$bucket" "$1" "$n" "$upload_id" "$part" >> "$work/parts-$3.cfg"
  done
  curl -fsS "${sigv4[@]}" -K "$work/parts-$3.cfg" > "$work/etags-$3"
  python3 -c "
etags=[l.strip() for l in open('$work/etags-$3') if l.strip()]
print('<CompleteMultipartUpload>' + ''.join(f'<Part><PartNumber>{i+1}</PartNumber><ETag>{e}</ETag></Part>' for i,e in enumerate(etags)) + '</CompleteMultipartUpload>')" > "$work/complete-$3.xml"
  curl -fsS -o /dev/null "${sigv4[@]}" -X POST --data-binary "@$work/complete-$3.xml" "$S3/$bucket/$1?uploadId=$upload_id"
}

# The small-file rows alternate in rounds of 100 files (API, direct, API, direct…) and add up
# each side's time, so a change in the machine's load falls on both.
files=("$work"/small/*.txt)
rounds=$(( (${#files[@]} + 99) / 100 ))
timed() { local t0; t0=$(seconds); "$@"; python3 -c "print($(seconds) - $t0)"; }
add() { python3 -c "print($1 + $2)"; }

# Small files up: 100 per multipart request through the API; one PUT each directly.
for ((r = 0; r < rounds; r++)); do
  : > "$work/api-up-$r.cfg"; : > "$work/s3-up-$r.cfg"
  printf 'url = "%s/repositories/%s/items"\nheader = "Authorization: Bearer %s"\nsilent\nfail\noutput = "/dev/null"\n' "$B" "$repo" "$token" >> "$work/api-up-$r.cfg"
  for f in "${files[@]:r*100:100}"; do
    printf 'form = "files=@%s;filename=small/%s"\n' "$f" "$(basename "$f")" >> "$work/api-up-$r.cfg"
    printf 'url = "%s/%s/direct/small/%s"\nupload-file = "%s"\noutput = "/dev/null"\n' "$S3" "$bucket" "$(basename "$f")" "$f" >> "$work/s3-up-$r.cfg"
  done
done
api_t=0; s3_t=0
for ((r = 0; r < rounds; r++)); do
  api_t=$(add "$api_t" "$(timed curl -K "$work/api-up-$r.cfg")")
  s3_t=$(add "$s3_t" "$(timed curl -fsS "${sigv4[@]}" -K "$work/s3-up-$r.cfg")")
done
count=$(curl -fs "$B/repositories/$repo/items" -H "Authorization: Bearer $token" | json '["folders"]["small"]["files"].__len__()')
[ "$count" = "$SMALL_FILES" ] || { echo "expected $SMALL_FILES files, got $count"; exit 1; }
report "upload $SMALL_FILES x ${SMALL_KIB} KiB" "$small_mb" "$api_t" "$s3_t"

# Small files down: one request each, on one connection. Beside the download itself
# (`direct: true`), the same requests answering a presigned URL (`direct: false`: the API's
# own work without the S3 GET) and `GET /healthz` (the HTTP hop alone), to place the cost.
for ((r = 0; r < rounds; r++)); do
  for kind in down url s3 hop; do : > "$work/$kind-$r.cfg"; done
  for f in "${files[@]:r*100:100}"; do
    name=$(basename "$f")
    for kind in down url; do
      direct=$([ "$kind" = down ] && echo true || echo false)
      [ -s "$work/$kind-$r.cfg" ] && echo "next" >> "$work/$kind-$r.cfg"
      printf 'url = "%s/repositories/%s/items/content"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "{\\"path\\": \\"small/%s\\", \\"direct\\": %s}"\noutput = "/dev/null"\n' "$B" "$repo" "$token" "$name" "$direct" >> "$work/$kind-$r.cfg"
    done
    printf 'url = "%s/%s/direct/small/%s"\noutput = "/dev/null"\n' "$S3" "$bucket" "$name" >> "$work/s3-$r.cfg"
    printf 'url = "http://127.0.0.1:%s/healthz"\noutput = "/dev/null"\n' "$API_PORT" >> "$work/hop-$r.cfg"
  done
done
down_t=0; url_t=0; s3_t=0; hop_t=0
for ((r = 0; r < rounds; r++)); do
  down_t=$(add "$down_t" "$(timed curl -fsS -K "$work/down-$r.cfg")")
  s3_t=$(add "$s3_t" "$(timed curl -fsS "${sigv4[@]}" -K "$work/s3-$r.cfg")")
  url_t=$(add "$url_t" "$(timed curl -fsS -K "$work/url-$r.cfg")")
  hop_t=$(add "$hop_t" "$(timed curl -fsS -K "$work/hop-$r.cfg")")
done
report "download $SMALL_FILES x ${SMALL_KIB} KiB" "$small_mb" "$down_t" "$s3_t"
python3 -c "n=$SMALL_FILES; print(f'  per file: API {$down_t/n*1e3:.3f} ms, direct {$s3_t/n*1e3:.3f} ms; presigned URL instead (no S3 GET) {$url_t/n*1e3:.3f} ms; GET /healthz {$hop_t/n*1e3:.3f} ms')"

# The big file, up and down.
a0=$(cpu $api_pid); s0=$(cpu $stack_pid); t0=$(seconds)
curl -fsS -o /dev/null "$B/repositories/$repo/items" -H "Authorization: Bearer $token" -F "files=@$work/big.txt;filename=big.txt"
t1=$(seconds); a1=$(cpu $api_pid); s1=$(cpu $stack_pid)
curl -fsS -o /dev/null "${sigv4[@]}" -T "$work/big.txt" "$S3/$bucket/direct/big.txt"
t2=$(seconds); s2=$(cpu $stack_pid)
# Directly in parts, as the API must when it cannot know the length first: the same part size,
# split beforehand (not timed), sent in order on one connection, then completed.
mkdir -p "$work/parts"; split -b "${PART_MIB}M" -d -a 5 "$work/big.txt" "$work/parts/p"
s3=$(cpu $stack_pid); t3=$(seconds)
multipart_put direct/big-parts.txt "$work/parts" big
t4=$(seconds); s4=$(cpu $stack_pid)
rm -rf "$work/parts"
report "upload ${BIG_MIB} MiB" "$big_mb" "$(python3 -c "print($t1-$t0)")" "$(python3 -c "print($t2-$t1)")"
report "  direct in ${PART_MIB} MiB parts" "$big_mb" "$(python3 -c "print($t1-$t0)")" "$(python3 -c "print($t4-$t3)")"
cpu_line "the API upload" "$a0" "$a1" "$s0" "$s1"
cpu_line "the direct upload" 0 0 "$s1" "$s2"
cpu_line "the direct upload in parts" 0 0 "$s3" "$s4"
t0=$(seconds)
curl -fsS -o "$work/big.down" "$B/repositories/$repo/items/content" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"path": "big.txt", "direct": true}'
t1=$(seconds)
curl -fsS -o "$work/big.direct" "${sigv4[@]}" "$S3/$bucket/direct/big.txt"
t2=$(seconds)
# Both downloads write the file to disk, so both pay the same; then it is compared.
cmp -s "$work/big.txt" "$work/big.down" || { echo "the big file came back different"; exit 1; }
rm -f "$work/big.direct"
report "download ${BIG_MIB} MiB" "$big_mb" "$(python3 -c "print($t1-$t0)")" "$(python3 -c "print($t2-$t1)")"
echo "dokko-api peak memory (VmHWM): $(rss VmHWM) MiB; now (VmRSS): $(rss VmRSS) MiB"

# 8 clients at once: CONC_FILES small files each (requests of 50) and one CONC_MIB file each.
if [ "$CONC_FILES" -gt 0 ]; then
  rm -f "$work/big.txt" "$work/big.down"
  for key in direct/big.txt direct/big-parts.txt; do curl -fsS -o /dev/null "${sigv4[@]}" -X DELETE "$S3/$bucket/$key"; done
  head -c $((CONC_MIB * 1024 * 1024)) /dev/urandom > "$work/mid.txt"
  for c in $(seq 8); do
    repos[$c]=$(curl -fs -X POST "$B/repositories" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d "{\"name\": \"bench-$c\", \"document_source_id\": \"$source_id\"}" | json '["id"]')
  done
  conc_files=("${files[@]:0:CONC_FILES}")
  # api_cfg client repository folder: one client's requests (its files under folder/).
  api_cfg() {
    : > "$work/conc-$1.cfg"
    for ((i = 0; i < ${#conc_files[@]}; i += 50)); do
      [ -s "$work/conc-$1.cfg" ] && echo "next" >> "$work/conc-$1.cfg"
      printf 'url = "%s/repositories/%s/items"\nheader = "Authorization: Bearer %s"\nsilent\nfail\noutput = "/dev/null"\n' "$B" "$2" "$token" >> "$work/conc-$1.cfg"
      for f in "${conc_files[@]:i:50}"; do printf 'form = "files=@%s;filename=%s/%s"\n' "$f" "$3" "$(basename "$f")" >> "$work/conc-$1.cfg"; done
    done
    printf 'next\nurl = "%s/repositories/%s/items"\nheader = "Authorization: Bearer %s"\nsilent\nfail\noutput = "/dev/null"\nform = "files=@%s;filename=%s/mid.txt"\n' "$B" "$2" "$token" "$work/mid.txt" "$3" >> "$work/conc-$1.cfg"
  }
  mkdir -p "$work/mid-parts"; split -b "${PART_MIB}M" -d -a 5 "$work/mid.txt" "$work/mid-parts/p"
  s3_cfg() { # client folder [parts]: with "parts", the CONC_MIB file goes as a multipart upload
    : > "$work/conc-s3-$1.cfg"
    local all=("${conc_files[@]}")
    [ "${3:-}" = parts ] || all+=("$work/mid.txt")
    for f in "${all[@]}"; do printf 'url = "%s/%s/conc/%s/%s"\nupload-file = "%s"\noutput = "/dev/null"\n' "$S3" "$bucket" "$2" "$(basename "$f")" "$f" >> "$work/conc-s3-$1.cfg"; done
  }
  conc_mb=$(python3 -c "print(8 * (${#conc_files[@]} * $SMALL_KIB * 1024 + $CONC_MIB * 1024 * 1024) / 1e6)")
  run8() { # kind (one | eight | s3 | s3parts) round: each client's files go under r<round>c<client>/
    local pids=()
    for c in $(seq 8); do
      case $1 in
        one) api_cfg "$c" "$repo" "r$2c$c" ;;
        eight) api_cfg "$c" "${repos[$c]}" "r$2c$c" ;;
        s3) s3_cfg "$c" "r$2c$c" ;;
        s3parts) s3_cfg "$c" "r$2c$c" parts ;;
      esac
    done
    local t0; t0=$(seconds)
    for c in $(seq 8); do
      case $1 in
        s3) curl -fsS "${sigv4[@]}" -K "$work/conc-s3-$c.cfg" & ;;
        s3parts) (curl -fsS "${sigv4[@]}" -K "$work/conc-s3-$c.cfg" && multipart_put "conc/r$2c$c/mid.txt" "$work/mid-parts" "c$c") & ;;
        *) curl -K "$work/conc-$c.cfg" & ;;
      esac
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    python3 -c "print($(seconds) - $t0)"
  }
  # Alternated, CONC_ROUNDS times: API into one repository, direct, API into eight, direct with
  # parts; each kind's times added up.
  one=0; direct8=0; eight=0; parts8=0
  for ((round = 1; round <= CONC_ROUNDS; round++)); do
    one=$(add "$one" "$(run8 one "$round")"); direct8=$(add "$direct8" "$(run8 s3 "$round")")
    eight=$(add "$eight" "$(run8 eight "$round")"); parts8=$(add "$parts8" "$(run8 s3parts "$round")")
  done
  conc_mb=$(python3 -c "print($conc_mb * $CONC_ROUNDS)")
  label="8 clients x (${#conc_files[@]} x ${SMALL_KIB} KiB + ${CONC_MIB} MiB)"
  report "$label, 1 repository" "$conc_mb" "$one" "$direct8"
  report "$label, 8 repositories" "$conc_mb" "$eight" "$direct8"
  report "  against direct, ${CONC_MIB} MiB in ${PART_MIB} MiB parts, 1 repository" "$conc_mb" "$one" "$parts8"
  report "  against direct, ${CONC_MIB} MiB in ${PART_MIB} MiB parts, 8 repositories" "$conc_mb" "$eight" "$parts8"
  count=$(curl -fs "$B/repositories/$repo/items" -H "Authorization: Bearer $token" | json '["folders"]["r1c8"]["files"].__len__()')
  [ "$count" = "$(( ${#conc_files[@]} + 1 ))" ] || { echo "expected $(( ${#conc_files[@]} + 1 )) files in r1c8, got $count"; exit 1; }
  echo "dokko-api peak memory (VmHWM) after the 8 clients: $(rss VmHWM) MiB"
fi
