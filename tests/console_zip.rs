//! The console's streamed ZIP: read back with Python's zipfile and `sha256sum -c`, ZIP64 for a
//! member over 4 GiB, the antivirus and permission gates, and the cap on ZIPs in progress.

mod common;

use common::*;
use sfx::items::ItemName;
use sfx::scan::ScanState;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_items_download_as_one_zip() {
    let srv = TestServer::start().await;
    let got = uploads(
        &srv,
        &[("bundle.tgz", 300_000), ("bundle.tgz", 1), ("notes.txt", 0)],
    )
    .await;
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    let query: String = names.iter().map(|n| format!("name={n}&")).collect();
    let resp = get_as(&srv, Some(READER), &format!("/+zip?{query}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(response_header(&resp, "content-type"), "application/zip");
    let disposition = response_header(&resp, "content-disposition");
    assert!(
        disposition.starts_with("attachment; filename=\"sfx-3-files-"),
        "{disposition}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("got.zip");
    save(resp, &archive).await;
    let dest = tmp.path().join("out");
    let report = zip_check(&archive, dest.to_str().unwrap()).await;
    let members: Vec<(String, u64, bool)> = report["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["size"].as_u64().unwrap(),
                m["stored"].as_bool().unwrap(),
            )
        })
        .collect();
    let second = format!("bundle-{}.tgz", names[1]);
    let sums_len = 3 * (64 + 2) as u64
        + ["bundle.tgz", second.as_str(), "notes.txt"]
            .iter()
            .map(|n| n.len() as u64 + 1)
            .sum::<u64>();
    assert_eq!(
        members,
        [
            ("bundle.tgz".to_string(), 300_000, true),
            (second.clone(), 1, true),
            ("notes.txt".to_string(), 0, true),
            ("SHA256SUMS".to_string(), sums_len, true),
        ]
    );
    for (path, (_, data)) in ["bundle.tgz", second.as_str(), "notes.txt"]
        .iter()
        .zip(&got)
    {
        assert_eq!(&std::fs::read(dest.join(path)).unwrap(), data, "{path}");
    }
    // The manifest checks with coreutils.
    let check = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dest)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let audit = admin_text(&srv, "/+audit").await;
    assert_eq!(audit.matches("in a ZIP of 3 files").count(), 3, "{audit}");

    // The bulk form posts the same; it is a download like any other.
    let resp = post_form(
        &srv,
        ADMIN,
        "/+zip",
        &form_of(&names[..1], &[("next", "/+list")]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let one = tmp.path().join("one.zip");
    save(resp, &one).await;
    assert_eq!(
        zip_check(&one, "-").await["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Refusals come before any byte, and name the item.
    let status = |r: &reqwest::Response| r.status().as_u16();
    let resp = get_as(
        &srv,
        Some(READER),
        &format!("/+zip?name={}&name=4qVsTtL9", names[0]),
    )
    .await;
    assert_eq!(status(&resp), 404);
    let many: Vec<String> = (0..1001).map(fake_name).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let resp = post_form(&srv, READER, "/+zip", &form_of(&many, &[])).await;
    assert_eq!(status(&resp), 400);
    assert!(resp.text().await.unwrap().contains("at most 1000"));
    assert_eq!(
        status(&get_as(&srv, Some(LISTER), &format!("/+zip?{query}")).await),
        403
    );
    assert_eq!(status(&get_as(&srv, Some(READER), "/+zip").await), 400);
    let first = ItemName::parse(names[0]).unwrap();
    srv.state
        .store
        .set_scan(&first, &ScanState::Scanning)
        .unwrap();
    let resp = get_as(&srv, Some(READER), &format!("/+zip?{query}")).await;
    assert_eq!(status(&resp), 409);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("bundle.tgz") && body.contains("being scanned"),
        "{body}"
    );
    let infected = ScanState::Infected("Eicar-Test-Signature".into());
    srv.state.store.set_scan(&first, &infected).unwrap();
    assert_eq!(
        status(&get_as(&srv, Some(READER), &format!("/+zip?{query}")).await),
        403
    );
    let resp = get_as(&srv, Some(ADMIN), &format!("/+zip?{query}")).await;
    assert_eq!(status(&resp), 403);
    assert!(resp.text().await.unwrap().contains("quarantined"));
    let resp = get_as(
        &srv,
        Some(ADMIN),
        &format!("/+zip?{query}override=infected"),
    )
    .await;
    assert_eq!(status(&resp), 200);
    save(resp, &one).await;
    assert_eq!(
        zip_check(&one, "-").await["members"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert!(
        admin_text(&srv, "/+audit")
            .await
            .contains("quarantine overridden")
    );
    srv.stop().await;
}

/// A member of 4 GiB and more needs ZIP64, and so do the offsets after it. The big item is a
/// sparse file registered in the store (uploading 4 GiB would only slow the test down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_over_4_gib_gets_zip64() {
    let srv = TestServer::start().await;
    let big_size: u64 = (4 << 30) + 12_345;
    let big = meta_item("ZZZZZZZZ", "huge.img", big_size, sfx::now());
    let path = srv.stored_path("ZZZZZZZZ");
    {
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(big_size).unwrap();
    }
    srv.state.store.insert(&[big], None).unwrap();
    let small = uploads(&srv, &[("after.txt", 1000)]).await;
    let resp = get_as(
        &srv,
        Some(READER),
        &format!("/+zip?name=ZZZZZZZZ&name={}", small[0].0),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("big.zip");
    let len = save(resp, &archive).await;
    assert!(len > big_size, "{len}");
    let report = zip_check(&archive, "-").await;
    let members = report["members"].as_array().unwrap();
    assert_eq!(members[0]["name"], "huge.img");
    assert_eq!(members[0]["size"].as_u64(), Some(big_size));
    assert_eq!(members[0]["zip64"], true, "{report}");
    assert_eq!(members[1]["name"], "after.txt");
    assert_eq!(members[1]["size"].as_u64(), Some(1000));
    srv.stop().await;
}

/// ZIPs hold a thread each while their client reads: at most 16 at once (then 503 with
/// `Retry-After`), the rest of the server unaffected, and the places come back when clients go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zips_in_progress_are_capped_and_given_back() {
    let srv = TestServer::start().await;
    let size: u64 = 1 << 30;
    let big = meta_item("ZZZZZZZZ", "big.img", size, sfx::now());
    std::fs::File::create(srv.stored_path("ZZZZZZZZ"))
        .unwrap()
        .set_len(size)
        .unwrap();
    srv.state.store.insert(&[big], None).unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        let resp = get_as(&srv, Some(READER), "/+zip?name=ZZZZZZZZ").await;
        assert_eq!(resp.status(), 200);
        held.push(resp); // headers read, body not: the ZIP waits for its reader
    }
    let refused = get_as(&srv, Some(READER), "/+zip?name=ZZZZZZZZ").await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused.text().await.unwrap().contains("ZIP downloads"));
    // Pages and downloads go on meanwhile.
    assert_eq!(page_as(&srv, ADMIN, "/+list").await.0, 200);
    let ranged = client()
        .get(srv.url("/ZZZZZZZZ/+download"))
        .basic_auth("user", Some(READER))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    drop(held);
    eventually(
        "a ZIP place is free again",
        Duration::from_secs(20),
        async || {
            let resp = get_as(&srv, Some(READER), "/+zip?name=ZZZZZZZZ").await;
            match resp.status().as_u16() {
                200 => Ok(()),
                s => Err(format!("{s}")),
            }
        },
    )
    .await;
    srv.stop().await;
}
