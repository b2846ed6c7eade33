//! What a service is operated with: request ids (`X-Request-Id`, also in every log line), JSON
//! logs a shipper can parse, and `/readyz` beside `/healthz`.

mod common;

use common::*;
use std::time::Duration;

fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_unique_and_only_trusted_proxies_set_them() {
    let c = reqwest::Client::new();
    let srv = TestServer::start().await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let r = c
            .get(srv.url("/healthz"))
            .header("X-Request-Id", "forged-by-a-client")
            .send()
            .await
            .unwrap();
        let id = request_id(&r);
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert!(seen.insert(id), "ids are unique");
    }
    // Errors carry one too.
    let r = c.get(srv.url("/no/such/page")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(request_id(&r).len(), 16);

    // Behind a trusted proxy its id is kept (when plain and short), so one id follows the
    // request through both logs.
    let srv = TestServer::start_with("trusted_proxies = [\"127.0.0.1/32\"]").await;
    for (sent, kept) in [
        ("lb-7f3a.42_x", true),
        ("has space", false),
        (&*"x".repeat(65), false),
    ] {
        let r = c
            .get(srv.url("/healthz"))
            .header("X-Request-Id", sent)
            .send()
            .await
            .unwrap();
        assert_eq!(request_id(&r) == sent, kept, "{sent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_whether_to_send_traffic() {
    let c = reqwest::Client::new();
    let srv = TestServer::start().await;
    let r = c.get(srv.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["ready"], true);

    // No room for uploads: not ready (a balancer should send uploads elsewhere), while
    // /healthz still answers 200 "degraded" (the process is alive and serving downloads).
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmin_free_space = \"{}\"\n{}",
        dir.path().to_str().unwrap(),
        u64::MAX,
        secrets_toml(1)
    );
    let srv = TestServer::start_toml(dir.path(), &toml).await;
    let r = c.get(srv.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["ready"], false);
    assert!(v["reason"].as_str().unwrap().contains("space"), "{v}");
    let r = c.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "degraded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = binary_config(dir.path(), "log_format = \"json\"", "");
    let log = dir.path().join("stderr.log");
    let bin = Binary::start(
        &["serve", "--config", config.to_str().unwrap()],
        &[("RUST_LOG", "sfx=info")],
        Some(&log),
    )
    .await;
    let r = reqwest::Client::new()
        .put(bin.url("/+upload/logged.txt"))
        .header("Authorization", CUSTOMER_BASIC)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = request_id(&r);
    bin.stop().await;

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
    // The request's own line and the upload's line both name the request id.
    let of_request: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["span"]["request_id"] == id.as_str())
        .collect();
    let request_line = of_request
        .iter()
        .find(|l| l["fields"]["message"] == "request")
        .unwrap_or_else(|| panic!("no request line for {id}: {text}"));
    assert_eq!(request_line["fields"]["method"], "PUT");
    assert_eq!(request_line["fields"]["status"], 201);
    assert!(
        of_request
            .iter()
            .any(|l| l["fields"]["message"] == "upload complete"),
        "the upload's log line carries the id: {text}"
    );
    assert!(!text.contains("support"), "no secret in the logs");
}

/// On SIGTERM with `shutdown_delay`, `/readyz` answers 503 "shutting down" while sfx still
/// accepts and serves (a load balancer takes it out first); then it stops accepting and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_shutting_down_before_the_listener_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = binary_config(dir.path(), "shutdown_delay = \"3s\"", "");
    let bin = Binary::start(&["serve", "--config", config.to_str().unwrap()], &[], None).await;
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert_eq!(
        c.get(bin.url("/readyz")).send().await.unwrap().status(),
        200
    );
    bin.signal("TERM");
    let r = eventually(
        "readyz says shutting down",
        Duration::from_secs(5),
        async || {
            let r = c
                .get(bin.url("/readyz"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status() == 503 {
                Ok(r)
            } else {
                Err(format!("{}", r.status()))
            }
        },
    )
    .await;
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["reason"], "shutting down");
    // Still serving meanwhile, on new connections.
    let upload = c
        .put(bin.url("/+upload/late.txt"))
        .header("Authorization", CUSTOMER_BASIC)
        .body("still here")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    assert_eq!(
        c.get(bin.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let addr = bin.addr();
    bin.wait_exit(Duration::from_secs(15)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after the exit"
    );
}
