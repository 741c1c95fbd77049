//! git, as scans and deliveries use it: one bare clone per repository under `GIT_WORK_DIR`,
//! fetched one branch or commit at a time (shallow: a scan compares trees, not history), the
//! files of a commit listed with their blob ids and sizes, and blobs read.
//!
//! Each replica keeps its own clones (its own `GIT_WORK_DIR`): a delivery whose blob this replica
//! has not fetched yet (another replica scanned the commit) fetches the event's commit first
//! ([`Git::ensure_blob`]). Writes to a clone (creating, fetching, removing it) are serialized per
//! clone folder within the process, so a scan and deliveries never fetch into one clone at once;
//! reading while a fetch runs is safe.
//!
//! A GitHub token reaches git through `GIT_CONFIG_*` environment variables as an
//! `http.extraHeader`: never in a URL, in `.git/config` or on the command line (the process list).
//! Whatever git prints is scrubbed of the token before it is returned or logged. Every git
//! process has a time limit and is killed when it passes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use tokio::process::Command;
use tokio::sync::{Mutex, MutexGuard};

#[derive(Debug, Clone, thiserror::Error)]
pub enum GitError {
    /// The repository refused the credentials (or needs some).
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("git failed: {0}")]
    Failed(String),
    /// The repository has no such branch (deleted or renamed, or no commit yet).
    #[error("git failed: {0}")]
    NoSuchBranch(String),
    #[error("git took longer than {0:?}")]
    Timeout(Duration),
    #[error("cannot run git: {0}")]
    Spawn(String),
}

/// What to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want<'a> {
    /// The tip of a branch, kept as `refs/heads/<branch>`.
    Branch(&'a str),
    /// One commit by its id, kept as `refs/docora/fetched` (so the next fetch can tell the server
    /// what the clone already has).
    Commit(&'a str),
}

/// Locks over clone folders, striped by path: taken for every write to a clone.
static CLONE_LOCKS: [Mutex<()>; 64] = [const { Mutex::const_new(()) }; 64];

/// A file of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// From the repository root, `/`-separated: the name itself when it is UTF-8, else its
    /// lossless text form ([`escape_path`]).
    pub path: String,
    /// The name's bytes when it is not UTF-8 (git paths are bytes), else `None`.
    pub raw: Option<Vec<u8>>,
    /// git's object id of the content.
    pub blob: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct Git {
    base_url: String,
    work_dir: PathBuf,
    timeout: Duration,
}

impl Git {
    /// Clones from `{base_url}/{owner}/{name}.git` into `work_dir`, each git call limited to
    /// `timeout`.
    pub fn new(base_url: &str, work_dir: PathBuf, timeout: Duration) -> Self {
        Self { base_url: base_url.trim_end_matches('/').to_owned(), work_dir, timeout }
    }

    /// The clone of a repository.
    pub fn clone_dir(&self, repository_id: &str) -> PathBuf {
        self.work_dir.join(format!("{repository_id}.git"))
    }

    /// `git <args>` with a clean environment: no user or system configuration, no prompts, stdin
    /// closed, killed when dropped.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.work_dir)
            .env("LANG", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, dir: Option<&Path>, args: &[&str], token: Option<&str>) -> Result<Vec<u8>, GitError> {
        let mut command = self.command(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        // No automatic gc or maintenance: blobs that pending events still point at must stay.
        let header = token.map(auth_header);
        let mut config = vec![("gc.auto", "0".to_owned()), ("maintenance.auto", "false".to_owned())];
        if let Some(header) = &header {
            config.push(("http.extraHeader", header.clone()));
        }
        command.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (key, value)) in config.iter().enumerate() {
            command.env(format!("GIT_CONFIG_KEY_{i}"), key).env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        let child = command.spawn().map_err(|e| GitError::Spawn(e.to_string()))?;
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| GitError::Timeout(self.timeout))?
            .map_err(|e| GitError::Spawn(e.to_string()))?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let mut said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        for secret in token.into_iter().chain(header.as_deref()) {
            said = said.replace(secret, "***");
        }
        let lower = said.to_ascii_lowercase();
        if lower.contains("couldn't find remote ref") {
            return Err(GitError::NoSuchBranch(said));
        }
        if ["authentication failed", "could not read username", "terminal prompts disabled", "error: 401", "error: 403"]
            .iter()
            .any(|s| lower.contains(s))
        {
            Err(GitError::Auth(said))
        } else {
            Err(GitError::Failed(said))
        }
    }

    /// Holds the lock over a repository's clone (see the module's documentation).
    async fn lock(&self, repository_id: &str) -> MutexGuard<'static, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.clone_dir(repository_id).hash(&mut hasher);
        CLONE_LOCKS[(hasher.finish() % CLONE_LOCKS.len() as u64) as usize].lock().await
    }

    /// Fetches `want` of `owner/name` into the repository's clone (made on first use) and
    /// returns the commit it names.
    pub async fn fetch(
        &self,
        repository_id: &str,
        owner: &str,
        name: &str,
        want: Want<'_>,
        token: Option<&str>,
    ) -> Result<String, GitError> {
        let _clone = self.lock(repository_id).await;
        self.fetch_locked(repository_id, owner, name, want, token).await
    }

    /// [`Git::fetch`] with each of `tokens` in turn until one is accepted (anonymously when
    /// there are none).
    pub async fn fetch_with(
        &self,
        tokens: &[String],
        repository_id: &str,
        owner: &str,
        name: &str,
        want: Want<'_>,
    ) -> Result<String, GitError> {
        let _clone = self.lock(repository_id).await;
        self.fetch_with_locked(tokens, repository_id, owner, name, want).await
    }

    async fn fetch_with_locked(
        &self,
        tokens: &[String],
        repository_id: &str,
        owner: &str,
        name: &str,
        want: Want<'_>,
    ) -> Result<String, GitError> {
        if tokens.is_empty() {
            return self.fetch_locked(repository_id, owner, name, want, None).await;
        }
        let mut last = GitError::Failed("no token worked".into());
        for token in tokens {
            match self.fetch_locked(repository_id, owner, name, want, Some(token)).await {
                Ok(commit) => return Ok(commit),
                Err(e @ GitError::Auth(_)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn fetch_locked(
        &self,
        repository_id: &str,
        owner: &str,
        name: &str,
        want: Want<'_>,
        token: Option<&str>,
    ) -> Result<String, GitError> {
        let dir = self.clone_dir(repository_id);
        if !dir.join("HEAD").exists() {
            tokio::fs::create_dir_all(&self.work_dir).await.map_err(|e| GitError::Spawn(e.to_string()))?;
            let path = dir.to_string_lossy().into_owned();
            self.run(None, &["init", "--quiet", "--bare", &path], None).await?;
        }
        let url = format!("{}/{owner}/{name}.git", self.base_url);
        let local = match want {
            Want::Branch(branch) => format!("refs/heads/{branch}"),
            Want::Commit(_) => "refs/docora/fetched".to_owned(),
        };
        let refspec = match want {
            Want::Branch(_) => format!("+{local}:{local}"),
            Want::Commit(commit) => format!("+{commit}:{local}"),
        };
        self.run(Some(&dir), &["fetch", "--quiet", "--no-tags", "--depth=1", &url, &refspec], token).await?;
        let commit = self.run(Some(&dir), &["rev-parse", "--verify", &format!("{local}^{{commit}}")], None).await?;
        Ok(String::from_utf8_lossy(&commit).trim().to_owned())
    }

    /// Whether the repository's clone holds `object`.
    pub async fn has(&self, repository_id: &str, object: &str) -> bool {
        let dir = self.clone_dir(repository_id);
        if !dir.join("HEAD").exists() {
            return false;
        }
        let mut command = self.command(&["cat-file", "-e", object]);
        command.current_dir(dir).stdout(Stdio::null()).stderr(Stdio::null());
        let status = tokio::time::timeout(self.timeout, command.status()).await;
        matches!(status, Ok(Ok(status)) if status.success())
    }

    /// Makes sure the clone holds `blob`, fetching with `tokens` what `wants` names, in turn,
    /// until one fetch succeeds. Returns whether the clone holds it now, or the last fetch's error
    /// when every fetch failed.
    pub async fn ensure_blob(
        &self,
        tokens: &[String],
        repository_id: &str,
        owner: &str,
        name: &str,
        blob: &str,
        wants: &[Want<'_>],
    ) -> Result<bool, GitError> {
        if self.has(repository_id, blob).await {
            return Ok(true);
        }
        let _clone = self.lock(repository_id).await;
        // Another task may have fetched it while this one waited for the lock.
        if self.has(repository_id, blob).await {
            return Ok(true);
        }
        let mut error = None;
        for want in wants {
            match self.fetch_with_locked(tokens, repository_id, owner, name, *want).await {
                Ok(_) if self.has(repository_id, blob).await => return Ok(true),
                // The repository answered: the blob is not in what it has now.
                Ok(_) => return Ok(false),
                Err(e) => error = Some(e),
            }
        }
        error.map_or(Ok(false), Err)
    }

    /// Every regular file of `commit` (symbolic links and submodules are not files), by path.
    pub async fn files(&self, repository_id: &str, commit: &str) -> Result<Vec<TreeEntry>, GitError> {
        let dir = self.clone_dir(repository_id);
        let listing = self.run(Some(&dir), &["ls-tree", "-r", "-z", "--long", "--full-tree", commit], None).await?;
        let mut entries = Vec::new();
        for record in listing.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            // "<mode> <type> <object> <size>\t<path>": the path is bytes, the rest ASCII.
            let Some(tab) = record.iter().position(|b| *b == b'\t') else { continue };
            let (meta, path) = (String::from_utf8_lossy(&record[..tab]), &record[tab + 1..]);
            let fields: Vec<&str> = meta.split_whitespace().collect();
            let [mode, kind, blob, size] = fields.as_slice() else { continue };
            if *kind != "blob" || !matches!(*mode, "100644" | "100755") || path.starts_with(b".git/") {
                continue;
            }
            let (path, raw) = match std::str::from_utf8(path) {
                Ok(path) => (path.to_owned(), None),
                Err(_) => (escape_path(path), Some(path.to_vec())),
            };
            entries.push(TreeEntry { path, raw, blob: (*blob).to_owned(), size: size.parse().unwrap_or(0) });
        }
        entries.sort_by(|a, b| (&a.path, &a.raw).cmp(&(&b.path, &b.raw)));
        Ok(entries)
    }

    /// The branch the repository's `HEAD` names (on GitHub: its default branch), asked with
    /// each of `tokens` in turn until one is accepted; `None` when it names none.
    pub async fn remote_head(&self, tokens: &[String], owner: &str, name: &str) -> Result<Option<String>, GitError> {
        let listing = self.ls_remote(tokens, owner, name, &["--symref"], &["HEAD"]).await?;
        // "ref: refs/heads/<branch>\tHEAD", then "<commit>\tHEAD".
        Ok(String::from_utf8_lossy(&listing).lines().find_map(|line| {
            let target = line.strip_prefix("ref: ")?.strip_suffix("\tHEAD")?;
            target.strip_prefix("refs/heads/").map(str::to_owned)
        }))
    }

    /// Whether the repository has any branch at all (an empty repository, with no commit yet,
    /// has none), asked with each of `tokens` in turn until one is accepted.
    pub async fn has_branches(&self, tokens: &[String], owner: &str, name: &str) -> Result<bool, GitError> {
        let listing = self.ls_remote(tokens, owner, name, &["--heads"], &[]).await?;
        Ok(!listing.iter().all(u8::is_ascii_whitespace))
    }

    /// `git ls-remote <flags> <url> <patterns>` with each of `tokens` in turn until one is
    /// accepted (anonymously when there are none).
    async fn ls_remote(
        &self,
        tokens: &[String],
        owner: &str,
        name: &str,
        flags: &[&str],
        patterns: &[&str],
    ) -> Result<Vec<u8>, GitError> {
        let url = format!("{}/{owner}/{name}.git", self.base_url);
        let args: Vec<&str> =
            ["ls-remote"].iter().chain(flags).chain([&url.as_str()]).chain(patterns).copied().collect();
        let mut last = GitError::Failed("no token worked".into());
        let tokens: Vec<Option<&str>> =
            if tokens.is_empty() { vec![None] } else { tokens.iter().map(|t| Some(t.as_str())).collect() };
        for token in tokens {
            match self.run(None, &args, token).await {
                Ok(listing) => return Ok(listing),
                Err(e @ GitError::Auth(_)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// The bytes of a blob.
    pub async fn read(&self, repository_id: &str, blob: &str) -> Result<Vec<u8>, GitError> {
        self.run(Some(&self.clone_dir(repository_id)), &["cat-file", "blob", blob], None).await
    }

    /// One `git cat-file --batch` for reading many blobs in a row (a scan of a large repository
    /// would otherwise start one git process per changed file).
    pub fn batch(&self, repository_id: &str) -> Result<BlobBatch, GitError> {
        let mut child = self
            .command(&["cat-file", "--batch"])
            .current_dir(self.clone_dir(repository_id))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| GitError::Spawn(e.to_string()))?;
        let stdin = child.stdin.take().ok_or_else(|| GitError::Spawn("no stdin".into()))?;
        let stdout = child.stdout.take().ok_or_else(|| GitError::Spawn("no stdout".into()))?;
        Ok(BlobBatch {
            _child: child,
            stdin,
            stdout: tokio::io::BufReader::with_capacity(BATCH_BUFFER, stdout),
            timeout: self.timeout,
        })
    }

    /// A blob's bytes as a stream (large files are sent in pieces and never held whole): the
    /// running `git cat-file`, whose stdout is the content. Killed when dropped.
    pub fn open(&self, repository_id: &str, blob: &str) -> Result<tokio::process::Child, GitError> {
        self.command(&["cat-file", "blob", blob])
            .current_dir(self.clone_dir(repository_id))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| GitError::Spawn(e.to_string()))
    }

    /// Removes a repository's clone (nobody watches it any more).
    pub async fn remove(&self, repository_id: &str) -> std::io::Result<()> {
        let _clone = self.lock(repository_id).await;
        match tokio::fs::remove_dir_all(self.clone_dir(repository_id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The text form of a path that is not UTF-8, lossless: its valid UTF-8 sequences as they are,
/// each `\` doubled, and each other byte as `\x` and two lower-case hex digits
/// (`r\xe9sum\xe9.txt`). Distinct byte strings give distinct texts, and the text gives the
/// bytes back. A UTF-8 name is never escaped (it is its own text form).
pub fn escape_path(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                text.push_str("\\\\");
            } else {
                text.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(text, "\\x{b:02x}");
        }
    }
    text
}

/// Whether `name` is a branch name git accepts (`git check-ref-format --branch`, in short), so a
/// name from GitHub or a push webhook can be used in a refspec.
pub fn is_branch_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name.contains("/.")
        && name != "@"
        && !name.chars().any(|c| c.is_ascii_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
}

/// `Authorization: Basic base64(x-access-token:<token>)`, the way GitHub takes a token over git.
fn auth_header(token: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    format!("Authorization: Basic {encoded}")
}

/// How much of a blob [`BlobBatch::stream`] holds at a time.
const BATCH_BUFFER: usize = 64 * 1024;

/// A running `git cat-file --batch`: blobs are asked for one after another, and their bytes
/// streamed through a bounded buffer.
pub struct BlobBatch {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::BufReader<tokio::process::ChildStdout>,
    timeout: Duration,
}

impl BlobBatch {
    /// Streams the bytes of `blob` to `consume`, one buffer's worth at a time (a blob is never
    /// held whole, whatever its size), and returns its size. After an error the batch is out of
    /// step with git: drop it.
    pub async fn stream(&mut self, blob: &str, mut consume: impl FnMut(&[u8])) -> Result<u64, GitError> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let io = |e: std::io::Error| GitError::Failed(format!("reading from git cat-file: {e}"));
        let work = async {
            self.stdin.write_all(format!("{blob}\n").as_bytes()).await.map_err(io)?;
            self.stdin.flush().await.map_err(io)?;
            let mut header = String::new();
            self.stdout.read_line(&mut header).await.map_err(io)?;
            // "<oid> blob <size>", or "<oid> missing".
            let mut fields = header.split_whitespace();
            let (_, kind, size) = (fields.next(), fields.next(), fields.next());
            let size: u64 = match (kind, size) {
                (Some("blob"), Some(size)) => {
                    size.parse().map_err(|_| GitError::Failed(format!("unexpected answer {header:?}")))?
                }
                _ => return Err(GitError::Failed(format!("blob {blob}: {}", header.trim()))),
            };
            let mut left = size;
            while left > 0 {
                let buffered = self.stdout.fill_buf().await.map_err(io)?;
                if buffered.is_empty() {
                    return Err(GitError::Failed(format!("git cat-file ended {left} bytes before the end of {blob}")));
                }
                let n = buffered.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                consume(&buffered[..n]);
                self.stdout.consume(n);
                left -= n as u64;
            }
            // The content is followed by a newline.
            let mut end = [0u8; 1];
            self.stdout.read_exact(&mut end).await.map_err(io)?;
            if end != *b"\n" {
                return Err(GitError::Failed(format!("git cat-file: no newline after {blob}")));
            }
            Ok(size)
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| GitError::Timeout(self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a text form back into bytes (what a receiver may do without `path_base64`).
    fn unescape(text: &str) -> Vec<u8> {
        let (mut bytes, mut rest) = (Vec::new(), text.as_bytes());
        while let Some((&b, tail)) = rest.split_first() {
            match (b, tail) {
                (b'\\', [b'\\', more @ ..]) => (bytes.push(b'\\'), rest = more).1,
                (b'\\', [b'x', hi, lo, more @ ..]) => {
                    let hex = std::str::from_utf8(&[*hi, *lo]).map(|h| u8::from_str_radix(h, 16));
                    bytes.push(hex.expect("ascii").expect("hex"));
                    rest = more;
                }
                _ => (bytes.push(b), rest = tail).1,
            }
        }
        bytes
    }

    #[test]
    fn a_name_that_is_not_utf8_has_a_lossless_text_form() {
        assert_eq!(escape_path(b"r\xe9sum\xe9.txt"), "r\\xe9sum\\xe9.txt");
        assert_eq!(escape_path(b"r\xe8sum\xe8.txt"), "r\\xe8sum\\xe8.txt");
        assert_eq!(escape_path(b"a\\b\xff/caf\xc3\xa9"), "a\\\\b\\xff/caf\u{e9}", "backslashes doubled, UTF-8 kept");
        let names: [&[u8]; 6] =
            [b"r\xe9sum\xe9.txt", b"r\\xe9sum\\xe9.txt\xff", b"\xc3", b"\xc3\xa9\xc3", b"x\\\xff", b"\xf0\x9f\xa6"];
        for name in names {
            assert_eq!(unescape(&escape_path(name)), name, "{name:?}");
        }
    }

    #[test]
    fn branch_names_are_checked_before_they_reach_a_refspec() {
        for good in ["main", "develop", "release/1.2", "feature-x_y", "v1.0"] {
            assert!(is_branch_name(good), "{good}");
        }
        for bad in ["", "-x", "a..b", "a b", "a:b", "a~1", "x.lock", "/x", "x/", "a//b", "@", "a@{1}", "a\\b", ".x"] {
            assert!(!is_branch_name(bad), "{bad}");
        }
    }
}
