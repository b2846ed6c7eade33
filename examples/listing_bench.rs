//! Console speed with many items: fills a fresh data directory with N items' metadata (in
//! deliveries of 100) and times every kind of console page over HTTP: first and last pages of
//! each order, each filter, the deliveries, the full JSON listing, and a restart. Run by
//! `bench/listing.sh`; prints figures only (best and median of 5), and the slowest page.

use sfx::items::ItemName;
use sfx::store::{DeliveryJoin, Item, ItemState, Uploader};
use std::time::Instant;

const PER_DELIVERY: usize = 100;

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmin_free_space = \"0\"\n\
         [[secrets]]\nlabel = \"ops\"\nsecret = \"ops\"\npermissions = [\"admin\"]\n\
         [[secrets]]\nlabel = \"desk\"\nsecret = \"desk\"\npermissions = [\"list\", \"read\"]\n",
        tmp.path().to_str().expect("utf-8 path")
    );
    let app = sfx::App::bind(sfx::Config::from_toml(&toml).expect("config"))
        .await
        .expect("start");
    let addr = app.local_addr().expect("addr");
    let state = app.state();
    let started = Instant::now();
    let now = sfx::now();
    let mut batch = Vec::with_capacity(PER_DELIVERY);
    for i in 0..n {
        let created = now - (n - i) as i64 * 60;
        batch.push(Item {
            name: ItemName::random().expect("name"),
            filename: format!("support_bundle_node{:05}_{i}.tar.gz", i % 977),
            content_type: "application/gzip".into(),
            size: (i as u64 * 7919) % 5_000_000_000,
            sha256: format!(
                "{:016x}{i:048x}",
                (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ),
            state: ItemState::Complete,
            created_at: created,
            completed_at: Some(created),
            expires_at: Some(now + 86400 * 30),
            downloaded_at: None,
            // One in fifty locked: the non-admin pages filter them out.
            locked: i % 50 == 0,
            uploader: Uploader {
                label: if i % 10 == 0 { "link" } else { "customers" }.into(),
                client_ip: format!("192.0.2.{}", (i / PER_DELIVERY) % 250),
                user_agent: "curl/7.88.1".into(),
                link: None,
            },
            reference: Some(format!("CASE-{}", (i / PER_DELIVERY) % 5000)),
            comment: None,
            scan: None,
        });
        if batch.len() == PER_DELIVERY || i + 1 == n {
            let join = DeliveryJoin {
                batch_key: format!("bench-{i}"),
                now_ms: created * 1000,
                window_ms: 1,
                new_idempotency_key: format!("bench-{i}"),
            };
            state.store.insert(&batch, Some(&join)).expect("insert");
            batch.clear();
        }
    }
    // Close every delivery, as the alert worker would.
    state
        .store
        .close_due_deliveries(i64::MAX / 2, &[("ops-mail".to_string(), vec![])])
        .expect("close deliveries");
    println!(
        "inserted {n} items in {} deliveries in {:.1} s",
        n.div_ceil(PER_DELIVERY),
        started.elapsed().as_secs_f64()
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let last = n.div_ceil(50);
    let deliveries_last = n.div_ceil(PER_DELIVERY).div_ceil(50);
    let cases: Vec<(String, &str)> = vec![
        ("/+list".into(), "ops"),
        (format!("/+list?page={last}"), "ops"),
        ("/+list".into(), "desk"),
        (format!("/+list?page={}", last * 49 / 50), "desk"),
        ("/+list?sort=size".into(), "ops"),
        (format!("/+list?sort=size&page={last}"), "ops"),
        ("/+list?sort=name".into(), "ops"),
        (format!("/+list?sort=name&page={last}"), "ops"),
        ("/+list?q=CASE-4242".into(), "ops"),
        ("/+list?q=node00042".into(), "ops"),
        ("/+list?q=nomatch".into(), "ops"),
        ("/+list?filename=node00977".into(), "ops"),
        ("/+list?reference=CASE-17".into(), "ops"),
        ("/+list?sha256=0".into(), "ops"),
        ("/+list?sha256=9e37".into(), "ops"),
        ("/+list?client=192.0.2.7".into(), "ops"),
        ("/+list?client=192.0.2.".into(), "ops"),
        ("/+list?uploader=link".into(), "ops"),
        ("/+list?from=2026-10-01&to=2026-10-31".into(), "ops"),
        (
            "/+list?client=192.0.2.7&uploader=link&sort=size".into(),
            "ops",
        ),
        ("/+deliveries".into(), "ops"),
        (format!("/+deliveries?page={deliveries_last}"), "ops"),
        ("/+deliveries/1".into(), "ops"),
        ("/apis/rest/items".into(), "ops"),
    ];
    println!(
        "{:<52} {:>5} {:>9} {:>10} {:>10}",
        "route", "as", "best ms", "median ms", "bytes"
    );
    let mut slowest = (0.0, String::new());
    for (path, who) in &cases {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let resp = client
                .get(format!("http://{addr}{path}"))
                .basic_auth("x", Some(*who))
                .send()
                .await
                .expect("request");
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            let body = resp.bytes().await.expect("body");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            bytes = body.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{path:<52} {who:>5} {:>9.1} {:>10.1} {:>10}",
            times[0], times[2], bytes
        );
        // The full JSON export is not a page.
        if !path.starts_with("/apis/") && times[2] > slowest.0 {
            slowest = (times[2], path.clone());
        }
    }
    println!(
        "slowest console page (median): {:.1} ms ({}); target < 100 ms",
        slowest.0, slowest.1
    );
    shutdown.cancel();
    let _ = task.await;
    drop(state);
    // Start-up on the full data directory (migrations checked, sweeps scheduled), to the first
    // page served.
    let t = Instant::now();
    let app = sfx::App::bind(sfx::Config::from_toml(&toml).expect("config"))
        .await
        .expect("restart");
    let addr = app.local_addr().expect("addr");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    let resp = client
        .get(format!("http://{addr}/+list"))
        .basic_auth("x", Some("ops"))
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_success());
    println!(
        "start-up with {n} items to the first page: {:.0} ms (target <= 1000 ms)",
        t.elapsed().as_secs_f64() * 1000.0
    );
    shutdown.cancel();
    let _ = task.await;
}
