#!/usr/bin/env python3
"""Smoke test of the four service images (deploy/images.sh smoke).

Starts the stand-ins on this machine: a private PostgreSQL cluster (initdb/pg_ctl, as the
`postgres` user when root), the test kit's S3 server (`cargo run -p testkit --bin s3-server`) and
its fake GitHub with a git server and a webhook receiver (`cargo run -p testkit --bin
fake-github`). Then runs each image with podman as the Kubernetes manifests do: uid 65532,
read-only root filesystem, only the manifests' writable mounts (emptyDirs as tmpfs), every
capability dropped, no privilege escalation, the settings of deploy/k8s/<service>/configmap.yaml
with the addresses of the stand-ins (host networking, ports 18081-18084 unless SMOKE_PORT_BASE).

Checks, each printed as `ok …` or `FAIL …`:
- every container answers GET /readyz with 200, its process runs as uid/gid 65532, its root
  filesystem is mounted read-only and the only writable mounts are the manifests' ones;
- giistr-tags: a tag created with a token of the fake GitHub, then listed;
- docora-watcher: an app onboarded with the image's own operator command, a repository
  registered; the watcher clones it from the git server and its webhooks arrive with a valid
  signature;
- dokko-api + dokko-ingest: a tenant created with the image's operator command, a user and a
  service account, a file uploaded, processed by dokko-ingest (called by dokko-api), and a
  sentence of it retrieved;
- SIGTERM: each container exits 0 well within its grace period.
Ends with `N passed, N failed`; exits 1 when anything failed.

Usage: smoke.py giistr-tags=IMAGE docora-watcher=IMAGE dokko-api=IMAGE dokko-ingest=IMAGE
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "target" / "images" / "smoke"
PORT_BASE = int(os.environ.get("SMOKE_PORT_BASE", "18080"))
PORTS = {"docora-watcher": PORT_BASE + 1, "dokko-api": PORT_BASE + 2, "dokko-ingest": PORT_BASE + 3,
         "giistr-tags": PORT_BASE + 4}
# The emptyDirs of deploy/k8s/<service>/deployment.yaml.
WRITABLE = {"docora-watcher": ["/var/lib/docora"], "dokko-api": [], "dokko-ingest": ["/var/lib/dokko-ingest/indexes", "/tmp"],
            "giistr-tags": []}
# What podman itself bind-mounts into every container (Kubernetes does the same for these files).
RUNTIME_FILES = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run/.containerenv"}
UID = 65532
CLIENT_AUTH_KEY = "smoke-client-auth-key-0123456789"
JWT_SECRET = "smoke-test-jwt-secret-not-for-production-0123456789"
INTERNAL_SECRET = "smoke-test-internal-token-secret-not-for-production"
ENCRYPTION_KEY = "5eed" * 16
SENTENCE = "The lighthouse keeper of Skerryvore counts forty-two herring gulls every dawn."

passed, failed = 0, 0


def log(*args):
    print(time.strftime("%H:%M:%S"), "smoke:", *args, flush=True)


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}", flush=True)
    else:
        failed += 1
        print(f"FAIL  {what}" + (f": {detail}" if detail else ""), flush=True)
    return ok


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def podman(*args, check_rc=True, **kw):
    out = run(["podman", *args], **kw)
    if check_rc and out.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])}…: {out.stderr.strip()[-2000:]}")
    return out


# ---------------------------------------------------------------------------------------------
# HTTP


def call(port, method, path, payload=None, form=None, headers=None, body=None, ok=(200, 201, 202)):
    h = dict(headers or {})
    if payload is not None:
        body = json.dumps(payload).encode()
        h["Content-Type"] = "application/json"
    elif form is not None:
        from urllib.parse import urlencode

        body = urlencode(form).encode()
        h["Content-Type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if ok is not None and resp.status not in ok:
        raise RuntimeError(f"{method} :{port}{path}: {resp.status} {data[:500]!r}")
    return resp.status, (json.loads(data) if data and data[:1] in (b"{", b"[") else data)


def ready(port, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if call(port, "GET", "/readyz", ok=None)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


# ---------------------------------------------------------------------------------------------
# Stand-ins


class Process:
    """A `cargo run` stand-in whose stdout lines are collected as they come."""

    def __init__(self, name, args):
        self.name, self.lines = name, []
        self.log = open(WORK / f"{name}.log", "w")
        self.proc = subprocess.Popen(["cargo", "run", "--quiet", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self.log.write(line)
            self.log.flush()

    def value(self, key, seconds=600):
        """The value of the first `KEY=value` line printed."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            for line in list(self.lines):
                if line.startswith(key + "="):
                    return line.split("=", 1)[1]
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): see {WORK / (self.name + '.log')}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} printed no {key}=")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Postgres:
    def __init__(self):
        self.dir = WORK / "postgres"
        self.dir.mkdir(parents=True)
        self.root = os.geteuid() == 0
        if self.root:  # PostgreSQL refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
            for p in [*self.dir.parents][:-1]:
                os.chmod(p, os.stat(p).st_mode | 0o001)
        self.port = free_port()
        self.pg("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                "--locale=C", "--no-sync")
        self.pg("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "postgres.log"), "-w", "-t", "60",
                "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off "
                      "-c max_connections=200", "start")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def pg(self, *args):
        cmd = (["runuser", "-u", "postgres", "--"] if self.root else []) + list(args)
        out = run(cmd)
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {out.stdout}{out.stderr}")

    def stop(self):
        try:
            self.pg("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        except RuntimeError as e:
            log(e)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Containers


def configmap(service):
    """The data of deploy/k8s/<service>/configmap.yaml (flat string values)."""
    env, inside = {}, False
    for line in (ROOT / "deploy" / "k8s" / service / "configmap.yaml").read_text().splitlines():
        if line.startswith("data:"):
            inside = True
        elif inside and (m := re.match(r'^  ([A-Z0-9_]+): "(.*)"\s*$', line)):
            env[m.group(1)] = m.group(2)
        elif inside and line and not line.startswith(" "):
            inside = False
    return env


def run_args(service, image):
    args = ["--network", "host", "--user", f"{UID}:{UID}", "--read-only", "--read-only-tmpfs=false",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--env-file", str(WORK / f"{service}.env")]
    for path in WRITABLE[service]:
        # An emptyDir: empty, writable by the pod's user.
        args += ["--mount", f"type=tmpfs,destination={path},tmpfs-mode=1777"]
    return args + [image]


def write_env(service, env):
    (WORK / f"{service}.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))


def container_checks(service, name):
    pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
    check(set(uids) == {str(UID)} and set(gids) == {str(UID)}, f"{service}: runs as uid/gid {UID}",
          f"Uid {uids} Gid {gids}")
    writable, root_ro = set(), False
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        point, options = fields[4], fields[5].split(",")
        if point == "/":
            root_ro = "ro" in options
        elif "rw" in options and not point.startswith(("/proc", "/sys", "/dev")):
            writable.add(point)
    check(root_ro, f"{service}: root filesystem read-only")
    extra = writable - set(WRITABLE[service]) - RUNTIME_FILES
    check(not extra and set(WRITABLE[service]) <= writable, f"{service}: writable mounts only "
          f"{sorted(WRITABLE[service]) or 'none'}", f"writable: {sorted(writable)}")


def operator(service, image, *args):
    """The image's operator command (`service admin …`), as a one-off container."""
    out = podman("run", "--rm", *run_args(service, image), "admin", *args, check_rc=False)
    if out.returncode != 0:
        raise RuntimeError(f"{service} admin {args[0]}: {out.stdout}{out.stderr}"[-3000:])
    return out.stdout


# ---------------------------------------------------------------------------------------------
# Flows


def flow_giistr(token):
    port = PORTS["giistr-tags"]
    call(port, "POST", "/api/v1/tag", {"name": "smoke"}, headers={"X-Github-Token": token})
    _, tags = call(port, "GET", "/api/v1/tags", headers={"X-Github-Token": token})
    check("smoke" in json.dumps(tags), "giistr-tags: a tag created and listed against the fake GitHub", tags)


def flow_docora(image, github, webhook_url):
    out = operator("docora-watcher", image, "onboard-app", "--name", "Smoke", "--base-url", f"{webhook_url}/hooks",
                   "--email", "smoke@example.com", "--client-auth-key", CLIENT_AUTH_KEY)
    token = re.search(r"docora_\S+", out).group(0)
    call(PORTS["docora-watcher"], "POST", "/api/repositories", {"github_url": "https://github.com/user0/demo"},
         headers={"Authorization": f"Bearer {token}"})
    deadline, hooks = time.time() + 120, []
    while time.time() < deadline:
        hooks = [line for line in github.lines if line.startswith("webhook ")]
        if len(hooks) >= 3:
            break
        time.sleep(0.5)
    valid = [h for h in hooks if h.endswith("(signature valid)")]
    check(len(hooks) >= 3 and len(valid) == len(hooks),
          f"docora-watcher: cloned user0/demo from the git server, {len(valid)} signed webhooks delivered", hooks)


def flow_dokko(image):
    api = PORTS["dokko-api"]
    email, password, tenant = "admin@smoke.example", "smoke-password-0123", "smoke"
    out = operator("dokko-api", image, "create-tenant", "--name", tenant, "--admin-email", email)
    invitation = re.search(r"inv_[0-9a-f]+", out).group(0)
    call(api, "POST", "/api/v1/auth/invitations/accept", {"token": invitation, "password": password})
    user = call(api, "POST", "/api/v1/auth/login", form={"email": email, "password": password},
                headers={"X-Tenant": tenant})[1]["access_token"]
    account = call(api, "POST", "/api/v1/admin/service-accounts", {"name": "smoke"},
                   headers={"Authorization": f"Bearer {user}"})[1]
    token = call(api, "POST", "/api/v1/auth/service/login",
                 form={"client_id": account["client_id"], "client_secret": account["client_secret"]},
                 headers={"X-Tenant": tenant})[1]["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    source = call(api, "GET", "/api/v1/document-sources", headers=auth)[1]["items"][0]["id"]
    repo = call(api, "POST", "/api/v1/repositories",
                {"name": "smoke", "document_source_id": source, "type": "semantic", "permission_ids": []},
                headers=auth)[1]["id"]
    boundary = "----smoke-" + uuid.uuid4().hex
    text = f"# Field notes\n\n{SENTENCE}\n\nNothing else happened on the island that week.\n".encode()
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="notes/island.md"\r\n'
            f"Content-Type: text/markdown\r\n\r\n").encode() + text + f"\r\n--{boundary}--\r\n".encode()
    upload = call(api, "POST", f"/api/v1/repositories/{repo}/items", body=body,
                  headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})[1]
    check(upload.get("total_succeeded") == 1, "dokko-api: a file uploaded to S3", upload)
    call(api, "POST", f"/api/v1/document-sources/{source}/process", headers=auth)
    deadline, status = time.time() + 180, {}
    while time.time() < deadline:
        status = call(api, "GET", f"/api/v1/document-sources/{source}/process/status", headers=auth)[1]
        if status.get("status") != "RUNNING":
            break
        time.sleep(0.5)
    check(status.get("statistics", {}).get("numberOfNewDocumentsIndexed") == 1,
          "dokko-ingest: the file processed (job started through dokko-api)", status)
    query = "how many herring gulls does the lighthouse keeper count"
    answer = call(api, "POST", f"/api/v1/document-sources/{source}/retrieve", {"query": query, "top_k": 3},
                  headers=auth)[1]
    check("forty-two herring gulls" in json.dumps(answer), "dokko-api -> dokko-ingest: the sentence retrieved",
          json.dumps(answer)[:500])
    # The vectors come from the model the image carries, in the background after the job.
    deadline, stats = time.time() + 180, {}
    while time.time() < deadline:
        stats = call(api, "GET", f"/api/v1/document-sources/{source}/process/status", headers=auth)[1]["statistics"]
        if stats.get("chunksToEmbed") == 0:
            break
        time.sleep(0.5)
    answer = call(api, "POST", f"/api/v1/document-sources/{source}/retrieve",
                  {"query": "seabirds counted at sunrise on a remote island", "top_k": 3, "search_type": "SEMANTIC"},
                  headers=auth)[1]
    check(stats.get("chunksToEmbed") == 0 and "forty-two herring gulls" in json.dumps(answer),
          "dokko-ingest: vectors from the model in the image; SEMANTIC retrieval finds the sentence",
          f"{stats} {json.dumps(answer)[:300]}")


# ---------------------------------------------------------------------------------------------


def main():
    images = dict(arg.split("=", 1) for arg in sys.argv[1:])
    missing = {"giistr-tags", "docora-watcher", "dokko-api", "dokko-ingest"} - images.keys()
    if missing:
        sys.exit(f"usage: smoke.py giistr-tags=IMAGE docora-watcher=IMAGE dokko-api=IMAGE dokko-ingest=IMAGE "
                 f"(missing {sorted(missing)})")
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    names = {s: f"smoke-{s}" for s in images}
    for name in names.values():
        podman("rm", "--force", "--ignore", name, check_rc=False)
    t0 = time.time()
    stand_ins, pg = [], None
    try:
        log("starting PostgreSQL, the S3 server and the fake GitHub (cargo run -p testkit)")
        pg = Postgres()
        s3 = Process("s3-server", ["-p", "testkit", "--bin", "s3-server", "--", str(WORK / "s3")])
        stand_ins.append(s3)
        github = Process("fake-github", ["-p", "testkit", "--bin", "fake-github", "--", "1", "--client-auth-key",
                                         CLIENT_AUTH_KEY])
        stand_ins.append(github)
        s3_env = {k: s3.value(k) for k in ("S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_REGION")}
        github_api, git_base, webhook_url = github.value("GITHUB_API_URL"), github.value("GIT_BASE_URL"), github.value("WEBHOOK_URL")
        token = github.value("TOKEN")
        log(f"stand-ins up in {time.time() - t0:.0f} s: {pg.url}, {s3_env['S3_ENDPOINT']}, GitHub {github_api}, git {git_base}")

        common = {"DATABASE_URL": pg.url, "LOG_FORMAT": "json", "RUST_LOG": "info", "SHUTDOWN_TIMEOUT_SECS": "10"}
        local = {
            "giistr-tags": {"GITHUB_API_URL": github_api},
            "docora-watcher": {"GITHUB_API_URL": github_api, "GIT_BASE_URL": git_base, "ENCRYPTION_KEY": ENCRYPTION_KEY,
                               "ALLOW_HTTP_WEBHOOKS": "true", "ALLOW_PRIVATE_WEBHOOKS": "true",
                               "WORKER_POLL_MILLIS": "200"},
            "dokko-api": {**s3_env, "S3_PATH_STYLE": "true", "JWT_SECRET": JWT_SECRET,
                          "INTERNAL_TOKEN_SECRET": INTERNAL_SECRET, "PUBLIC_URL": f"http://127.0.0.1:{PORTS['dokko-api']}",
                          "INGEST_URL": f"http://127.0.0.1:{PORTS['dokko-ingest']}"},
            "dokko-ingest": {**s3_env, "S3_PATH_STYLE": "true", "INTERNAL_TOKEN_SECRET": INTERNAL_SECRET,
                             "DOKKO_API_URL": f"http://127.0.0.1:{PORTS['dokko-api']}"},
        }
        for service, image in images.items():
            env = {**configmap(service), **common, **local[service],
                   "LISTEN_ADDR": f"127.0.0.1:{PORTS[service]}"}
            write_env(service, env)

        t1 = time.time()
        for service in ("giistr-tags", "docora-watcher", "dokko-api", "dokko-ingest"):
            podman("run", "--detach", "--name", names[service], *run_args(service, images[service]))
        for service in ("giistr-tags", "docora-watcher", "dokko-api", "dokko-ingest"):
            up = ready(PORTS[service], 180)
            check(up, f"{service}: GET /readyz 200 ({time.time() - t1:.1f} s after start)",
                  podman("logs", "--tail", "20", names[service], check_rc=False).stderr[-2000:])
            if up:
                container_checks(service, names[service])

        for what, flow in (("giistr-tags", lambda: flow_giistr(token)),
                           ("docora-watcher", lambda: flow_docora(images["docora-watcher"], github, webhook_url)),
                           ("dokko", lambda: flow_dokko(images["dokko-api"]))):
            t2 = time.time()
            try:
                flow()
                log(f"{what} flow in {time.time() - t2:.1f} s")
            except Exception as e:  # noqa: BLE001 - one failed flow must not hide the others
                check(False, f"{what} flow", str(e)[-2000:])

        for service in ("giistr-tags", "docora-watcher", "dokko-api", "dokko-ingest"):
            t3 = time.time()
            podman("kill", "--signal", "TERM", names[service], check_rc=False)
            code = podman("wait", names[service], check_rc=False).stdout.strip()
            took = time.time() - t3
            check(code == "0" and took < 30, f"{service}: SIGTERM -> exit {code} in {took:.1f} s",
                  podman("logs", "--tail", "10", names[service], check_rc=False).stderr[-1500:])
    finally:
        for service, name in names.items():
            logs = podman("logs", name, check_rc=False)
            (WORK / f"{service}.container.log").write_text(logs.stdout + logs.stderr)
            podman("rm", "--force", "--ignore", name, check_rc=False)
        for p in stand_ins:
            p.stop()
        # The git server's repositories (a temporary folder its process, killed, leaves behind).
        if (m := re.search(r"(/\S*/testkit-git-[0-9a-f]+)/", (WORK / "fake-github.log").read_text())):
            shutil.rmtree(m.group(1), ignore_errors=True)
        if pg:
            pg.stop()
    log(f"smoke test in {time.time() - t0:.0f} s (logs in {WORK})")
    print(f"smoke: {passed} passed, {failed} failed")
    if failed:
        sys.exit(1)
    shutil.rmtree(WORK / "s3", ignore_errors=True)
    shutil.rmtree(WORK / "postgres", ignore_errors=True)


if __name__ == "__main__":
    main()
