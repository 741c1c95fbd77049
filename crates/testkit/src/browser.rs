//! Headless Chromium for tests of server-rendered pages: chromedriver on a free loopback port,
//! driven over WebDriver (fantoccini), with the few steps page tests need (go, fill, click and
//! wait for what the next page shows, screenshots for a person to look at).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page may take to show what a step waits for.
pub const PAGE_WAIT: Duration = Duration::from_secs(15);

/// chromedriver on a free loopback port, in a process group of its own with the Chromium it
/// starts; dropping it ends the group and removes the browser profile.
struct Chromedriver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "the dashboard tests need Chromium and chromedriver: apt-get install chromium chromium-driver"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let profile = std::env::temp_dir().join(format!("docora-chromium-{}", uuid::Uuid::new_v4().simple()));
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        Chromedriver { child, port, profile }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) {
        let status = format!("{}/status", self.url());
        for _ in 0..100 {
            if reqwest::get(&status).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {status}");
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group is chromedriver's and the browser's it started (a failed test may leave one).
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The browser's processes may take a moment to go, writing to the profile until then.
        for _ in 0..50 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A headless Chromium session on the app under test.
pub struct Browser {
    /// The WebDriver session, for what the helpers here do not cover.
    pub client: Client,
    base: String,
    _driver: Chromedriver,
}

impl Browser {
    /// A fresh browser (its own profile) on the server at `base` (`http://127.0.0.1:port`),
    /// with a window of `width` × `height` CSS pixels.
    pub async fn start(base: &str, width: u32, height: u32) -> Browser {
        let driver = Chromedriver::start();
        driver.wait_ready().await;
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("--window-size={width},{height}"), format!("--user-data-dir={}", driver.profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!("an object") };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .expect("a Chromium session");
        Browser { client, base: base.trim_end_matches('/').to_owned(), _driver: driver }
    }

    pub async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.expect("navigates");
    }

    /// The path and query of the page shown.
    pub async fn location(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("{css} on {}: {e}", self.location().await),
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.expect("find").is_empty()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clears");
        field.send_keys(text).await.expect("types");
    }

    /// Clicks `css`, then waits for `shown` (something only the next page has).
    pub async fn click(&self, css: &str, shown: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
        if let Err(e) = self.client.wait().at_most(PAGE_WAIT).for_element(Locator::Css(shown)).await {
            panic!("{shown} after clicking {css}, on {}: {e}\n{}", self.location().await, self.source().await);
        }
    }

    /// Clicks `css`, then waits until the location has `fragment` (for a page that has the same
    /// elements before and after, such as a filtered list).
    pub async fn click_to(&self, css: &str, fragment: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
        let started = std::time::Instant::now();
        while !self.location().await.contains(fragment) {
            assert!(started.elapsed() < PAGE_WAIT, "{fragment} after clicking {css}: at {}", self.location().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot of the page as `target/screenshots/{name}.png` (for a person to look
    /// at the layout; nothing is asserted on it).
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }

    /// The page's width in CSS pixels (wider than the window: it scrolls sideways).
    pub async fn page_width(&self) -> i64 {
        let width = self.client.execute("return document.documentElement.scrollWidth", vec![]).await.expect("width");
        width.as_i64().unwrap_or(i64::MAX)
    }

    pub async fn close(self) {
        self.client.close().await.expect("the browser closes");
    }
}
