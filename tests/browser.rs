//! The web pages in a real headless Chromium (JavaScript disabled), driven over WebDriver by
//! chromedriver. Everything talks to 127.0.0.1 only.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`.ci/browser-deps.sh`). Without them
//! the browser tests print "skipped: chromium not installed" and pass, unless
//! `SFX_REQUIRE_BROWSER=1`, which makes them fail instead.

mod common;

use common::*;
use cookie::SameSite;
use fantoccini::{Client, Locator};
use std::collections::HashMap;
use std::path::PathBuf;

const COOKIE: &str = "sfx_session";

/// A server, chromedriver and a browser session (JavaScript off) on them; `None` (after
/// printing why) if the browser is not installed and not required.
async fn start_with_browser() -> Option<(TestServer, ChromeDriver, Client)> {
    if !chromium_available() {
        return None;
    }
    let srv = TestServer::start().await;
    let driver = ChromeDriver::start().await;
    let c = driver.session(false).await;
    Some((srv, driver, c))
}

// ---- small page helpers ----

async fn click(c: &Client, css: &str) {
    find(c, css).await.click().await.expect("click");
}

async fn path_and_query(c: &Client) -> String {
    let url = c.current_url().await.expect("url");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// The password field in the page header, and a check that it sits at the top right.
async fn assert_login_field_top_right(c: &Client) {
    let field = c
        .find(Locator::Css(
            "header.top .login form[action='/+login'] input[type=password][name=token]",
        ))
        .await
        .expect("password field in the header");
    assert!(field.is_displayed().await.unwrap());
    assert!(
        c.find(Locator::Css("header.top .login input[name=token]"))
            .await
            .is_ok()
    );
    let (_, _, page_w, _) = c
        .find(Locator::Css("header.top"))
        .await
        .unwrap()
        .rectangle()
        .await
        .unwrap();
    let button = c
        .find(Locator::Css("header.top .login button[type=submit]"))
        .await
        .expect("Login button");
    assert_eq!(button.text().await.unwrap(), "Login");
    let (fx, fy, _, _) = field.rectangle().await.unwrap();
    let (bx, by, bw, bh) = button.rectangle().await.unwrap();
    assert!(
        fx > page_w / 2.0 && bx + bw > page_w - 60.0 && by + bh < 80.0 && fy < 80.0,
        "login not at the top right: field at ({fx},{fy}), button ends at ({},{}), page width {page_w}",
        bx + bw,
        by + bh
    );
}

/// Types `secret` into the header's password field and submits it.
async fn login_attempt(c: &Client, srv: &TestServer, secret: &str) {
    c.goto(&srv.url("/")).await.expect("open /");
    type_into(c, "header.top input[type=password][name=token]", secret).await;
    click(c, "header.top .login button[type=submit]").await;
    wait_for(c, "header.top").await;
}

async fn login(c: &Client, srv: &TestServer, secret: &str) {
    login_attempt(c, srv, secret).await;
    wait_for(c, "header.top .login .who").await;
}

async fn logout(c: &Client) {
    click(
        c,
        "header.top .login form[action='/+logout'] button[type=submit]",
    )
    .await;
    wait_for(c, "header.top input[type=password][name=token]").await;
}

async fn screenshot(c: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(dir.join(name), png).expect("save screenshot");
}

/// Rows of a table as cell texts.
async fn rows(c: &Client, css: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for tr in find_all(c, css).await {
        let mut cells = Vec::new();
        for td in tr.find_all(Locator::Css("td")).await.unwrap() {
            cells.push(td.text().await.unwrap().trim().to_string());
        }
        out.push(cells);
    }
    out
}

async fn session_cookie(c: &Client) -> Option<fantoccini::cookies::Cookie<'static>> {
    c.get_all_cookies()
        .await
        .expect("cookies")
        .into_iter()
        .find(|k| k.name() == COOKIE)
}

async fn get_with_cookie(srv: &TestServer, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = client().get(srv.url(path));
    if let Some(v) = cookie {
        req = req.header("cookie", format!("{COOKIE}={v}"));
    }
    req.send().await.expect("GET")
}

// ---- the tests ----

/// Customer upload through the form, receipt, refused listing and logout; then an operator lists,
/// searches, opens, downloads and deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_uploads_and_operator_manages_files_in_chromium() {
    let Some((srv, driver, c)) = start_with_browser().await else {
        return;
    };

    // JavaScript is really off: a script on a local data: page does not run.
    c.goto("data:text/html,<p id=js>off</p><script>document.getElementById('js').textContent='on'</script>")
        .await
        .unwrap();
    assert_eq!(text_of(&c, "#js").await, "off", "JavaScript is enabled");

    // ---- 1. Customer ----
    c.goto(&srv.url("/")).await.unwrap();
    assert_login_field_top_right(&c).await;
    assert!(find_all(&c, "form.upload").await.is_empty());
    assert!(find_all(&c, "input[type=file]").await.is_empty());
    assert!(session_cookie(&c).await.is_none());

    login(&c, &srv, CUSTOMER).await;
    assert_eq!(path_and_query(&c).await, "/");
    assert_eq!(
        text_of(&c, "header.top .login .who").await,
        "Logged in: customers"
    );
    assert!(
        find_all(&c, "header.top input[name=token]")
            .await
            .is_empty()
    );
    assert!(
        find_all(&c, "header.top nav a[href='/+list']")
            .await
            .is_empty(),
        "customers get no Files link"
    );
    let form = wait_for(&c, "form.upload[method=post][action='/+upload']").await;
    assert!(form.is_displayed().await.unwrap());
    assert_eq!(
        form.attr("enctype").await.unwrap().as_deref(),
        Some("multipart/form-data")
    );
    for css in [
        "form.upload input[type=file][name=file][multiple]",
        "form.upload input[name=reference]",
        "form.upload textarea[name=comment]",
        "form.upload input[name=maxlife-value]",
        "form.upload select[name=maxlife-unit]",
        "form.upload button[type=submit]",
    ] {
        assert!(
            c.find(Locator::Css(css)).await.is_ok(),
            "upload form lacks {css}"
        );
    }
    // 4. (browser side) The session cookie as Chromium stored it.
    let cookie = session_cookie(&c).await.expect("session cookie set");
    assert_eq!(cookie.http_only(), Some(true), "{cookie:?}");
    assert_eq!(cookie.same_site(), Some(SameSite::Strict), "{cookie:?}");
    assert_eq!(cookie.path(), Some("/"));
    assert!(cookie.value().len() > 20);
    screenshot(&c, "upload-page.png").await;

    let dir = tempfile::tempdir().unwrap();
    let bundle = random_file(dir.path(), "bundle.tar.gz", 200 * 1024 + 3, 7);
    let notes = dir.path().join("notes from node 3.txt");
    std::fs::write(&notes, "uptime: 3 days\nkernel: 6.1\n").unwrap();
    let files = [&bundle, &notes];
    let paths: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let attach = "form.upload input[type=file][multiple]";
    type_into(&c, attach, &paths.join("\n")).await;
    type_into(&c, "form.upload input[name=reference]", "CASE-42").await;
    let comment = "form.upload textarea[name=comment]";
    type_into(&c, comment, "Logs after the crash\nnode 3").await;
    click(&c, "form.upload button[type=submit]").await;

    // The receipt of this browser's own uploads.
    // The upload page holds a hidden receipt table of its own (the script's): wait for the
    // receipt page's.
    wait_for(&c, "table.receipt:not(.tus-receipt)").await;
    let receipt_url = path_and_query(&c).await;
    assert!(
        receipt_url.starts_with("/+receipt?t="),
        "after the upload: {receipt_url}"
    );
    assert_eq!(text_of(&c, "main h1").await, "Upload complete");
    let receipt = rows(&c, "table.receipt tbody tr").await;
    assert_eq!(receipt.len(), 2, "{receipt:?}");
    let mut names: HashMap<String, String> = HashMap::new();
    for path in files {
        let filename = path.file_name().unwrap().to_str().unwrap();
        let row = receipt
            .iter()
            .find(|r| r[1] == filename)
            .unwrap_or_else(|| panic!("{filename} not on the receipt: {receipt:?}"));
        let size = std::fs::metadata(path).unwrap().len();
        assert!(sfx::items::ItemName::parse(&row[0]).is_some(), "{row:?}");
        assert_eq!(row[2], size.to_string(), "size in bytes: {row:?}");
        assert_eq!(row[3], external_sha256(path), "SHA-256: {row:?}");
        assert!(row[4].ends_with(" UTC"), "expiry: {row:?}");
        names.insert(filename.to_string(), row[0].clone());
    }

    // What the server stored.
    for path in files {
        let filename = path.file_name().unwrap().to_str().unwrap();
        let name = &names[filename];
        let item = srv.item(name).expect("item in the store");
        assert_eq!(item.filename, filename);
        assert_eq!(item.size, std::fs::metadata(path).unwrap().len());
        assert_eq!(item.reference.as_deref(), Some("CASE-42"));
        assert_eq!(
            item.comment.as_deref(),
            Some("Logs after the crash\nnode 3")
        );
        assert_eq!(item.uploader.label, "customers");
        assert_eq!(item.uploader.client_ip, "127.0.0.1");
        assert_eq!(
            srv.stored_bytes(name).await,
            std::fs::read(path).unwrap(),
            "stored bytes of {filename}"
        );
    }
    let listed = listing(&srv).await;
    assert_eq!(listed.len(), 2);
    for name in names.values() {
        assert_eq!(listed[name]["file-meta"]["uploader"], "customers");
    }

    // A customer may not list.
    c.goto(&srv.url("/+list")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "403 Forbidden");
    assert_eq!(text_of(&c, "h1").await, "403 Forbidden");
    assert!(find_all(&c, "table.items").await.is_empty());

    // Logout: the login field is back, the form and the cookie are gone.
    c.goto(&srv.url("/")).await.unwrap();
    wait_for(&c, "form.upload").await;
    logout(&c).await;
    assert_eq!(path_and_query(&c).await, "/");
    assert_login_field_top_right(&c).await;
    assert!(find_all(&c, "form.upload").await.is_empty());
    assert!(find_all(&c, "header.top .login .who").await.is_empty());
    assert!(session_cookie(&c).await.is_none(), "cookie survives logout");
    // The receipt link belonged to that session.
    c.goto(&srv.url(&receipt_url)).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "403 Forbidden");
    assert!(find_all(&c, "table.receipt").await.is_empty());

    // One more item, under another reference, so that searching has something to leave out.
    let other = reqwest::multipart::Part::bytes(b"other".to_vec()).file_name("other.log");
    let form = reqwest::multipart::Form::new()
        .text("reference", "OTHER-7")
        .part("file", other);
    upload_form(&srv, form).await;

    // ---- 3. Operator ----
    login(&c, &srv, ADMIN).await;
    assert_eq!(
        text_of(&c, "header.top .login .who").await,
        "Logged in: support-team"
    );
    click(&c, "header.top nav a[href='/+list']").await;
    wait_for(&c, "table.items").await;
    assert_eq!(path_and_query(&c).await, "/+list");
    assert!(
        c.find(Locator::Css("form.search input[name=q]"))
            .await
            .is_ok()
    );
    let all = rows(&c, "table.items tbody tr").await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(text_of(&c, "p.count").await, "3 items.");
    for (filename, name) in &names {
        let row = all
            .iter()
            .find(|r| r[1].starts_with(filename.as_str()))
            .unwrap_or_else(|| panic!("{filename} not listed: {all:?}"));
        assert!(row[1].contains(name.as_str()), "{row:?}");
        assert!(row[5].starts_with("customers"), "uploader: {row:?}");
        assert_eq!(row[6], "CASE-42");
    }
    screenshot(&c, "list-page.png").await;

    // Search by reference.
    type_into(&c, "form.search input[name=q]", "CASE-42").await;
    click(&c, "form.search button[type=submit]").await;
    wait_for(&c, "form.search a[href='/+list']").await; // "Clear" appears with a search
    assert_eq!(path_and_query(&c).await, "/+list?q=CASE-42");
    let found = rows(&c, "table.items tbody tr").await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|r| r[6] == "CASE-42"), "{found:?}");
    assert_eq!(text_of(&c, "p.count").await, "2 items matching.");
    assert_eq!(
        c.find(Locator::Css("form.search input[name=q]"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("CASE-42")
    );

    // The item page: details, Download, Delete.
    let bundle_name = names["bundle.tar.gz"].clone();
    c.find(Locator::LinkText("bundle.tar.gz"))
        .await
        .expect("link to the item page")
        .click()
        .await
        .unwrap();
    wait_for(&c, "dl.meta").await;
    assert_eq!(path_and_query(&c).await, format!("/{bundle_name}"));
    assert_eq!(text_of(&c, "main h1").await, "bundle.tar.gz");
    let meta = text_of(&c, "dl.meta").await;
    for expected in [
        external_sha256(&bundle),
        format!("{} bytes", 200 * 1024 + 3),
        "CASE-42".into(),
        "customers from 127.0.0.1".into(),
    ] {
        assert!(
            meta.contains(&expected),
            "item page lacks {expected:?}:\n{meta}"
        );
    }
    let download = c
        .find(Locator::LinkText("Download"))
        .await
        .expect("Download link");
    let href = download.attr("href").await.unwrap().unwrap();
    assert_eq!(href, format!("/{bundle_name}/+download"));
    // The link with this browser's session returns the bytes; without it, nothing.
    let session = session_cookie(&c).await.expect("operator session");
    let got = get_with_cookie(&srv, &href, Some(session.value())).await;
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.bytes().await.unwrap().as_ref(),
        std::fs::read(&bundle).unwrap().as_slice()
    );
    assert_eq!(get_with_cookie(&srv, &href, None).await.status(), 403);

    // (Not `p.actions form`: a <form> cannot sit inside a <p>, the parser closes the <p>.)
    click(&c, "main form[action$='/+delete'] button.danger").await;
    wait_for(&c, "table.items").await;
    assert_eq!(path_and_query(&c).await, "/+list");
    let left = rows(&c, "table.items tbody tr").await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter().all(|r| !r[1].contains(&bundle_name)),
        "deleted item still listed: {left:?}"
    );
    assert!(srv.item(&bundle_name).is_none());
    c.goto(&srv.url(&format!("/{bundle_name}"))).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "404 Not Found");

    c.goto(&srv.url("/")).await.unwrap();
    logout(&c).await;
    c.close().await.expect("close session");
    drop(driver);
    srv.stop().await;
}

/// 2. A wrong password: an error on the page, no form, no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_in_chromium() {
    let Some((srv, driver, c)) = start_with_browser().await else {
        return;
    };

    login_attempt(&c, &srv, "not-the-password").await;
    let alert = wait_for(&c, "p.alert").await;
    assert!(
        alert.text().await.unwrap().contains("Wrong password"),
        "{}",
        alert.text().await.unwrap()
    );
    assert_eq!(path_and_query(&c).await, "/?login=failed");
    assert!(find_all(&c, "form.upload").await.is_empty());
    assert!(find_all(&c, "input[type=file]").await.is_empty());
    assert!(find_all(&c, "header.top .login .who").await.is_empty());
    assert_login_field_top_right(&c).await;
    assert!(session_cookie(&c).await.is_none());

    // The right one afterwards works, and the error is gone.
    login_attempt(&c, &srv, CUSTOMER).await;
    wait_for(&c, "form.upload").await;
    assert!(find_all(&c, "p.alert").await.is_empty());

    c.close().await.expect("close session");
    drop(driver);
    srv.stop().await;
}

/// 4. (HTTP side) What `POST /+login` sets, and what a wrong password and logout do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_cookie_attributes() {
    let srv = TestServer::start().await;
    let http = client();

    let resp = post_login(&http, &srv, &[("token", CUSTOMER)]).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "/");
    let set: Vec<_> = resp.headers().get_all("set-cookie").iter().collect();
    assert_eq!(set.len(), 1, "{set:?}");
    let cookie = cookie::Cookie::parse(set[0].to_str().unwrap().to_string()).unwrap();
    assert_eq!(cookie.name(), COOKIE);
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_eq!(cookie.same_site(), Some(SameSite::Strict), "{cookie}");
    assert_eq!(cookie.path(), Some("/"));
    assert!(cookie.domain().is_none());

    // The cookie works, and is HMAC-signed: a changed byte is ignored (no upload form).
    let value = cookie.value().to_string();
    let page = get_with_cookie(&srv, "/", Some(&value)).await;
    assert!(page.text().await.unwrap().contains("form class=\"upload\""));
    let mut forged = value.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let page = get_with_cookie(&srv, "/", Some(&forged)).await;
    let body = page.text().await.unwrap();
    assert!(!body.contains("form class=\"upload\""));
    assert!(body.contains("name=\"token\""));

    let wrong = post_login(&http, &srv, &[("token", "nope")]).await;
    assert_eq!(wrong.status(), 302);
    assert_eq!(wrong.headers()["location"], "/?login=failed");
    assert!(wrong.headers().get("set-cookie").is_none());

    let out = http
        .post(srv.url("/+logout"))
        .header("cookie", format!("{COOKIE}={value}"))
        .form(&[("x", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    let cleared = cookie::Cookie::parse(response_header(&out, "set-cookie")).unwrap();
    assert_eq!(cleared.name(), COOKIE);
    assert_eq!(cleared.value(), "");
    assert_eq!(cleared.max_age(), Some(cookie::time::Duration::ZERO));
    assert_eq!(cleared.http_only(), Some(true));
    srv.stop().await;
}
