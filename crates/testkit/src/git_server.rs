//! Real git repositories served over git's smart HTTP protocol on a loopback port, laid out like
//! GitHub (`{url}/{owner}/{name}.git`, or without `.git`), with GitHub-style token checks.
//!
//! Each request is handed to `git http-backend` (CGI), so clients talk to real git. Only reads
//! (`git-upload-pack`: clone, fetch, ls-remote) are served; pushes over HTTP are refused with 403.
//! Tests change repositories through a [`GitRepo`] handle: write files in its work tree and
//! [`GitRepo::commit`], which pushes to the served bare repository through the filesystem.
//!
//! Auth, like GitHub: public repositories are readable anonymously (credentials are ignored);
//! private ones need HTTP Basic auth whose password is a token allowed for that repository (any
//! user name, e.g. `x-access-token`). No credentials, or a wrong token, get a 401 with
//! `WWW-Authenticate: Basic realm="git"`; an unknown repository gets a 404.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AUTHOR_NAME: &str = "Testkit";
const AUTHOR_EMAIL: &str = "testkit@example.com";

/// One HTTP request the server received. The token itself is never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    pub method: String,
    /// The path without the query, e.g. `/octo/repo.git/info/refs`.
    pub path: String,
    pub query: String,
    /// Whether an `Authorization` header was sent.
    pub had_auth: bool,
    pub status: u16,
}

#[derive(Debug)]
struct RepoState {
    owner: String,
    name: String,
    private: bool,
    tokens: HashSet<String>,
    fetches: usize,
    advertisements: usize,
}

#[derive(Debug, Default)]
struct State {
    repos: HashMap<String, RepoState>,
    failing: bool,
    requests: Vec<RequestLog>,
}

#[derive(Debug)]
struct Shared {
    /// The temporary directory holding everything below.
    root: PathBuf,
    /// Bare repositories, `{owner}/{name}.git`: `GIT_PROJECT_ROOT`.
    repos: PathBuf,
    /// Work trees tests commit in, `{owner}/{name}`.
    work: PathBuf,
    /// `HOME` for every git process, so the user's configuration does not matter.
    home: PathBuf,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key(owner: &str, name: &str) -> String {
    format!("{}/{}", owner.to_ascii_lowercase(), name.to_ascii_lowercase())
}

/// A running git server. Stopped when dropped, and its repositories removed.
pub struct GitServer {
    url: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    scratch: std::sync::atomic::AtomicUsize,
}

impl GitServer {
    /// Starts the server on `127.0.0.1:<free port>` with no repositories, under a fresh
    /// temporary directory.
    pub fn start() -> anyhow::Result<GitServer> {
        let root = std::env::temp_dir().join(format!("testkit-git-{}", uuid::Uuid::new_v4().simple()));
        let shared = Arc::new(Shared {
            repos: root.join("repos"),
            work: root.join("work"),
            home: root.join("home"),
            root,
            state: Mutex::new(State::default()),
        });
        for dir in [&shared.repos, &shared.work, &shared.home] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let data = web::Data::from(shared.clone());
        // A client that gives up closes its side: its handler goes, and its `git http-backend` with it.
        let started = crate::server::spawn_stand_in(listener, move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(data.clone()).default_service(web::to(serve));
        });
        let (handle, thread) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&shared.root);
                return Err(e);
            }
        };
        Ok(GitServer { url, shared, handle, thread: Some(thread), scratch: Default::default() })
    }

    /// The base URL, `http://127.0.0.1:<port>`; repositories are at `{url}/{owner}/{name}.git`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Creates an empty public repository (default branch `main`) and its work tree. Owner and
    /// name may hold letters, digits, `-`, `_` and `.` (`my.repo` works); they are matched
    /// case-insensitively in URLs, as on GitHub.
    pub fn create_repo(&self, owner: &str, name: &str) -> anyhow::Result<GitRepo> {
        for part in [owner, name] {
            let ok = !part.is_empty()
                && part != "."
                && part != ".."
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok {
                bail!("not a usable repository owner or name: {part:?}");
            }
        }
        if name.to_ascii_lowercase().ends_with(".git") {
            bail!("a repository name cannot end with .git: {name:?}");
        }
        if self.lock().repos.contains_key(&key(owner, name)) {
            bail!("repository {owner}/{name} already exists");
        }
        let home = &self.shared.home;
        let bare = self.shared.repos.join(owner).join(format!("{name}.git"));
        let work = self.shared.work.join(owner).join(name);
        std::fs::create_dir_all(&bare)?;
        std::fs::create_dir_all(&work)?;
        run_git(home, &bare, &["init", "-q", "--bare", "--initial-branch=main"])?;
        // What GitHub allows: partial clones and fetching any reachable commit.
        run_git(home, &bare, &["config", "uploadpack.allowFilter", "true"])?;
        run_git(home, &bare, &["config", "uploadpack.allowReachableSHA1InWant", "true"])?;
        run_git(home, &work, &["init", "-q", "--initial-branch=main"])?;
        let bare_str = bare.to_str().context("a UTF-8 temporary path")?;
        run_git(home, &work, &["remote", "add", "origin", bare_str])?;
        self.lock().repos.insert(
            key(owner, name),
            RepoState {
                owner: owner.to_owned(),
                name: name.to_owned(),
                private: false,
                tokens: HashSet::new(),
                fetches: 0,
                advertisements: 0,
            },
        );
        Ok(GitRepo {
            owner: owner.to_owned(),
            name: name.to_owned(),
            url: format!("{}/{owner}/{name}.git", self.url),
            work,
            bare,
            home: home.clone(),
        })
    }

    fn with_repo<T>(&self, owner: &str, name: &str, f: impl FnOnce(&mut RepoState) -> T) -> T {
        let mut s = self.lock();
        match s.repos.get_mut(&key(owner, name)) {
            Some(r) => f(r),
            None => panic!("git server: no repository {owner}/{name} (create it with create_repo first)"),
        }
    }

    /// Makes a repository private (readable only with an allowed token) or public again.
    /// Panics if the repository does not exist.
    pub fn set_private(&self, owner: &str, name: &str, private: bool) {
        self.with_repo(owner, name, |r| r.private = private);
    }

    /// Lets `token` read the (private) repository. Panics if the repository does not exist.
    pub fn allow_token(&self, owner: &str, name: &str, token: &str) {
        self.with_repo(owner, name, |r| {
            r.tokens.insert(token.to_owned());
        });
    }

    /// Takes `token` away from every repository, as when a user revokes it.
    pub fn revoke_token(&self, token: &str) {
        for r in self.lock().repos.values_mut() {
            r.tokens.remove(token);
        }
    }

    /// While `failing`, every request gets a 500.
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }

    /// How many `POST git-upload-pack` requests were served for the repository: the
    /// negotiations of clones and fetches. With protocol v2 (git's default) a clone makes two
    /// (`ls-refs`, then `fetch`) and a fetch that finds nothing new makes one (`ls-refs`); with
    /// protocol v0 a clone makes one and a fetch that finds nothing new none.
    pub fn fetches(&self, owner: &str, name: &str) -> usize {
        self.lock().repos.get(&key(owner, name)).map_or(0, |r| r.fetches)
    }

    /// How many git operations (clone, fetch, ls-remote) were served for the repository: one
    /// `GET info/refs?service=git-upload-pack` each, whatever the protocol version. Requests
    /// refused (401, 500) are not counted.
    pub fn advertisements(&self, owner: &str, name: &str) -> usize {
        self.lock().repos.get(&key(owner, name)).map_or(0, |r| r.advertisements)
    }

    /// Every request received, in the order they were answered.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.lock().requests.clone()
    }

    /// A `git` command isolated from the user's configuration (`HOME` in the server's
    /// temporary directory, no system config, fixed identity, no prompts), for tests that run
    /// git as a client. Set the working directory and arguments.
    pub fn git_command(&self) -> Command {
        git_command(&self.shared.home, &self.shared.root)
    }

    /// A new empty directory under the server's temporary directory (removed on drop), e.g. to
    /// clone into.
    pub fn scratch_dir(&self) -> anyhow::Result<PathBuf> {
        let n = self.scratch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.shared.root.join("scratch").join(n.to_string());
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.shared.root);
    }
}

/// `Basic <base64("x-access-token:<token>")>`: the `Authorization` value GitHub accepts for git
/// over HTTPS, and this server too.
pub fn basic_auth(token: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("x-access-token:{token}")))
}

/// The `http.extraHeader` value that sends `token` without putting it in the URL:
/// `git -c http.extraHeader="<this>" clone <url>`.
pub fn auth_header(token: &str) -> String {
    format!("Authorization: {}", basic_auth(token))
}

fn git_command(home: &Path, dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
        .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
        .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
        .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C");
    c
}

fn run_git(home: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = git_command(home, dir).args(args).stdin(Stdio::null()).output().context("running git")?;
    if !out.status.success() {
        bail!(
            "git {} (in {}) failed with {}: {}{}",
            args.join(" "),
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A repository on a [`GitServer`]: the served bare repository and a work tree tests commit in.
/// Valid while its server runs.
#[derive(Debug, Clone)]
pub struct GitRepo {
    owner: String,
    name: String,
    url: String,
    work: PathBuf,
    bare: PathBuf,
    home: PathBuf,
}

impl GitRepo {
    /// The clone URL, `{server url}/{owner}/{name}.git`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The work tree tests commit in.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// The bare repository the server serves.
    pub fn bare_dir(&self) -> &Path {
        &self.bare
    }

    fn path_in_tree(&self, path: &str) -> PathBuf {
        let rel = Path::new(path);
        let sane = !path.is_empty()
            && rel.components().all(|c| matches!(c, std::path::Component::Normal(_)))
            && rel.components().next().is_none_or(|c| c.as_os_str() != ".git");
        assert!(sane, "not a relative path inside the work tree: {path:?}");
        self.work.join(rel)
    }

    /// Writes a file into the work tree (creating its folders). Panics on I/O errors.
    pub fn write(&self, path: &str, bytes: &[u8]) -> &Self {
        let full = self.path_in_tree(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
        }
        std::fs::write(&full, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", full.display()));
        self
    }

    /// Removes a file or folder from the work tree. Panics when it does not exist.
    pub fn remove(&self, path: &str) -> &Self {
        let full = self.path_in_tree(path);
        let res = if full.is_dir() { std::fs::remove_dir_all(&full) } else { std::fs::remove_file(&full) };
        res.unwrap_or_else(|e| panic!("removing {}: {e}", full.display()));
        self
    }

    /// Runs git in the work tree with the kit's isolated environment and returns its stdout.
    pub fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        run_git(&self.home, &self.work, args)
    }

    /// `git add -A` and commit everything in the work tree (an empty commit if nothing
    /// changed), then push the work tree's branch (`main` unless [`GitRepo::switch_branch`] or
    /// [`GitRepo::set_default_branch`] changed it) to the same branch of the served repository,
    /// forced, so rewritten history is pushed too. Returns the commit sha.
    pub fn commit(&self, message: &str) -> anyhow::Result<String> {
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "--allow-empty", "--no-gpg-sign", "-m", message])?;
        let branch = self.git(&["symbolic-ref", "--short", "HEAD"])?;
        self.git(&["push", "-q", "--force", "origin", &format!("HEAD:refs/heads/{branch}")])?;
        self.git(&["rev-parse", "HEAD"])
    }

    /// The commit the served repository's default branch (its `HEAD`) points at, or an empty
    /// string while it has no commits.
    pub fn head(&self) -> String {
        run_git(&self.home, &self.bare, &["rev-parse", "--verify", "-q", "HEAD"]).unwrap_or_default()
    }

    /// Switches the work tree to `branch`, created from the current commit if needed; later
    /// commits go to that branch (the default branch does not change).
    pub fn switch_branch(&self, branch: &str) -> anyhow::Result<()> {
        let exists = self.git(&["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}")]).is_ok();
        if exists {
            self.git(&["checkout", "-q", branch])?;
        } else if self.git(&["rev-parse", "--verify", "-q", "HEAD"]).is_ok() {
            self.git(&["checkout", "-q", "-b", branch])?;
        } else {
            self.git(&["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")])?;
        }
        Ok(())
    }

    /// Makes `branch` the served repository's default branch (its `HEAD`, what clones check
    /// out): creates it from the work tree's current commit if needed, pushes it, and switches
    /// the work tree to it. The fake GitHub API's default branch is separate
    /// (`FakeGithub::set_default_branch`).
    pub fn set_default_branch(&self, branch: &str) -> anyhow::Result<()> {
        self.switch_branch(branch)?;
        if self.git(&["rev-parse", "--verify", "-q", "HEAD"]).is_ok() {
            self.git(&["push", "-q", "--force", "origin", &format!("HEAD:refs/heads/{branch}")])?;
        }
        run_git(&self.home, &self.bare, &["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")])?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

fn plain(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(format!("{message}\n"))
}

fn unauthorized(message: &str) -> HttpResponse {
    let mut res = plain(StatusCode::UNAUTHORIZED, message);
    res.headers_mut()
        .insert(actix_web::http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"git\""));
    res
}

/// `(user, password)` from `Authorization: Basic …`.
fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get("authorization")?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// What a request asks for, once its repository is known.
struct Target {
    owner: String,
    name: String,
    tail: &'static str,
    user: Option<String>,
}

async fn serve(shared: web::Data<Shared>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let res = match route(&shared, &req) {
        Ok(target) => match cgi(&shared, &req, payload, target).await {
            Ok(res) => res,
            Err(e) => {
                tracing::warn!("git http-backend failed: {e:#}");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "git http-backend failed")
            }
        },
        Err(res) => res,
    };
    shared.lock().requests.push(RequestLog {
        method: req.method().as_str().to_owned(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        had_auth: req.headers().contains_key("authorization"),
        status: res.status().as_u16(),
    });
    res
}

/// Applies the failure switch, finds the repository, refuses writes and checks the token.
#[allow(clippy::result_large_err)] // a test server; the response is the natural error here
fn route(shared: &Shared, req: &HttpRequest) -> Result<Target, HttpResponse> {
    let mut s = shared.lock();
    if s.failing {
        return Err(plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error (failing on purpose)"));
    }
    let not_found = || plain(StatusCode::NOT_FOUND, "Repository not found.");
    let path = req.path().trim_start_matches('/');
    let (owner, rest) = path.split_once('/').ok_or_else(not_found)?;
    let (name, tail) = rest.split_once('/').ok_or_else(not_found)?;
    let name = name.strip_suffix(".git").unwrap_or(name);
    let Some(repo) = s.repos.get_mut(&key(owner, name)) else {
        return Err(not_found());
    };
    let query = req.query_string();
    let post = req.method() == actix_web::http::Method::POST;
    let get = req.method() == actix_web::http::Method::GET;
    let tail: &'static str = match tail {
        "info/refs" => match query_param(query, "service") {
            Some("git-upload-pack") if get => "info/refs",
            Some("git-receive-pack") => return Err(plain(StatusCode::FORBIDDEN, "Pushing over HTTP is not served.")),
            Some(_) => return Err(plain(StatusCode::FORBIDDEN, "Unknown service.")),
            None => return Err(plain(StatusCode::FORBIDDEN, "The dumb HTTP protocol is not served.")),
        },
        "git-upload-pack" if post => "git-upload-pack",
        "git-upload-pack" => return Err(plain(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")),
        "git-receive-pack" => return Err(plain(StatusCode::FORBIDDEN, "Pushing over HTTP is not served.")),
        _ => return Err(not_found()),
    };
    let credentials = basic_credentials(req);
    if repo.private {
        match &credentials {
            None => return Err(unauthorized("Authentication required.")),
            Some((_, token)) if !repo.tokens.contains(token) => {
                return Err(unauthorized("Invalid username or token."));
            }
            Some(_) => {}
        }
    }
    if tail == "info/refs" {
        repo.advertisements += 1;
    } else {
        repo.fetches += 1;
    }
    Ok(Target { owner: repo.owner.clone(), name: repo.name.clone(), tail, user: credentials.map(|(user, _)| user) })
}

/// Runs `git http-backend` for the request: the body streams to its stdin, its CGI headers
/// become the response's, the rest of its stdout streams back.
async fn cgi(
    shared: &Shared,
    req: &HttpRequest,
    mut payload: web::Payload,
    target: Target,
) -> anyhow::Result<HttpResponse> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .current_dir(&shared.repos)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()))
        .env("HOME", &shared.home)
        .env("XDG_CONFIG_HOME", shared.home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &shared.repos)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", req.method().as_str())
        .env("PATH_INFO", format!("/{}/{}.git/{}", target.owner, target.name, target.tail))
        .env("QUERY_STRING", req.query_string())
        .env("REMOTE_ADDR", req.peer_addr().map_or_else(|| "127.0.0.1".to_owned(), |a| a.ip().to_string()));
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    for (http, cgi) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-length", "CONTENT_LENGTH"),
        // git gzips large request bodies; http-backend inflates them itself.
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        // `version=2` selects protocol v2, as git clients ask.
        ("git-protocol", "HTTP_GIT_PROTOCOL"),
    ] {
        if let Some(v) = header(http) {
            cmd.env(cgi, v);
        }
    }
    if let Some(user) = &target.user {
        cmd.env("REMOTE_USER", user);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting git http-backend")?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        bail!("git http-backend without pipes");
    };
    actix_web::rt::spawn(async move {
        while let Some(chunk) = payload.next().await {
            let Ok(chunk) = chunk else { break };
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // Dropping stdin closes it: the end of the request body.
    });
    actix_web::rt::spawn(async move {
        let mut err = Vec::new();
        let _ = stderr.read_to_end(&mut err).await;
        if !err.is_empty() {
            tracing::debug!("git http-backend: {}", String::from_utf8_lossy(&err).trim());
        }
    });

    // The CGI headers end at the first empty line.
    let mut head = Vec::new();
    let (head_len, body_start) = loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break (i, i + 4);
        }
        if let Some(i) = head.windows(2).position(|w| w == b"\n\n") {
            break (i, i + 2);
        }
        let mut buf = [0u8; 8192];
        let n = stdout.read(&mut buf).await?;
        if n == 0 {
            let status = child.wait().await?;
            bail!("git http-backend ended ({status}) before its headers: {:?}", String::from_utf8_lossy(&head));
        }
        head.extend_from_slice(&buf[..n]);
    };
    let rest = head.split_off(body_start);
    head.truncate(head_len);

    let mut status = StatusCode::OK;
    let mut res = HttpResponse::Ok();
    for line in String::from_utf8_lossy(&head).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse::<u16>().ok());
            status = code.and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::BAD_GATEWAY);
        } else if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding") {
            // The body is streamed; actix frames it.
        } else if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value)) {
            res.append_header((n, v));
        }
    }
    res.status(status);

    let body = futures_util::stream::unfold(Some((rest, stdout, child)), |state| async move {
        let (rest, mut stdout, mut child) = state?;
        if !rest.is_empty() {
            return Some((Ok(Bytes::from(rest)), Some((Vec::new(), stdout, child))));
        }
        let mut buf = vec![0u8; 64 * 1024];
        match stdout.read(&mut buf).await {
            Ok(0) => {
                let _ = child.wait().await;
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some((Vec::new(), stdout, child))))
            }
            Err(e) => Some((Err::<Bytes, std::io::Error>(e), None)),
        }
    });
    Ok(res.streaming(body))
}
