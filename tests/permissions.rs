//! The permission matrix: a create-only secret can upload and nothing else, and cannot even
//! learn whether an item exists; operators can list, read and delete according to their set.

mod common;

use common::*;
use reqwest::StatusCode;

async fn upload(srv: &TestServer, secret: &str, body: &'static [u8]) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(body).file_name("perm.txt"),
    );
    client()
        .post(srv.url("/+upload"))
        .basic_auth("user", Some(secret))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn uploaded_name(srv: &TestServer) -> String {
    let resp = upload(srv, CUSTOMER, b"secret customer data").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    name_from_location(resp.headers()["location"].to_str().unwrap())
}

async fn get_as(srv: &TestServer, secret: Option<&str>, path: &str) -> StatusCode {
    let mut req = client().get(srv.url(path));
    if let Some(s) = secret {
        req = req.basic_auth("user", Some(s));
    }
    req.send().await.unwrap().status()
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
    assert_eq!(
        upload(&srv, CUSTOMER, b"a").await.status(),
        StatusCode::FOUND
    );
    assert_eq!(
        upload(&srv, ADMIN, b"b").await.status(),
        StatusCode::FOUND,
        "admin implies create"
    );
    for s in [READER, LISTER, DELETER] {
        assert_eq!(
            upload(&srv, s, b"c").await.status(),
            StatusCode::FORBIDDEN,
            "{s}"
        );
    }
    let anon = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(&b"d"[..]).file_name("x"),
    );
    assert_eq!(
        client()
            .post(srv.url("/+upload"))
            .multipart(anon)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        upload(&srv, "wrong", b"e").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(srv.item_names().len(), 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_cannot_read_list_delete_or_probe() {
    let srv = TestServer::start().await;
    let name = uploaded_name(&srv).await;
    let missing = "AAAAAAAA";
    assert!(!srv.item_names().contains(&missing.to_string()));
    for path in ["", "/+download", "/+inline"] {
        // Existing and missing items answer the same: nothing is learnt from guessing.
        assert_eq!(
            get_as(&srv, Some(CUSTOMER), &format!("/{name}{path}")).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            get_as(&srv, Some(CUSTOMER), &format!("/{missing}{path}")).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            get_as(&srv, None, &format!("/{name}{path}")).await,
            StatusCode::FORBIDDEN
        );
    }
    for path in [
        format!("/apis/rest/items/{name}"),
        format!("/apis/rest/items/{name}/download"),
    ] {
        assert_eq!(
            get_as(&srv, Some(CUSTOMER), &path).await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        get_as(&srv, Some(CUSTOMER), "/+list").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_as(&srv, Some(CUSTOMER), "/apis/rest/items").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_as(&srv, Some(CUSTOMER), &format!("/{name}/+delete")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_as(&srv, Some(CUSTOMER), &format!("/{missing}/+delete")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(srv.item_names(), vec![name]);

    // The JSON listing error is bepasty's JSON shape.
    let resp = client()
        .get(srv.url("/apis/rest/items"))
        .basic_auth("user", Some(CUSTOMER))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], 403);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_by_permission() {
    let srv = TestServer::start().await;
    let name = uploaded_name(&srv).await;
    let item = format!("/{name}");
    let download = format!("/{name}/+download");
    // read
    assert_eq!(get_as(&srv, Some(READER), &item).await, StatusCode::OK);
    assert_eq!(get_as(&srv, Some(READER), &download).await, StatusCode::OK);
    assert_eq!(
        get_as(&srv, Some(READER), "/AAAAAAAA").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_as(&srv, Some(READER), "/+list").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_as(&srv, Some(READER), &format!("{item}/+delete")).await,
        StatusCode::FORBIDDEN
    );
    // list
    assert_eq!(get_as(&srv, Some(LISTER), "/+list").await, StatusCode::OK);
    assert_eq!(
        get_as(&srv, Some(LISTER), "/apis/rest/items").await,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&srv, Some(LISTER), &download).await,
        StatusCode::FORBIDDEN
    );
    // admin implies everything
    for path in [
        "/+list",
        "/apis/rest/items",
        item.as_str(),
        download.as_str(),
    ] {
        assert_eq!(
            get_as(&srv, Some(ADMIN), path).await,
            StatusCode::OK,
            "{path}"
        );
    }
    // delete
    assert_eq!(
        post_as(&srv, Some(DELETER), &format!("{item}/+delete")).await,
        StatusCode::FOUND
    );
    assert!(srv.item_names().is_empty());
    assert!(
        srv.stored_files().is_empty(),
        "the file is removed with the item"
    );
    assert_eq!(
        get_as(&srv, Some(ADMIN), &item).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post_as(&srv, Some(ADMIN), &format!("{item}/+delete")).await,
        StatusCode::NOT_FOUND
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_query_and_form_field() {
    let srv = TestServer::start().await;
    let name = uploaded_name(&srv).await;
    assert_eq!(
        get_as(&srv, None, &format!("/{name}?token={ADMIN}")).await,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&srv, None, &format!("/+list?token={CUSTOMER}")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_as(&srv, None, "/+list?token=nope").await,
        StatusCode::FORBIDDEN
    );
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
    // multipart with `token` before the file
    let form = reqwest::multipart::Form::new()
        .text("token", CUSTOMER)
        .part(
            "file",
            reqwest::multipart::Part::bytes(&b"x"[..]).file_name("t.bin"),
        );
    assert_eq!(
        client()
            .post(srv.url("/+upload"))
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FOUND
    );
    // a token that does not grant create
    let form = reqwest::multipart::Form::new().text("token", READER).part(
        "file",
        reqwest::multipart::Part::bytes(&b"x"[..]).file_name("t.bin"),
    );
    assert_eq!(
        client()
            .post(srv.url("/+upload"))
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(srv.item_names().len(), 3);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_session_grants_the_secret_permissions() {
    let srv = TestServer::start().await;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let resp = browser
        .post(srv.url("/+login"))
        .form(&[("token", CUSTOMER)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let page = browser
        .get(srv.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("action=\"/+upload\"") && page.contains("Logout"),
        "{page}"
    );
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(&b"s"[..]).file_name("s.txt"),
    );
    assert_eq!(
        browser
            .post(srv.url("/+upload"))
            .multipart(form)
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
    let csrf = browser
        .post(srv.url("/+upload"))
        .header("origin", "http://evil.example")
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(&b"s"[..]).file_name("s"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(csrf.status(), StatusCode::FORBIDDEN);
    for (header, value, expected) in [
        ("origin", "null", StatusCode::FORBIDDEN),
        ("sec-fetch-site", "cross-site", StatusCode::FORBIDDEN),
        ("sec-fetch-site", "same-site", StatusCode::FORBIDDEN),
        ("sec-fetch-site", "same-origin", StatusCode::FOUND),
    ] {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(&b"s"[..]).file_name("s"),
        );
        let resp = browser
            .post(srv.url("/+upload"))
            .header(header, value)
            .multipart(form)
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
    let page = browser
        .get(srv.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("action=\"/+upload\"") && page.contains("name=\"token\""));
    // Wrong password: back to the page with a message, no session.
    let resp = browser
        .post(srv.url("/+login"))
        .form(&[("token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["location"], "/?login=failed");
    assert!(resp.headers().get("set-cookie").is_none());
    // Open redirects are not followed.
    let resp = browser
        .post(srv.url("/+login"))
        .form(&[("token", ADMIN), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["location"], "/");
    srv.stop().await;
}
