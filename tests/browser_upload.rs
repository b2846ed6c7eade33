//! The upload page with JavaScript in a real headless Chromium: tus uploads of several files
//! (one of 200 MiB) in chunks of `upload_chunk_size`, through a TCP proxy the test controls
//! (`CutProxy`) so that it can cut the network mid-upload and count the bytes that reach the
//! server; a reload mid-upload; the SHA-256 check against the server's; the receipt.
//! Everything talks to 127.0.0.1 only.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`.ci/browser-deps.sh`); without them
//! the test prints "skipped: chromium not installed" and passes, unless `SFX_REQUIRE_BROWSER=1`.

mod common;

use common::*;
use fantoccini::{Client, Locator};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CHUNK: u64 = 8 << 20;

/// One row of the page's upload list: (file name, state, state text).
async fn transfer_rows(c: &Client) -> Vec<(String, String, String)> {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll('ul.transfers li.transfer')).map(li =>
                [li.dataset.name, li.dataset.state, li.querySelector('.state').textContent]);",
            vec![],
        )
        .await
        .expect("read the upload rows");
    serde_json::from_value(v).expect("rows")
}

async fn state_of(c: &Client, name: &str) -> Option<String> {
    transfer_rows(c)
        .await
        .into_iter()
        .find(|r| r.0 == name)
        .map(|r| r.1)
}

/// Waits until every file in `names` has the state `state` on the page.
async fn wait_for_states(c: &Client, names: &[&str], state: &str, timeout: Duration) {
    eventually(&format!("{names:?} {state}"), timeout, async || {
        let rows = transfer_rows(c).await;
        let ok = names
            .iter()
            .all(|n| rows.iter().any(|r| r.0 == *n && r.1 == state));
        if rows
            .iter()
            .any(|r| r.1 == "mismatch" || (r.1 == "error" && names.contains(&r.0.as_str())))
        {
            panic!("an upload failed: {rows:?}");
        }
        if ok { Ok(()) } else { Err(format!("{rows:?}")) }
    })
    .await;
}

/// The receipt table: (item, file name, size, SHA-256, check).
async fn receipt_rows(c: &Client) -> Vec<Vec<String>> {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll('table.tus-receipt tbody tr')).map(tr =>
                Array.from(tr.cells).map(td => td.textContent.trim())
                    .concat([tr.querySelector('a') ? tr.querySelector('a').href : '']));",
            vec![],
        )
        .await
        .expect("read the receipt");
    serde_json::from_value(v).expect("receipt rows")
}

/// The unfinished uploads listed after a reload: file name → bytes the server has.
async fn previous_uploads(c: &Client) -> Vec<(String, Option<u64>)> {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll('section.resumable li.previous-upload')).map(li =>
                [li.dataset.name, li.dataset.offset ? Number(li.dataset.offset) : null]);",
            vec![],
        )
        .await
        .expect("read the unfinished uploads");
    serde_json::from_value(v).expect("previous uploads")
}

async fn pick(c: &Client, files: &[&PathBuf]) {
    let paths: Vec<&str> = files
        .iter()
        .map(|p| p.to_str().expect("utf-8 path"))
        .collect();
    c.find(Locator::Css("form.upload.tus input[type=file][multiple]"))
        .await
        .expect("file input")
        .send_keys(&paths.join("\n"))
        .await
        .expect("pick files");
}

/// Records the page's CSP violations (from now on) in `window.__cspViolations`.
async fn watch_csp(c: &Client) {
    c.execute(
        "window.__cspViolations = [];
         document.addEventListener('securitypolicyviolation', e =>
             window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));",
        vec![],
    )
    .await
    .expect("watch CSP");
}

async fn scroll_to(c: &Client, css: &str) {
    c.execute(
        "document.querySelector(arguments[0]).scrollIntoView({block: 'center'});",
        vec![serde_json::json!(css)],
    )
    .await
    .expect("scroll");
}

/// The bytes the page shows as sent for `name` (its progress bar).
async fn progress_of(c: &Client, name: &str) -> f64 {
    c.execute(
        "const li = Array.from(document.querySelectorAll('ul.transfers li.transfer'))
             .find(li => li.dataset.name === arguments[0]);
         return li ? li.querySelector('progress').value : -1;",
        vec![serde_json::json!(name)],
    )
    .await
    .expect("progress")
    .as_f64()
    .expect("a number")
}

/// Logs in as the customer at `base` and waits for the script-enhanced upload form.
async fn login(c: &Client, base: &str) {
    c.goto(&format!("{base}/")).await.expect("open /");
    c.find(Locator::Css("header.top input[type=password][name=token]"))
        .await
        .expect("password field")
        .send_keys(CUSTOMER)
        .await
        .expect("type");
    click(c, "header.top .login button[type=submit]").await;
    wait_for(c, "form.upload.tus[data-chunk-size]").await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .expect("click");
}

/// The parts of a browser upload test: the server (chunks of `chunk`), a proxy in front of it
/// throttled to `rate` bytes/s, and Chromium with JavaScript; `base` is the proxy's URL.
struct Rig {
    srv: TestServer,
    proxy: CutProxy,
    base: String,
    driver: ChromeDriver,
    c: Client,
}

async fn rig(chunk: &str, rate: u64) -> Rig {
    let srv = TestServer::start_with(&format!("upload_chunk_size = \"{chunk}\"")).await;
    let proxy = CutProxy::start(srv.addr).await;
    proxy.set_rate(rate);
    let base = format!("http://{}", proxy.addr);
    let driver = ChromeDriver::start().await;
    let c = driver.session(true).await;
    Rig {
        srv,
        proxy,
        base,
        driver,
        c,
    }
}

fn name_of(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).expect("file name")
}

/// Three files, one of 200 MiB, over tus in 8 MiB chunks: a network cut mid-upload and a reload
/// mid-upload both continue from the server's offset (the bytes reaching the server stay near
/// the file sizes), each file is verified against the server's SHA-256, and the receipt lists
/// them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_uploads_survive_outage_and_reload_in_chromium() {
    if !chromium_available() {
        return;
    }
    // Slow enough that the test can act mid-upload, fast enough to finish in seconds.
    let Rig {
        srv,
        proxy,
        base,
        driver,
        c,
    } = rig("8MiB", 40 << 20).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let notes = random_file(dir.path(), "notes.txt", 300 * 1024 + 5, 11);
    let logs = random_file(dir.path(), "logs.tar.gz", 24 * MIB + 17, 12);
    let core = random_file(dir.path(), "core.dump", 200 * MIB, 13);
    let files = [&notes, &logs, &core];
    let total: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).expect("size").len())
        .sum();

    // ---- log in (through the proxy: the page, its scripts and tus all go through it) ----
    login(&c, &base).await;
    let form = wait_for(&c, "form.upload.tus[data-chunk-size]").await;
    assert_eq!(
        form.attr("data-chunk-size").await.unwrap().as_deref(),
        Some(CHUNK.to_string().as_str()),
        "the page has upload_chunk_size"
    );
    watch_csp(&c).await;
    let before_upload = proxy.forwarded_up();

    // ---- pick three files, upload ----
    pick(&c, &files).await;
    eventually("three files queued", WAIT, async || {
        let n = c
            .find_all(Locator::Css("ul.queue li.transfer"))
            .await
            .map_err(|e| e.to_string())?
            .len();
        if n == 3 { Ok(()) } else { Err(format!("{n}")) }
    })
    .await;
    c.find(Locator::Css("form.upload input[name=reference]"))
        .await
        .unwrap()
        .send_keys("CASE-77")
        .await
        .unwrap();
    save_screenshot(&c, "tus-1-queued.png").await;
    click(&c, "form.upload button[type=submit]").await;

    // ---- cut the network mid-upload ----
    eventually("60 MiB forwarded", Duration::from_secs(60), async || {
        let n = proxy.forwarded_up();
        if n > 60 << 20 {
            Ok(n)
        } else {
            Err(format!("{n} bytes"))
        }
    })
    .await;
    save_screenshot(&c, "tus-2-uploading.png").await;
    let at_cut = proxy.forwarded_up();
    proxy.cut(Duration::from_secs(6));
    eventually(
        "a reconnecting state",
        Duration::from_secs(6),
        async || match state_of(&c, "core.dump").await.as_deref() {
            Some("reconnecting") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let text = c
        .find(Locator::Css("li.transfer[data-state=reconnecting] .state"))
        .await
        .expect("the reconnecting row")
        .text()
        .await
        .unwrap();
    assert!(text.contains("Reconnecting"), "{text}");
    scroll_to(&c, "li.transfer[data-name='core.dump']").await;
    save_screenshot(&c, "tus-3-reconnecting.png").await;
    wait_until("the outage ends", Duration::from_secs(10), || proxy.is_up()).await;
    // The two small files finish; the big one carries on after the outage.
    wait_for_states(
        &c,
        &["notes.txt", "logs.tar.gz"],
        "verified",
        Duration::from_secs(60),
    )
    .await;
    eventually(
        "uploading again",
        Duration::from_secs(40),
        async || match state_of(&c, "core.dump").await.as_deref() {
            Some("uploading") if proxy.forwarded_up() > at_cut + CHUNK => Ok(()),
            other => Err(format!("{other:?}, {} bytes", proxy.forwarded_up())),
        },
    )
    .await;

    // ---- reload mid-upload, pick the file again: it continues from the server's offset ----
    eventually("130 MiB forwarded", Duration::from_secs(60), async || {
        let n = proxy.forwarded_up();
        if n > 130 << 20 {
            Ok(n)
        } else {
            Err(format!("{n} bytes"))
        }
    })
    .await;
    assert_eq!(
        state_of(&c, "core.dump").await.as_deref(),
        Some("uploading"),
        "core.dump finished too early for the reload test"
    );
    c.refresh().await.expect("reload");
    let at_reload = proxy.forwarded_up();
    wait_for(&c, "section.resumable li.previous-upload[data-offset]").await;
    watch_csp(&c).await;
    let previous = previous_uploads(&c).await;
    assert_eq!(
        previous.len(),
        1,
        "unfinished after the reload: {previous:?}"
    );
    assert_eq!(previous[0].0, "core.dump");
    let offset = previous[0].1.expect("offset from HEAD");
    assert!(
        offset > 50 << 20 && offset < 200 << 20,
        "server offset at reload: {offset}"
    );
    save_screenshot(&c, "tus-4-after-reload.png").await;
    // The receipt of this browser session survived the reload.
    assert_eq!(receipt_rows(&c).await.len(), 2);
    proxy.set_rate(0);
    pick(&c, &[&core]).await;
    wait_for(&c, "ul.queue li.transfer[data-name='core.dump']").await;
    assert!(
        c.find_all(Locator::Css("section.resumable li.previous-upload"))
            .await
            .unwrap()
            .is_empty(),
        "the picked file left the unfinished list"
    );
    let after_pick = proxy.forwarded_up();
    click(&c, "form.upload button[type=submit]").await;
    wait_for_states(&c, &["core.dump"], "verified", Duration::from_secs(120)).await;
    let stats = c
        .find(Locator::Css("li.transfer[data-name='core.dump'] .stats"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stats.contains("continued from"), "{stats}");
    scroll_to(&c, "section.tus-receipt").await;
    save_screenshot(&c, "tus-5-verified.png").await;

    // ---- bytes: nothing restarted from zero ----
    let uploaded = proxy.forwarded_up() - before_upload;
    let after_reload = proxy.forwarded_up() - after_pick;
    let core_size = 200 * CHUNK / 8;
    println!(
        "forwarded upstream: {uploaded} bytes for {total} bytes of files (cut at {at_cut}, reload at {at_reload}, server offset {offset}, {after_reload} after the reload)"
    );
    assert!(
        uploaded < total + 3 * CHUNK,
        "{uploaded} bytes sent for {total} bytes of files: an upload restarted"
    );
    assert!(
        after_reload < core_size - offset + CHUNK,
        "{after_reload} bytes after the reload, {} were left: it did not continue from {offset}",
        core_size - offset
    );

    // ---- the receipt and the server's items ----
    let receipt = receipt_rows(&c).await;
    assert_eq!(receipt.len(), 3, "{receipt:?}");
    let mut items: HashMap<String, String> = HashMap::new();
    for path in files {
        let filename = name_of(path);
        let row = receipt
            .iter()
            .find(|r| r[1] == filename)
            .unwrap_or_else(|| panic!("{filename} not on the receipt: {receipt:?}"));
        let sha = external_sha256(path);
        let size = std::fs::metadata(path).unwrap().len();
        assert_eq!(row[2], size.to_string(), "{row:?}");
        assert_eq!(row[3], sha, "{row:?}");
        assert!(row[4].contains("verified"), "{row:?}");
        assert!(
            row[5].ends_with(&format!("/{}", row[0])),
            "item link: {row:?}"
        );
        let item = srv.item(&row[0]).expect("the item on the server");
        assert_eq!(item.filename, filename);
        assert_eq!(item.size, size);
        assert_eq!(item.sha256, sha, "{filename}: the server's SHA-256");
        assert_eq!(item.reference.as_deref(), Some("CASE-77"));
        items.insert(filename.to_string(), row[0].clone());
    }
    assert_eq!(items.len(), 3);
    assert_eq!(srv.item_names().len(), 3, "no stray items");

    // The page's CSP held: no violation since the page loaded.
    let violations = c
        .execute("return window.__cspViolations || [];", vec![])
        .await
        .unwrap();
    assert_eq!(violations, serde_json::json!([]), "CSP violations");

    c.close().await.expect("close session");
    drop(driver);
    drop(proxy);
    srv.stop().await;
}

/// Pause (the bytes stop), Resume from the keyboard (focus was moved to it), Cancel (terminated:
/// no item), and a corrupting middlebox: the SHA-256 differs and the page says so loudly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_cancel_and_mismatch_in_chromium() {
    if !chromium_available() {
        return;
    }
    let Rig {
        srv,
        proxy,
        base,
        driver,
        c,
    } = rig("4MiB", 8 << 20).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let big = random_file(dir.path(), "big.bin", 40 * MIB, 21);
    let other = random_file(dir.path(), "other.bin", 30 * MIB, 22);
    let bad = random_file(dir.path(), "bad.bin", 2 * MIB + 3, 23);

    login(&c, &base).await;
    watch_csp(&c).await;
    pick(&c, &[&big, &other]).await;
    wait_for(&c, "ul.queue li.transfer[data-name='other.bin']").await;
    click(&c, "form.upload button[type=submit]").await;
    eventually("big.bin under way", WAIT, async || {
        let p = progress_of(&c, "big.bin").await;
        if p > (4 << 20) as f64 {
            Ok(())
        } else {
            Err(format!("{p}"))
        }
    })
    .await;

    // Pause: the state says so, focus is on Resume, and no more bytes go.
    click(&c, "li.transfer[data-name='big.bin'] button.pause").await;
    wait_for(&c, "li.transfer[data-name='big.bin'][data-state=paused]").await;
    let focused = c
        .active_element()
        .await
        .expect("focus")
        .attr("class")
        .await
        .unwrap();
    assert_eq!(focused.as_deref(), Some("resume"), "focus after Pause");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paused_at = progress_of(&c, "big.bin").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        progress_of(&c, "big.bin").await,
        paused_at,
        "bytes moved while paused"
    );

    // Cancel the other file: terminated on the server.
    click(&c, "li.transfer[data-name='other.bin'] button.cancel").await;
    wait_for(
        &c,
        "li.transfer[data-name='other.bin'][data-state=cancelled]",
    )
    .await;

    // Resume with the keyboard (Enter on the focused Resume button).
    c.find(Locator::Css(
        "li.transfer[data-name='big.bin'] button.resume",
    ))
    .await
    .unwrap()
    .send_keys("\u{E007}")
    .await
    .expect("Enter");
    proxy.set_rate(0);
    wait_for_states(&c, &["big.bin"], "verified", Duration::from_secs(60)).await;
    assert!(progress_of(&c, "big.bin").await >= paused_at);

    // A middlebox flips a byte: the server stores other bytes, and the page cries out.
    proxy.corrupt_once();
    pick(&c, &[&bad]).await;
    wait_for(&c, "ul.queue li.transfer[data-name='bad.bin']").await;
    click(&c, "form.upload button[type=submit]").await;
    let state = wait_for(
        &c,
        "li.transfer[data-name='bad.bin'][data-state=mismatch] .state",
    )
    .await;
    let text = state.text().await.unwrap();
    assert!(text.contains("SHA-256 MISMATCH"), "{text}");
    assert_eq!(state.attr("role").await.unwrap().as_deref(), Some("alert"));
    let alert = c
        .find(Locator::Css("#upload-alert"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        alert.contains("bad.bin") && alert.contains("MISMATCH"),
        "{alert}"
    );
    // The receipt lists only what was verified.
    let receipt = receipt_rows(&c).await;
    assert_eq!(receipt.len(), 1, "{receipt:?}");
    assert_eq!(receipt[0][1], "big.bin");
    assert_eq!(receipt[0][3], external_sha256(&big));

    // On a phone-sized screen.
    c.set_window_size(390, 844).await.expect("resize");
    scroll_to(&c, "li.transfer[data-name='bad.bin']").await;
    save_screenshot(&c, "tus-6-phone-mismatch.png").await;
    // Nothing is wider than the screen (the receipt table scrolls in its own box).
    let wide = c
        .execute(
            "return Array.from(document.querySelectorAll('body *'))
                .filter(e => !e.closest('.table-wrap')
                    && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
                .map(e => e.tagName + '.' + e.className);",
            vec![],
        )
        .await
        .expect("layout");
    assert_eq!(wide, serde_json::json!([]), "wider than a phone's screen");

    // The server: big.bin stored right; other.bin cancelled (no item); bad.bin differs.
    let names = srv.item_names();
    assert_eq!(names.len(), 2, "items: {names:?}");
    let items: Vec<_> = names.iter().filter_map(|n| srv.item(n)).collect();
    let stored = items
        .iter()
        .find(|i| i.filename == "big.bin")
        .expect("big.bin");
    assert_eq!(stored.sha256, external_sha256(&big));
    let corrupt = items
        .iter()
        .find(|i| i.filename == "bad.bin")
        .expect("bad.bin");
    assert_ne!(corrupt.sha256, external_sha256(&bad));
    assert!(!items.iter().any(|i| i.filename == "other.bin"));
    let violations = c
        .execute("return window.__cspViolations || [];", vec![])
        .await
        .unwrap();
    assert_eq!(violations, serde_json::json!([]), "CSP violations");

    c.close().await.expect("close session");
    drop(driver);
    drop(proxy);
    srv.stop().await;
}
