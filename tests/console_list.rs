//! The support console's list: `/+list` filters, orders and pages (table-driven over items
//! with known metadata), and bulk delete with its confirmation.

mod common;

use common::*;

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
