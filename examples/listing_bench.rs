//! Listing speed with many items: fills a fresh data directory with N items (metadata only) and
//! times the operator listing routes over HTTP. Run by `bench/listing.sh`; prints figures only.

use sfx::items::ItemName;
use sfx::store::{Item, ItemState, Uploader};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmin_free_space = \"0\"\n[[secrets]]\nlabel = \"ops\"\nsecret = \"ops\"\npermissions = [\"admin\"]\n",
        tmp.path().to_str().expect("utf-8 path")
    );
    let app = sfx::App::bind(sfx::Config::from_toml(&toml).expect("config"))
        .await
        .expect("start");
    let addr = app.local_addr().expect("addr");
    let state = app.state();
    let started = Instant::now();
    let now = sfx::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        batch.push(Item {
            name: ItemName::random().expect("name"),
            filename: format!("support_bundle_node{:05}_{i}.tar.gz", i % 977),
            content_type: "application/gzip".into(),
            size: (i as u64 * 7919) % 5_000_000_000,
            sha256: format!("{:064x}", i),
            state: ItemState::Complete,
            created_at: now - (n - i) as i64,
            completed_at: Some(now - (n - i) as i64),
            expires_at: Some(now + 86400 * 30),
            downloaded_at: None,
            locked: false,
            uploader: Uploader {
                label: "customers".into(),
                client_ip: "192.0.2.7".into(),
                user_agent: "curl/7.88.1".into(),
                link: None,
            },
            reference: Some(format!("CASE-{}", i % 5000)),
            comment: None,
            scan: None,
        });
        if batch.len() == 1000 {
            state.store.insert(&batch, None).expect("insert");
            batch.clear();
        }
    }
    state.store.insert(&batch, None).expect("insert");
    println!(
        "inserted {n} items in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    let client = reqwest::Client::new();
    let last_page = n.div_ceil(50);
    let cases = [
        ("/+list (first page)".to_string(), "/+list".to_string()),
        (
            "/+list (last page)".to_string(),
            format!("/+list?page={last_page}"),
        ),
        (
            "/+list?q=CASE-4242 (reference search)".to_string(),
            "/+list?q=CASE-4242".to_string(),
        ),
        (
            "/+list?q=node00042 (filename search)".to_string(),
            "/+list?q=node00042".to_string(),
        ),
        (
            "/+list?q=nomatch".to_string(),
            "/+list?q=nomatch".to_string(),
        ),
        (
            "/apis/rest/items (all items, JSON)".to_string(),
            "/apis/rest/items".to_string(),
        ),
    ];
    println!(
        "{:<42} {:>10} {:>10} {:>12}",
        "route", "best ms", "median ms", "bytes"
    );
    for (label, path) in cases {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let body = client
                .get(format!("http://{addr}{path}"))
                .basic_auth("x", Some("ops"))
                .send()
                .await
                .expect("request")
                .bytes()
                .await
                .expect("body");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            bytes = body.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{label:<42} {:>10.1} {:>10.1} {:>12}",
            times[0], times[2], bytes
        );
    }
    shutdown.cancel();
    let _ = task.await;
}
