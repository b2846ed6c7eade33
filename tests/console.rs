//! The support console: `/+list` filters, orders and pages (table-driven over items with known
//! metadata), bulk delete with its confirmation, the streamed ZIP (read back with Python's
//! zipfile and `sha256sum -c`, ZIP64 for a member over 4 GiB), the antivirus and permission
//! gates of the ZIP, and the deliveries view with each channel's alert state.

mod common;

use common::*;
use sfx::items::ItemName;
use sfx::scan::ScanState;
use sfx::store::{Item, ItemState, Uploader};
use std::path::Path;
use std::time::Duration;

/// 2026-12-01T00:00:00Z.
const DEC_1: i64 = 1_796_083_200;
const DAY: i64 = 86_400;

fn meta_item(name: &str, filename: &str, size: u64, created: i64) -> Item {
    Item {
        name: ItemName::parse(name).unwrap(),
        filename: filename.into(),
        content_type: "application/gzip".into(),
        size,
        sha256: format!(
            "{:0<64}",
            name.to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_hexdigit(), "")
        ),
        state: ItemState::Complete,
        created_at: created,
        completed_at: Some(created),
        expires_at: None,
        downloaded_at: None,
        locked: false,
        uploader: Uploader {
            label: "customers".into(),
            client_ip: "10.0.0.1".into(),
            user_agent: "curl/8.5.0".into(),
            link: None,
        },
        reference: None,
        comment: None,
        scan: None,
    }
}

/// Item names of a `/+list` page, in order.
fn listed(html: &str) -> Vec<String> {
    html.split("<code class=\"name\">")
        .skip(1)
        .filter_map(|s| s.split('<').next())
        .map(str::to_string)
        .collect()
}

/// A page, after the list's one redirect to its short address if it makes one.
async fn page_as(srv: &TestServer, secret: &str, path: &str) -> (u16, String) {
    let mut resp = get_as(srv, Some(secret), path).await;
    if resp.status() == 303 {
        let to = response_header(&resp, "location");
        assert!(to.starts_with("/+list"), "{path} -> {to}");
        resp = get_as(srv, Some(secret), &to).await;
    }
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_orders_and_pages() {
    let srv = TestServer::start().await;
    let mut a = meta_item("AAAAAAAA", "alpha.tgz", 100, DEC_1 - 30 * DAY);
    a.reference = Some("CASE-1".into());
    let mut c = meta_item("CCCCCCCC", "beta.log", 5000, DEC_1 - 16 * DAY);
    c.reference = Some("CASE-2".into());
    c.uploader.client_ip = "10.0.0.10".into();
    let mut d = meta_item("DDDDDDDD", "Gamma.tar.gz", 10, DEC_1 + 8 * 3600);
    d.uploader.label = "support-team".into();
    d.uploader.client_ip = "192.168.1.5".into();
    let mut e = meta_item("EEEEEEEE", "delta.tgz", 1, DEC_1 + 9 * 3600);
    e.reference = Some("CASE-1".into());
    e.locked = true;
    let mut f = meta_item("FFFFFFFF", "eps.bin", 2000, DEC_1 + DAY);
    f.uploader.label = "link".into();
    f.uploader.client_ip = "2001:db8::1".into();
    srv.state.store.insert(&[a, c, d, e, f], None).unwrap();

    // (query, who, names in order)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "",
            ADMIN,
            &["FFFFFFFF", "EEEEEEEE", "DDDDDDDD", "CCCCCCCC", "AAAAAAAA"],
        ),
        // Locked items are for admins.
        (
            "",
            LISTER,
            &["FFFFFFFF", "DDDDDDDD", "CCCCCCCC", "AAAAAAAA"],
        ),
        ("q=case-1", ADMIN, &["EEEEEEEE", "AAAAAAAA"]),
        ("filename=TGZ", ADMIN, &["EEEEEEEE", "AAAAAAAA"]),
        ("reference=CASE-2", ADMIN, &["CCCCCCCC"]),
        ("sha256=DD", ADMIN, &["DDDDDDDD"]),
        ("sha256=dddddddd00", ADMIN, &["DDDDDDDD"]),
        ("sha256=de", ADMIN, &[]),
        // A whole address is exact (10.0.0.1 is not 10.0.0.10); its start is a network.
        ("client=10.0.0.1", ADMIN, &["EEEEEEEE", "AAAAAAAA"]),
        ("client=10.0.", ADMIN, &["EEEEEEEE", "CCCCCCCC", "AAAAAAAA"]),
        ("client=2001:0db8:0::1", ADMIN, &["FFFFFFFF"]),
        ("uploader=support-team", ADMIN, &["DDDDDDDD"]),
        ("uploader=link", ADMIN, &["FFFFFFFF"]),
        (
            "from=2026-12-01",
            ADMIN,
            &["FFFFFFFF", "EEEEEEEE", "DDDDDDDD"],
        ),
        ("to=2026-11-30", ADMIN, &["CCCCCCCC", "AAAAAAAA"]),
        (
            "from=2026-11-10&to=2026-12-01",
            ADMIN,
            &["EEEEEEEE", "DDDDDDDD", "CCCCCCCC"],
        ),
        (
            "from=2026-12-01T08:30:00Z",
            ADMIN,
            &["FFFFFFFF", "EEEEEEEE"],
        ),
        (
            "sort=size",
            ADMIN,
            &["CCCCCCCC", "FFFFFFFF", "AAAAAAAA", "DDDDDDDD", "EEEEEEEE"],
        ),
        (
            "sort=size&order=asc",
            ADMIN,
            &["EEEEEEEE", "DDDDDDDD", "AAAAAAAA", "FFFFFFFF", "CCCCCCCC"],
        ),
        // By filename, case-insensitively: alpha, beta, delta, eps, Gamma.
        (
            "sort=name",
            ADMIN,
            &["AAAAAAAA", "CCCCCCCC", "EEEEEEEE", "FFFFFFFF", "DDDDDDDD"],
        ),
        (
            "sort=time&order=asc",
            ADMIN,
            &["AAAAAAAA", "CCCCCCCC", "DDDDDDDD", "EEEEEEEE", "FFFFFFFF"],
        ),
        (
            "q=case-1&client=10.0.0.1&sort=name&order=desc",
            ADMIN,
            &["EEEEEEEE", "AAAAAAAA"],
        ),
        ("per_page=2", ADMIN, &["FFFFFFFF", "EEEEEEEE"]),
        ("per_page=2&page=3", ADMIN, &["AAAAAAAA"]),
        ("per_page=2&page=9", ADMIN, &[]),
    ];
    for (query, who, want) in cases {
        let (status, html) = page_as(&srv, who, &format!("/+list?{query}")).await;
        assert_eq!(status, 200, "{query}: {html}");
        assert_eq!(listed(&html), *want, "/+list?{query} as {who}");
    }
    // Every link keeps the filters: the next page, and the column headers' orders.
    let (_, html) = page_as(&srv, ADMIN, "/+list?client=10.0.&per_page=2").await;
    let html = html.replace("&#38;", "&");
    for link in [
        "/+list?client=10.0.&per_page=2&page=2",
        "/+list?client=10.0.&sort=size&per_page=2",
        "/+list?client=10.0.&sort=name&per_page=2",
        // The current order (newest first) flips.
        "/+list?client=10.0.&order=asc&per_page=2",
    ] {
        assert!(html.contains(&format!("href=\"{link}\"")), "{link}: {html}");
    }
    assert!(html.contains("3 items matching."), "{html}");
    // The total is right whichever way it is found: a short last page, a page past the end.
    for (query, count) in [
        ("per_page=2&page=3", "5 items."),
        ("per_page=2&page=9", "5 items."),
        ("per_page=10", "5 items."),
        ("q=case-1", "2 items matching."),
        ("q=none", "0 items matching."),
    ] {
        let (_, html) = page_as(&srv, ADMIN, &format!("/+list?{query}")).await;
        assert!(html.contains(count), "{query}: {html}");
    }

    // Scripts get the same page as JSON (no redirect, even for a long form of the query).
    let v: serde_json::Value = client()
        .get(srv.url("/+list?q=case-1&sort=time&per_page=1"))
        .basic_auth("user", Some(ADMIN))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["total"].as_u64(), v["pages"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    assert_eq!(v["items"][0]["name"], "EEEEEEEE");
    assert_eq!(v["items"][0]["file-meta"]["filename"], "delta.tgz");
    assert_eq!(v["items"][0]["file-meta"]["locked"], true);
    assert_eq!(v["next"], "/+list?q=case-1&per_page=1&page=2");
    let bad = client()
        .get(srv.url("/+list?sha256=xyz"))
        .basic_auth("user", Some(ADMIN))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(assert_json_error(bad, 400).await.contains("sha256"));

    // What the filter form sends (every field, empty ones too) gets one redirect to the short
    // address; the short address itself does not redirect.
    for (query, short) in [
        (
            "q=&filename=&reference=CASE-1&sha256=&sort=time&order=desc",
            "/+list?reference=CASE-1",
        ),
        ("q=a+b&sort=name&order=asc&page=1", "/+list?q=a+b&sort=name"),
        ("sort=time&unknown=1", "/+list"),
        ("deleted=2&q=", "/+list?deleted=2"),
    ] {
        let resp = get_as(&srv, Some(ADMIN), &format!("/+list?{query}")).await;
        assert_eq!(resp.status(), 303, "{query}");
        assert_eq!(response_header(&resp, "location"), short, "{query}");
        let again = get_as(&srv, Some(ADMIN), short).await;
        assert_eq!(again.status(), 200, "{short}");
    }

    // Each bad parameter is named in a 400, and nothing is listed.
    for (query, word) in [
        ("sha256=xyz", "sha256"),
        ("from=2026-13-01", "from"),
        ("to=yesterday", "to"),
        ("sort=owner", "sort"),
        ("order=up", "order"),
        ("page=0", "page"),
    ] {
        let (status, body) = page_as(&srv, ADMIN, &format!("/+list?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(body.contains(word), "{query}: {body}");
    }
    // Customers may not list at all.
    assert_eq!(page_as(&srv, CUSTOMER, "/+list?q=a").await.0, 403);
    srv.stop().await;
}

/// Uploads `n` files named `file{i}.bin` with the customers' secret; returns (name, bytes).
async fn uploads(srv: &TestServer, files: &[(&str, usize)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, (filename, size)) in files.iter().enumerate() {
        let data = random_bytes(*size, i as u64 + 7);
        let name = upload_form(srv, file_form(filename, data.clone())).await;
        out.push((name, data));
    }
    out
}

fn form_of(names: &[&str], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = names
        .iter()
        .map(|n| ("name".to_string(), n.to_string()))
        .collect();
    form.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    form
}

async fn post_form(
    srv: &TestServer,
    secret: &str,
    path: &str,
    form: &[(String, String)],
) -> reqwest::Response {
    client()
        .post(srv.url(path))
        .basic_auth("user", Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_delete_asks_then_deletes_each() {
    let srv = TestServer::start().await;
    let got = uploads(&srv, &[("a.log", 10), ("b.log", 20), ("c.log", 30)]).await;
    let (a, b, c) = (got[0].0.as_str(), got[1].0.as_str(), got[2].0.as_str());
    let next = [("next", "/+list?q=log")];

    // First the confirmation page: nothing is deleted yet.
    let resp = post_form(&srv, ADMIN, "/+delete", &form_of(&[a, b], &next)).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Delete these 2 files"), "{html}");
    assert!(html.contains("a.log") && html.contains("b.log") && !html.contains("c.log"));
    assert!(srv.item(a).is_some() && srv.item(b).is_some());

    // Refusals: without the delete permission, a bad name, nothing selected, too many.
    let confirm = [("next", "/+list?q=log"), ("confirm", "yes")];
    assert_eq!(
        post_form(&srv, LISTER, "/+delete", &form_of(&[a], &confirm))
            .await
            .status(),
        403
    );
    let resp = post_form(&srv, ADMIN, "/+delete", &form_of(&["../etc"], &confirm)).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("not an item name"));
    let resp = post_form(&srv, ADMIN, "/+delete", &form_of(&[], &confirm)).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("no item selected"));
    assert!(srv.item(a).is_some());

    // A session from another site cannot delete (CSRF), even with everything right.
    let (browser, _jar) = browser();
    assert_eq!(
        post_login(&browser, &srv, &[("token", ADMIN)])
            .await
            .status(),
        302
    );
    let resp = browser
        .post(srv.url("/+delete"))
        .header("origin", "http://evil.example")
        .form(&form_of(&[a], &confirm))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(srv.item(a).is_some());

    // Confirmed: both go (one gone meanwhile is skipped), back to the list with a count.
    let resp = post_form(&srv, DELETER, "/+delete", &form_of(&[a, b], &confirm)).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(response_header(&resp, "location"), "/+list?q=log&deleted=2");
    assert!(srv.item(a).is_none() && srv.item(b).is_none() && srv.item(c).is_some());
    let (_, html) = page_as(&srv, ADMIN, "/+list?q=log&deleted=2").await;
    assert!(html.contains("2 files deleted."), "{html}");
    assert_eq!(listed(&html), [c.to_string()]);
    let audit = admin_text(&srv, "/+audit").await;
    assert_eq!(audit.matches("(bulk delete)").count(), 2, "{audit}");
    srv.stop().await;
}

/// Python's zipfile reads the archive: CRCs checked, members extracted to `dest` ("-": not).
async fn zip_check(archive: &Path, dest: &str) -> serde_json::Value {
    let python = venv_python().unwrap_or_else(|| "python3".into());
    let out = tokio::process::Command::new(python)
        .arg(script("zip_check.py"))
        .arg(archive)
        .arg(dest)
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "zipfile refused the archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["bad"].is_null(), "a member failed its CRC: {report}");
    report
}

/// Streams a response body into a file. Runs of zeros become holes, so the ZIP of a sparse
/// 4 GiB member takes no more disk than its headers (CI machines have little to spare).
async fn save(resp: reqwest::Response, path: &Path) -> u64 {
    use futures_util::StreamExt;
    use std::io::SeekFrom;
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let mut file = tokio::fs::File::create(path).await.unwrap();
    let mut stream = resp.bytes_stream();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("the body ended with an error");
        n += chunk.len() as u64;
        if chunk.iter().all(|&b| b == 0) {
            file.seek(SeekFrom::Current(chunk.len() as i64))
                .await
                .unwrap();
        } else {
            file.write_all(&chunk).await.unwrap();
        }
    }
    file.flush().await.unwrap();
    file.set_len(n).await.unwrap();
    n
}

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

/// A valid item name that is not stored.
fn fake_name(i: usize) -> String {
    let alphabet = sfx::items::NAME_ALPHABET;
    (0..8)
        .map(|k| alphabet[(i / 53usize.pow(k as u32)) % 53] as char)
        .collect()
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

/// Two channels, one up, one down: the deliveries view and the delivery page tell each one's
/// state; the list links each item to its delivery; the delivery downloads as one ZIP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_show_each_channels_alert() {
    let rx = Receiver::start().await;
    let down = Receiver::start_down().await;
    let extra = format!(
        "public_url = \"http://sfx.example.test/\"\nbatch_window = \"1s\"\nalert_backoff = \"1s\"\n\
         [[alerts]]\nkind = \"webhook\"\nname = \"ops-hook\"\nurl = \"{}\"\nformat = \"json\"\n\
         [[alerts]]\nkind = \"webhook\"\nname = \"chat-down\"\nurl = \"{}\"\nformat = \"slack\"\n",
        rx.url("/d"),
        down.url("/s")
    );
    let srv = TestServer::start_with(&extra).await;
    let got = uploads(&srv, &[("node1.tgz", 1000), ("node2.tgz", 2000)]).await;
    let first = got[0].0.as_str();
    let id = eventually(
        "the delivery's alert went out",
        Duration::from_secs(30),
        async || {
            let (_, html) = page_as(&srv, LISTER, "/+deliveries").await;
            match html.split("href=\"/+deliveries/").nth(1) {
                Some(rest)
                    if html.contains("ops-hook: delivered")
                        && html.contains("chat-down: failing") =>
                {
                    Ok(rest.split('"').next().unwrap().to_string())
                }
                _ => Err(html),
            }
        },
    )
    .await;
    let (_, html) = page_as(&srv, LISTER, "/+deliveries").await;
    assert!(html.contains("1 delivery"), "{html}");
    assert!(html.contains("chat-down: failing"), "{html}");
    assert!(html.contains("<td class=\"num\">2</td>"), "{html}");

    let (status, html) = page_as(&srv, LISTER, &format!("/+deliveries/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("node1.tgz") && html.contains("node2.tgz"),
        "{html}"
    );
    assert!(
        html.contains("<tr class=\"alert-delivered\">\n    <td>ops-hook</td>"),
        "{html}"
    );
    assert!(
        html.contains("<tr class=\"alert-failing\">\n    <td>chat-down</td>"),
        "{html}"
    );
    // A lister sees, but cannot download: no ZIP link.
    assert!(!html.contains("/zip\""), "{html}");
    let (_, html) = page_as(&srv, ADMIN, &format!("/+deliveries/{id}")).await;
    assert!(
        html.contains(&format!("href=\"/+deliveries/{id}/zip\"")),
        "{html}"
    );
    let (_, list) = page_as(&srv, ADMIN, "/+list").await;
    assert_eq!(
        list.matches(&format!("href=\"/+deliveries/{id}\"")).count(),
        2,
        "{list}"
    );

    // Deleted files stay in the delivery's story, not in its ZIP.
    let resp = post_form(
        &srv,
        ADMIN,
        "/+delete",
        &form_of(&[first], &[("confirm", "yes")]),
    )
    .await;
    assert_eq!(resp.status(), 303);
    let (_, html) = page_as(&srv, ADMIN, &format!("/+deliveries/{id}")).await;
    assert!(
        html.contains(&format!("<code class=\"name\">{first}</code> deleted")),
        "{html}"
    );
    let resp = get_as(&srv, Some(READER), &format!("/+deliveries/{id}/zip")).await;
    assert_eq!(resp.status(), 200);
    assert!(response_header(&resp, "content-disposition").contains(&format!("delivery-{id}.zip")));
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("d.zip");
    save(resp, &archive).await;
    let dest = tmp.path().join("out");
    let report = zip_check(&archive, dest.to_str().unwrap()).await;
    let names: Vec<&str> = report["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node2.tgz", "SHA256SUMS"]);
    assert_eq!(std::fs::read(dest.join("node2.tgz")).unwrap(), got[1].1);

    for (path, want) in [
        ("/+deliveries/999", 404),
        ("/+deliveries/0", 404),
        ("/+deliveries/x", 404),
        ("/+deliveries?page=0", 400),
    ] {
        assert_eq!(page_as(&srv, ADMIN, path).await.0, want, "{path}");
    }
    assert_eq!(page_as(&srv, CUSTOMER, "/+deliveries").await.0, 403);
    srv.stop().await;
}

async fn click(c: &fantoccini::Client, css: &str) {
    find(c, css).await.click().await.expect("click");
}

async fn path_and_query(c: &fantoccini::Client) -> String {
    let url = c.current_url().await.expect("url");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

async fn browser_login(c: &fantoccini::Client, srv: &TestServer, secret: &str) {
    c.goto(&srv.url("/")).await.expect("open /");
    type_into(c, "header.top input[type=password][name=token]", secret).await;
    click(c, "header.top .login button[type=submit]").await;
    wait_for(c, "header.top .login .who").await;
}

/// The console in a real Chromium without JavaScript: filter, select, delete with the
/// confirmation, download the selection as a ZIP, open a delivery. With JavaScript: the
/// "select all" box and the buttons that count the selection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_chromium_without_javascript() {
    if !chromium_available() {
        return;
    }
    let srv = TestServer::start_with("batch_window = \"1s\"").await;
    let mut names = Vec::new();
    for (filename, reference) in [
        ("a.tgz", "CASE-9"),
        ("b.tgz", "CASE-9"),
        ("c.log", "CASE-9"),
        ("x.bin", "OTHER"),
    ] {
        let part =
            reqwest::multipart::Part::bytes(filename.as_bytes().to_vec()).file_name(filename);
        let form = reqwest::multipart::Form::new()
            .text("reference", reference)
            .part("file", part);
        names.push(upload_form(&srv, form).await);
    }
    let driver = ChromeDriver::start().await;
    let c = driver.session(false).await;
    browser_login(&c, &srv, ADMIN).await;
    c.goto(&srv.url("/+list")).await.unwrap();
    wait_for(&c, "table.items").await;
    click(&c, "details.filters summary").await;
    type_into(&c, "details.filters input[name=reference]", "CASE-9").await;
    click(&c, "form.search button[type=submit]").await;
    wait_for(&c, "form.search a[href='/+list']").await;
    assert!(path_and_query(&c).await.contains("reference=CASE-9"));
    assert_eq!(find_all(&c, "table.items tbody tr").await.len(), 3);
    assert_eq!(text_of(&c, "p.count").await, "3 items matching.");

    // Select two, delete them: the confirmation page first.
    click(&c, &format!("input[type=checkbox][value='{}']", names[0])).await;
    click(&c, &format!("input[type=checkbox][value='{}']", names[1])).await;
    click(&c, "form#bulk button[formaction='/+delete']").await;
    wait_for(&c, "form.confirm").await;
    assert_eq!(text_of(&c, "main h1").await, "Delete 2 files?");
    assert!(
        srv.item(&names[0]).is_some(),
        "deleted before the confirmation"
    );
    click(&c, "form.confirm button.danger").await;
    wait_for(&c, "p.notice").await;
    assert_eq!(text_of(&c, "p.notice").await, "2 files deleted.");
    assert!(path_and_query(&c).await.contains("reference=CASE-9"));
    assert_eq!(find_all(&c, "table.items tbody tr").await.len(), 1);
    assert!(srv.item(&names[0]).is_none() && srv.item(&names[1]).is_none());

    // The ZIP button posts the selection; the browser saves the file (the audit trail says
    // the server sent it).
    click(&c, &format!("input[type=checkbox][value='{}']", names[2])).await;
    click(&c, "form#bulk button[formaction='/+zip']").await;
    eventually("the ZIP was sent", Duration::from_secs(20), async || {
        let audit = admin_text(&srv, "/+audit").await;
        if audit.contains("in a ZIP of 1 file") {
            Ok(())
        } else {
            Err("no ZIP download in the audit trail".to_string())
        }
    })
    .await;

    // The deliveries, and one of them.
    c.goto(&srv.url("/+list")).await.unwrap();
    click(&c, "header.top nav a[href='/+deliveries']").await;
    wait_for(&c, "table.deliveries").await;
    click(&c, "table.deliveries tbody tr td a").await;
    wait_for(&c, "dl.meta").await;
    assert!(text_of(&c, "main h1").await.starts_with("Delivery #"));
    c.close().await.unwrap();

    let c = driver.session(true).await;
    browser_login(&c, &srv, ADMIN).await;
    c.goto(&srv.url("/+list")).await.unwrap();
    wait_for(&c, "input.select-all").await;
    let zip = "form#bulk button[formaction='/+zip']";
    let disabled =
        async |c: &fantoccini::Client| find(c, zip).await.prop("disabled").await.unwrap();
    assert_eq!(disabled(&c).await.as_deref(), Some("true"));
    click(&c, "input.select-all").await;
    assert_eq!(text_of(&c, zip).await, "Download 2 selected as ZIP");
    assert_eq!(disabled(&c).await.as_deref(), Some("false"));
    c.close().await.unwrap();
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
