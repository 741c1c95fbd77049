#!/usr/bin/env python3
"""Retrieval benchmark of dokko-ingest, through dokko-api's public API, on a release build of the
local stack (private PostgreSQL cluster, in-process S3 server, every service in one process).

    python3 bench/dokko-retrieval.py quality   # CISI: nDCG@10, MAP, Recall@100 vs plain BM25
    python3 bench/dokko-retrieval.py speed     # ingest throughput; retrieve latency at ~1M chunks
    python3 bench/dokko-retrieval.py selftest  # the metric code and the file generators

quality: the CISI collection (`../shared/bench/cisi`, or CISI_DIR): each of the 1,460 documents
is uploaded as one file `docs/<id>.txt` (title, a blank line, the text; authors left out, like
the reference BM25), the source is processed, the background embedding is waited for (every chunk
has its vector), and each of the 76 judged queries (its `.W` text) is sent to
`POST /api/v1/document-sources/{id}/retrieve` with top_k=100: once with the defaults (search_type
HYBRID), once with KEYWORD and once with SEMANTIC (`--search-types` chooses), each a row. The ranked chunks become
a ranked list of documents (the first chunk of a file places it) scored against CISI.REL with
binary relevance: nDCG@10, MAP (average precision with the ranking cut at 100, over the number
of relevant documents) and Recall@100, averaged over the 76 queries; also MAP over the whole
ranking (the convention of the reference's 0.195), the ranking continued past 100 by asking again
with a `notIn` filter on the files already ranked. The service runs with its
default settings; `--extra CHUNK_SIZE=4000` (repeatable) adds rows with other settings, each on a
fresh stack. The embedded model comes from the tests' cache (`$CARGO_TARGET_DIR/models`, fetched
once). The script's own Okapi BM25 (rank_bm25's BM25Okapi formula, lower-case alphanumeric
tokens, a short stop list) runs on the same files as a reference row, and rank_bm25 itself too
when it is importable.

speed:
  1. ingest: a generated corpus of mixed files (default 10,000: txt, md, html, csv, json, and a
     few hundred docx and pdf written by this script; 1-50 KB, log-uniform), uploaded 100 per
     request (timed), then one processing job timed from the POST to COMPLETED; files/s, MB/s of
     source bytes, and the stack process's peak memory (VmHWM; PostgreSQL is separate processes
     and so are the extraction children; the S3 server and every service are in the stack).
  2. latency: a fresh stack with CHUNK_SIZE=200 CHUNK_OVERLAP=0 and enough plain text for
     `--chunks` (default 1,000,000) chunks; then `--queries` queries (default 500) of 2-6 words
     drawn from the corpus's word distribution, top_k=10, sequentially and from `--clients`
     concurrent clients (default 4), one run with top_k=100 and one with a metadata filter; then
     the harder cases: frequent words, long questions, words no chunk has.
  3. with `--filter-files N` (off by default): the cost of a metadata filter on a source of N
     one-chunk files, against no filter.

Options: see `--help`. Environment: CARGO_TARGET_DIR (where the release build goes), CISI_DIR,
RUST_LOG (default warn). The script builds the stack (`cargo build --release -p stack`) unless
`--no-build`, uses its own data folder (`$CARGO_TARGET_DIR/bench-stack-retrieval`, emptied each
run) and ports (PostgreSQL 54369, S3 9039; the services keep their fixed ports 8081-8084, which
must be free), and stops the stack and removes the data on exit. Python standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import io
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
CISI_DIR = Path(os.environ.get("CISI_DIR") or ROOT.parent / "shared" / "bench" / "cisi")
API_PORT = 8082
INGEST_PORT = 8083
SERVICE_PORTS = (8081, 8082, 8083, 8084)
PG_PORT = 54369
S3_PORT = 9039
TENANT = "bench"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Metrics (binary relevance)
# ---------------------------------------------------------------------------------------------


def ndcg_at(ranked, relevant, k=10):
    """nDCG@k: DCG = sum over the first k of rel / log2(rank + 1); ideal = all relevant first."""
    dcg = sum(1.0 / math.log2(i + 2) for i, doc in enumerate(ranked[:k]) if doc in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def average_precision(ranked, relevant, cutoff=100):
    """Precision at each relevant document in the first `cutoff`, summed, over all relevant."""
    hits, total = 0, 0.0
    for i, doc in enumerate(ranked if cutoff is None else ranked[:cutoff]):
        if doc in relevant:
            hits += 1
            total += hits / (i + 1)
    return total / len(relevant) if relevant else 0.0


def recall_at(ranked, relevant, k=100):
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def score_run(rankings, qrels, full=None):
    """Mean nDCG@10, MAP@100, Recall@100 (and MAP over the whole ranking, from `full` when
    given, else from `rankings`) over the judged queries (a query without a ranking scores 0),
    and the per-query figures."""
    full = full or rankings
    per_query = {}
    for qid, relevant in qrels.items():
        ranked = rankings.get(qid, [])
        per_query[qid] = (ndcg_at(ranked, relevant), average_precision(ranked, relevant), recall_at(ranked, relevant),
                          average_precision(full.get(qid, []), relevant, cutoff=None))
    n = len(qrels)
    means = tuple(sum(v[i] for v in per_query.values()) / n for i in range(4))
    return means, per_query


def dedupe(keys):
    """Ranked chunks' files to a ranked list of files: the first occurrence places a file."""
    seen, out = set(), []
    for key in keys:
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


# ---------------------------------------------------------------------------------------------
# CISI
# ---------------------------------------------------------------------------------------------

FIELD = re.compile(r"^\.([A-Z])(?:\s+(.*))?$")


def parse_records(path):
    """`.I <id>` records of fields (`.T`, `.A`, `.W`, …): {id: {field: text}}; a repeated field
    (several `.A`) is joined with newlines."""
    records, current, field = {}, None, None
    for line in Path(path).read_text(encoding="latin-1").splitlines():
        m = FIELD.match(line.rstrip())
        if m:
            tag, rest = m.group(1), (m.group(2) or "").strip()
            if tag == "I":
                current, field = records.setdefault(int(rest), {}), None
            else:
                field = current.setdefault(tag, [])
                if rest:
                    field.append(rest)
        elif field is not None:
            field.append(line)
    return {i: {k: "\n".join(v).strip() for k, v in r.items()} for i, r in records.items()}


def load_cisi(cisi_dir):
    docs = parse_records(cisi_dir / "CISI.ALL")
    queries = parse_records(cisi_dir / "CISI.QRY")
    qrels = {}
    for line in (cisi_dir / "CISI.REL").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            qrels.setdefault(int(parts[0]), set()).add(int(parts[1]))
    return docs, queries, qrels


def cisi_text(record, authors=False):
    """The file of one document: title, a blank line, the text (authors between when asked)."""
    title = " ".join(record.get("T", "").split())
    body = record.get("W", "")
    if authors and record.get("A"):
        return f"{title}\n\n{record['A']}\n\n{body}\n"
    return f"{title}\n\n{body}\n"


def normalise_query(text):
    """The query as one line (CISI's are wrapped at 70 columns)."""
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# Reference BM25: the formula of rank_bm25's BM25Okapi (k1 1.5, b 0.75, epsilon 0.25)
# ---------------------------------------------------------------------------------------------

STOP = set(
    "a an and are as at be but by for from has have in is it its of on or that the this to was were will with".split()
)


def bm25_tokens(text):
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in STOP]


class Bm25Okapi:
    def __init__(self, corpus, k1=1.5, b=0.75, epsilon=0.25):
        self.k1, self.b = k1, b
        self.doc_len = [len(d) for d in corpus]
        self.avgdl = sum(self.doc_len) / len(corpus)
        self.tf = []
        df = {}
        for doc in corpus:
            counts = {}
            for t in doc:
                counts[t] = counts.get(t, 0) + 1
            self.tf.append(counts)
            for t in counts:
                df[t] = df.get(t, 0) + 1
        n = len(corpus)
        self.idf, negative, total = {}, [], 0.0
        for t, freq in df.items():
            idf = math.log(n - freq + 0.5) - math.log(freq + 0.5)
            self.idf[t] = idf
            total += idf
            if idf < 0:
                negative.append(t)
        eps = epsilon * total / len(self.idf)
        for t in negative:
            self.idf[t] = eps

    def scores(self, query):
        out = [0.0] * len(self.tf)
        for q in query:
            idf = self.idf.get(q, 0.0)
            if not idf:
                continue
            for i, counts in enumerate(self.tf):
                f = counts.get(q)
                if f:
                    norm = self.k1 * (1 - self.b + self.b * self.doc_len[i] / self.avgdl)
                    out[i] += idf * f * (self.k1 + 1) / (f + norm)
        return out


def bm25_rankings(docs, queries, qrels, authors=False, use_rank_bm25=False):
    ids = sorted(docs)
    corpus = [bm25_tokens(cisi_text(docs[i], authors)) for i in ids]
    if use_rank_bm25:
        from rank_bm25 import BM25Okapi  # noqa: PLC0415 (optional cross-check)

        model = BM25Okapi(corpus)
        score = lambda q: list(model.get_scores(q))  # noqa: E731
    else:
        model = Bm25Okapi(corpus)
        score = model.scores
    rankings = {}
    for qid in qrels:
        s = score(bm25_tokens(normalise_query(queries[qid]["W"])))
        order = sorted(range(len(ids)), key=lambda i: (-s[i], ids[i]))
        rankings[qid] = [ids[i] for i in order]
    return rankings


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


class HttpError(Exception):
    def __init__(self, method, path, status, body):
        super().__init__(f"{method} {path}: {status} {body[:500]!r}")
        self.status = status


class Client:
    """One keep-alive connection to dokko-api."""

    def __init__(self, token=None, port=API_PORT):
        self.token, self.port, self.conn = token, port, None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def raw(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1800)
            try:
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, http.client.CannotSendRequest, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection before reading the request.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method, path, payload=None, form=None, headers=None, ok=(200, 201, 202)):
        h = dict(headers or {})
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            h["Content-Type"] = "application/json"
        elif form is not None:
            from urllib.parse import urlencode  # noqa: PLC0415

            body = urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        status, data = self.raw(method, path, body, h)
        if status not in ok:
            raise HttpError(method, path, status, data)
        return json.loads(data) if data else None

    def upload(self, repository_id, files):
        """One multipart request with `files` [(path, bytes)]; fails unless every file made it."""
        boundary = "----dokko-bench-" + uuid.uuid4().hex
        parts = []
        for path, content in files:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{path}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n".encode()
            )
            parts.append(content)
            parts.append(b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        body = b"".join(parts)
        status, data = self.raw(
            "POST",
            f"/api/v1/repositories/{repository_id}/items",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        if status != 200:
            raise HttpError("POST", "items", status, data)
        answer = json.loads(data)
        if answer.get("total_succeeded") != len(files):
            raise RuntimeError(f"upload: {answer.get('total_failed')} failed: {answer.get('failed', [])[:3]}")


def wait_http(port, path="/readyz", seconds=180, proc=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# ---------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------


def cpu_seconds(pid):
    """User + system CPU of a process and its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_status(pid, key):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Stack:
    def __init__(self, args):
        self.binary = TARGET / "release" / "stack"
        self.data = TARGET / "bench-stack-retrieval"
        self.log_path = TARGET / "bench-stack-retrieval.log"
        self.keep = args.keep_data
        self.proc = None
        self.token = None
        self.source_id = None

    def env(self, extra):
        env = dict(os.environ)
        env.update(
            STACK_DATA_DIR=str(self.data),
            STACK_POSTGRES_PORT=str(PG_PORT),
            STACK_S3_PORT=str(S3_PORT),
            RUST_LOG=os.environ.get("RUST_LOG", "warn"),
        )
        env.update(extra)
        return env

    def start(self, extra=None):
        extra = dict(extra or {})
        busy = [p for p in (*SERVICE_PORTS, PG_PORT, S3_PORT) if not port_free(p)]
        if busy:
            raise SystemExit(f"ports in use: {busy} (another stack running?); stop it first")
        if self.data.exists():
            self.stop_orphan_postgres()
            shutil.rmtree(self.data)
        self.extra = extra
        log(f"starting the stack ({' '.join(f'{k}={v}' for k, v in extra.items()) or 'default settings'})")
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(self.binary)], env=self.env(extra), stdout=self.logf, stderr=subprocess.STDOUT,
                                     cwd=ROOT, start_new_session=True)
        if not (wait_http(API_PORT, proc=self.proc) and wait_http(INGEST_PORT, proc=self.proc)):
            self.stop()
            raise SystemExit("the stack did not start:\n" + self.log_path.read_text()[-3000:])
        try:
            self.onboard()
        except BaseException:
            self.stop()
            raise

    def onboard(self):
        out = subprocess.run(
            [str(self.binary), "dokko-admin", "create-tenant", "--name", TENANT, "--admin-email", "admin@bench.example"],
            env=self.env(self.extra), capture_output=True, text=True, check=True, cwd=ROOT,
        ).stdout
        invitation = re.search(r"inv_[0-9a-f]+", out).group(0)
        anon = Client()
        anon.call("POST", "/api/v1/auth/invitations/accept", {"token": invitation, "password": "bench-password"})
        user = anon.call("POST", "/api/v1/auth/login", form={"email": "admin@bench.example", "password": "bench-password"},
                         headers={"X-Tenant": TENANT})["access_token"]
        account = Client(user).call("POST", "/api/v1/admin/service-accounts", {"name": "bench"})
        self.token = anon.call("POST", "/api/v1/auth/service/login",
                               form={"client_id": account["client_id"], "client_secret": account["client_secret"]},
                               headers={"X-Tenant": TENANT})["access_token"]
        self.source_id = self.client().call("GET", "/api/v1/document-sources")["items"][0]["id"]

    def client(self):
        return Client(self.token)

    def repository(self, name):
        return self.client().call("POST", "/api/v1/repositories",
                                  {"name": name, "document_source_id": self.source_id, "type": "semantic",
                                   "permission_ids": []})["id"]

    def process(self, poll=0.25):
        """Starts a job and waits for its end: (wall seconds, the final status)."""
        c = self.client()
        t0 = time.perf_counter()
        c.call("POST", f"/api/v1/document-sources/{self.source_id}/process")
        last = t0
        while True:
            status = c.call("GET", f"/api/v1/document-sources/{self.source_id}/process/status")
            if status["status"] != "RUNNING":
                return time.perf_counter() - t0, status
            if time.perf_counter() - last > 30:
                last = time.perf_counter()
                s = status["statistics"]
                log(f"  processing: {s['numberOfNewDocumentsIndexed']}/{s['numberOfDocumentsScanned']} indexed, "
                    f"{s['numberOfDocumentsFailed']} failed, {time.perf_counter() - t0:.0f} s")
            time.sleep(poll)

    def wait_embedded(self, poll=0.5):
        """Waits until every chunk has its vector (statistics.chunksToEmbed 0); the seconds it
        took, or None when the source reports no embedding (keyword-only)."""
        c = self.client()
        t0 = last = time.perf_counter()
        while True:
            stats = c.call("GET", f"/api/v1/document-sources/{self.source_id}/process/status")["statistics"]
            if "chunksToEmbed" not in stats:
                return None
            if stats["chunksToEmbed"] == 0:
                return time.perf_counter() - t0
            if time.perf_counter() - last > 30:
                last = time.perf_counter()
                log(f"  embedding: {stats['chunksEmbedded']} done, {stats['chunksToEmbed']} to go, "
                    f"{time.perf_counter() - t0:.0f} s")
            time.sleep(poll)

    def failed_files(self):
        answer = self.client().call("GET", f"/api/v1/document-sources/{self.source_id}/process/files?status=failed&per_page=20")
        return [(f["key"], f.get("reason")) for f in answer.get("items", [])]

    def pg_port(self):
        try:
            return int((self.data / "postgres" / "port").read_text().strip())
        except OSError:
            return PG_PORT

    def sql(self, query):
        return subprocess.run(["psql", "-qAt", "-h", "127.0.0.1", "-p", str(self.pg_port()), "-U", "postgres", "platform",
                               "-c", query], capture_output=True, text=True, check=True).stdout.strip()

    def postgres_pids(self):
        try:
            master = int((self.data / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        pids = [master]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                pass
        return pids

    def cpu(self):
        """CPU seconds so far: the stack process (with its reaped extraction children), PostgreSQL."""
        return cpu_seconds(self.proc.pid), sum(cpu_seconds(p) for p in self.postgres_pids())

    def peak_rss(self):
        return proc_status(self.proc.pid, "VmHWM")

    def reset_peak(self):
        """Resets VmHWM to the current RSS (Linux: clear_refs 5); False when not allowed."""
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        self.stop_orphan_postgres()
        if not self.keep and self.data.exists():
            shutil.rmtree(self.data, ignore_errors=True)

    def stop_orphan_postgres(self):
        """A cluster the stack left running (it was killed): fast shutdown."""
        pid_file = self.data / "postgres" / "data" / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGINT)
        except (OSError, ValueError, IndexError):
            return
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)


def build(args):
    if args.no_build:
        return
    log(f"building the stack (release, CARGO_TARGET_DIR={TARGET})")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "stack", "--bin", "stack"], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": str(TARGET)})


def upload_all(stack, repository_id, files, batch=100):
    """Uploads [(path, bytes)] `batch` per request on one connection; the seconds it took."""
    c = stack.client()
    t0 = time.perf_counter()
    for i in range(0, len(files), batch):
        c.upload(repository_id, files[i:i + batch])
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# quality
# ---------------------------------------------------------------------------------------------


def run_service_quality(args, stack, docs, queries, qrels, extra, authors=False):
    """Ingests CISI with `extra` settings; for each of args.search_types (None: the default),
    (rankings, full rankings) or None when refused (SEMANTIC without a model); and figures."""
    stack.start({"EMBEDDINGS_MODEL_DIR": str(TARGET / "models" / "all-MiniLM-L6-v2"), **extra})
    try:
        repo = stack.repository("cisi-collection")
        files = [(f"docs/{i}.txt", cisi_text(docs[i], authors).encode()) for i in sorted(docs)]
        upload = upload_all(stack, repo, files)
        seconds, status = stack.process()
        stats = status["statistics"]
        if status["status"] != "COMPLETED" or stats["numberOfNewDocumentsIndexed"] != len(files):
            raise SystemExit(f"processing: {status}; failed files: {stack.failed_files()}")
        chunks = int(stack.sql("SELECT coalesce(sum(chunk_count), 0) FROM ingest.files WHERE state = 'indexed'"))
        embedded = stack.wait_embedded()
        log(f"  {len(files)} files uploaded in {upload:.1f} s, processed in {seconds:.1f} s into {chunks} chunks; "
            + ("no vectors (keyword-only)" if embedded is None else f"vectors {embedded:.1f} s after the job"))
        runs = {}
        for search_type in args.search_types:
            runs[search_type] = run_queries(stack, queries, qrels, search_type)
        return runs, {"chunks": chunks, "process_s": seconds}
    finally:
        stack.stop()


def run_queries(stack, queries, qrels, search_type):
    """The judged queries with `search_type` (None: not sent, the default): (rankings, full
    rankings, mean distinct documents in the top 100 chunks), or None when it is refused."""
    c = stack.client()
    path = f"/api/v1/document-sources/{stack.source_id}/retrieve"
    doc_id = lambda key: int(key.split("/")[-1].split(".")[0])  # noqa: E731
    extra = {} if search_type is None else {"search_type": search_type}
    rankings, full, distinct, latencies = {}, {}, [], []
    for qid in sorted(qrels):
        query = normalise_query(queries[qid]["W"])
        t0 = time.perf_counter()
        try:
            answer = c.call("POST", path, {"query": query, "top_k": 100, **extra})
        except HttpError as e:
            if e.status == 400:
                log(f"  search_type {search_type}: refused ({e})")
                return None
            raise
        latencies.append(time.perf_counter() - t0)
        keys = dedupe([r["key"] for r in answer["results"]])
        rankings[qid] = [doc_id(k) for k in keys]
        distinct.append(len(keys))
        # The rest of the ranking, 100 chunks at a time, the files already ranked filtered out
        # (BM25 statistics do not depend on the filter, nor do vectors, so this continues the
        # ranking; under HYBRID the fusion of what is left, which is close).
        while keys:
            more = c.call("POST", path, {"query": query, "top_k": 100, **extra,
                                         "filter": {"notIn": {"key": "key", "value": keys}}})["results"]
            new = [k for k in dedupe([r["key"] for r in more]) if k not in set(keys)]
            if not new:
                break
            keys += new
        full[qid] = [doc_id(k) for k in keys]
    log(f"  search_type {search_type or 'default'}: median retrieve {statistics.median(latencies) * 1000:.1f} ms")
    return rankings, full, statistics.mean(distinct)


def quality(args):
    selftest(quiet=True)
    args.search_types = [None if t.strip() == "default" else t.strip() for t in args.search_types.split(",") if t.strip()]
    docs, queries, qrels = load_cisi(Path(args.cisi_dir))
    assert len(docs) == 1460 and len(qrels) == 76, (len(docs), len(qrels))
    rows = []
    per_query_default = None

    rows.append(("reference plain BM25 (shared/bench/README.md)", (0.348, None, 0.423, 0.195), "", ""))
    ref = bm25_rankings(docs, queries, qrels)
    means, per_query_bm25 = score_run(ref, qrels)
    rows.append(("plain BM25 reproduced (rank_bm25's BM25Okapi formula, title + text, short stop list)", means, "", ""))
    try:
        import rank_bm25  # noqa: F401, PLC0415

        means_rb, _ = score_run(bm25_rankings(docs, queries, qrels, use_rank_bm25=True), qrels)
        rows.append(("the same with rank_bm25 itself", means_rb, "", ""))
    except ImportError:
        pass

    build(args)
    stack = Stack(args)
    variants = [("dokko-ingest, default settings", {}, False)]
    for extra in args.extra:
        settings = dict(kv.split("=", 1) for kv in extra.replace(",", " ").split())
        variants.append((f"dokko-ingest, {' '.join(f'{k}={v}' for k, v in settings.items())}", settings, False))
    if args.authors:
        variants.append(("dokko-ingest, default settings, authors in the files", {}, True))
    for label, extra, authors in variants:
        runs, info = run_service_quality(args, stack, docs, queries, qrels, extra, authors)
        for search_type, run in runs.items():
            name = f"{label}, search_type {search_type or 'default (HYBRID)'}"
            if run is None:
                rows.append((name + ": refused", (None, None, None, None), info["chunks"], ""))
                continue
            rankings, full, distinct = run
            means, per_query = score_run(rankings, qrels, full)
            if per_query_default is None:
                per_query_default = (rankings, per_query)
            rows.append((name, means, info["chunks"], f"{distinct:.1f}"))

    print()
    print(f"CISI: {len(docs)} documents, {len(qrels)} judged queries, top_k=100; reference (shared/bench/README.md): "
          "nDCG@10 0.348, MAP 0.195, Recall@100 0.423")
    print()
    print("| ranking | nDCG@10 | MAP@100 | Recall@100 | MAP, whole ranking | chunks | docs in the top 100 chunks |")
    print("|---|---|---|---|---|---|---|")
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    for label, (n, m, r, mf), chunks, distinct in rows:
        print(f"| {label} | {fmt(n)} | {fmt(m)} | {fmt(r)} | {fmt(mf)} | {chunks} | {distinct} |")

    rankings, per_query = per_query_default
    zero = [q for q in sorted(qrels) if per_query[q][0] == 0.0]
    print()
    print(f"Queries with nDCG@10 = 0 under the defaults: {len(zero)} of {len(qrels)}")
    for q in zero:
        text = normalise_query(queries[q]["W"])
        found = [d for d in rankings[q] if d in qrels[q]]
        first = next((i + 1 for i, d in enumerate(rankings[q]) if d in qrels[q]), None)
        print(f"  Q{q}: {len(qrels[q])} relevant, {len(found)} in the top 100 (first at {first}), "
              f"BM25 nDCG@10 {per_query_bm25[q][0]:.2f}; {len(text.split())} words: {text[:110]}…")
    better = sum(1 for q in qrels if per_query[q][0] > per_query_bm25[q][0])
    worse = sum(1 for q in qrels if per_query[q][0] < per_query_bm25[q][0])
    print(f"Per query nDCG@10 against plain BM25: {better} better, {worse} worse, {len(qrels) - better - worse} equal")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [(l, m, c, d) for l, m, c, d in rows]}, indent=1))


# ---------------------------------------------------------------------------------------------
# Generated corpora
# ---------------------------------------------------------------------------------------------

FUNCTION_WORDS = (
    "the of and to a in is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no will more can who its out what about up "
    "them into some than other only time also then these two could any may first new after most over such where "
    "very should through each many those because before much between under well being both while same since"
).split()
# tantivy's English stop words (Lucene's list), which the service's analyzer drops.
LUCENE_STOP = set(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split()
)
ONSETS = "b c d f g h j k l m n p r s t v w z br cr dr fr gr pr tr st sp ch sh th pl bl cl fl".split()
VOWELS = "a e i o u a e i o ai ea ou io ie".split()
CODAS = ["", "", "", "n", "r", "s", "l", "t", "m", "nd", "st", "rk", "nt", "x"]


class Words:
    """A vocabulary of made-up words after English function words, drawn with Zipf-Mandelbrot
    frequencies (rank r has weight 1 / (r + 2.7)), and text made of them: sentences of 6 to 24
    words, paragraphs of 3 to 7 sentences."""

    def __init__(self, seed=7, size=40_000):
        self.rng = random.Random(seed)
        vocab, seen = list(FUNCTION_WORDS), set(FUNCTION_WORDS)
        while len(vocab) < size:
            n = self.rng.choice((1, 1, 2, 2, 2, 3))
            w = "".join(self.rng.choice(ONSETS) + self.rng.choice(VOWELS) for _ in range(n)) + self.rng.choice(CODAS)
            if w not in seen and len(w) > 2:
                seen.add(w)
                vocab.append(w)
        self.vocab = vocab
        self.cum = list(itertools.accumulate(1.0 / (r + 2.7) for r in range(len(vocab))))

    def draw(self, n, rng=None):
        return (rng or self.rng).choices(self.vocab, cum_weights=self.cum, k=n)

    def sentences(self, chars, rng=None):
        rng = rng or self.rng
        words = self.draw(int(chars / 5.5) + 30, rng)
        out, i, total = [], 0, 0
        while total < chars and i < len(words):
            n = rng.randint(6, 24)
            s = words[i:i + n]
            i += n
            if not s:
                break
            sentence = " ".join(s)
            sentence = sentence[0].upper() + sentence[1:] + rng.choice((".", ".", ".", ".", "?", ";"))
            out.append(sentence)
            total += len(sentence) + 1
        return out

    def paragraphs(self, chars, rng=None):
        rng = rng or self.rng
        sentences = self.sentences(chars, rng)
        out, i = [], 0
        while i < len(sentences):
            n = rng.randint(3, 7)
            out.append(" ".join(sentences[i:i + n]))
            i += n
        return out

    def title(self, rng=None):
        rng = rng or self.rng
        return " ".join(w.capitalize() for w in self.draw(rng.randint(3, 8), rng))


def make_txt(w, rng, size):
    return "\n\n".join(w.paragraphs(size, rng)).encode() + b"\n"


def make_md(w, rng, size):
    out = [f"# {w.title(rng)}", ""]
    for i, p in enumerate(w.paragraphs(size * 0.9, rng)):
        if i % 4 == 3:
            out += [f"## {w.title(rng)}", ""]
        if i % 7 == 5:
            out += [f"- {' '.join(w.draw(rng.randint(2, 6), rng))}" for _ in range(rng.randint(2, 5))] + [""]
        out += [p, ""]
    return "\n".join(out).encode()


def make_html(w, rng, size):
    title = w.title(rng)
    out = [f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
           '<style>body{font-family:sans-serif}</style></head>\n<body><nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>'
           f"\n<article><h1>{title}</h1>"]
    for i, p in enumerate(w.paragraphs(size * 0.85, rng)):
        if i % 3 == 2:
            out.append(f"<h2>{w.title(rng)}</h2>")
        out.append(f"<p>{p}</p>")
    out.append("</article><footer>&copy; 2026 Example</footer></body></html>\n")
    return "\n".join(out).encode()


def make_csv(w, rng, size):
    out = ["id,name,category,amount,updated,description"]
    total, i = 0, 0
    while total < size:
        i += 1
        desc = " ".join(w.draw(rng.randint(4, 14), rng))
        row = f'{i},{w.draw(1, rng)[0]},{rng.choice(("alpha", "beta", "gamma", "delta"))},{rng.uniform(1, 9999):.2f},2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},"{desc}"'
        out.append(row)
        total += len(row) + 1
    return ("\n".join(out) + "\n").encode()


def make_json(w, rng, size):
    doc = {"id": str(uuid.UUID(int=rng.getrandbits(128))), "title": w.title(rng), "tags": w.draw(rng.randint(1, 5), rng),
           "published": rng.choice((True, False)), "sections": []}
    total = 0
    while total < size * 0.85:
        body = " ".join(w.sentences(rng.randint(200, 1500), rng))
        doc["sections"].append({"heading": w.title(rng), "body": body, "views": rng.randint(0, 100000)})
        total += len(body) + 60
    return json.dumps(doc, indent=1).encode()


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def make_docx(w, rng, size):
    """A minimal Word file: content types, package relationships, the document, core properties."""
    title = w.title(rng)
    paras = [f'<w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:t>{xml_escape(title)}</w:t></w:r></w:p>']
    for i, p in enumerate(w.paragraphs(size, rng)):
        if i % 4 == 3:
            paras.append(f'<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>{xml_escape(w.title(rng))}</w:t></w:r></w:p>')
        paras.append(f'<w:p><w:r><w:t xml:space="preserve">{xml_escape(p)}</w:t></w:r></w:p>')
    document = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
                + "".join(paras) + "<w:sectPr/></w:body></w:document>")
    content_types = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                     '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                     '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                     '<Default Extension="xml" ContentType="application/xml"/>'
                     '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
                     '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
                     "</Types>")
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>'
            "</Relationships>")
    core = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<dc:title>{xml_escape(title)}</dc:title><dc:creator>bench</dc:creator></cp:coreProperties>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", content_types)
        z.writestr("_rels/.rels", rels)
        z.writestr("word/document.xml", document)
        z.writestr("docProps/core.xml", core)
    return buf.getvalue()


def pdf_string(s):
    return "(" + s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_pdf(w, rng, size, compress=True):
    """A PDF 1.4 with Helvetica text pages (Flate-compressed content streams), an Info title and
    a correct cross-reference table."""
    import textwrap  # noqa: PLC0415

    title = w.title(rng)
    lines = [title, ""]
    for p in w.paragraphs(size, rng):
        lines += textwrap.wrap(p, 95) + [""]
    pages = [lines[i:i + 56] for i in range(0, len(lines), 56)]
    objects = {}  # number -> bytes (without "n 0 obj" / "endobj")
    page_ids = []
    first_page = 5
    for n, page in enumerate(pages):
        content = "BT /F1 10 Tf 12 TL 56 790 Td\n" + "\n".join(f"{pdf_string(line)} Tj T*" for line in page) + "\nET\n"
        data = content.encode("latin-1")
        if compress:
            data = zlib.compress(data)
            stream = f"<< /Length {len(data)} /Filter /FlateDecode >>\nstream\n".encode() + data + b"\nendstream"
        else:
            stream = f"<< /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"
        page_id, content_id = first_page + 2 * n, first_page + 2 * n + 1
        objects[page_id] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
                            f"/Contents {content_id} 0 R >>").encode()
        objects[content_id] = stream
        page_ids.append(page_id)
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[2] = f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(page_ids)} >>".encode()
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    objects[4] = f"<< /Title {pdf_string(title)} /Producer (dokko-retrieval bench) >>".encode()
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    count = max(objects) + 1
    out += f"xref\n0 {count}\n".encode() + b"0000000000 65535 f \n"
    for number in range(1, count):
        out += f"{offsets[number]:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {count} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


MAKERS = {"txt": make_txt, "md": make_md, "html": make_html, "csv": make_csv, "json": make_json, "docx": make_docx,
          "pdf": make_pdf}
# The mix of the ingest corpus, per 10,000 files.
MIX = (("txt", 4500), ("md", 3000), ("html", 800), ("csv", 500), ("json", 500), ("docx", 400), ("pdf", 300))


def ingest_corpus(w, n, seed=11, min_kb=1, max_kb=50):
    """`n` files [(path, bytes, ext)] in the mix above; sizes (of the text) log-uniform."""
    rng = random.Random(seed)
    kinds = [k for k, share in MIX for _ in range(share)]
    files = []
    for i in range(n):
        ext = kinds[(i * 7919) % len(kinds)] if n < len(kinds) else kinds[i % len(kinds)]
        size = math.exp(rng.uniform(math.log(min_kb * 1000), math.log(max_kb * 1000)))
        files.append((f"team-{i % 20:02d}/{ext}/doc-{i:05d}.{ext}", MAKERS[ext](w, rng, size), ext))
    rng.shuffle(files)
    return files


# ---------------------------------------------------------------------------------------------
# speed
# ---------------------------------------------------------------------------------------------


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def latency_run(stack, queries, clients, top_k, filter_=None):
    """`queries` spread over `clients` threads, each on its own connection: the latencies (s),
    the wall time, and the mean number of results."""
    latencies, results, errors = [], [], []
    lock = threading.Lock()
    path = f"/api/v1/document-sources/{stack.source_id}/retrieve"

    def worker(part):
        c = stack.client()
        mine, counts = [], []
        try:
            for q in part:
                body = {"query": q, "top_k": top_k}
                if filter_:
                    body["filter"] = filter_
                t0 = time.perf_counter()
                answer = c.call("POST", path, body)
                mine.append(time.perf_counter() - t0)
                counts.append(len(answer["results"]))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
        with lock:
            latencies.extend(mine)
            results.extend(counts)

    threads = [threading.Thread(target=worker, args=(queries[i::clients],)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return latencies, wall, statistics.mean(results)


def mib(n):
    return n / (1 << 20)


def speed_ingest(args, stack, w):
    log(f"generating the ingest corpus ({args.files} files)")
    files = ingest_corpus(w, args.files)
    total = sum(len(b) for _, b, _ in files)
    by_ext = {}
    for _, b, ext in files:
        n, s = by_ext.get(ext, (0, 0))
        by_ext[ext] = (n + 1, s + len(b))
    # Vectors on (the embedded model, from the tests' cache: fetched once, not per run).
    stack.start({"EMBEDDINGS_MODEL_DIR": str(TARGET / "models" / "all-MiniLM-L6-v2")})
    try:
        repo = stack.repository("mixed-corpus")
        rss_start = stack.peak_rss()
        log(f"uploading {len(files)} files, {total / 1e6:.1f} MB")
        cpu0 = stack.cpu()
        upload = upload_all(stack, repo, [(p, b) for p, b, _ in files])
        cpu1 = stack.cpu()
        rss_upload = stack.peak_rss()
        reset = stack.reset_peak()
        log("processing")
        seconds, status = stack.process()
        cpu2 = stack.cpu()
        rss_process = stack.peak_rss()
        stats = status["statistics"]
        # The vectors come after the job, in the background: their pace over --embed-seconds.
        embedding = None
        if "chunksEmbedded" in stats and args.embed_seconds > 0:
            c = stack.client()
            path = f"/api/v1/document-sources/{stack.source_id}/process/status"
            first = c.call("GET", path)["statistics"]
            t0 = time.perf_counter()
            log(f"background embedding for {args.embed_seconds} s ({first['chunksToEmbed']:,} chunks wait)")
            time.sleep(args.embed_seconds)
            last = c.call("GET", path)["statistics"]
            elapsed = time.perf_counter() - t0
            embedding = {"seconds": elapsed, "embedded": last["chunksEmbedded"] - first["chunksEmbedded"],
                         "waiting": last["chunksToEmbed"]}
        failed = stack.failed_files() if stats["numberOfDocumentsFailed"] else []
        chunks = int(stack.sql("SELECT coalesce(sum(chunk_count), 0) FROM ingest.files WHERE state = 'indexed'"))
        text = int(stack.sql("SELECT coalesce(sum(length(content)), 0) FROM ingest.chunks"))
        per_ext = {}
        for line in stack.sql(
            "SELECT substring(f.path from '\\.([a-z]+)$'), count(DISTINCT f.ord), count(c.position), "
            "coalesce(sum(length(c.content)), 0) FROM ingest.files f LEFT JOIN ingest.chunks c ON c.file_ord = f.ord "
            "WHERE f.state = 'indexed' GROUP BY 1"
        ).splitlines():
            ext, n, k, chars = line.split("|")
            per_ext[ext] = (int(n), int(k), int(chars))
    finally:
        stack.stop()
    return {
        "files": len(files), "bytes": total, "by_ext": by_ext, "upload_s": upload, "process_s": seconds,
        "status": status, "failed": failed, "chunks": chunks, "chunk_chars": text, "per_ext": per_ext,
        "embedding": embedding,
        "rss_start": rss_start, "rss_upload": rss_upload, "rss_process": rss_process, "rss_reset": reset,
        "cpu_upload": (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]), "cpu_process": (cpu2[0] - cpu1[0], cpu2[1] - cpu1[1]),
    }


def speed_latency(args, stack, w):
    rng = random.Random(23)
    file_chars = args.file_kb * 1000
    n_files = max(1, math.ceil(args.chunks * args.chars_per_chunk / file_chars))
    parts = 10
    settings = {"CHUNK_SIZE": str(args.latency_chunk_size), "CHUNK_OVERLAP": "0"}
    stack.start(settings)
    try:
        repo = stack.repository("latency-corpus")
        log(f"generating and uploading {n_files} text files of ~{args.file_kb} KB for ~{args.chunks:,} chunks")
        c = stack.client()
        upload, total, batch = 0.0, 0, 50
        for start in range(0, n_files, batch):
            files = [(f"part-{i % parts}/doc-{i:06d}.txt", make_txt(w, rng, file_chars))
                     for i in range(start, min(n_files, start + batch))]
            total += sum(len(b) for _, b in files)
            t0 = time.perf_counter()
            c.upload(repo, files)
            upload += time.perf_counter() - t0
        cpu0 = stack.cpu()
        log("processing")
        seconds, status = stack.process(poll=1.0)
        cpu1 = stack.cpu()
        if status["status"] != "COMPLETED":
            raise SystemExit(f"processing: {status}")
        chunks = int(stack.sql("SELECT coalesce(sum(chunk_count), 0) FROM ingest.files WHERE state = 'indexed'"))
        index_bytes = sum(f.stat().st_size for f in (stack.data / "indexes").rglob("*") if f.is_file())
        db_bytes = int(stack.sql("SELECT pg_total_relation_size('ingest.chunks')"))
        log(f"  {chunks:,} chunks in {seconds:.0f} s; measuring retrieval")
        # Queries: 2-6 words of the corpus's distribution, function words left out (the analyzer
        # drops stop words anyway).
        content_words = w.vocab[len(FUNCTION_WORDS):]
        cum = w.cum[len(FUNCTION_WORDS):]
        base = w.cum[len(FUNCTION_WORDS) - 1]
        cum = [x - base for x in cum]
        queries = [" ".join(rng.choices(content_words, cum_weights=cum, k=rng.randint(2, 6))) for _ in range(args.queries)]
        # The hard case: words drawn from the whole distribution, function words included (about
        # 40 % of draws; those not on the analyzer's stop list match a large share of all chunks).
        heavy = [" ".join(w.draw(rng.randint(2, 6), rng)) for _ in range(args.queries)]
        # The worst case: only the most frequent words the analyzer keeps (each is in 5-15 % of
        # the chunks), and words no chunk has (the fixed cost of a call).
        common = [x for x in FUNCTION_WORDS if x not in LUCENE_STOP][:30]
        worst = [" ".join(rng.sample(common, rng.randint(2, 6))) for _ in range(args.queries)]
        nothing = [f"zq{rng.getrandbits(40):x} xq{rng.getrandbits(40):x}" for _ in range(args.queries)]
        # Long questions (CISI's run from 8 to over 100 words; pasted paragraphs are longer).
        long = [" ".join(w.draw(rng.randint(30, 60), rng)) for _ in range(args.queries)]
        latency_run(stack, queries[:30], 1, 10)  # warm-up (catalog, caches)
        runs = []
        for label, clients, top_k, filter_, qs in (
            ("top_k=10, 1 client", 1, 10, None, queries),
            (f"top_k=10, {args.clients} clients", args.clients, 10, None, queries),
            ("top_k=100, 1 client", 1, 100, None, queries),
            ("top_k=10, filter startsWith key part-3/ (10 % of files), 1 client", 1, 10,
             {"startsWith": {"key": "key", "value": "part-3/"}}, queries),
            ("top_k=10, words with function words (long posting lists), 1 client", 1, 10, None, heavy),
            (f"top_k=10, words with function words, {args.clients} clients", args.clients, 10, None, heavy),
            ("top_k=10, worst case: 2-6 of the 30 most frequent non-stop words, 1 client", 1, 10, None, worst),
            ("top_k=10, long questions: 30-60 words drawn with the function words, 1 client", 1, 10, None, long),
            ("top_k=10, words no chunk has (the fixed cost), 1 client", 1, 10, None, nothing),
        ):
            lat, wall, mean_results = latency_run(stack, qs, clients, top_k, filter_)
            runs.append((label, len(lat), statistics.median(lat), pct(lat, 99), max(lat), len(lat) / wall, mean_results))
        rss = stack.peak_rss()
    finally:
        stack.stop()
    return {"files": n_files, "bytes": total, "upload_s": upload, "process_s": seconds, "chunks": chunks,
            "settings": settings, "runs": runs, "rss": rss, "index_bytes": index_bytes, "db_bytes": db_bytes,
            "cpu": (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]), "status": status}


def speed_filter(args, stack, w):
    """Filter cost against the number of files: `--filter-files` one-chunk files (300
    characters) in ten folders, default settings; queries without a filter, with one that keeps
    every file and with one that keeps a tenth."""
    rng = random.Random(5)
    stack.start({})
    try:
        repo = stack.repository("many-files")
        c = stack.client()
        log(f"generating and uploading {args.filter_files:,} files of 300 characters")
        upload = 0.0
        for start in range(0, args.filter_files, 100):
            files = [(f"part-{i % 10}/doc-{i:06d}.txt", make_txt(w, rng, 300))
                     for i in range(start, min(args.filter_files, start + 100))]
            t0 = time.perf_counter()
            c.upload(repo, files)
            upload += time.perf_counter() - t0
        seconds, status = stack.process(poll=1.0)
        content_words = w.vocab[len(FUNCTION_WORDS):]
        base = w.cum[len(FUNCTION_WORDS) - 1]
        cum = [x - base for x in w.cum[len(FUNCTION_WORDS):]]
        queries = [" ".join(rng.choices(content_words, cum_weights=cum, k=rng.randint(2, 6))) for _ in range(args.queries)]
        latency_run(stack, queries[:30], 1, 10)
        runs = []
        for label, filter_ in (
            ("no filter", None),
            ("filter keeping every file: startsWith key part-", {"startsWith": {"key": "key", "value": "part-"}}),
            ("filter keeping 10 %: startsWith key part-3/", {"startsWith": {"key": "key", "value": "part-3/"}}),
        ):
            lat, wall, mean_results = latency_run(stack, queries, 1, 10, filter_)
            runs.append((label, len(lat), statistics.median(lat), pct(lat, 99), max(lat), len(lat) / wall, mean_results))
    finally:
        stack.stop()
    return {"files": args.filter_files, "upload_s": upload, "process_s": seconds, "status": status, "runs": runs}


def print_filter(r):
    print()
    print(f"Filter cost: {r['files']:,} files of 300 characters (one chunk each), default settings; uploaded in "
          f"{r['upload_s']:.0f} s, processed in {r['process_s']:.0f} s ({r['files'] / r['process_s']:.0f} files/s); "
          "top_k=10, 1 client")
    print()
    print("| queries | n | p50 | p99 | max | queries/s | results/query |")
    print("|---|---|---|---|---|---|---|")
    for label, n, p50, p99, mx, qps, res in r["runs"]:
        print(f"| {label} | {n} | {p50 * 1000:.1f} ms | {p99 * 1000:.1f} ms | {mx * 1000:.1f} ms | {qps:.1f} | {res:.1f} |")


def speed(args):
    selftest(quiet=True)
    build(args)
    stack = Stack(args)
    w = Words()
    report = {}
    if not args.skip_ingest:
        r = speed_ingest(args, stack, w)
        report["ingest"] = r
        print_ingest(r)
    if not args.skip_latency:
        r = speed_latency(args, stack, w)
        report["latency"] = r
        print_latency(r, args)
    if args.filter_files:
        r = speed_filter(args, stack, w)
        report["filter"] = r
        print_filter(r)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


def print_ingest(r):
    s = r["status"]["statistics"]
    print()
    print(f"Ingest: {r['files']:,} files, {r['bytes'] / 1e6:.1f} MB "
          + ", ".join(f"{e} {n:,} ({b / 1e6:.1f} MB)" for e, (n, b) in sorted(r["by_ext"].items(), key=lambda x: -x[1][0])))
    print()
    print("| step | seconds | files/s | MB/s | stack CPU s | PostgreSQL CPU s | stack peak RSS |")
    print("|---|---|---|---|---|---|---|")
    print(f"| upload (100 files per request, 1 client) | {r['upload_s']:.1f} | {r['files'] / r['upload_s']:.0f} | "
          f"{r['bytes'] / 1e6 / r['upload_s']:.2f} | {r['cpu_upload'][0]:.1f} | {r['cpu_upload'][1]:.1f} | "
          f"{mib(r['rss_upload']):.0f} MiB |")
    print(f"| processing job (POST to COMPLETED) | {r['process_s']:.1f} | {r['files'] / r['process_s']:.0f} | "
          f"{r['bytes'] / 1e6 / r['process_s']:.2f} | {r['cpu_process'][0]:.1f} | {r['cpu_process'][1]:.1f} | "
          f"{mib(r['rss_process']):.0f} MiB{'' if r['rss_reset'] else ' (whole run)'} |")
    print()
    print(f"Job: {r['status']['status']}, scanned {s['numberOfDocumentsScanned']:,}, new {s['numberOfNewDocumentsIndexed']:,}, "
          f"failed {s['numberOfDocumentsFailed']:,}; {r['chunks']:,} chunks, {r['chunk_chars'] / 1e6:.1f} M characters of chunk text; "
          f"stack RSS at start {mib(r['rss_start']):.0f} MiB")
    e = r.get("embedding")
    if e:
        print(f"Background embedding (embedded model, after the job): {e['embedded']:,} chunks in {e['seconds']:.0f} s "
              f"= {e['embedded'] / e['seconds']:.1f} chunks/s; {e['waiting']:,} still waiting")
    for key, reason in r["failed"]:
        print(f"  failed: {key}: {reason}")
    print()
    print("| format | files | source MB | indexed | chunks | chunk text M chars |")
    print("|---|---|---|---|---|---|")
    for ext, (n, b) in sorted(r["by_ext"].items(), key=lambda x: -x[1][0]):
        indexed, chunks, chars = r["per_ext"].get(ext, (0, 0, 0))
        print(f"| {ext} | {n:,} | {b / 1e6:.1f} | {indexed:,} | {chunks:,} | {chars / 1e6:.1f} |")


def print_latency(r, args):
    print()
    print(f"Retrieve latency: {r['files']:,} text files of ~{args.file_kb} KB ({r['bytes'] / 1e6:.0f} MB), "
          f"{' '.join(f'{k}={v}' for k, v in r['settings'].items())} -> {r['chunks']:,} chunks; uploaded in "
          f"{r['upload_s']:.0f} s, processed in {r['process_s']:.0f} s ({r['chunks'] / r['process_s']:,.0f} chunks/s; "
          f"stack CPU {r['cpu'][0]:.0f} s, PostgreSQL CPU {r['cpu'][1]:.0f} s); index {r['index_bytes'] / 1e6:.0f} MB on disk, "
          f"ingest.chunks {r['db_bytes'] / 1e6:.0f} MB in PostgreSQL; stack peak RSS {mib(r['rss']):.0f} MiB")
    print()
    print("| queries | n | p50 | p99 | max | queries/s | results/query |")
    print("|---|---|---|---|---|---|---|")
    for label, n, p50, p99, mx, qps, res in r["runs"]:
        print(f"| {label} | {n} | {p50 * 1000:.1f} ms | {p99 * 1000:.1f} ms | {mx * 1000:.1f} ms | {qps:.1f} | {res:.1f} |")


# ---------------------------------------------------------------------------------------------
# selftest
# ---------------------------------------------------------------------------------------------


def selftest(quiet=False):
    close = lambda a, b: abs(a - b) < 1e-4  # noqa: E731
    # Hand-checked: relevant {1, 3, 6}, ranking 1..5. Hits at ranks 1 and 3.
    ranked, rel = [1, 2, 3, 4, 5], {1, 3, 6}
    # AP = (1/1 + 2/3) / 3 = 0.5556
    assert close(average_precision(ranked, rel), (1 + 2 / 3) / 3)
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3) + 1/log2(4) = 2.1309; nDCG = 0.7039
    assert close(ndcg_at(ranked, rel), 1.5 / (1 + 1 / math.log2(3) + 0.5))
    assert close(ndcg_at(ranked, rel), 0.70392)
    assert close(recall_at(ranked, rel), 2 / 3)
    # Perfect and empty rankings.
    assert close(ndcg_at([1, 3, 6], rel), 1.0) and close(average_precision([6, 1, 3], rel), 1.0)
    assert ndcg_at([], rel) == 0 and average_precision([], rel) == 0 and recall_at([], rel) == 0
    # Cut-offs: a relevant document at rank 11 is outside nDCG@10, at 101 outside AP and recall.
    long = list(range(100, 200)) + [1]
    assert ndcg_at(list(range(100, 110)) + [1], {1}) == 0 and average_precision(long, {1}) == 0 and recall_at(long, {1}) == 0
    # More than 10 relevant: the ideal DCG counts 10.
    assert close(ndcg_at(list(range(10)), set(range(20))), 1.0)
    # Means over queries; a query without a ranking scores 0.
    means, _ = score_run({1: [1]}, {1: {1}, 2: {5}})
    assert close(means[0], 0.5) and close(means[1], 0.5) and close(means[2], 0.5)
    assert dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]
    # BM25 (rank_bm25's formula) on a toy corpus, by hand: N = 3, "cat" in 1 doc.
    bm = Bm25Okapi([["cat", "sat"], ["dog", "sat"], ["dog", "ran", "far"]])
    idf = math.log(3 - 1 + 0.5) - math.log(1 + 0.5)
    norm = 1.5 * (1 - 0.75 + 0.75 * 2 / (7 / 3))
    assert close(bm.scores(["cat"])[0], idf * 2.5 / (1 + norm)) and bm.scores(["cat"])[1] == 0
    # CISI parsing.
    if CISI_DIR.exists():
        docs, queries, qrels = load_cisi(CISI_DIR)
        assert len(docs) == 1460 and len(queries) == 112 and len(qrels) == 76, (len(docs), len(queries), len(qrels))
        assert sum(len(v) for v in qrels.values()) == 3114
        assert docs[1]["T"] == "18 Editions of the Dewey Decimal Classifications", docs[1]["T"]
        assert docs[1]["W"].startswith("The present study is a history of the DEWEY Decimal") and docs[1]["W"].endswith("abroad.")
        assert "X" in docs[1] and all(q in queries and queries[q].get("W") for q in qrels)
    # Generated files: the PDF's cross-reference table points at each object; the docx opens.
    w = Words(size=2000)
    rng = random.Random(1)
    pdf = make_pdf(w, rng, 8000)
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split()[0])
    assert pdf[xref:xref + 4] == b"xref"
    table = pdf[xref:].split(b"\n")
    count = int(table[1].split()[1])
    for number in range(1, count):
        offset = int(table[2 + number][:10])
        assert pdf[offset:].startswith(f"{number} 0 obj".encode()), number
    assert len(table[3]) == 19  # 20 bytes with the newline
    with zipfile.ZipFile(io.BytesIO(make_docx(w, rng, 3000))) as z:
        assert z.testzip() is None and "word/document.xml" in z.namelist()
    for ext, maker in MAKERS.items():
        assert len(maker(w, random.Random(2), 5000)) > 1000, ext
    if not quiet:
        print("selftest: 1 passed, 0 failed")


# ---------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--no-build", action="store_true", help="use the release binary as it is")
    common.add_argument("--keep-data", action="store_true", help="keep the stack's data folder after the run")
    common.add_argument("--json", help="also write the figures to this file")
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality", parents=[common], help="CISI retrieval quality")
    q.add_argument("--cisi-dir", default=str(CISI_DIR))
    q.add_argument("--extra", action="append", default=[], metavar="CHUNK_SIZE=4000,CHUNK_OVERLAP=0",
                   help="another row with these dokko-ingest settings (comma- or space-separated; repeatable)")
    q.add_argument("--authors", action="store_true", help="another row with the authors in the files")
    q.add_argument("--search-types", default="default,KEYWORD,SEMANTIC",
                   help="comma-separated search_type values to run on each stack ('default' sends none)")
    s = sub.add_parser("speed", parents=[common], help="ingest throughput and retrieve latency")
    s.add_argument("--files", type=int, default=10_000, help="files of the ingest corpus (default 10,000)")
    s.add_argument("--chunks", type=int, default=1_000_000, help="chunks aimed at for the latency corpus")
    s.add_argument("--chars-per-chunk", type=float, default=143.0,
                   help="characters of generated text per chunk at CHUNK_SIZE=200 (measured: 143), to size the corpus")
    s.add_argument("--latency-chunk-size", type=int, default=200)
    s.add_argument("--file-kb", type=int, default=40, help="size of each latency-corpus file (KB of text)")
    s.add_argument("--queries", type=int, default=500)
    s.add_argument("--clients", type=int, default=4)
    s.add_argument("--skip-ingest", action="store_true")
    s.add_argument("--embed-seconds", type=int, default=60,
                   help="after the ingest job, how long to watch the background embedding (0: not at all)")
    s.add_argument("--skip-latency", action="store_true")
    s.add_argument("--filter-files", type=int, default=0,
                   help="also measure the filter's cost on a source of this many one-chunk files (e.g. 30000)")
    sub.add_parser("selftest", help="check the metric code, the CISI parser and the file generators")
    args = p.parse_args()
    if args.command == "selftest":
        selftest()
        return

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    {"quality": quality, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
