//! The permission matrix: a create-only secret can upload and nothing else, and cannot even
//! learn whether an item exists; operators can list, read and delete according to their set.

mod common;

use common::*;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};

async fn uploaded_name(srv: &TestServer) -> String {
    upload_form(srv, file_form("perm.txt", &b"secret customer data"[..])).await
}

async fn post_as(srv: &TestServer, secret: Option<&str>, path: &str) -> StatusCode {
    let mut req = client()
        .post(srv.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("");
    if let Some(s) = secret {
        req = req.basic_auth("user", Some(s));
    }
    req.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_create_may_upload() {
    let srv = TestServer::start().await;
    for (secret, expected) in [
        (Some(CUSTOMER), StatusCode::FOUND),
        // admin implies create
        (Some(ADMIN), StatusCode::FOUND),
        (Some(READER), StatusCode::FORBIDDEN),
        (Some(LISTER), StatusCode::FORBIDDEN),
        (Some(DELETER), StatusCode::FORBIDDEN),
        (None, StatusCode::FORBIDDEN),
        (Some("wrong"), StatusCode::FORBIDDEN),
    ] {
        let resp = post_upload(&srv, secret, file_form("perm.txt", &b"a"[..])).await;
        assert_eq!(resp.status(), expected, "{secret:?}");
    }
    assert_eq!(srv.item_names().len(), 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_cannot_read_list_delete_or_probe() {
    let srv = TestServer::start().await;
    let name = uploaded_name(&srv).await;
    let missing = "AAAAAAAA";
    assert!(!srv.item_names().contains(&missing.to_string()));
    let mut refused = Vec::new();
    for path in ["", "/+download", "/+inline"] {
        // Existing and missing items answer the same: nothing is learnt from guessing.
        refused.push((Some(CUSTOMER), format!("/{name}{path}")));
        refused.push((Some(CUSTOMER), format!("/{missing}{path}")));
        refused.push((None, format!("/{name}{path}")));
    }
    for path in [
        format!("/apis/rest/items/{name}"),
        format!("/apis/rest/items/{name}/download"),
        "/+list".into(),
        "/apis/rest/items".into(),
    ] {
        refused.push((Some(CUSTOMER), path));
    }
    for (secret, path) in refused {
        let status = get_as(&srv, secret, &path).await.status();
        assert_eq!(status, StatusCode::FORBIDDEN, "{secret:?} GET {path}");
    }
    for item in [name.as_str(), missing] {
        assert_eq!(
            post_as(&srv, Some(CUSTOMER), &format!("/{item}/+delete")).await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(srv.item_names(), vec![name]);

    // The JSON listing error is bepasty's JSON shape.
    let resp = get_as(&srv, Some(CUSTOMER), "/apis/rest/items").await;
    assert_json_error(resp, 403).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_by_permission() {
    let srv = TestServer::start().await;
    let name = uploaded_name(&srv).await;
    let item = format!("/{name}");
    let download = format!("/{name}/+download");
    let delete = format!("/{name}/+delete");
    for (secret, path, expected) in [
        // read
        (READER, item.as_str(), StatusCode::OK),
        (READER, &download, StatusCode::OK),
        (READER, "/AAAAAAAA", StatusCode::NOT_FOUND),
        (READER, "/+list", StatusCode::FORBIDDEN),
        // list
        (LISTER, "/+list", StatusCode::OK),
        (LISTER, "/apis/rest/items", StatusCode::OK),
        (LISTER, &download, StatusCode::FORBIDDEN),
        // admin implies everything
        (ADMIN, "/+list", StatusCode::OK),
        (ADMIN, "/apis/rest/items", StatusCode::OK),
        (ADMIN, &item, StatusCode::OK),
        (ADMIN, &download, StatusCode::OK),
    ] {
        let status = get_as(&srv, Some(secret), path).await.status();
        assert_eq!(status, expected, "{secret} GET {path}");
    }
    // delete
    assert_eq!(
        post_as(&srv, Some(READER), &delete).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_as(&srv, Some(DELETER), &delete).await,
        StatusCode::FOUND
    );
    assert!(srv.item_names().is_empty());
    assert!(
        srv.stored_files().is_empty(),
        "the file is removed with the item"
    );
    assert_eq!(
        get_as(&srv, Some(ADMIN), &item).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post_as(&srv, Some(ADMIN), &delete).await,
        StatusCode::NOT_FOUND
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_query_and_form_field() {
    let srv = TestServer::start().await;
    let name = uploaded_name(&srv).await;
    for (path, expected) in [
        (format!("/{name}?token={ADMIN}"), StatusCode::OK),
        (format!("/+list?token={CUSTOMER}"), StatusCode::FORBIDDEN),
        ("/+list?token=nope".into(), StatusCode::FORBIDDEN),
    ] {
        assert_eq!(get_as(&srv, None, &path).await.status(), expected, "{path}");
    }
    // pastebinit: a urlencoded form with the secret as `token`.
    let resp = client()
        .post(srv.url("/+upload"))
        .form(&[
            ("text", "hello paste"),
            ("filename", "p.txt"),
            ("contenttype", "text/plain"),
            ("token", CUSTOMER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    // multipart with `token` before the file, with a token that grants create and one that
    // does not
    for (token, expected) in [
        (CUSTOMER, StatusCode::FOUND),
        (READER, StatusCode::FORBIDDEN),
    ] {
        let form = Form::new()
            .text("token", token)
            .part("file", Part::bytes(&b"x"[..]).file_name("t.bin"));
        assert_eq!(post_upload(&srv, None, form).await.status(), expected);
    }
    assert_eq!(srv.item_names().len(), 3);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_session_grants_the_secret_permissions() {
    let srv = TestServer::start().await;
    let (browser, _) = browser();
    let resp = post_login(&browser, &srv, &[("token", CUSTOMER)]).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let cookie = response_header(&resp, "set-cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let home = async || {
        let page = browser.get(srv.url("/")).send().await.unwrap();
        page.text().await.unwrap()
    };
    let page = home().await;
    assert!(
        page.contains("action=\"/+upload\"") && page.contains("Logout"),
        "{page}"
    );
    assert_eq!(
        browser
            .post(srv.url("/+upload"))
            .multipart(file_form("s.txt", &b"s"[..]))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FOUND
    );
    assert_eq!(
        browser
            .get(srv.url("/+list"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    // A forged cookie is ignored (anonymous), not trusted.
    let forged = client()
        .get(srv.url("/+list"))
        .header("cookie", "sfx_session=v1.x.YWRtaW4.9999999999.fp.AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // Cross-site POST riding on the session is refused.
    for (header, value, expected) in [
        ("origin", "http://evil.example", StatusCode::FORBIDDEN),
        ("origin", "null", StatusCode::FORBIDDEN),
        ("sec-fetch-site", "cross-site", StatusCode::FORBIDDEN),
        ("sec-fetch-site", "same-site", StatusCode::FORBIDDEN),
        ("sec-fetch-site", "same-origin", StatusCode::FOUND),
    ] {
        let resp = browser
            .post(srv.url("/+upload"))
            .header(header, value)
            .multipart(file_form("s", &b"s"[..]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected, "{header}: {value}");
    }
    // Logout ends the session.
    assert_eq!(
        browser
            .post(srv.url("/+logout"))
            .form(&[("x", "")])
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FOUND
    );
    let page = home().await;
    assert!(!page.contains("action=\"/+upload\"") && page.contains("name=\"token\""));
    // Wrong password: back to the page with a message, no session.
    let resp = post_login(&browser, &srv, &[("token", "nope")]).await;
    assert_eq!(resp.headers()["location"], "/?login=failed");
    assert!(resp.headers().get("set-cookie").is_none());
    // Open redirects are not followed.
    let resp = post_login(
        &browser,
        &srv,
        &[("token", ADMIN), ("next", "//evil.example/")],
    )
    .await;
    assert_eq!(resp.headers()["location"], "/");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_rides_on_rest_item_operations_are_refused_cross_site() {
    let srv = TestServer::start().await;
    let name = upload_form(&srv, file_form("victim.txt", &b"keep me"[..])).await;
    let (browser, _) = browser();
    assert_eq!(
        post_login(&browser, &srv, &[("token", ADMIN)])
            .await
            .status(),
        StatusCode::FOUND
    );
    for op in ["lock", "delete", "modify"] {
        for site in ["cross-site", "same-site"] {
            let resp = browser
                .post(srv.url(&format!("/apis/rest/items/{name}/{op}")))
                .header("sec-fetch-site", site)
                .header("content-type", "application/json")
                .body(r#"{"filename":"renamed.txt"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{op} from {site}");
        }
    }
    let from_our_page = browser
        .post(srv.url(&format!("/apis/rest/items/{name}/lock")))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(from_our_page.status(), StatusCode::OK);
    assert_eq!(srv.item_names(), vec![name]);
    srv.stop().await;
}
