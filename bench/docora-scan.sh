#!/usr/bin/env bash
# Scan benchmark of docora-watcher: a release build of the service as a process of its own,
# against a private PostgreSQL cluster (started like the local stack's, under
# target/bench-docora, stopped at the end) and the test kit's git server, fake GitHub and webhook
# receiver, all on loopback.
#
#   bench/docora-scan.sh                   # a repository of 10,000 files
#   BENCH_FILES=2000 bench/docora-scan.sh
#   DELIVERY_WORKERS=8 WORKER_POLL_MILLIS=100 bench/docora-scan.sh   # service settings pass through
#   BENCH_LOG=/tmp/docora.log RUST_LOG=info bench/docora-scan.sh       # keep the service's log
#
# Scenarios (services/docora-watcher/examples/bench_scan.rs):
#   1. register the repository (7,994 text files, 1,998 small binaries, 8 binaries of 2 to 24 MiB)
#      and wait until the receiver has acknowledged all 10,000 create deliveries;
#   2. commit one changed file and announce it with GitHub's push webhook (POST /api/github/push):
#      time until the scan is recorded and until its delivery is acknowledged;
#   3. push again with no change: time until the rescan (one fetch, no walk) is recorded;
# then the service's peak memory (VmHWM) and CPU time, and for scenario 1 PostgreSQL's share: the
# transactions on the service's database (pg_stat_database) and the cluster's CPU time (/proc),
# each also per delivered event (about 22 s of waiting at its end: PostgreSQL reports an idle
# backend's counts within 10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

cargo build --release -q -p docora-watcher --bin docora-watcher --example bench_scan
DOCORA_WATCHER_BIN="$target/release/docora-watcher" BENCH_DATA_DIR="$target/bench-docora" \
  "$target/release/examples/bench_scan"
