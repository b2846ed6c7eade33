//! HTTPS end to end with the real clients: the vendor's exact `curl -k` command (HTTP/1.1 and
//! HTTP/2, directly and through a CONNECT proxy), python-requests and bepasty-cli with
//! certificate verification on, the self-signed certificate and its printed fingerprint,
//! reload on SIGHUP without dropping connections, the handshake timeout, the redirecting
//! plain listener, HSTS and `Secure` cookies (also behind a TLS-terminating proxy).

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A server with `[tls] self_signed = true`.
async fn self_signed(extra: &str) -> TestServer {
    TestServer::start_with(&format!(
        "{extra}\n[tls]\nself_signed = true\nhostnames = [\"sfx.example.com\"]\n"
    ))
    .await
}

/// The vendor's documented command, against `srv`: `curl -k -F 'file=@F;type=...' URL -X POST`
/// plus `extra` args. Returns (status, HTTP version, Location).
async fn vendor_curl(
    srv: &TestServer,
    file: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (u16, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let head = tmp.path().join("head");
    let form = format!("file=@{};type=application/octet-stream", file.display());
    let url = srv.url_with_secret(CUSTOMER, "/+upload");
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "-k", "-o", "/dev/null", "-D", head.to_str().unwrap()])
        .args(["-w", "%{http_code} %{http_version}"])
        .args(["-F", &form, &url, "-X", "POST"])
        .args(extra);
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().await.expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut w = stdout.split_whitespace();
    let code = w.next().unwrap().parse().unwrap();
    let version = w.next().unwrap().to_string();
    let head = std::fs::read_to_string(&head).unwrap();
    let location = header_value(
        head.rsplit("\r\n\r\n")
            .find(|b| !b.trim().is_empty())
            .unwrap_or(&head),
        "location",
    )
    .unwrap_or_default();
    (code, version, location)
}

/// Downloads item `name` over HTTPS as admin and checks it is `data`.
async fn assert_stored(srv: &TestServer, name: &str, data: &[u8]) {
    let resp = insecure_client()
        .get(srv.url(&format!("/{name}/+download")))
        .basic_auth("user", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.unwrap() == data,
        "bytes of {name} differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_curl_command_over_https_http1_and_http2() {
    let srv = self_signed("").await;
    assert_eq!(srv.scheme, "https");
    let tmp = tempfile::tempdir().unwrap();
    let data = random_bytes(3 * MIB + 17, 7);
    let file = tmp.path().join("BUNDLE.tar.gz");
    std::fs::write(&file, &data).unwrap();
    for (args, version) in [
        (&["--http1.1"][..], "1.1"),
        (&["--http2"][..], "2"),
        (&[][..], "2"),
    ] {
        let (code, v, location) = vendor_curl(&srv, &file, args, &[]).await;
        assert_eq!((code, v.as_str()), (302, version), "curl {args:?}");
        assert!(location.ends_with("#BUNDLE.tar.gz"), "{location}");
        assert_stored(&srv, &name_from_location(&location), &data).await;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_curl_command_through_an_https_proxy() {
    let srv = self_signed("").await;
    let proxy = ConnectProxy::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = random_bytes(MIB, 8);
    let file = tmp.path().join("BUNDLE.tar.gz");
    std::fs::write(&file, &data).unwrap();
    let url = proxy.url();
    for args in [&["--http1.1"][..], &["--http2"][..]] {
        let before = proxy.tunnels();
        let (code, _, location) = vendor_curl(&srv, &file, args, &[("https_proxy", &url)]).await;
        assert_eq!(code, 302, "through the proxy {args:?}");
        assert_eq!(
            proxy.tunnels(),
            before + 1,
            "curl went through the CONNECT proxy"
        );
        assert_stored(&srv, &name_from_location(&location), &data).await;
    }
    srv.stop().await;
}

/// The vendor agent's situation: a certificate made for the host name it uses, verification on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_clients_python_requests_and_bepasty_cli() {
    let Some(python) = venv_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key) = ca.write(tmp.path(), "sfx", &["localhost"]);
    let ca_path = ca.write_ca(tmp.path());
    let srv = TestServer::start_with(&tls_files_toml(&cert, &key)).await;
    let url = format!("https://localhost:{}{ITEMS}", srv.addr.port());
    let tarball = support_tarball(tmp.path());
    let ca_env = [("REQUESTS_CA_BUNDLE", ca_path.to_str().unwrap())];
    let run = run_python(
        &python,
        tmp.path(),
        "opensvc_replay.py",
        &[&url, tarball.to_str().unwrap(), "svc1", "node1"],
        None,
        &ca_env,
    )
    .await;
    assert!(
        run.status.success(),
        "agent replay over verified HTTPS: {}",
        run.stderr
    );
    let loc = run
        .stdout
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("uploaded as https://sfx.opensvc.com"))
        .expect("Content-Location printed")
        .to_string();
    let name = loc.rsplit('/').next().unwrap();
    assert_stored(&srv, name, &std::fs::read(&tarball).unwrap()).await;
    // Verification is really on: without our CA, requests refuses the certificate.
    let untrusted = run_python(
        &python,
        tmp.path(),
        "opensvc_replay.py",
        &[&url, tarball.to_str().unwrap(), "svc1", "node1"],
        None,
        &[],
    )
    .await;
    assert!(!untrusted.status.success());
    assert!(
        untrusted.stderr.contains("CERTIFICATE_VERIFY_FAILED")
            || untrusted.stderr.contains("SSLError"),
        "{}",
        untrusted.stderr
    );
    // bepasty-cli 0.3.0 over HTTPS, chunked (2.5 MiB in 1 MiB chunks), verification on.
    let data = random_bytes(5 * MIB / 2, 9);
    let file = tmp.path().join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let base = format!("https://localhost:{}", srv.addr.port());
    let cli = bepasty_cli(
        &python,
        tmp.path(),
        &["-u", &base, "-p", CUSTOMER, file.to_str().unwrap()],
        None,
        &ca_env,
    )
    .await;
    assert!(
        cli.status.success(),
        "bepasty-cli over HTTPS: {}",
        cli.stderr
    );
    let api = cli
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{base}{ITEMS}/")))
        .expect("printed URL");
    assert_stored(&srv, api.rsplit('/').next().unwrap(), &data).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_https_and_the_fingerprint_curl_sees() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, dir) = binary_config(
        tmp.path(),
        "",
        "[tls]\nself_signed = true\nhostnames = [\"sfx.example.com\"]\n",
    );
    let bin = Binary::start(&["serve", "--config", config.to_str().unwrap()], &[], None).await;
    assert_eq!(bin.scheme(), "https");
    let line = bin
        .banner
        .iter()
        .find(|l| l.starts_with("TLS self-signed certificate"))
        .unwrap_or_else(|| panic!("{:?}", bin.banner));
    let printed = line.rsplit(' ').next().unwrap().to_string();
    // What a customer checks: the certificate the server really presents.
    let resp = insecure_client()
        .get(bin.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_fingerprint(&resp), printed);
    // openssl agrees on the file it names.
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(dir.join("tls/cert.pem"))
        .output()
        .unwrap();
    let openssl = String::from_utf8_lossy(&out.stdout);
    assert!(openssl.trim().ends_with(&printed), "{openssl} vs {printed}");
    bin.stop().await;
    // The same certificate on the next start.
    let again = Binary::start(&["serve", "--config", config.to_str().unwrap()], &[], None).await;
    let resp = insecure_client()
        .get(again.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        peer_fingerprint(&resp),
        printed,
        "the certificate is kept and reused"
    );
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_pem = ca.cert_pem.clone();
    let (cert, key) = ca.write(tmp.path(), "live", &["localhost", "127.0.0.1"]);
    let log = tmp.path().join("stderr.log");
    let (config, _) = binary_config(tmp.path(), "", &tls_files_toml(&cert, &key));
    let bin = Binary::start(
        &["serve", "--config", config.to_str().unwrap()],
        &[],
        Some(&log),
    )
    .await;
    let client = https_client(&ca_pem);
    let first = peer_fingerprint(&client.get(bin.url("/healthz")).send().await.unwrap());
    // An upload in progress on an established connection, across the reload.
    let data = random_bytes(2 * MIB, 3);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::stream(body).file_name("slow.bin"),
    );
    let upload = tokio::spawn({
        let (client, url) = (client.clone(), bin.url("/+upload"));
        async move {
            client
                .post(url)
                .basic_auth("user", Some(CUSTOMER))
                .multipart(form)
                .send()
                .await
        }
    });
    tx.send(Ok(data[..MIB].to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New certificate files, then SIGHUP.
    let (chain, new_key) = ca.issue(&["localhost", "127.0.0.1"]);
    std::fs::write(&cert, chain).unwrap();
    std::fs::write(&key, new_key).unwrap();
    bin.signal("HUP");
    let second = eventually("the new certificate", Duration::from_secs(10), async || {
        let fp = peer_fingerprint(
            &https_client(&ca_pem)
                .get(bin.url("/healthz"))
                .send()
                .await
                .map_err(|e| e.to_string())?,
        );
        if fp != first {
            Ok(fp)
        } else {
            Err("still the old one".into())
        }
    })
    .await;
    tx.send(Ok(data[MIB..].to_vec())).await.unwrap();
    drop(tx);
    let resp = upload
        .await
        .unwrap()
        .expect("the upload on the old connection finished");
    assert_eq!(resp.status(), 302);
    // A broken certificate: refused, the good one stays.
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    bin.signal("HUP");
    wait_until(
        "the reload failure is logged",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("NOT reloaded")
        },
    )
    .await;
    let still = peer_fingerprint(
        &https_client(&ca_pem)
            .get(bin.url("/healthz"))
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(still, second);
    bin.stop().await;
}

fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_handshakes_are_dropped() {
    let srv = self_signed("").await;
    let srv2 = TestServer::start_with(
        "first_byte_timeout = \"1s\"\n[tls]\nself_signed = true\nhandshake_timeout = \"1s\"\n",
    )
    .await;
    for (case, bytes) in [
        ("silent", &b""[..]),
        (
            "half a ClientHello",
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        ),
    ] {
        let mut s = tokio::net::TcpStream::connect(srv2.addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let closed = read_head(&mut s, Duration::from_secs(20)).await;
        assert!(closed.is_empty(), "{case}: nothing answered");
        // read_head returned: the server closed the connection (or 20 s passed: check which).
        let mut probe = [0u8; 1];
        let n = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::io::AsyncReadExt::read(&mut s, &mut probe),
        )
        .await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "{case}: the server closed the connection"
        );
    }
    // Others are served meanwhile.
    assert_eq!(
        insecure_client()
            .get(srv.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    srv.stop().await;
    srv2.stop().await;
}

/// Handshakes in progress are bounded (`max_handshakes`): a client stalling inside its hello
/// holds a place only until `handshake_timeout`, and a silent connection never takes one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_in_progress_are_bounded() {
    let srv = TestServer::start_with(
        "[tls]\nself_signed = true\nhandshake_timeout = \"2s\"\nmax_handshakes = 1\n",
    )
    .await;
    let _silent: Vec<_> =
        futures_util::future::join_all((0..5).map(|_| tokio::net::TcpStream::connect(srv.addr)))
            .await;
    let mut staller = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    staller.write_all(b"\x16\x03\x01\x02\x00").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let resp = insecure_client()
        .get(srv.url("/healthz"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("served once the stalled handshake's place is free");
    assert_eq!(resp.status(), 200);
    println!("waited {:?} for a handshake place", started.elapsed());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_listener_redirects_and_stores_nothing() {
    let srv =
        TestServer::start_with("redirect_http_from = \"127.0.0.1:0\"\n[tls]\nself_signed = true\n")
            .await;
    let port = srv.redirect.expect("the redirect listener").port();
    let before = srv.snapshot();
    let tmp = tempfile::tempdir().unwrap();
    let file = random_file(tmp.path(), "b.tgz", 200_000, 1);
    let st = curl_status(&[
        "-F",
        &format!("file=@{}", file.display()),
        &format!("http://user:support@127.0.0.1:{port}/+upload?x=1"),
        "-X",
        "POST",
    ])
    .await;
    assert_eq!(st.code, 308, "{}", st.body);
    assert!(
        st.body.contains(&format!(
            "https://127.0.0.1:{}/+upload?x=1",
            srv.addr.port()
        )),
        "{}",
        st.body
    );
    assert!(st.body.contains("nothing was stored"));
    srv.assert_nothing_stored(&before, "upload to the redirect listener")
        .await;
    let out = curl(&[
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{redirect_url}",
        &format!("http://127.0.0.1:{port}/+list"),
    ])
    .await;
    assert_eq!(
        out.stdout,
        format!("https://127.0.0.1:{}/+list", srv.addr.port())
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_and_secure_cookies_on_tls_and_behind_a_trusted_proxy() {
    // Over TLS.
    let srv = self_signed("").await;
    let login = insecure_client()
        .post(srv.url("/+login"))
        .form(&[("token", CUSTOMER)])
        .send()
        .await
        .unwrap();
    let cookie = response_header(&login, "set-cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert_eq!(
        response_header(&login, "strict-transport-security"),
        "max-age=31536000"
    );
    srv.stop().await;
    // Plain HTTP: neither (a Secure cookie would never come back).
    let plain = TestServer::start_with("trusted_proxies = [\"127.0.0.1/32\"]").await;
    let login = post_login(&client(), &plain, &[("token", CUSTOMER)]).await;
    assert!(!response_header(&login, "set-cookie").contains("Secure"));
    assert!(login.headers().get("strict-transport-security").is_none());
    // Behind a TLS-terminating proxy that is trusted: X-Forwarded-Proto counts.
    let proxied = client()
        .post(plain.url("/+login"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", CUSTOMER)])
        .send()
        .await
        .unwrap();
    assert!(response_header(&proxied, "set-cookie").contains("; Secure"));
    assert!(proxied.headers().get("strict-transport-security").is_some());
    plain.stop().await;
    // From anybody else the header is ignored.
    let untrusted = TestServer::start().await;
    let forged = client()
        .post(untrusted.url("/+login"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", CUSTOMER)])
        .send()
        .await
        .unwrap();
    assert!(!response_header(&forged, "set-cookie").contains("Secure"));
    untrusted.stop().await;
}
