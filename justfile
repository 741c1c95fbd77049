# Everyday tasks. Each is a thin wrapper over cargo or a script; CI runs `.ci/run`.

# Start the whole platform locally (PostgreSQL + every service).
run:
    cargo run -p stack

# The test suite (what the README and CI run).
test:
    cargo test --workspace

# A package's tests with every core kept busy by other processes (CI runs docora-watcher's).
test-under-load PACKAGE="docora-watcher":
    .ci/with-busy-cores cargo test -p {{PACKAGE}}

# Everything CI checks: format, clippy, tests, manifests.
ci:
    bash .ci/run

# Fuzz each service's OpenAPI document against a private running stack (schemathesis, pinned).
schemathesis:
    .ci/schemathesis.sh

fmt:
    cargo fmt --all

lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Load benchmark of giistr-tags (wrk, release build).
bench-giistr:
    bench/giistr-load.sh

# Load benchmark of dokko-api: service login and repository lists (wrk, release build).
bench-dokko:
    bench/dokko-load.sh

# Transfer benchmark of dokko-api's files against direct S3 (1,000 small files, 1 GiB).
bench-files:
    bench/dokko-files.sh

# Scan benchmark of docora-watcher: a 10,000-file repository registered, changed and rescanned.
bench-docora:
    bench/docora-scan.sh

# docora-watcher beside the original Docora (TypeScript) on one 10,000-file repository (BENCH_RUNS=3).
bench-docora-vs-original:
    bench/docora-vs-original.sh

# Retrieval quality on CISI through the public API: nDCG@10, MAP, Recall@100 of HYBRID (the default), KEYWORD and SEMANTIC against plain BM25.
bench-retrieval-quality *ARGS:
    python3 bench/dokko-retrieval.py quality {{ARGS}}

# dokko-ingest speed: ingest of 10,000 mixed files; retrieve latency at ~1,000,000 chunks.
bench-retrieval-speed *ARGS:
    python3 bench/dokko-retrieval.py speed {{ARGS}}

# Build every service's container image here (buildah, no daemon, bases from Debian packages),
# then run them with podman against local stand-ins: /readyz, non-root, read-only, one flow each, SIGTERM.
images:
    deploy/images.sh

# Validate the Kubernetes manifests offline.
manifests:
    deploy/validate.sh
