//! chromedriver and headless Chromium for the browser tests, with JavaScript on (the upload
//! page's script, `tests/browser_upload.rs`) or off (`tests/browser.rs`). Everything talks to 127.0.0.1
//! only: chromedriver listens on loopback, and every host name fails to resolve in Chromium.

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether Chromium and chromedriver are installed; if not, prints "skipped: chromium not
/// installed …" (or fails under `SFX_REQUIRE_BROWSER=1`).
pub fn chromium_available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    super::skip_unless_required(
        "SFX_REQUIRE_BROWSER",
        &format!(
            "chromium not installed ({CHROMIUM} or {CHROMEDRIVER} is missing: run .ci/browser-deps.sh)"
        ),
    );
    false
}

/// chromedriver (and through it Chromium) for one test. Dropping it kills chromedriver's
/// process group, Chromium included, then removes the profile and temp dir.
/// Numbers the sessions' profile directories.
static PROFILES: AtomicUsize = AtomicUsize::new(0);

pub struct ChromeDriver {
    child: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChromeDriver {
    pub async fn start() -> ChromeDriver {
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let dir = tempfile::tempdir().expect("browser temp dir");
            std::fs::create_dir(dir.path().join("tmp")).expect("browser tmp");
            let mut cmd = Command::new(CHROMEDRIVER);
            cmd.args([&format!("--port={port}"), "--log-level=SEVERE"])
                .env("TMPDIR", dir.path().join("tmp"))
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let child = cmd.spawn().expect("start chromedriver");
            let mut driver = ChromeDriver {
                child,
                url: format!("http://127.0.0.1:{port}"),
                dir,
            };
            if driver.ready().await {
                return driver;
            }
        }
        panic!("chromedriver did not start");
    }

    async fn ready(&mut self) -> bool {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = http.get(format!("{}/status", self.url)).send().await
                && r.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// A headless Chromium session with a fresh profile, JavaScript on or off.
    pub async fn session(&self, javascript: bool) -> Client {
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--no-proxy-server".into(),
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".into(),
            "--window-size=1280,1000".into(),
            // A profile of its own: the JavaScript setting (and the cache) of an earlier
            // session must not carry over.
            format!(
                "--user-data-dir={}",
                self.dir
                    .path()
                    .join(format!(
                        "profile-{}",
                        PROFILES.fetch_add(1, Ordering::Relaxed)
                    ))
                    .display()
            ),
        ];
        let mut prefs = serde_json::json!({});
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".into());
            prefs = serde_json::json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let caps = serde_json::json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args, "prefs": prefs },
        });
        let caps = caps
            .as_object()
            .expect("an object")
            .clone()
            .into_iter()
            .collect();
        ClientBuilder::rustls()
            .expect("connector")
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("WebDriver session")
    }
}

/// Saves a screenshot of the page as `target/test-artifacts/<name>`.
pub async fn save_screenshot(c: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(dir.join(name), png).expect("save screenshot");
}

// ---- small page helpers ----

/// How long to wait for a page element after a click.
pub const WAIT: Duration = Duration::from_secs(20);

pub async fn find_all(c: &Client, css: &str) -> Vec<fantoccini::elements::Element> {
    c.find_all(Locator::Css(css)).await.expect("find_all")
}

pub async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e,
        Err(e) => panic!(
            "no {css} on {:?}: {e}\n{}",
            c.current_url().await,
            c.source().await.unwrap_or_default()
        ),
    }
}

pub async fn text_of(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.expect("text")
}

/// Waits until `css` is on the page (after a click that navigates).
pub async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(WAIT)
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => panic!(
            "{css} did not appear on {:?}: {e}\n{}",
            c.current_url().await,
            c.source().await.unwrap_or_default()
        ),
    }
}

pub async fn type_into(c: &Client, css: &str, keys: &str) {
    find(c, css).await.send_keys(keys).await.expect("type");
}
