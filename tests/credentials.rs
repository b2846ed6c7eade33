//! Credentials and server-signed tokens as an attacker sends them: NUL and control characters
//! in a Basic user or password, a `token` query or form field, or a cookie are refused (400),
//! never compared or passed on; session cookies and receipt links that are forged, truncated,
//! expired, re-signed with another key or made for another purpose grant nothing.

mod common;

use common::*;
use reqwest::StatusCode;
use sfx::auth::Signer;

/// `GET /+list` (needs `list`) with the session cookie `value`.
async fn list_with_cookie(srv: &TestServer, value: &str) -> StatusCode {
    client()
        .get(srv.url("/+list"))
        .header("cookie", format!("sfx_session={value}"))
        .send()
        .await
        .unwrap()
        .status()
}

/// The admin's session cookie value, as `/+login` sets it.
async fn admin_session(srv: &TestServer) -> String {
    let resp = post_login(&client(), srv, &[("token", ADMIN)]).await;
    let set = response_header(&resp, "set-cookie");
    set.strip_prefix("sfx_session=")
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_credentials_are_refused() {
    let srv = TestServer::start().await;
    let before = srv.snapshot();
    let upload = |auth: Option<String>, query: &str, token_field: Option<&str>| {
        let mut form = file_form("c.bin", vec![1u8; 100]);
        if let Some(t) = token_field {
            form = reqwest::multipart::Form::new()
                .text("token", t.to_string())
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(vec![1u8; 100]).file_name("c.bin"),
                );
        }
        let mut req = client()
            .post(srv.url(&format!("/+upload{query}")))
            .multipart(form);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move { req.send().await.unwrap() }
    };
    let cases: Vec<(&str, Option<String>, &str, Option<&str>)> = vec![
        (
            "NUL in the Basic password",
            Some(basic("sup\0port")),
            "",
            None,
        ),
        (
            "NUL in the Basic user",
            Some(format!("Basic {}", b64(b"us\0er:support"))),
            "",
            None,
        ),
        (
            "ESC in the Basic password",
            Some(basic("support\x1b[2J")),
            "",
            None,
        ),
        (
            "CR LF in the Basic password",
            Some(basic("support\r\nX-Admin: 1")),
            "",
            None,
        ),
        (
            "DEL in the Basic user",
            Some(format!("Basic {}", b64(b"\x7f:support"))),
            "",
            None,
        ),
        (
            "invalid UTF-8 in Basic",
            Some(format!("Basic {}", b64(b"\xff\xfe:support"))),
            "",
            None,
        ),
        ("NUL in ?token=", None, "?token=sup%00port", None),
        (
            "control character in ?token=",
            None,
            "?token=support%01",
            None,
        ),
        ("NUL in the token field", None, "", Some("sup\0port")),
    ];
    for (what, auth, query, field) in cases {
        let resp = upload(auth, query, field).await;
        assert_eq!(resp.status(), 400, "{what}");
        assert!(
            resp.text().await.unwrap().contains("malformed"),
            "{what}: a reason"
        );
        srv.assert_nothing_stored(&before, what).await;
    }
    // The login form too.
    let resp = post_login(&client(), &srv, &[("token", "supp\0ort")]).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("set-cookie").is_none());
    // A cookie with a control character never reaches us (the HTTP parser refuses it).
    let raw = raw_request(
        srv.addr,
        b"GET /+list HTTP/1.1\r\nHost: x\r\nCookie: sfx_session=v1.\x01abc\r\n\r\n",
    )
    .await;
    assert!(matches!(status_of(&raw), Some(400) | Some(403)), "{raw}");
    // None of those counted as a wrong secret: the real one still works from here.
    assert_eq!(upload(Some(basic(CUSTOMER)), "", None).await.status(), 302);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_truncated_expired_and_resigned_sessions_grant_nothing() {
    let srv = TestServer::start().await;
    let good = admin_session(&srv).await;
    assert_eq!(list_with_cookie(&srv, &good).await, StatusCode::OK);
    let signer = &srv.state.auth.signer;
    let grant = srv.state.auth.secrets.by_label("support-team").unwrap();
    // What the cookie carries: v1.<sid>.<label>.<expires>.<fingerprint>.<mac>
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(parts.len(), 6, "{good}");
    let other_key = Signer::load_or_create(&tempfile::tempdir().unwrap().path().join("k")).unwrap();
    let (_, resigned) = other_key
        .new_session("support-team", &grant.fingerprint, sfx::now() + 3600)
        .unwrap();
    let (_, expired) = signer
        .new_session("support-team", &grant.fingerprint, sfx::now() - 1)
        .unwrap();
    let (_, stale) = signer
        .new_session("support-team", "an-old-fingerprint", sfx::now() + 3600)
        .unwrap();
    let (_, customers) = signer
        .new_session(
            "customers",
            &srv.state
                .auth
                .secrets
                .by_label("customers")
                .unwrap()
                .fingerprint,
            sfx::now() + 3600,
        )
        .unwrap();
    let later = format!(
        "{}.{}.{}.{}.{}.{}",
        parts[0],
        parts[1],
        parts[2],
        sfx::now() + 10 * 365 * 86400,
        parts[4],
        parts[5]
    );
    let purpose = signer.sign("receipt:x", &parts[..5].join("."));
    let cases = [
        ("truncated MAC", good[..good.len() - 4].to_string()),
        ("no MAC", parts[..5].join(".")),
        ("expiry pushed out", later),
        ("label changed", good.replace(parts[2], "Y3VzdG9tZXJz")),
        ("re-signed with another key", resigned),
        ("expired", expired),
        ("a secret that has changed since", stale),
        ("signed for another purpose", purpose),
        ("empty", String::new()),
        ("garbage", "v1.....".into()),
    ];
    for (what, value) in cases {
        assert_eq!(
            list_with_cookie(&srv, &value).await,
            StatusCode::FORBIDDEN,
            "{what}"
        );
    }
    // A customers' session is a customers' session.
    assert_eq!(
        list_with_cookie(&srv, &customers).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(list_with_cookie(&srv, &good).await, StatusCode::OK);
    srv.stop().await;
}

/// Receipt links (`/+receipt?t=`) name the items one browser session uploaded: a changed,
/// truncated, expired link, or one shown to another session, shows nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_links_only_work_as_issued() {
    let srv = TestServer::start().await;
    let (browser, jar) = browser();
    post_login(&browser, &srv, &[("token", CUSTOMER)]).await;
    let form = file_form("mine.bin", vec![5u8; 100]).text("response", "page");
    let resp = browser
        .post(srv.url("/+upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let link = response_header(&resp, "location");
    let ok = browser.get(srv.url(&link)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("mine.bin"));
    let token = link.strip_prefix("/+receipt?t=").unwrap().to_string();
    let (data, _mac) = token.rsplit_once('.').unwrap();
    let (_expires, names) = data.split_once('.').unwrap();
    let other = upload_form(&srv, file_form("someone-elses.bin", vec![6u8; 100])).await;
    let session = srv
        .state
        .auth
        .session_from(
            &{
                let mut h = http::HeaderMap::new();
                let cookies =
                    reqwest::cookie::CookieStore::cookies(&*jar, &srv.url("/").parse().unwrap())
                        .unwrap();
                h.insert("cookie", cookies.to_str().unwrap().parse().unwrap());
                h
            },
            sfx::now(),
        )
        .unwrap();
    let purpose = format!("receipt:{}", session.sid);
    let expired = srv
        .state
        .auth
        .signer
        .sign(&purpose, &format!("{}.{names}", sfx::now() - 1));
    let cases = [
        (
            "another item's name swapped in",
            token.replace(names, &other),
        ),
        (
            "an item added",
            token.replace(names, &format!("{names}-{other}")),
        ),
        ("truncated", token[..token.len() - 3].to_string()),
        ("expired", expired),
        (
            "signed for another session",
            srv.state
                .auth
                .signer
                .sign("receipt:someone", &format!("{}.{other}", sfx::now() + 60)),
        ),
    ];
    for (what, t) in cases {
        let resp = browser
            .get(srv.url(&format!("/+receipt?t={t}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{what}");
        assert!(
            !resp.text().await.unwrap().contains("someone-elses"),
            "{what}"
        );
    }
    // The genuine link in another browser (another session, or none) shows nothing either.
    assert_eq!(
        client().get(srv.url(&link)).send().await.unwrap().status(),
        403
    );
    let other_browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    post_login(&other_browser, &srv, &[("token", CUSTOMER)]).await;
    assert_eq!(
        other_browser
            .get(srv.url(&link))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    srv.stop().await;
}
