//! Alerts: one alert per delivery, to real channels on 127.0.0.1 only: a real SMTP server
//! (aiosmtpd, `tests/clients/smtp_sink.py`), a real HTTP receiver (hyper, `common::Receiver`) for Slack and
//! signed JSON webhooks, and a command. Also: durability across restarts, retries with backoff and
//! one idempotency key, label filters, slow channels never slowing uploads, operator-visible
//! state, `/healthz`, logs free of webhook URLs and SMTP passwords, and `sfx alert-test`.
//!
//! The SMTP tests need aiosmtpd (`apt-get install -y python3-aiosmtpd`, used with
//! /usr/bin/python3; or a venv at /tmp/sfx-alert-venv; or `SFX_PYTHON`). Without it they print
//! a skip message, or fail when `SFX_REQUIRE_SMTP=1`.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Operator links in alerts start with this (configured with a trailing slash, which must go).
const PUBLIC_URL: &str = "https://sfx.example.test";
const UA: &str = "bundle-uploader/2.1 (tests)";

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

/// Config keys for the in-process server: `keys` are top-level keys, `channels` the
/// `[[alerts]]` tables (they go last: the harness appends the `[[secrets]]` tables after them).
fn alert_config(batch_window: &str, keys: &str, channels: &str) -> String {
    format!(
        "public_url = \"{PUBLIC_URL}/\"\nbatch_window = \"{batch_window}\"\nalert_backoff = \"1s\"\n{keys}\n{channels}"
    )
}

fn webhook(name: &str, url: &str, format: &str, extra: &str) -> String {
    format!(
        "[[alerts]]\nkind = \"webhook\"\nname = \"{name}\"\nurl = \"{url}\"\nformat = \"{format}\"\n{extra}\n"
    )
}

/// A server whose one channel is a JSON webhook to `/d` on `rx`.
async fn with_json_hook(rx: &Receiver, batch_window: &str) -> TestServer {
    let channels = webhook("json", &rx.url("/d"), "json", "");
    TestServer::start_with(&alert_config(batch_window, "", &channels)).await
}

/// Waits until `path` on the receiver has `n` requests.
async fn hits_on(rx: &Receiver, path: &str, n: usize, secs: u64) -> Vec<Hit> {
    eventually(
        &format!("{n} request(s) on {path}"),
        Duration::from_secs(secs),
        async || {
            let hits = rx.hits(path);
            if hits.len() >= n {
                Ok(hits)
            } else {
                Err(format!("{} request(s)", hits.len()))
            }
        },
    )
    .await
}

/// Uploads `file` with the real curl; returns the item name.
async fn curl_upload(srv: &TestServer, secret: &str, file: &Path, fields: &[&str]) -> String {
    let form = format!("file=@{};type=application/gzip", file.to_str().unwrap());
    let url = srv.url_with_secret(secret, "/+upload");
    let mut args = vec!["-A", UA];
    for f in fields {
        // Literal text (`-F comment=<x` would read a file named `x`).
        args.extend(["--form-string", f]);
    }
    args.extend(["-F", &form, &url]);
    curl_form_upload(&args).await
}

/// The item names an alert lists, in its order.
fn file_names(alert: &Value) -> Vec<String> {
    let files = alert["files"].as_array().expect("files");
    files
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn html_unescape(s: &str) -> String {
    s.replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The "Alert" row of the item page.
async fn item_alert(srv: &TestServer, name: &str) -> String {
    let html = admin_text(srv, &format!("/{name}")).await;
    let start = html
        .find("<dt>Alert</dt><dd>")
        .unwrap_or_else(|| panic!("no Alert row on the item page: {html}"))
        + "<dt>Alert</dt><dd>".len();
    let end = html[start..].find("</dd>").unwrap();
    html_unescape(html[start..start + end].trim())
}

/// The "Alert" column of the item's row in /+list.
async fn list_alert(srv: &TestServer, name: &str) -> String {
    let html = admin_text(srv, "/+list").await;
    assert!(html.contains("<th>Alert</th>"), "no Alert column: {html}");
    let row = html
        .split("<tr>")
        .find(|r| r.contains(&format!(">{name}</code>")))
        .unwrap_or_else(|| panic!("{name} not listed: {html}"));
    let start =
        row.find("<td class=\"alert-state\">").unwrap() + "<td class=\"alert-state\">".len();
    let end = row[start..].find("</td>").unwrap();
    // The state links to the item's delivery when it has one.
    let cell = row[start..start + end].trim();
    let text = match (cell.find('>'), cell.strip_suffix("</a>")) {
        (Some(i), Some(inner)) if cell.starts_with("<a ") => &inner[i + 1..],
        _ => cell,
    };
    html_unescape(text.trim())
}

async fn wait_item_alert(srv: &TestServer, name: &str, want: &str, secs: u64) -> String {
    eventually(
        &format!("item {name} alert `{want}`"),
        Duration::from_secs(secs),
        async || {
            let s = item_alert(srv, name).await;
            if s.starts_with(want) { Ok(s) } else { Err(s) }
        },
    )
    .await
}

fn hmac_hex(secret: &str, message: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `X-Sfx-Timestamp` / `X-Sfx-Signature: v1=<hex HMAC(secret, "<ts>.<body>")>`.
fn assert_signed(hit: &Hit, secret: &str) {
    let ts = hit.header("x-sfx-timestamp");
    let ts_num: i64 = ts.parse().unwrap_or_else(|_| panic!("timestamp `{ts}`"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - ts_num).abs() < 120,
        "timestamp {ts} is not now ({now})"
    );
    let expected = format!("v1={}", hmac_hex(secret, &format!("{ts}.{}", hit.body)));
    assert_eq!(
        hit.header("x-sfx-signature"),
        expected,
        "signature verifies"
    );
    // And a different secret does not verify.
    assert_ne!(
        hit.header("x-sfx-signature"),
        format!("v1={}", hmac_hex("wrong", &format!("{ts}.{}", hit.body)))
    );
}

/// What an alert must never carry: the customer's and operator's secrets, a credential-free
/// download link, a session cookie.
fn assert_no_secrets(text: &str) {
    // The customers' secret is the word `support`; the operators' label is `support-team`.
    let scrubbed = text
        .replace("\"support-team\"", "")
        .replace("support-team ", "");
    for secret in [CUSTOMER, ADMIN] {
        assert!(
            !scrubbed.contains(secret),
            "alert contains the secret `{secret}`: {text}"
        );
    }
    for bad in ["+download", "+inline", "sfx_session", "session=", "user:"] {
        assert!(
            !text.to_lowercase().contains(bad),
            "alert contains `{bad}`: {text}"
        );
    }
}

fn unique(prefix: &str) -> String {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).unwrap();
    format!("{prefix}{}", hex::encode(raw))
}

/// Sleeps until the wall clock's fraction of a second is `frac` (0..1).
async fn sleep_until_fraction(frac: f64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let sub = now.subsec_nanos() as f64 / 1e9;
    let wait = if sub < frac {
        frac - sub
    } else {
        1.0 - sub + frac
    };
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
}

// ---------------------------------------------------------------------------------------------
// E-mail.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_one_curl_upload_makes_exactly_one_mail() {
    let Some(python) = smtp_python("email_one_curl_upload_makes_exactly_one_mail") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let password = unique("Smtp-pw-");
    let smtp = SmtpSink::start(&python, tmp.path(), Some(&format!("alerts:{password}"))).await;
    let channels = format!(
        "[[alerts]]\nkind = \"email\"\nname = \"oncall-mail\"\nsmtp_url = \"smtp://alerts:{password}@127.0.0.1:{}\"\nfrom = \"sfx <sfx@example.test>\"\nto = [\"oncall@example.test\", \"lead@example.test\"]\n",
        smtp.port
    );
    let srv = TestServer::start_with(&alert_config("1s", "", &channels)).await;
    let file = random_file(tmp.path(), "bundle.tar.gz", 123_457, 1);
    let sha = external_sha256(&file);
    let comment = "Grüße from the night shift: the crash logs are inside";
    let name = curl_upload(
        &srv,
        CUSTOMER,
        &file,
        &["reference=CASE-4711", &format!("comment={comment}")],
    )
    .await;
    let mails = eventually("one mail", Duration::from_secs(30), async || {
        let m = smtp.messages();
        if m.is_empty() {
            Err("no mail".into())
        } else {
            Ok(m)
        }
    })
    .await;
    // Nothing else follows: one delivery, one mail.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails_after = smtp.messages();
    assert_eq!(mails_after.len(), 1, "exactly one mail: {mails_after:#?}");
    let mail = &mails[0];
    assert_eq!(mail["auth"], format!("alerts:{password}"), "smtp_url login");
    assert_eq!(mail["mail_from"], "sfx@example.test");
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["oncall@example.test", "lead@example.test"])
    );
    assert_eq!(
        mail["subject"], "[sfx] bundle.tar.gz from customers [CASE-4711]",
        "{mail:#?}"
    );
    assert!(mail["to"].as_str().unwrap().contains("oncall@example.test"));
    let text = mail["text"].as_str().unwrap().replace("\r\n", "\n");
    for want in [
        "bundle.tar.gz".to_string(),
        "123457 bytes".to_string(),
        sha.clone(),
        format!("link     {PUBLIC_URL}/{name}\n"),
        "Reference:  CASE-4711".to_string(),
        comment.to_string(),
        "customers".to_string(),
        "127.0.0.1".to_string(),
        UA.to_string(),
        "expires".to_string(),
    ] {
        assert!(text.contains(&want), "mail lacks `{want}`:\n{text}");
    }
    assert!(!text.contains(&format!("{PUBLIC_URL}//")), "{text}");
    let raw = mail["raw"].as_str().unwrap();
    assert_no_secrets(raw);
    assert_no_secrets(&text);
    assert!(!text.contains(&password), "SMTP password in the mail");
    assert!(!raw.contains(&password), "SMTP password in the mail");
    // The message id carries the delivery's idempotency key.
    let mid = mail["message_id"].as_str().unwrap();
    assert!(mid.ends_with("@sfx>") && mid.len() > 10, "{mid}");
    wait_item_alert(&srv, &name, "delivered", 10).await;
    assert_eq!(list_alert(&srv, &name).await, "delivered");
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Webhooks.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_signed_json_webhooks() {
    let rx = Receiver::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let signing = unique("sign-");
    let channels = format!(
        "{}{}",
        webhook("chat", &rx.url("/slack/T000/B000/XXXX"), "slack", ""),
        webhook(
            "ticketing",
            &rx.url("/hooks/json"),
            "json",
            &format!("signing_secret = \"{signing}\"")
        )
    );
    let srv = TestServer::start_with(&alert_config("1s", "", &channels)).await;
    let file = random_file(tmp.path(), "diag.tar.gz", 5000, 2);
    let sha = external_sha256(&file);
    // The secret in a form field this time (the `token` field), not Basic auth.
    let url = srv.url("/+upload");
    let form = format!("file=@{};type=application/gzip", file.to_str().unwrap());
    let name = curl_form_upload(&[
        "-A",
        UA,
        "-F",
        "token=support",
        "-F",
        "reference=INC-9",
        "-F",
        "comment=see attached",
        "-F",
        &form,
        &url,
    ])
    .await;

    let slack = hits_on(&rx, "/slack/T000/B000/XXXX", 1, 30).await;
    let json = hits_on(&rx, "/hooks/json", 1, 30).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.all_hits().len(), 2, "one request per channel");

    // Slack: {"text": ...} with the same facts.
    let s = &slack[0];
    assert!(
        s.header("content-type").starts_with("application/json"),
        "{:?}",
        s.headers
    );
    let text = s.json()["text"].as_str().expect("text").to_string();
    for want in [
        "diag.tar.gz",
        "5000 bytes",
        &sha,
        &format!("{PUBLIC_URL}/{name}"),
        "INC-9",
        "see attached",
        "customers",
        "127.0.0.1",
        UA,
    ] {
        assert!(text.contains(want), "slack text lacks `{want}`:\n{text}");
    }
    assert_no_secrets(&s.body);

    // JSON: the versioned schema, signed, with the idempotency key in the body and the header.
    let j = &json[0];
    assert_signed(j, &signing);
    let v = j.json();
    assert_eq!(v["schema"], "sfx.delivery.v1");
    assert_eq!(j.header("x-sfx-schema"), "sfx.delivery.v1");
    let key = v["idempotency_key"].as_str().unwrap();
    assert!(key.len() >= 16, "{key}");
    assert_eq!(j.key(), key, "Idempotency-Key header = body key");
    assert_eq!(s.key(), key, "the same key on every channel");
    assert_eq!(v["test"], false);
    assert_eq!(v["delivery"]["file_count"], 1);
    assert_eq!(v["delivery"]["total_size"], 5000);
    let f = &v["files"][0];
    assert_eq!(v["files"].as_array().unwrap().len(), 1);
    assert_eq!(f["name"], name);
    assert_eq!(f["filename"], "diag.tar.gz");
    assert_eq!(f["size"], 5000);
    assert_eq!(f["sha256"], sha);
    assert_eq!(f["type"], "application/gzip");
    assert_eq!(f["url"], format!("{PUBLIC_URL}/{name}"));
    assert!(
        f["expires_at"]
            .as_str()
            .is_some_and(|e| e.starts_with("20")),
        "{f}"
    );
    assert_eq!(f["deleted"], false);
    let u = &v["uploader"];
    assert_eq!(u["label"], "customers");
    assert_eq!(u["client_ip"], "127.0.0.1");
    assert_eq!(u["user_agent"], UA);
    assert_eq!(u["reference"], "INC-9");
    assert_eq!(u["comments"], serde_json::json!(["see attached"]));
    assert_no_secrets(&j.body);
    assert!(!j.body.contains(&signing), "signing secret in the body");
    wait_item_alert(&srv, &name, "delivered", 10).await;
    srv.stop().await;
}

/// Slack treats `<!channel>`, `<!here>` and `<url|text>` in `text` as mentions and disguised
/// links; what a customer typed must reach the chat escaped (`&lt;` `&gt;` `&amp;`, as Slack's
/// message formatting rules require), never as live markup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_text_escapes_customer_controlled_markup() {
    let rx = Receiver::start().await;
    let channels = webhook("chat", &rx.url("/s"), "slack", "");
    let srv = TestServer::start_with(&alert_config("1s", "", &channels)).await;
    let tmp = tempfile::tempdir().unwrap();
    let p = random_file(tmp.path(), "m.bin", 10, 39);
    curl_upload(
        &srv,
        CUSTOMER,
        &p,
        &[
            "reference=<!here>",
            "comment=<!channel> urgent: <https://evil.example/grab|https://sfx.example.test/AAAAAAAA> & thanks",
        ],
    )
    .await;
    let hit = hits_on(&rx, "/s", 1, 30).await.remove(0);
    let text = hit.json()["text"].as_str().unwrap().to_string();
    assert!(
        !text.contains('<') && !text.contains('>'),
        "customer text reaches Slack as live markup (mentions, disguised links):\n{text}"
    );
    assert!(
        text.contains("&lt;!channel&gt;") && text.contains("&amp; thanks"),
        "escaped, not dropped:\n{text}"
    );
    srv.stop().await;
}

/// A webhook URL that redirects (http -> https, a moved endpoint): the alert must reach the
/// final URL as the same POST, or be reported failing; never "delivered" while the receiver only
/// got a body-less GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_webhook_is_never_delivered_without_the_alert() {
    let rx = Receiver::start().await;
    rx.rule(
        "/moved",
        Rule {
            redirect: Some((301, rx.url("/new"))),
            ..Rule::default()
        },
    );
    let channels = webhook("json", &rx.url("/moved"), "json", "");
    let srv = TestServer::start_with(&alert_config("1s", "", &channels)).await;
    let tmp = tempfile::tempdir().unwrap();
    let p = random_file(tmp.path(), "r.bin", 10, 41);
    let name = curl_upload(&srv, CUSTOMER, &p, &[]).await;
    let state = eventually("an alert outcome", Duration::from_secs(30), async || {
        let s = item_alert(&srv, &name).await;
        if s == "delivered" || s.starts_with("failing") || s.starts_with("failed") {
            Ok(s)
        } else {
            Err(s)
        }
    })
    .await;
    if state == "delivered" {
        let arrived: Vec<(String, usize)> = rx
            .hits("/new")
            .iter()
            .map(|h| (h.method.clone(), h.body.len()))
            .collect();
        assert!(
            rx.hits("/new")
                .iter()
                .any(|h| h.method == "POST" && h.body.contains(&name)),
            "alert shown as delivered, but the redirect target only got {arrived:?} (method, body length)"
        );
    }
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Deliveries: what one customer sends in one go is one alert.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_file_form_post_is_one_alert() {
    let rx = Receiver::start().await;
    let srv = with_json_hook(&rx, "1s").await;
    let mut form = reqwest::multipart::Form::new().text("reference", "CASE-3");
    let mut want: Vec<(String, usize, String)> = Vec::new();
    for (i, (fname, size)) in [("a.log", 10_usize), ("b.tar.gz", 70_000), ("c.txt", 1)]
        .into_iter()
        .enumerate()
    {
        let tmp = tempfile::tempdir().unwrap();
        let p = random_file(tmp.path(), fname, size, 10 + i as u64);
        want.push((fname.to_string(), size, external_sha256(&p)));
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&p).unwrap()).file_name(fname),
        );
    }
    // Logged in like a browser: the session cookie must not end up in the alert either.
    let login = post_login(&client(), &srv, &[("token", CUSTOMER)]).await;
    assert_eq!(login.status(), StatusCode::FOUND);
    let cookie = response_header(&login, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let session_value = cookie.split_once('=').unwrap().1.to_string();
    assert!(session_value.len() > 20, "{cookie}");
    let resp = client()
        .post(srv.url("/+upload"))
        .header("cookie", &cookie)
        .header("accept", "application/json")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let receipt: serde_json::Value = resp.json().await.unwrap();
    let names: Vec<String> = receipt["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 3);

    let hits = hits_on(&rx, "/d", 1, 30).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        rx.all_hits().len(),
        1,
        "exactly one alert for the form post"
    );
    let v = hits[0].json();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{v:#}");
    assert_eq!(v["delivery"]["file_count"], 3);
    assert_eq!(v["uploader"]["label"], "customers");
    assert_eq!(v["uploader"]["reference"], "CASE-3");
    assert_no_secrets(&hits[0].body);
    assert!(
        !hits[0].body.contains(&session_value),
        "session token in the alert"
    );
    assert_eq!(v["delivery"]["total_size"], 70_011);
    for (fname, size, sha) in &want {
        let f = files
            .iter()
            .find(|f| f["filename"] == fname.as_str())
            .unwrap_or_else(|| panic!("{fname} missing: {v:#}"));
        assert_eq!(f["size"], *size);
        assert_eq!(f["sha256"], sha.as_str());
        let n = f["name"].as_str().unwrap();
        assert!(names.iter().any(|x| x == n));
        assert_eq!(f["url"], format!("{PUBLIC_URL}/{n}"));
    }
    for n in &names {
        assert_eq!(item_alert(&srv, n).await, "delivered");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_curl_uploads_within_the_window_are_one_alert() {
    let rx = Receiver::start().await;
    // 3 s window, uploads 1.5 s apart: the window counts from the last file, so the delivery
    // stays open longer than the window in total. (Gaps stay well below the window: see
    // `uploads_closer_than_the_window_are_never_split` for what happens near it.)
    let srv = with_json_hook(&rx, "3s").await;
    let tmp = tempfile::tempdir().unwrap();
    let mut shas = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let first = Instant::now();
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(
                rx.all_hits().is_empty(),
                "alert sent before the delivery ended"
            );
            assert_eq!(item_alert(&srv, &names[0]).await, "waiting for more files");
        }
        let p = random_file(
            tmp.path(),
            &format!("part-{i}.bin"),
            1000 + i,
            20 + i as u64,
        );
        shas.push(external_sha256(&p));
        names.push(curl_upload(&srv, CUSTOMER, &p, &["reference=CASE-77"]).await);
    }
    let hits = hits_on(&rx, "/d", 1, 30).await;
    assert!(
        first.elapsed() >= Duration::from_secs(4),
        "the delivery closed {:?} after the first file",
        first.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        rx.all_hits().len(),
        1,
        "exactly one alert for three uploads"
    );
    let v = hits[0].json();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{v:#}");
    for (i, f) in files.iter().enumerate() {
        assert_eq!(f["name"], names[i].as_str(), "in upload order");
        assert_eq!(f["filename"], format!("part-{i}.bin"));
        assert_eq!(f["size"], 1000 + i);
        assert_eq!(f["sha256"], shas[i].as_str());
    }
    assert_eq!(v["uploader"]["reference"], "CASE-77");
    srv.stop().await;
}

/// Two uploads 0.3 s apart with `batch_window = "1s"` must be one delivery. Whole-second
/// timestamps make the effective window anywhere between 0 and 1 s: placed across a second
/// boundary, they are split into two alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_closer_than_the_window_are_never_split() {
    let rx = Receiver::start().await;
    let srv = with_json_hook(&rx, "1s").await;
    let tmp = tempfile::tempdir().unwrap();
    let a = random_file(tmp.path(), "a.bin", 100, 30);
    let b = random_file(tmp.path(), "b.bin", 100, 31);
    sleep_until_fraction(0.80).await;
    let t = Instant::now();
    let name_a = curl_upload(&srv, CUSTOMER, &a, &[]).await;
    sleep_until_fraction(0.10).await;
    let name_b = curl_upload(&srv, CUSTOMER, &b, &[]).await;
    let gap = t.elapsed();
    assert!(gap < Duration::from_millis(800), "uploads {gap:?} apart");
    hits_on(&rx, "/d", 1, 30).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lists: Vec<Vec<String>> = rx
        .all_hits()
        .iter()
        .map(|h| file_names(&h.json()))
        .collect();
    assert_eq!(
        lists,
        vec![vec![name_a, name_b]],
        "two uploads {gap:?} apart with batch_window = 1s must make one alert"
    );
    srv.stop().await;
}

/// A bepasty REST upload in chunks: no alert while it is incomplete (even past the window), one
/// alert listing the whole file once its last chunk arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_rest_upload_alerts_once_when_complete() {
    let rx = Receiver::start().await;
    let srv = with_json_hook(&rx, "1s").await;
    let tmp = tempfile::tempdir().unwrap();
    let p = random_file(tmp.path(), "chunked.tar.gz", 300_000, 35);
    let sha = external_sha256(&p);
    let data = std::fs::read(&p).unwrap();
    let headers = [
        ("Content-Type", "application/gzip"),
        ("Content-Filename", "chunked.tar.gz"),
    ];
    let first = rest_chunk(&srv, &data, 0..100_000, None, &headers).await;
    assert_eq!(first.status(), StatusCode::OK);
    let tid = response_header(&first, "transaction-id");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(rx.all_hits().is_empty(), "alert for an incomplete upload");
    let last = rest_chunk(&srv, &data, 100_000..300_000, Some(&tid), &headers).await;
    assert_eq!(last.status(), StatusCode::CREATED);
    let location = response_header(&last, "content-location");
    let name = location.strip_prefix("/apis/rest/items/").unwrap();
    let hits = hits_on(&rx, "/d", 1, 30).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.all_hits().len(), 1);
    let v = hits[0].json();
    assert_eq!(v["files"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["files"][0]["name"], name);
    assert_eq!(v["files"][0]["filename"], "chunked.tar.gz");
    assert_eq!(v["files"][0]["size"], 300_000);
    assert_eq!(v["files"][0]["sha256"], sha.as_str());
    assert_eq!(v["uploader"]["label"], "customers");
    assert_no_secrets(&hits[0].body);
    assert!(!hits[0].body.contains(&tid), "Transaction-ID in the alert");
    srv.stop().await;
}

/// A file deleted before its delivery's alert goes out is still listed, marked deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_deleted_before_the_alert_is_listed_as_deleted() {
    let rx = Receiver::start().await;
    let channels = format!(
        "{}{}",
        webhook("json", &rx.url("/d"), "json", ""),
        webhook("chat", &rx.url("/s"), "slack", "")
    );
    let srv = TestServer::start_with(&alert_config("2s", "", &channels)).await;
    let tmp = tempfile::tempdir().unwrap();
    let a = random_file(tmp.path(), "keep.bin", 10, 36);
    let b = random_file(tmp.path(), "oops.bin", 20, 37);
    let keep = curl_upload(&srv, CUSTOMER, &a, &[]).await;
    let oops = curl_upload(&srv, CUSTOMER, &b, &[]).await;
    let del = client()
        .post(srv.url(&format!("/{oops}/+delete")))
        .basic_auth("op", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert!(
        del.status().is_success() || del.status().is_redirection(),
        "{}",
        del.status()
    );
    let json = hits_on(&rx, "/d", 1, 30).await;
    let slack = hits_on(&rx, "/s", 1, 30).await;
    let v = json[0].json();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{v:#}");
    assert_eq!(files[0]["name"], keep.as_str());
    assert_eq!(files[0]["deleted"], false);
    assert_eq!(files[1]["name"], oops.as_str());
    assert_eq!(files[1]["deleted"], true);
    let text = slack[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.contains("already deleted"), "{text}");
    wait_item_alert(&srv, &keep, "delivered", 10).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_reference_or_credential_makes_separate_deliveries() {
    let rx = Receiver::start().await;
    let srv = with_json_hook(&rx, "3s").await;
    let tmp = tempfile::tempdir().unwrap();
    let p = random_file(tmp.path(), "x.bin", 10, 38);
    let a1 = curl_upload(&srv, CUSTOMER, &p, &["reference=A"]).await;
    let b = curl_upload(&srv, CUSTOMER, &p, &["reference=B"]).await;
    let admin_a = curl_upload(&srv, ADMIN, &p, &["reference=A"]).await;
    let a2 = curl_upload(&srv, CUSTOMER, &p, &["reference=A"]).await;
    hits_on(&rx, "/d", 3, 30).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut got: Vec<(String, String, Vec<String>)> = rx
        .all_hits()
        .iter()
        .map(|h| {
            let v = h.json();
            (
                v["uploader"]["label"].as_str().unwrap().to_string(),
                v["uploader"]["reference"].as_str().unwrap().to_string(),
                file_names(&v),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("customers".into(), "A".into(), vec![a1, a2]),
            ("customers".into(), "B".into(), vec![b]),
            ("support-team".into(), "A".into(), vec![admin_a]),
        ]
    );
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Never lost: down receiver, restarts, retries with backoff, one idempotency key.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_survives_restarts_while_the_receiver_is_down() {
    let mut rx = Receiver::start_down().await;
    let channels = webhook("json", &rx.url("/d"), "json", "");
    let config = alert_config("1s", "", &channels);
    let tmp = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let p = random_file(files.path(), "kept.bin", 4321, 40);

    // Upload, and stop at once: the delivery may still be open.
    let srv = TestServer::start_in(tmp.path(), &config).await;
    let name = curl_upload(&srv, CUSTOMER, &p, &[]).await;
    srv.stop().await;

    // Restarted with the receiver still down: the alert is closed, attempted and failing.
    let srv = TestServer::start_in(tmp.path(), &config).await;
    let state = wait_item_alert(&srv, &name, "failing: ", 30).await;
    assert!(state.contains("webhook"), "{state}");
    assert!(!state.contains(&rx.addr.port().to_string()), "{state}");
    srv.stop().await;

    // Receiver back (answering 500 once more), server restarted: the alert arrives.
    rx.rule(
        "/d",
        Rule {
            fail_first: 1,
            ..Rule::default()
        },
    );
    rx.up().await;
    let srv = TestServer::start_in(tmp.path(), &config).await;
    hits_on(&rx, "/d", 2, 40).await;
    wait_item_alert(&srv, &name, "delivered", 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hits = rx.all_hits();
    assert_eq!(hits.len(), 2, "one refused attempt, one delivered");
    let keys: HashSet<String> = hits.iter().map(Hit::key).collect();
    assert_eq!(keys.len(), 1, "one idempotency key: {keys:?}");
    let v = hits[1].json();
    assert_eq!(v["idempotency_key"], hits[0].key());
    assert_eq!(v["files"][0]["name"], name.as_str());
    assert_eq!(v["files"][0]["size"], 4321);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_exponentially_with_one_key_per_delivery() {
    let rx = Receiver::start().await;
    rx.rule(
        "/flaky",
        Rule {
            fail_first: 3,
            ..Rule::default()
        },
    );
    let channels = format!(
        "{}{}",
        webhook("flaky", &rx.url("/flaky"), "json", ""),
        webhook("steady", &rx.url("/steady"), "slack", "")
    );
    let srv = TestServer::start_with(&alert_config("1s", "", &channels)).await;
    let tmp = tempfile::tempdir().unwrap();
    let p = random_file(tmp.path(), "r.bin", 10, 50);
    let name = curl_upload(&srv, CUSTOMER, &p, &[]).await;
    let state = wait_item_alert(&srv, &name, "failing: ", 30).await;
    assert_eq!(state, "failing: webhook answered HTTP 500");
    assert_eq!(list_alert(&srv, &name).await, state);
    let flaky = hits_on(&rx, "/flaky", 4, 40).await;
    wait_item_alert(&srv, &name, "delivered", 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.hits("/flaky").len(), 4, "no attempt after success");
    assert_eq!(
        rx.hits("/steady").len(),
        1,
        "the working channel is not resent"
    );
    let keys: HashSet<String> = rx.all_hits().iter().map(Hit::key).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    // Backoff 1 s, 2 s, 4 s, on whole seconds: each gap may be up to ~1 s shorter or longer.
    let gaps: Vec<Duration> = flaky.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[1] > Duration::from_millis(900), "doubling: {gaps:?}");
    assert!(gaps[2] > Duration::from_millis(2900), "doubling: {gaps:?}");
    assert!(gaps[2] < Duration::from_secs(8), "{gaps:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_is_given_up_after_alert_retry_for() {
    let mut rx = Receiver::start_down().await;
    let channels = webhook("json", &rx.url("/d"), "json", "");
    let srv =
        TestServer::start_with(&alert_config("1s", "alert_retry_for = \"2s\"", &channels)).await;
    let tmp = tempfile::tempdir().unwrap();
    let p = random_file(tmp.path(), "g.bin", 10, 60);
    let name = curl_upload(&srv, CUSTOMER, &p, &[]).await;
    let state = wait_item_alert(&srv, &name, "failed: ", 30).await;
    assert!(state.contains("webhook"), "{state}");
    assert_eq!(list_alert(&srv, &name).await, state);
    // Given up means no more attempts.
    rx.up().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(rx.all_hits().is_empty(), "attempt after giving up");
    assert!(item_alert(&srv, &name).await.starts_with("failed: "));
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Command channel.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_channel_gets_the_delivery_as_json_on_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("alerts-out");
    std::fs::create_dir(&out_dir).unwrap();
    let channels = format!(
        "[[alerts]]\nkind = \"command\"\nname = \"script\"\ncommand = [\"/bin/sh\", \"-c\", \"cat > \\\"$0/$SFX_IDEMPOTENCY_KEY.json\\\"\", {:?}]\n\
         [[alerts]]\nkind = \"command\"\nname = \"broken\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null; echo boom >&2; exit 3\"]\n",
        out_dir.to_str().unwrap()
    );
    let srv = TestServer::start_with(&alert_config("1s", "", &channels)).await;
    let p = random_file(tmp.path(), "cmd.bin", 777, 70);
    let sha = external_sha256(&p);
    let name = curl_upload(&srv, CUSTOMER, &p, &["reference=CMD-1"]).await;
    let written: Vec<PathBuf> = eventually(
        "the command's output",
        Duration::from_secs(30),
        async || {
            let files: Vec<PathBuf> = std::fs::read_dir(&out_dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            let done = files.len() == 1
                && std::fs::read(&files[0])
                    .is_ok_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_ok());
            if done {
                Ok(files)
            } else {
                Err(format!("{files:?}"))
            }
        },
    )
    .await;
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&written[0]).unwrap()).unwrap();
    assert_eq!(v["schema"], "sfx.delivery.v1");
    let key = v["idempotency_key"].as_str().unwrap();
    assert_eq!(
        written[0].file_name().unwrap().to_str().unwrap(),
        format!("{key}.json"),
        "SFX_IDEMPOTENCY_KEY is the payload's key"
    );
    assert_eq!(v["files"][0]["name"], name.as_str());
    assert_eq!(v["files"][0]["sha256"], sha);
    assert_eq!(v["files"][0]["size"], 777);
    assert_eq!(v["uploader"]["reference"], "CMD-1");
    assert_no_secrets(&v.to_string());
    // The failing command's exit status and stderr are what operators see.
    let state = wait_item_alert(&srv, &name, "failing: ", 20).await;
    assert!(
        state.contains("exit status: 3") && state.contains("boom"),
        "{state}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        std::fs::read_dir(&out_dir).unwrap().count(),
        1,
        "the delivered channel is not run again"
    );
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Label filters, slow channels, operator-visible state, health.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_labels_restricts_a_channel() {
    let rx = Receiver::start().await;
    let channels = format!(
        "{}only_labels = [\"customers\"]\n{}",
        webhook("customers-only", &rx.url("/customers"), "json", ""),
        webhook("everything", &rx.url("/all"), "json", "")
    );
    let srv = TestServer::start_with(&alert_config("1s", "", &channels)).await;
    let tmp = tempfile::tempdir().unwrap();
    let p = random_file(tmp.path(), "internal.bin", 10, 80);
    let admin_item = curl_upload(&srv, ADMIN, &p, &[]).await;
    let all = hits_on(&rx, "/all", 1, 30).await;
    assert_eq!(all[0].json()["uploader"]["label"], "support-team");
    assert_no_secrets(&all[0].body);
    wait_item_alert(&srv, &admin_item, "delivered", 10).await;
    let customer_item = curl_upload(&srv, CUSTOMER, &p, &[]).await;
    hits_on(&rx, "/all", 2, 30).await;
    let only = hits_on(&rx, "/customers", 1, 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rx.hits("/customers").len(),
        1,
        "the ADMIN upload never reached it"
    );
    let v = only[0].json();
    assert_eq!(v["uploader"]["label"], "customers");
    assert_eq!(v["files"][0]["name"], customer_item.as_str());
    wait_item_alert(&srv, &customer_item, "delivered", 10).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_webhook_never_slows_uploads_or_other_channels() {
    let rx = Receiver::start().await;
    rx.rule(
        "/slow",
        Rule {
            delay: Duration::from_secs(20),
            ..Rule::default()
        },
    );
    // An SMTP server that accepts connections and never says a word.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smtp_addr = black_hole.local_addr().unwrap();
    let hole_task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = black_hole.accept().await {
            held.push(conn);
        }
    });
    let channels = format!(
        "{}{}[[alerts]]\nkind = \"email\"\nname = \"stuck-mail\"\nsmtp_url = \"smtp://{smtp_addr}\"\nfrom = \"sfx@example.test\"\nto = [\"oncall@example.test\"]\n",
        webhook("slow", &rx.url("/slow"), "json", ""),
        webhook("fast", &rx.url("/fast"), "json", "")
    );
    let srv = TestServer::start_with(&alert_config("1s", "", &channels)).await;
    let tmp = tempfile::tempdir().unwrap();
    let first = random_file(tmp.path(), "first.bin", 1000, 90);
    let name1 = curl_upload(&srv, CUSTOMER, &first, &[]).await;
    // The worker is now stuck in the slow request.
    hits_on(&rx, "/slow", 1, 30).await;
    assert_eq!(
        item_alert(&srv, &name1).await,
        "pending",
        "attempt in flight"
    );
    assert_eq!(list_alert(&srv, &name1).await, "pending");
    let big = random_file(tmp.path(), "second.bin", 4 << 20, 91);
    let t = Instant::now();
    let name2 = curl_upload(&srv, CUSTOMER, &big, &["reference=OTHER"]).await;
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "upload took {took:?} while a webhook hangs"
    );
    let t = Instant::now();
    assert_eq!(healthz(&srv).await["status"], "ok");
    assert!(t.elapsed() < Duration::from_secs(2));
    // The other channel still gets the second delivery while the slow one hangs.
    let fast = eventually(
        "the fast channel's second alert",
        Duration::from_secs(15),
        async || {
            let hits = rx.hits("/fast");
            hits.iter()
                .find(|h| h.json()["files"][0]["name"] == name2.as_str())
                .cloned()
                .ok_or(format!("{} hit(s)", hits.len()))
        },
    )
    .await;
    assert!(
        rx.hits("/slow")[0].at.elapsed() < Duration::from_secs(20),
        "the fast channel waited for the slow one"
    );
    assert_eq!(fast.json()["uploader"]["reference"], "OTHER");
    drop(rx);
    hole_task.abort();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_state_on_item_page_and_list() {
    let mut rx = Receiver::start_down().await;
    let srv = with_json_hook(&rx, "3s").await;
    let tmp = tempfile::tempdir().unwrap();
    let p = random_file(tmp.path(), "state.bin", 10, 100);
    let name = curl_upload(&srv, CUSTOMER, &p, &[]).await;
    assert_eq!(item_alert(&srv, &name).await, "waiting for more files");
    assert_eq!(list_alert(&srv, &name).await, "waiting for more files");
    let state = wait_item_alert(&srv, &name, "failing: ", 30).await;
    assert!(
        state.len() > "failing: ".len() + 5,
        "names the error: {state}"
    );
    assert_eq!(list_alert(&srv, &name).await, state);
    rx.up().await;
    wait_item_alert(&srv, &name, "delivered", 30).await;
    assert_eq!(list_alert(&srv, &name).await, "delivered");
    assert_eq!(rx.all_hits().len(), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_degraded_while_an_alert_is_failing() {
    let mut rx = Receiver::start_down().await;
    let channels = webhook("json", &rx.url("/d"), "json", "");
    let srv = TestServer::start_with(&alert_config(
        "1s",
        "alert_degraded_after = \"1s\"",
        &channels,
    ))
    .await;
    let h = healthz(&srv).await;
    assert_eq!(
        (h["status"].as_str(), h["alerts"].as_str()),
        (Some("ok"), Some("ok"))
    );
    let tmp = tempfile::tempdir().unwrap();
    let p = random_file(tmp.path(), "h.bin", 10, 110);
    let name = curl_upload(&srv, CUSTOMER, &p, &[]).await;
    let degraded = eventually("healthz degraded", Duration::from_secs(30), async || {
        let h = healthz(&srv).await;
        if h["status"] == "degraded" {
            Ok(h)
        } else {
            Err(h.to_string())
        }
    })
    .await;
    assert_eq!(degraded["alerts"], "failing", "{degraded}");
    assert_eq!(degraded["store"], "ok");
    rx.up().await;
    wait_item_alert(&srv, &name, "delivered", 30).await;
    let h = healthz(&srv).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["alerts"], "ok", "{h}");
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The real binary: logs never show webhook URLs or SMTP passwords; `sfx alert-test`.
// ---------------------------------------------------------------------------------------------

fn binary_config(dir: &Path, channels: &str) -> PathBuf {
    let toml = format!(
        "{}public_url = \"{PUBLIC_URL}\"\nbatch_window = \"1s\"\nalert_backoff = \"1s\"\n{channels}\n{}",
        base_toml(&dir.join("data")),
        secrets_toml(2)
    );
    write_config(dir, &toml)
}

/// `sfx alert-test --config CONFIG`: (exit status, stdout, stderr).
async fn alert_test(config: &Path) -> (std::process::ExitStatus, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sfx"))
        .args(["alert-test", "--config", config.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status, text(&out.stdout), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_webhook_urls_or_smtp_passwords() {
    let tmp = tempfile::tempdir().unwrap();
    let dead = Receiver::start_down().await;
    let dead_smtp = Receiver::start_down().await;
    let path_token = unique("pathtok");
    let query_token = unique("querytok");
    let user_pw = unique("hookpw");
    let smtp_pw = unique("smtppw");
    let signing = unique("signtok");
    let channels = format!(
        "{}{}[[alerts]]\nkind = \"email\"\nname = \"mail\"\nsmtp_url = \"smtp://alerts:{smtp_pw}@{}\"\nfrom = \"sfx@example.test\"\nto = [\"oncall@example.test\"]\n",
        webhook(
            "signed",
            &dead.url(&format!("/hooks/{path_token}")),
            "json",
            &format!("signing_secret = \"{signing}\"")
        ),
        webhook(
            "chat",
            &format!(
                "http://hookuser:{user_pw}@{}/services/{path_token}/x?token={query_token}",
                dead.addr
            ),
            "slack",
            ""
        ),
        dead_smtp.addr
    );
    let config = binary_config(tmp.path(), &channels);
    let secrets = [&path_token, &query_token, &user_pw, &smtp_pw, &signing];
    for rust_log in ["sfx=debug", "debug"] {
        let stderr = tmp.path().join(format!("stderr-{rust_log}.log"));
        let args = ["serve", "--config", config.to_str().unwrap()];
        let bin = Binary::start(&args, &[("RUST_LOG", rust_log)], Some(&stderr)).await;
        let p = random_file(tmp.path(), "l.bin", 10, 120);
        let form = format!("file=@{}", p.to_str().unwrap());
        let name =
            curl_form_upload(&["-F", &form, &bin.url_with_secret(CUSTOMER, "/+upload")]).await;
        // Let every channel fail at least twice.
        let page = eventually("failing alerts", Duration::from_secs(30), async || {
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            let fails = log.matches("will retry").count();
            let page = admin_text(&bin, &format!("/{name}")).await;
            if fails >= 6 && page.contains("failing: ") {
                Ok(page)
            } else {
                Err(format!("{fails} failures logged"))
            }
        })
        .await;
        let list = admin_text(&bin, "/+list").await;
        let health = get_as(&bin, None, "/healthz").await.text().await.unwrap();
        bin.stop().await;
        let log = std::fs::read_to_string(&stderr).unwrap();
        assert!(
            log.contains("alert failed") && log.contains("signed") && log.contains("mail"),
            "the failures are logged (RUST_LOG={rust_log}):\n{log}"
        );
        for s in secrets {
            for (what, text) in [
                ("the log", &log),
                ("the item page", &page),
                ("the listing", &list),
                ("/healthz", &health),
            ] {
                assert!(
                    !text.contains(s.as_str()),
                    "{what} (RUST_LOG={rust_log}) contains the secret `{s}`:\n{text}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_test_reports_each_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let signing = unique("sign-");
    let cmd_out = tmp.path().join("cmd-alert.json");
    let mut channels = format!(
        "{}{}[[alerts]]\nkind = \"command\"\nname = \"script\"\ncommand = [\"/bin/sh\", \"-c\", \"cat > \\\"$0\\\"\", {:?}]\n",
        webhook(
            "ticketing",
            &rx.url("/json"),
            "json",
            &format!("signing_secret = \"{signing}\"")
        ),
        webhook("chat", &rx.url("/slack"), "slack", ""),
        cmd_out.to_str().unwrap()
    );
    let smtp = match smtp_python("alert_test_reports_each_channel (e-mail part)") {
        Some(python) => Some(SmtpSink::start(&python, tmp.path(), None).await),
        None => None,
    };
    if let Some(s) = &smtp {
        channels.push_str(&format!(
            "[[alerts]]\nkind = \"email\"\nname = \"mail\"\nsmtp_url = \"smtp://127.0.0.1:{}\"\nfrom = \"sfx@example.test\"\nto = [\"oncall@example.test\"]\n",
            s.port
        ));
    }
    let config = binary_config(tmp.path(), &channels);
    let (status, stdout, stderr) = alert_test(&config).await;
    assert!(status.success(), "{stdout}\n{stderr}");
    let mut names = vec!["ticketing", "chat", "script"];
    if smtp.is_some() {
        names.push("mail");
    }
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), names.len(), "one line per channel:\n{stdout}");
    for (line, name) in lines.iter().zip(&names) {
        assert!(
            line.starts_with("ok ") && line.contains(name),
            "`{line}` for {name}:\n{stdout}"
        );
    }
    // What arrived is a clearly marked test, signed like real alerts.
    let json = rx.hits("/json");
    assert_eq!(json.len(), 1);
    assert_signed(&json[0], &signing);
    let v = json[0].json();
    assert_eq!(v["test"], true);
    assert_eq!(v["schema"], "sfx.delivery.v1");
    assert!(
        v["files"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with(PUBLIC_URL)
    );
    assert_eq!(rx.hits("/slack").len(), 1);
    assert!(
        rx.hits("/slack")[0].json()["text"]
            .as_str()
            .unwrap()
            .contains("test")
    );
    let cmd: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cmd_out).expect("the command ran")).unwrap();
    assert_eq!(cmd["test"], true);
    if let Some(s) = &smtp {
        let mails = s.messages();
        assert_eq!(mails.len(), 1);
        assert!(
            mails[0]["subject"].as_str().unwrap().contains("TEST"),
            "{:?}",
            mails[0]
        );
    }

    // A dead channel: FAILED for it, ok for the others, non-zero exit, no URL printed.
    let token = unique("deadtok");
    let dead = Receiver::start_down().await;
    let config = binary_config(
        tmp.path(),
        &format!(
            "{}{}",
            webhook("good", &rx.url("/json"), "json", ""),
            webhook("dead", &dead.url(&format!("/hooks/{token}")), "slack", "")
        ),
    );
    let (status, stdout, stderr) = alert_test(&config).await;
    assert!(!status.success(), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ok ") && l.contains("good")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAILED") && l.contains("dead")),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&token) && !stderr.contains(&token),
        "{stdout}\n{stderr}"
    );
    assert_eq!(rx.hits("/json").len(), 2);
}

/// Many deliveries waiting behind a channel that never answers must not hold up another
/// channel: each channel only claims what it can send now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_channel_does_not_starve_another_under_many_deliveries() {
    let rx = Receiver::start().await;
    rx.rule(
        "/hung",
        Rule {
            delay: Duration::from_secs(60),
            ..Rule::default()
        },
    );
    let channels = format!(
        "{}{}",
        webhook("hung", &rx.url("/hung"), "json", ""),
        webhook("fast", &rx.url("/fast"), "json", "")
    );
    let srv = TestServer::start_with(&alert_config("200ms", "", &channels)).await;
    // In waves below the per-client upload limit.
    for wave in 0..3 {
        let uploads = (wave * 30..wave * 30 + 30).map(|i| {
            let form = file_form("f.txt", format!("delivery {i}").into_bytes())
                .text("reference", format!("R{i}"));
            post_upload(&srv, Some(CUSTOMER), form)
        });
        for resp in futures_util::future::join_all(uploads).await {
            assert_eq!(resp.status(), 302);
        }
    }
    let got = eventually(
        "all 90 alerts on the fast channel",
        Duration::from_secs(20),
        async || {
            let n = rx.hits("/fast").len();
            if n >= 90 {
                Ok(n)
            } else {
                Err(format!("{n} of 90"))
            }
        },
    )
    .await;
    assert_eq!(got, 90);
    srv.stop().await;
}
