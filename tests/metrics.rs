//! `GET /metrics`: the real binary with `metrics_listen` and `metrics_token`; uploads over the
//! form (curl -F), PUT (curl -T), tus, REST and the IETF draft (plain requests) and one refused
//! as too large, a download,
//! an alert to a webhook that fails once, and wrong secrets up to a lockout; then the scrape is
//! parsed by prometheus_client's own parsers (`tests/clients/parse_metrics.py`, from the venv of
//! `.ci/python-deps.sh`) and its values checked. Also who may scrape on the main listener.
//!
//! Without the parser these tests print "skipped: ..." and pass, unless
//! `SFX_REQUIRE_PROMETHEUS_PARSER=1` (set by `.ci/run`). Everything talks to 127.0.0.1 only.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const TOKEN: &str = "metrics-token-for-tests-0123";

/// The venv's python when it has prometheus_client; otherwise skip (or fail when required).
fn parser() -> Option<PathBuf> {
    let python = venv_dir().join("bin/python");
    let ok = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", "import prometheus_client.parser"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        skip_unless_required(
            "SFX_REQUIRE_PROMETHEUS_PARSER",
            "no prometheus_client in the test venv (run .ci/python-deps.sh)",
        );
        return None;
    }
    Some(python)
}

/// The samples of one scrape, as the parser read them.
struct Scrape(Vec<Value>);

impl Scrape {
    /// The sample `name` with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.iter().find_map(|s| {
            let have = s["labels"].as_object()?;
            let same = s["name"] == name
                && have.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| have.get(*k) == Some(&(*v).into()));
            same.then(|| s["value"].as_f64()).flatten()
        })
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", self.0))
    }

    fn type_of(&self, family: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|s| s["family"] == family)
            .and_then(|s| s["type"].as_str())
    }
}

/// Parses `text` with prometheus_client.
async fn parse(python: &Path, dir: &Path, text: &str) -> Scrape {
    let input = dir.join(format!("scrape-{}.txt", rand_suffix()));
    std::fs::write(&input, text).unwrap();
    let run = run_python(python, dir, "parse_metrics.py", &[], Some(&input), &[]).await;
    assert!(run.status.success(), "parse failed: {}\n{text}", run.stderr);
    Scrape(serde_json::from_str::<Vec<Value>>(&run.stdout).unwrap())
}

async fn get(url: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = client().get(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

/// Scrapes `url` (asserting a 200 in the metrics content type) and parses it.
async fn scrape(python: &Path, dir: &Path, url: &str, auth: Option<&str>) -> Scrape {
    let resp = get(url, auth).await;
    assert_eq!(resp.status(), StatusCode::OK, "{url}");
    let ct = response_header(&resp, "content-type");
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    parse(python, dir, &resp.text().await.unwrap()).await
}

async fn tus_upload(srv: &impl Endpoint, data: &[u8]) {
    let created = client()
        .post(srv.url("/+tus/"))
        .basic_auth("user", Some(CUSTOMER))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", data.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = response_header(&created, "location");
    let patched = client()
        .patch(srv.url(&location))
        .basic_auth("user", Some(CUSTOMER))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_counts_uploads_downloads_alerts_and_lockouts() {
    let Some(python) = parser() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rx = Receiver::start().await;
    // The first alert attempt fails: one `retry`, then one `delivered`.
    rx.rule(
        "/hook",
        Rule {
            fail_first: 1,
            ..Rule::default()
        },
    );
    let top = format!(
        "max_file_size = \"1MiB\"\nmetrics_listen = \"127.0.0.1:0\"\nmetrics_token = \"{TOKEN}\"\n\
         batch_window = \"2s\"\nalert_backoff = \"1s\""
    );
    let hook = format!(
        "[[alerts]]\nkind = \"webhook\"\nname = \"hook\"\nurl = \"{}\"\nformat = \"json\"\n",
        rx.url("/hook")
    );
    let (config, _) = binary_config(dir, &top, &hook);
    let bin = Binary::start(&["serve", "--config", config.to_str().unwrap()], &[], None).await;
    let metrics_addr: SocketAddr = bin
        .banner
        .iter()
        .find_map(|l| {
            l.strip_prefix("metrics on http://")?
                .strip_suffix("/metrics")
        })
        .expect("the metrics address is printed")
        .parse()
        .unwrap();
    let metrics_url = format!("http://{metrics_addr}/metrics");
    let before = scrape(&python, dir, &metrics_url, None).await;
    assert_eq!(
        before.get("sfx_uploads_finished_total", &[("protocol", "put")]),
        None
    );
    assert_eq!(before.value("sfx_lockouts_total", &[]), 0.0);

    // Uploads: 1000 bytes by form, 2000 by PUT, 3000 by tus; 2 MiB by PUT is refused (413).
    let form_file = random_file(dir, "form.bin", 1000, 1);
    let form_arg = format!("file=@{}", form_file.display());
    let customer_upload = bin.url_with_secret(CUSTOMER, "/+upload");
    let name = curl_form_upload(&["-F", &form_arg, &customer_upload]).await;
    let put_file = random_file(dir, "put.bin", 2000, 2);
    let put_url = bin.url_with_secret(CUSTOMER, "/+upload/");
    let put = curl_status(&["-T", put_file.to_str().unwrap(), &put_url]).await;
    assert_eq!(put.code, 201, "{}", put.stderr);
    tus_upload(&bin, &random_bytes(3000, 3)).await;
    // 4000 bytes by REST in two chunks (base64 on the wire), 5000 by the IETF draft.
    let rest = random_bytes(4000, 5);
    let first = rest_chunk(&bin, &rest, 0..2000, None, &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let tid = response_header(&first, "transaction-id");
    let last = rest_chunk(&bin, &rest, 2000..4000, Some(&tid), &[]).await;
    assert_eq!(last.status(), StatusCode::CREATED);
    let ietf = client()
        .post(bin.url("/+upload"))
        .basic_auth("user", Some(CUSTOMER))
        .header("upload-complete", "?1")
        .body(random_bytes(5000, 6))
        .send()
        .await
        .unwrap();
    assert_eq!(ietf.status(), StatusCode::CREATED);
    let big = random_file(dir, "big.bin", 2 * MIB, 4);
    let refused = curl_status(&["-T", big.to_str().unwrap(), &put_url]).await;
    assert_eq!(refused.code, 413);

    let download = client()
        .get(bin.url(&format!("/{name}/+download")))
        .basic_auth("u", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.bytes().await.unwrap().len(), 1000);

    // The main listener: the token or an admin; nobody else (a wrong token is a wrong secret).
    let main_url = bin.url("/metrics");
    let bearer = format!("Bearer {TOKEN}");
    let by_token = scrape(&python, dir, &main_url, Some(&bearer)).await;
    assert_eq!(by_token.value("sfx_downloads_total", &[]), 1.0);
    let admin = client()
        .get(&main_url)
        .basic_auth("u", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
    assert_eq!(get(&main_url, None).await.status(), StatusCode::FORBIDDEN);
    let wrong = get(&main_url, Some("Bearer not-the-metrics-token-at-all")).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let customer = get(&main_url, Some(&format!("Bearer {CUSTOMER}"))).await;
    assert_eq!(
        customer.status(),
        StatusCode::FORBIDDEN,
        "customers may not scrape"
    );
    // The metrics listener serves nothing else.
    let other = get(&format!("http://{metrics_addr}/healthz"), None).await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let post = client().post(&metrics_url).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);

    // One webhook alert for the five files (one delivery), after one failed attempt.
    let delivered = eventually("the alert delivered", Duration::from_secs(30), async || {
        let s = scrape(&python, dir, &metrics_url, None).await;
        let ok = [("channel", "webhook"), ("outcome", "delivered")];
        match s.get("sfx_alert_attempts_total", &ok) {
            Some(n) if n >= 1.0 => Ok(s),
            _ => Err(format!("hits: {}", rx.hits("/hook").len())),
        }
    })
    .await;
    assert_eq!(
        rx.hits("/hook").len(),
        2,
        "one failed attempt, one delivered"
    );
    let retry = [("channel", "webhook"), ("outcome", "retry")];
    assert_eq!(delivered.value("sfx_alert_attempts_total", &retry), 1.0);

    // Wrong secrets until the address is locked out (the wrong token on /metrics was the
    // first).
    let mut failures = 1;
    loop {
        let resp = get(&bin.url("/+list"), Some("Bearer wrong-secret")).await;
        match resp.status() {
            StatusCode::FORBIDDEN => failures += 1,
            StatusCode::TOO_MANY_REQUESTS => break,
            other => panic!("unexpected {other}"),
        }
        assert!(failures <= 20, "locked out after 20 wrong secrets");
    }
    // An open connection to the main listener, with a request answered on it.
    let mut held = tokio::net::TcpStream::connect(bin.addr()).await.unwrap();
    held.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut held, Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), Some(200));

    let s = scrape(&python, dir, &metrics_url, None).await;
    for (protocol, started, bytes) in [
        ("form", 1.0, 1000.0),
        ("put", 2.0, 2000.0),
        ("tus", 1.0, 3000.0),
        ("rest", 1.0, 4000.0),
        ("ietf", 1.0, 5000.0),
    ] {
        let p = [("protocol", protocol)];
        assert_eq!(
            s.value("sfx_uploads_started_total", &p),
            started,
            "{protocol}"
        );
        assert_eq!(s.value("sfx_uploads_finished_total", &p), 1.0, "{protocol}");
        assert_eq!(s.value("sfx_uploaded_bytes_total", &p), bytes, "{protocol}");
        assert_eq!(
            s.value("sfx_upload_duration_seconds_count", &p),
            1.0,
            "{protocol}"
        );
        let inf = [("protocol", protocol), ("le", "+Inf")];
        assert_eq!(s.value("sfx_upload_duration_seconds_bucket", &inf), 1.0);
    }
    let too_large = [("protocol", "put"), ("status", "413")];
    assert_eq!(s.value("sfx_uploads_failed_total", &too_large), 1.0);
    assert_eq!(
        s.get(
            "sfx_uploads_failed_total",
            &[("protocol", "form"), ("status", "413")]
        ),
        None
    );
    // REST chunks arrive as base64: 2668 bytes for each 2000.
    let received = 1000.0 + 2000.0 + 3000.0 + 2.0 * 2668.0 + 5000.0;
    assert_eq!(s.value("sfx_upload_received_bytes_total", &[]), received);
    assert_eq!(s.value("sfx_downloads_total", &[]), 1.0);
    let put_413 = [("route", "upload-put"), ("status", "413")];
    assert_eq!(s.value("sfx_http_requests_total", &put_413), 1.0);
    let scraped = [("route", "metrics"), ("status", "200")];
    assert_eq!(s.value("sfx_http_requests_total", &scraped), 2.0);
    let refused = [("route", "metrics"), ("status", "403")];
    assert_eq!(s.value("sfx_http_requests_total", &refused), 3.0);
    assert_eq!(s.value("sfx_auth_failures_total", &[]), 20.0);
    assert_eq!(s.value("sfx_lockouts_total", &[]), 1.0);
    assert_eq!(s.value("sfx_uploads_active", &[]), 0.0);
    assert!(
        s.value("sfx_connections_open", &[]) >= 1.0,
        "the held connection"
    );
    assert_eq!(s.value("sfx_alerts_pending", &[]), 0.0);
    assert_eq!(s.value("sfx_alert_oldest_pending_age_seconds", &[]), 0.0);
    assert_eq!(s.value("sfx_store_items", &[]), 5.0);
    assert_eq!(s.value("sfx_store_bytes", &[]), 15000.0);
    assert!(s.value("sfx_disk_free_bytes", &[]) > 0.0);
    assert_eq!(s.value("sfx_disk_min_free_bytes", &[]), 0.0);
    for (family, kind) in [
        ("sfx_uploads_finished", "counter"),
        ("sfx_upload_duration_seconds", "histogram"),
        ("sfx_uploads_active", "gauge"),
        ("sfx_connections_open", "gauge"),
    ] {
        assert_eq!(s.type_of(family), Some(kind), "{family}");
    }
    // No label value is ever a filename, an item name, an address or a secret.
    let labels: Vec<String> =
        s.0.iter()
            .flat_map(|x| {
                x["labels"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.to_string())
            })
            .collect();
    for secret in [
        name.as_str(),
        "form.bin",
        "put.bin",
        "127.0.0.1",
        CUSTOMER,
        ADMIN,
        TOKEN,
    ] {
        assert!(
            !labels.iter().any(|l| l.contains(secret)),
            "{secret} in a label"
        );
    }
    drop(held);
    bin.stop().await;
}

/// Without `metrics_token` the main listener has no `/metrics`, whoever asks.
#[tokio::test]
async fn main_listener_has_no_metrics_without_a_token() {
    let srv = TestServer::start().await;
    for auth in [None, Some(format!("Bearer {ADMIN}"))] {
        let resp = get(&srv.url("/metrics"), auth.as_deref()).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    srv.stop().await;
}
