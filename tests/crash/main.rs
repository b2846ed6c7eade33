//! Nothing acknowledged is ever lost: the real binary under load, `kill -9`ed at random moments
//! (and once during start-up recovery), restarted on the same data directory, and checked.
//!
//! Each round starts the server, runs 24 concurrent clients (12 posting forms of 0 B to 3 MiB,
//! some with several files; 12 sending chunked REST uploads of up to 4 MiB in 64 KiB - 1 MiB
//! chunks), each from its own 127.0.0.x address so that each has its own deliveries, and kills
//! the server at a random moment. After each restart: every upload whose client got a `302` or
//! `201` is listed complete with its size and SHA-256 and downloads byte-identical; every REST
//! upload with an acknowledged chunk (`200`) resumes from at least that offset (`HEAD`); every
//! item listed complete is the bytes of an upload that was attempted (nothing torn, nothing
//! incomplete shown complete); `tmp/` is empty; every file in `files/` has metadata; `sfx check
//! --quick` is clean. Later rounds continue the REST uploads from their offsets; the last one
//! finishes them all. Alerts go to a JSON webhook: each delivery's idempotency key always comes
//! with the same payload (a kill between sending and recording it resends it: at least once,
//! one key), and each acknowledged item is in exactly one delivery. (An alert whose attempt a
//! kill cut short is due again as soon as the server restarts.)
//!
//! The RNG is seeded (printed; `SFX_CRASH_SEED=N` repeats a run's choices, though not the
//! scheduling); the figures are printed at the end (`cargo test --test crash -- --nocapture`).

#[path = "../common/mod.rs"]
mod common;
mod load;

use common::*;
use load::*;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FORM_CLIENTS: usize = 12;
const REST_CLIENTS: usize = 12;
/// Rounds killed under load; the one after `RECOVERY_ROUND` is also killed during start-up.
const ROUNDS: usize = 5;
const RECOVERY_ROUND: usize = 1;
/// Temp files planted for the start-up to remove, so that recovery takes a while.
const PLANTED_TEMP_FILES: usize = 2000;
const KIB: usize = 1 << 10;
/// How long alerts may take after the last start (an attempt cut short by a kill is due again
/// as soon as the server restarts).
const ALERT_WAIT: Duration = Duration::from_secs(20);

struct Run {
    tmp: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
    rng: fastrand::Rng,
    ledger: Shared,
    starts: usize,
    kills: usize,
    recovery_kills: usize,
    next_seed: u64,
}

impl Run {
    fn log(&self) -> PathBuf {
        self.tmp.path().join(format!("sfx-{}.log", self.starts))
    }

    /// `sfx serve` (under a permissive umask: the server keeps its data directory private
    /// itself, and `sfx check` verifies the modes).
    fn spawn(&mut self) -> Starting {
        self.starts += 1;
        let cmd = sfx_command(
            &["serve", "--config", self.config.to_str().unwrap()],
            &[],
            Some("022"),
        );
        Binary::spawn(cmd, Some(&self.log()))
    }

    async fn start(&mut self) -> Binary {
        self.spawn().listening().await
    }

    fn seed(&mut self) -> u64 {
        self.next_seed += 1;
        self.next_seed
    }
}

fn tmp_entries(data: &Path) -> usize {
    std::fs::read_dir(data.join("tmp")).map_or(0, |d| d.count())
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Everything the clients were told still holds on the restarted server `bin`.
async fn verify(run: &Run, bin: &Binary, when: &str) {
    let ledger = &run.ledger;
    let listed = listing(bin).await;
    let meta = |name: &str| listed.get(name).map(|v| v["file-meta"].clone());
    // Nothing left in tmp/, no file without metadata, no partial without an incomplete upload.
    let left = tmp_entries(&run.data);
    if left > 0 {
        fail(ledger, format!("{when}: {left} entries left in tmp/"));
    }
    for name in names_in(&run.data.join("files")) {
        if meta(&name).is_none() {
            fail(ledger, format!("{when}: files/{name} has no metadata"));
        }
    }
    for name in names_in(&run.data.join("partial")) {
        if meta(&name).is_none_or(|m| m["complete"] != false) {
            fail(
                ledger,
                format!("{when}: partial/{name} of no incomplete upload"),
            );
        }
    }
    // Every item listed complete is the bytes of some upload attempted: nothing torn, nothing
    // incomplete passed off as complete.
    let attempted = ledger.lock().unwrap().attempted.clone();
    for (name, v) in &listed {
        let m = &v["file-meta"];
        if m["complete"] == true {
            let sha = m["hash"].as_str().unwrap_or_default();
            let size = m["size"].as_u64().unwrap_or(u64::MAX) as usize;
            let mut found = false;
            for blob in attempted.get(&size).into_iter().flatten() {
                if blob_sha(ledger, *blob).await == sha {
                    found = true;
                    break;
                }
            }
            if !found {
                fail(
                    ledger,
                    format!(
                        "{when}: {name} listed complete ({size} bytes, {sha}) is no upload's bytes"
                    ),
                );
            }
        }
    }
    // Acknowledged items: listed complete with their size and SHA-256; new ones downloaded.
    let (acked, downloaded, unnamed) = {
        let l = ledger.lock().unwrap();
        (
            l.acked.clone(),
            l.downloaded.clone(),
            l.acked_unnamed.clone(),
        )
    };
    let complete: BTreeSet<(String, u64)> = listed
        .values()
        .map(|v| &v["file-meta"])
        .filter(|m| m["complete"] == true)
        .map(|m| {
            (
                m["hash"].as_str().unwrap_or_default().to_string(),
                m["size"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for blob in &unnamed {
        if !complete.contains(&(blob_sha(ledger, *blob).await, blob.size as u64)) {
            fail(
                ledger,
                format!(
                    "{when}: an acknowledged file of {} bytes is not listed",
                    blob.size
                ),
            );
            ledger.lock().unwrap().lost_bytes += blob.size;
        }
    }
    for (name, blob) in &acked {
        let sha = blob_sha(ledger, *blob).await;
        let ok = meta(name).is_some_and(|m| {
            m["complete"] == true && m["size"] == blob.size as u64 && m["hash"] == sha.as_str()
        });
        if !ok {
            fail(
                ledger,
                format!(
                    "{when}: acknowledged {name} ({} bytes) is listed as {:?}",
                    blob.size,
                    meta(name)
                ),
            );
            ledger.lock().unwrap().lost_bytes += blob.size;
            continue;
        }
        if downloaded.contains(name) {
            continue;
        }
        let got = admin_get(bin, &format!("/{name}/+download")).await;
        let body = got.bytes().await.unwrap();
        if body.len() != blob.size || sha_of(body).await != sha {
            fail(ledger, format!("{when}: {name} downloads other bytes"));
            ledger.lock().unwrap().lost_bytes += blob.size;
        } else {
            ledger.lock().unwrap().downloaded.insert(name.clone());
        }
    }
    // REST uploads with acknowledged chunks: resumable from at least there (or complete).
    let http = client();
    let rest: Vec<(usize, Rest)> = {
        let l = ledger.lock().unwrap();
        l.rest
            .iter()
            .enumerate()
            .flat_map(|(i, ups)| ups.iter().map(move |u| (i, u.clone())))
            .filter(|(_, u)| u.done.is_none() && u.tid.is_some())
            .collect()
    };
    for (i, up) in rest {
        let tid = up.tid.as_deref().unwrap();
        match head_offset(&http, bin.addr(), tid).await.unwrap() {
            None => {
                fail(
                    ledger,
                    format!(
                        "{when}: {} ({} bytes acknowledged) is gone",
                        up.filename, up.acked
                    ),
                );
                ledger.lock().unwrap().lost_bytes += up.acked;
            }
            Some((offset, None)) if offset < up.acked => {
                fail(
                    ledger,
                    format!(
                        "{when}: {} resumes at {offset}, {} were acknowledged",
                        up.filename, up.acked
                    ),
                );
                ledger.lock().unwrap().lost_bytes += up.acked - offset;
            }
            // Completed by a chunk whose 201 was lost: acknowledged now.
            Some((_, Some(name))) => record_done(ledger, i, name, up.blob),
            Some(_) => {}
        }
    }
    let check = sfx_command(
        &["check", "--quick", "--config", run.config.to_str().unwrap()],
        &[],
        None,
    )
    .output()
    .await
    .unwrap();
    if !check.status.success() {
        fail(
            ledger,
            format!(
                "{when}: sfx check --quick: {}",
                String::from_utf8_lossy(&check.stdout)
            ),
        );
    }
    let failures = ledger.lock().unwrap().failures.clone();
    assert!(failures.is_empty(), "{when}: {failures:#?}");
}

/// Acknowledged items in no alert received so far.
fn unalerted(rx: &Receiver, acked: &BTreeSet<String>) -> Vec<String> {
    let alerted: BTreeSet<String> = rx
        .hits("/d")
        .iter()
        .flat_map(|h| {
            let v = h.json();
            let files = v["files"].as_array().cloned().unwrap_or_default();
            files
                .into_iter()
                .map(|f| f["name"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    acked.difference(&alerted).cloned().collect()
}

/// Plants what makes start-up recovery take a while (temp files) and an interrupted REST
/// completion (a partial file moved to files/), then kills the server while it recovers.
async fn kill_during_recovery(run: &mut Run) {
    // An unfinished upload with acknowledged bytes: its partial goes to files/, as if its
    // completion had been cut short.
    let names = names_in(&run.data.join("partial"));
    let tmp = run.data.join("tmp");
    let mut planted = PLANTED_TEMP_FILES;
    for attempt in 0.. {
        assert!(attempt < 5, "never caught the server during recovery");
        for n in 0..planted {
            std::fs::write(tmp.join(format!("up-planted-{attempt}-{n}.part")), b"x").unwrap();
        }
        let mut interrupted = "";
        if let Some(name) = names.iter().nth(attempt) {
            let from = run.data.join("partial").join(name);
            if from.exists() {
                std::fs::rename(&from, run.data.join("files").join(name)).unwrap();
                interrupted = " and an interrupted REST completion";
            }
        }
        let total = tmp_entries(&run.data);
        let starting = run.spawn();
        // Kill once the clean-up is under way, a little later at random.
        let started = Instant::now();
        while tmp_entries(&run.data) == total && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(run.rng.u64(0..10))).await;
        let stdout = starting.kill_9().await;
        run.kills += 1;
        let left = tmp_entries(&run.data);
        if !stdout.contains("listening on") && left > 0 {
            run.recovery_kills += 1;
            println!(
                "killed during start-up recovery of {total} temp files{interrupted}: {left} were left (attempt {attempt})"
            );
            return;
        }
        planted *= 2;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_killed_under_load() {
    let began = Instant::now();
    let seed = std::env::var("SFX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("crash test seed: {seed} (SFX_CRASH_SEED={seed} repeats its choices)");
    let rx = Receiver::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("sfx.toml");
    std::fs::write(
        &config,
        format!(
            "{}batch_window = \"300ms\"\n# Operator links in alerts must not change with the port of each restart.\npublic_url = \"https://sfx.example.com\"\nalert_backoff = \"1s\"\n{}[[alerts]]\nkind = \"webhook\"\nname = \"json\"\nurl = \"{}\"\nformat = \"json\"\n",
            base_toml(&data),
            secrets_toml(2),
            rx.url("/d")
        ),
    )
    .unwrap();
    let mut run = Run {
        tmp,
        config,
        data,
        rng: fastrand::Rng::with_seed(seed),
        ledger: Arc::new(Mutex::new(Ledger {
            rest: vec![Vec::new(); REST_CLIENTS],
            ..Ledger::default()
        })),
        starts: 0,
        kills: 0,
        recovery_kills: 0,
        next_seed: 0,
    };
    for round in 0..ROUNDS {
        let bin = run.start().await;
        if round > 0 {
            verify(&run, &bin, &format!("after kill {round}")).await;
        }
        let after = Duration::from_millis(run.rng.u64(300..2500));
        println!("round {round}: kill -9 after {after:?}");
        load(&mut run, bin, Some(after)).await;
        if round == RECOVERY_ROUND {
            kill_during_recovery(&mut run).await;
        }
    }
    // Last start: check, finish every REST upload, then wait for the alerts.
    let bin = run.start().await;
    verify(&run, &bin, "after the last kill").await;
    let bin = load(&mut run, bin, None).await.unwrap();
    verify(&run, &bin, "with all uploads finished").await;
    let acked: BTreeSet<String> = run.ledger.lock().unwrap().acked.keys().cloned().collect();
    let began_waiting = Instant::now();
    loop {
        let missing = unalerted(&rx, &acked);
        if missing.is_empty() {
            break;
        }
        assert!(
            began_waiting.elapsed() < ALERT_WAIT,
            "{} acknowledged items never alerted: {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hits = rx.hits("/d");
    bin.stop().await;
    // One payload per key, whatever the number of attempts; each item in one delivery.
    let mut by_key: BTreeMap<String, Value> = BTreeMap::new();
    for h in &hits {
        let v = h.json();
        assert_eq!(h.key(), v["idempotency_key"], "header and payload agree");
        if let Some(first) = by_key.get(&h.key()) {
            assert_eq!(first, &v, "key {} resent with another payload", h.key());
        } else {
            by_key.insert(h.key(), v);
        }
    }
    let mut deliveries_of: HashMap<String, usize> = HashMap::new();
    for v in by_key.values() {
        for f in v["files"].as_array().unwrap() {
            *deliveries_of
                .entry(f["name"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    for name in &acked {
        assert_eq!(
            deliveries_of.get(name),
            Some(&1),
            "{name} is in one delivery"
        );
    }
    // Offline, a full check (re-hashing every file) is clean too.
    let full = sfx_command(
        &["check", "--config", run.config.to_str().unwrap()],
        &[],
        None,
    )
    .output()
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&full.stdout);
    assert!(full.status.success(), "{report}");

    let l = run.ledger.lock().unwrap();
    let rest_uploads: usize = l.rest.iter().map(Vec::len).sum();
    let acked_bytes: usize = l.acked.values().map(|b| b.size).sum();
    println!("crash test figures (seed {seed}):");
    println!(
        "  rounds: {ROUNDS} killed under load + {} killed during start-up recovery; {} starts, {} kill -9",
        run.recovery_kills, run.starts, run.kills
    );
    println!(
        "  uploads attempted: {} form files, {rest_uploads} REST uploads",
        l.form_files
    );
    println!(
        "  acknowledged: {} items ({acked_bytes} bytes), {} REST chunks ({} bytes)",
        l.acked.len(),
        l.acked_chunks,
        l.acked_chunk_bytes
    );
    println!("  acknowledged bytes lost: {}", l.lost_bytes);
    println!(
        "  alerts: {} deliveries, {} requests ({} repeats of a key)",
        by_key.len(),
        hits.len(),
        hits.len() - by_key.len()
    );
    println!("  {}", report.lines().last().unwrap_or_default());
    println!("  wall time: {:.1} s", began.elapsed().as_secs_f64());
    assert_eq!(l.lost_bytes, 0);
    assert!(l.failures.is_empty(), "{:#?}", l.failures);
}
