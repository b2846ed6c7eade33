//! The deliveries view with each channel's alert state, and the console in Chromium without
//! JavaScript (and with it: select all).

mod common;

use common::*;
use std::time::Duration;

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
