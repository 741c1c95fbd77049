//! A fake GitHub REST API on a loopback port, answering the endpoints our services call with
//! GitHub's JSON shapes, status codes and rate-limit headers.
//!
//! State lives in memory and tests shape it: users and their tokens, repositories (public or
//! private, with collaborators), stars. Tests can also make it answer as if rate-limited or
//! failing, and count the calls it received.
//!
//! Endpoints: `GET /user`, `GET /user/starred`, `GET /repos/{owner}/{repo}`,
//! `GET /repositories/{id}`, `GET /rate_limit`. Tokens are accepted as `token X` or `Bearer X`.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Every call gets GitHub's rate-limit answer (403, `x-ratelimit-remaining: 0`).
    RateLimited,
    /// Every call gets a 502.
    Failing,
}

#[derive(Debug, Clone)]
struct User {
    id: u64,
    login: String,
}

#[derive(Debug, Clone)]
struct Repo {
    id: u64,
    owner: String,
    owner_id: u64,
    name: String,
    private: bool,
    default_branch: String,
    collaborators: HashSet<u64>,
}

#[derive(Debug)]
struct State {
    next_id: u64,
    users: HashMap<u64, User>,
    tokens: HashMap<String, u64>,
    repos: Vec<Repo>,
    stars: HashMap<u64, Vec<u64>>,
    mode: Mode,
    calls: Vec<String>,
    remaining: HashMap<String, u32>,
}

const RATE_LIMIT: u32 = 5000;

/// A running fake GitHub. Stopped when dropped.
pub struct FakeGithub {
    url: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl FakeGithub {
    /// Starts the fake on `127.0.0.1:<free port>`.
    pub fn start() -> FakeGithub {
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            users: HashMap::new(),
            tokens: HashMap::new(),
            repos: Vec::new(),
            stars: HashMap::new(),
            mode: Mode::Normal,
            calls: Vec::new(),
            remaining: HashMap::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let data = web::Data::from(state.clone());
        let (handle, thread) = crate::server::spawn_stand_in(listener, move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(data.clone())
                .route("/user", web::get().to(get_user))
                .route("/user/starred", web::get().to(get_starred))
                .route("/repos/{owner}/{repo}", web::get().to(get_repo))
                .route("/repositories/{id}", web::get().to(get_repo_by_id))
                .route("/rate_limit", web::get().to(get_rate_limit))
                .default_service(web::to(not_found));
        })
        .expect("fake GitHub started");
        FakeGithub { url, state, handle, thread: Some(thread) }
    }

    /// The API base URL, for `GITHUB_API_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a user and returns `(github user id, a token for them)`.
    pub fn add_user(&self, login: &str) -> (u64, String) {
        let mut s = self.lock();
        s.next_id += 1;
        let id = s.next_id;
        s.users.insert(id, User { id, login: login.to_owned() });
        drop(s);
        (id, self.add_token(id))
    }

    /// A new token for an existing user.
    pub fn add_token(&self, user_id: u64) -> String {
        let mut s = self.lock();
        s.next_id += 1;
        let token = format!("ghp_fake{:032x}", u128::from(s.next_id) * 0x9e37_79b9_7f4a_7c15 + u128::from(user_id));
        s.tokens.insert(token.clone(), user_id);
        token
    }

    /// Makes a token invalid, as when a user revokes it.
    pub fn revoke(&self, token: &str) {
        self.lock().tokens.remove(token);
    }

    /// Adds a repository owned by `owner_id` and returns its GitHub id.
    pub fn add_repo(&self, owner_id: u64, name: &str, private: bool) -> u64 {
        let mut s = self.lock();
        s.next_id += 1;
        let id = s.next_id;
        let owner = s.users.get(&owner_id).map(|u| u.login.clone()).unwrap_or_else(|| format!("user{owner_id}"));
        s.repos.push(Repo {
            id,
            owner,
            owner_id,
            name: name.to_owned(),
            private,
            default_branch: "main".to_owned(),
            collaborators: HashSet::new(),
        });
        id
    }

    /// Sets a repository's default branch.
    pub fn set_default_branch(&self, repo_id: u64, branch: &str) {
        if let Some(r) = self.lock().repos.iter_mut().find(|r| r.id == repo_id) {
            r.default_branch = branch.to_owned();
        }
    }

    /// Lets `user_id` see a private repository.
    pub fn grant(&self, repo_id: u64, user_id: u64) {
        if let Some(r) = self.lock().repos.iter_mut().find(|r| r.id == repo_id) {
            r.collaborators.insert(user_id);
        }
    }

    /// `user_id` stars `repo_id`.
    pub fn star(&self, user_id: u64, repo_id: u64) {
        self.lock().stars.entry(user_id).or_default().push(repo_id);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    /// How many calls were made to `path` (exact path, without query).
    pub fn calls_to(&self, path: &str) -> usize {
        self.lock().calls.iter().filter(|c| c.as_str() == path).count()
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Shared = web::Data<Mutex<State>>;

fn token_of(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")).then(|| token.trim().to_owned())
}

fn github_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": status.as_u16().to_string(),
    }))
}

/// Records the call, applies the mode, resolves the token. `Err` is the answer to send.
#[allow(clippy::result_large_err)] // a test server; the response is the natural error here
fn begin(state: &Shared, req: &HttpRequest, require_token: bool) -> Result<(Option<u64>, u32), HttpResponse> {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.calls.push(req.path().to_owned());
    let token = token_of(req);
    let reset = time_now() + 3600;
    match s.mode {
        Mode::Failing => return Err(github_error(StatusCode::BAD_GATEWAY, "Server Error")),
        Mode::RateLimited => {
            let mut res = github_error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
            );
            let h = res.headers_mut();
            for (k, v) in rate_headers(0, reset) {
                h.insert(k, v);
            }
            return Err(res);
        }
        Mode::Normal => {}
    }
    let user = match &token {
        Some(t) => match s.tokens.get(t) {
            Some(id) => Some(*id),
            None => return Err(github_error(StatusCode::UNAUTHORIZED, "Bad credentials")),
        },
        None if require_token => {
            return Err(github_error(StatusCode::UNAUTHORIZED, "Requires authentication"));
        }
        None => None,
    };
    let key = token.unwrap_or_else(|| "anonymous".to_owned());
    let remaining = s.remaining.entry(key).or_insert(RATE_LIMIT);
    *remaining = remaining.saturating_sub(1);
    Ok((user, *remaining))
}

fn time_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn rate_headers(
    remaining: u32,
    reset: u64,
) -> Vec<(actix_web::http::header::HeaderName, actix_web::http::header::HeaderValue)> {
    use actix_web::http::header::{HeaderName, HeaderValue};
    let pairs = [
        ("x-ratelimit-limit", RATE_LIMIT.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-used", (RATE_LIMIT - remaining).to_string()),
        ("x-ratelimit-resource", "core".to_owned()),
    ];
    pairs.into_iter().filter_map(|(k, v)| Some((HeaderName::from_static(k), HeaderValue::from_str(&v).ok()?))).collect()
}

fn ok_json(body: Value, remaining: u32) -> HttpResponse {
    let mut res = HttpResponse::Ok().json(body);
    let h = res.headers_mut();
    for (k, v) in rate_headers(remaining, time_now() + 3600) {
        h.insert(k, v);
    }
    res
}

fn user_json(u: &User) -> Value {
    json!({
        "login": u.login,
        "id": u.id,
        "node_id": format!("MDQ6VXNlcj{}", u.id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", u.id),
        "gravatar_id": "",
        "url": format!("https://api.github.com/users/{}", u.login),
        "html_url": format!("https://github.com/{}", u.login),
        "repos_url": format!("https://api.github.com/users/{}/repos", u.login),
        "type": "User",
        "site_admin": false,
        "name": u.login,
        "company": null,
        "blog": "",
        "location": null,
        "email": null,
        "hireable": null,
        "bio": null,
        "public_repos": 0,
        "followers": 0,
        "following": 0,
        "created_at": "2011-01-25T18:44:36Z",
        "updated_at": "2024-01-01T00:00:00Z"
    })
}

fn repo_json(r: &Repo) -> Value {
    let full = format!("{}/{}", r.owner, r.name);
    json!({
        "id": r.id,
        "node_id": format!("R_kgDO{}", r.id),
        "name": r.name,
        "full_name": full,
        "private": r.private,
        "visibility": if r.private { "private" } else { "public" },
        "owner": {
            "login": r.owner, "id": r.owner_id, "node_id": format!("MDQ6VXNlcj{}", r.owner_id),
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", r.owner_id),
            "gravatar_id": "", "url": format!("https://api.github.com/users/{}", r.owner),
            "html_url": format!("https://github.com/{}", r.owner), "type": "User", "site_admin": false
        },
        "html_url": format!("https://github.com/{full}"),
        "description": null,
        "fork": false,
        "url": format!("https://api.github.com/repos/{full}"),
        "clone_url": format!("https://github.com/{full}.git"),
        "git_url": format!("git://github.com/{full}.git"),
        "ssh_url": format!("git@github.com:{full}.git"),
        "default_branch": r.default_branch,
        "archived": false,
        "disabled": false,
        "size": 1,
        "stargazers_count": 0,
        "watchers_count": 0,
        "forks_count": 0,
        "open_issues_count": 0,
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "pushed_at": "2024-01-01T00:00:00Z"
    })
}

fn visible(r: &Repo, user: Option<u64>) -> bool {
    !r.private || user.is_some_and(|u| u == r.owner_id || r.collaborators.contains(&u))
}

async fn get_user(state: Shared, req: HttpRequest) -> HttpResponse {
    let (user, remaining) = match begin(&state, &req, true) {
        Ok(v) => v,
        Err(res) => return res,
    };
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    match user.and_then(|id| s.users.get(&id)) {
        Some(u) => ok_json(user_json(u), remaining),
        None => github_error(StatusCode::UNAUTHORIZED, "Bad credentials"),
    }
}

async fn get_starred(state: Shared, req: HttpRequest) -> HttpResponse {
    let (user, remaining) = match begin(&state, &req, true) {
        Ok(v) => v,
        Err(res) => return res,
    };
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    let starred = user.and_then(|u| s.stars.get(&u)).cloned().unwrap_or_default();
    let repos: Vec<Value> = starred
        .iter()
        .filter_map(|id| s.repos.iter().find(|r| r.id == *id && visible(r, user)))
        .map(repo_json)
        .collect();
    ok_json(Value::Array(repos), remaining)
}

async fn get_repo(state: Shared, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (user, remaining) = match begin(&state, &req, false) {
        Ok(v) => v,
        Err(res) => return res,
    };
    let (owner, name) = path.into_inner();
    let name = name.strip_suffix(".git").unwrap_or(&name).to_owned();
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    match s.repos.iter().find(|r| r.owner.eq_ignore_ascii_case(&owner) && r.name.eq_ignore_ascii_case(&name)) {
        Some(r) if visible(r, user) => ok_json(repo_json(r), remaining),
        _ => github_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn get_repo_by_id(state: Shared, req: HttpRequest, path: web::Path<u64>) -> HttpResponse {
    let (user, remaining) = match begin(&state, &req, false) {
        Ok(v) => v,
        Err(res) => return res,
    };
    let id = path.into_inner();
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    match s.repos.iter().find(|r| r.id == id) {
        Some(r) if visible(r, user) => ok_json(repo_json(r), remaining),
        _ => github_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn get_rate_limit(state: Shared, req: HttpRequest) -> HttpResponse {
    let (_, remaining) = match begin(&state, &req, false) {
        Ok(v) => v,
        Err(res) => return res,
    };
    let core = json!({"limit": RATE_LIMIT, "remaining": remaining, "reset": time_now() + 3600, "used": RATE_LIMIT - remaining});
    ok_json(json!({"resources": {"core": core}, "rate": core}), remaining)
}

async fn not_found() -> HttpResponse {
    github_error(StatusCode::NOT_FOUND, "Not Found")
}
