//! Multipart field handling of `POST /+upload`, through the real server in-process.
//! Input: `BOUNDARY\nBODY` (the boundary is cut at 70 bytes and kept to visible ASCII, so the
//! request head stays well-formed; the body is sent as is, with an exact `Content-Length`).
//! Every answer must be 2xx, 3xx or 4xx, within a deadline, and `<data_dir>/tmp` must empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `user:support`, as the vendor's curl command sends it.
const AUTH: &str = "Basic dXNlcjpzdXBwb3J0";
const DEADLINE: Duration = Duration::from_secs(10);

struct Server {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    tmp: PathBuf,
    _dir: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        remove_stale_data_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DATA_PREFIX}{}-", std::process::id()))
            .tempdir()
            .expect("temp dir");
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmin_free_space = \"0\"\n\
             max_file_size = \"64KiB\"\nupload_idle_timeout = \"5s\"\n\
             quota_items = 0\nquota_bytes = \"0\"\n\
             [[secrets]]\nlabel = \"customers\"\nsecret = \"support\"\npermissions = [\"create\"]\n",
            dir.path().to_str().expect("utf-8 temp dir")
        );
        let config = sfx::Config::from_toml(&toml).expect("fuzz config is valid");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let app = rt.block_on(sfx::App::bind(config)).expect("server starts");
        let addr = app.local_addr().expect("bound");
        // Runs for the life of the fuzzing process.
        rt.spawn(app.run(tokio_util::sync::CancellationToken::new()));
        Server {
            rt,
            addr,
            tmp: dir.path().join("tmp"),
            _dir: dir,
        }
    })
}

/// The data dir is in a static, so it is never dropped: each run removes what earlier runs
/// (no longer alive) left behind.
const DATA_PREFIX: &str = "sfx-fuzz-multipart-";

fn remove_stale_data_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(DATA_PREFIX))
            .and_then(|rest| rest.split('-').next());
        if let Some(pid) = pid
            && !std::path::Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (boundary, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let boundary: String = boundary
        .iter()
        .take(70)
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|&b| char::from(b))
        .collect();
    let s = server();
    let mut request = format!(
        "POST /+upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let answer =
        s.rt.block_on(async { tokio::time::timeout(DEADLINE, exchange(s.addr, &request)).await })
            .unwrap_or_else(|_| panic!("no answer within {DEADLINE:?}"));
    let status = answer
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| std::str::from_utf8(c).ok()?.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(&answer)));
    assert!(
        (200..500).contains(&status),
        "status {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    // Staged files are removed (or committed) by the time, or soon after, the answer is sent.
    let start = Instant::now();
    while std::fs::read_dir(&s.tmp).map_or(0, |d| d.count()) > 0 {
        assert!(
            start.elapsed() < DEADLINE,
            "tmp/ not emptied after {status}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
});

async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to 127.0.0.1");
    // The server may answer before reading everything (e.g. 413): that is not our failure.
    let _ = conn.write_all(request).await;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    answer
}
