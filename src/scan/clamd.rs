//! The clamd protocol: `zPING`, and `zINSTREAM` (chunks of a 4-byte big-endian length and the
//! data, then a zero length), over a Unix socket or TCP; and what clamd's answer means.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest answer read from clamd (a signature name is short).
const MAX_REPLY: usize = 4096;
/// Data sent per INSTREAM chunk at most.
const MAX_CHUNK: usize = 1 << 20;
/// After clamd broke off a stream, how long its reason may take to arrive.
const REASON_WAIT: Duration = Duration::from_secs(2);

/// Where clamd listens: `unix:/run/clamav/clamd.ctl` or `tcp:HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddr {
    Unix(PathBuf),
    Tcp(String),
}

impl ClamdAddr {
    pub fn parse(text: &str) -> Result<ClamdAddr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!("`{text}`: the socket path must be absolute"));
            }
            return Ok(ClamdAddr::Unix(PathBuf::from(path)));
        }
        if let Some(hostport) = text.strip_prefix("tcp:") {
            let ok = hostport
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(format!("`{text}`: expected tcp:HOST:PORT"));
            }
            return Ok(ClamdAddr::Tcp(hostport.to_string()));
        }
        Err(format!(
            "`{text}`: expected unix:/path/to/clamd.ctl or tcp:HOST:PORT"
        ))
    }
}

impl fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ClamdAddr::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    #[error("cannot connect to clamd at {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("talking to clamd: {0}")]
    Io(io::Error),
    #[error("clamd did not answer within {0:?}")]
    Timeout(Duration),
    /// clamd reported an error of its own (not a verdict).
    #[error("clamd error: {0}")]
    Failed(String),
    #[error("clamd answered something unexpected: {0:?}")]
    Unexpected(String),
    /// The item's bytes could not be read: not clamd's fault, and not worth a retry.
    #[error("cannot read the item: {0}")]
    Source(io::Error),
}

impl ClamdError {
    /// Worth another attempt later (clamd down, busy or restarting).
    pub fn is_transient(&self) -> bool {
        !matches!(self, ClamdError::Source(_))
    }
}

/// What clamd found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    Infected(String),
    /// Not (wholly) scanned: over one of clamd's limits (what it said).
    OverLimit(String),
}

/// Reads one clamd answer: `stream: OK`, `stream: NAME FOUND`, `... ERROR`.
/// `Heuristics.Limits.Exceeded*` (clamd's `AlertExceedsMax yes`) is a limit, never a virus.
pub fn parse_reply(raw: &[u8]) -> Result<Verdict, ClamdError> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\0', '\n', '\r', ' ']).trim_start();
    if text.is_empty() {
        return Err(ClamdError::Unexpected(String::new()));
    }
    // Inside an IDSESSION replies carry a `<id>: ` prefix; zINSTREAM alone has `stream: `.
    let body = text.strip_prefix("stream:").map(str::trim_start);
    if let Some(err) = text.strip_suffix(" ERROR") {
        if err.contains("size limit exceeded") {
            return Ok(Verdict::OverLimit(err.trim_end_matches('.').to_string()));
        }
        return Err(ClamdError::Failed(err.to_string()));
    }
    match body {
        Some("OK") => Ok(Verdict::Clean),
        Some(b) => match b.strip_suffix(" FOUND") {
            Some(sig) if sig.starts_with("Heuristics.Limits.Exceeded") => {
                Ok(Verdict::OverLimit(sig.to_string()))
            }
            Some(sig) if !sig.is_empty() => Ok(Verdict::Infected(sig.to_string())),
            _ => Err(ClamdError::Unexpected(text.to_string())),
        },
        None => Err(ClamdError::Unexpected(text.to_string())),
    }
}

trait Conn: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Conn for T {}

/// A clamd client. Every step (connect, each write, the answer) has `timeout`.
#[derive(Debug, Clone)]
pub struct Clamd {
    pub addr: ClamdAddr,
    pub timeout: Duration,
}

impl Clamd {
    async fn connect(&self) -> Result<Box<dyn Conn>, ClamdError> {
        let connect = async {
            Ok::<Box<dyn Conn>, io::Error>(match &self.addr {
                ClamdAddr::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
                ClamdAddr::Tcp(a) => Box::new(tokio::net::TcpStream::connect(a.as_str()).await?),
            })
        };
        self.step(connect)
            .await?
            .map_err(|source| ClamdError::Connect {
                addr: self.addr.to_string(),
                source,
            })
    }

    async fn step<T>(&self, f: impl Future<Output = T>) -> Result<T, ClamdError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| ClamdError::Timeout(self.timeout))
    }

    /// `zPING` → `PONG`.
    pub async fn ping(&self) -> Result<(), ClamdError> {
        let mut conn = self.connect().await?;
        self.step(conn.write_all(b"zPING\0"))
            .await?
            .map_err(ClamdError::Io)?;
        let reply = self.step(read_reply(&mut conn)).await??;
        match String::from_utf8_lossy(&reply).trim_end_matches('\0') {
            "PONG" => Ok(()),
            other => Err(ClamdError::Unexpected(other.to_string())),
        }
    }

    /// Streams `data` to clamd and returns its verdict. clamd may answer before the stream ends
    /// (`INSTREAM size limit exceeded`) and close: that answer is read while sending.
    pub async fn scan<S>(&self, data: S) -> Result<Verdict, ClamdError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin + Send,
    {
        let conn = self.connect().await?;
        let (mut rx, mut tx) = tokio::io::split(conn);
        let reply = read_reply(&mut rx);
        tokio::pin!(reply);
        let sent = tokio::select! {
            early = &mut reply => return parse_reply(&early?),
            sent = self.send(&mut tx, data) => sent,
        };
        match sent {
            Ok(()) => parse_reply(&self.step(reply).await??),
            Err(ClamdError::Io(e)) => {
                // clamd hung up mid-stream: it may have said why just before.
                match tokio::time::timeout(REASON_WAIT, reply).await {
                    Ok(Ok(why)) if !why.is_empty() => parse_reply(&why),
                    _ => Err(ClamdError::Io(e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn write<W: AsyncWrite + Unpin>(
        &self,
        tx: &mut W,
        bytes: &[u8],
    ) -> Result<(), ClamdError> {
        self.step(tx.write_all(bytes))
            .await?
            .map_err(ClamdError::Io)
    }

    async fn send<W, S>(&self, tx: &mut W, mut data: S) -> Result<(), ClamdError>
    where
        W: AsyncWrite + Unpin,
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        self.write(tx, b"zINSTREAM\0").await?;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(ClamdError::Source)?;
            for piece in chunk.chunks(MAX_CHUNK) {
                self.write(tx, &(piece.len() as u32).to_be_bytes()).await?;
                self.write(tx, piece).await?;
            }
        }
        self.write(tx, &0u32.to_be_bytes()).await?;
        self.step(tx.flush()).await?.map_err(ClamdError::Io)
    }
}

/// One answer: up to its NUL (z-commands) or the end of the connection.
async fn read_reply<R: AsyncRead + Unpin>(rx: &mut R) -> Result<Vec<u8>, ClamdError> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = rx.read(&mut buf).await.map_err(ClamdError::Io)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(end) = out.iter().position(|&b| b == 0) {
            out.truncate(end);
            return Ok(out);
        }
        if out.len() > MAX_REPLY {
            return Err(ClamdError::Unexpected(
                String::from_utf8_lossy(&out[..MAX_REPLY]).into_owned(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let cases: [(&[u8], Result<Verdict, &str>); 10] = [
            (b"stream: OK\0", Ok(Verdict::Clean)),
            (b"stream: OK", Ok(Verdict::Clean)),
            (
                b"stream: Eicar-Test-Signature FOUND\0",
                Ok(Verdict::Infected("Eicar-Test-Signature".into())),
            ),
            (
                b"stream: Win.Test.EICAR_HDB-1 FOUND\n",
                Ok(Verdict::Infected("Win.Test.EICAR_HDB-1".into())),
            ),
            (
                b"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0",
                Ok(Verdict::OverLimit(
                    "Heuristics.Limits.Exceeded.MaxFileSize".into(),
                )),
            ),
            (
                b"INSTREAM size limit exceeded. ERROR\0",
                Ok(Verdict::OverLimit("INSTREAM size limit exceeded".into())),
            ),
            (b"Can't allocate memory ERROR\0", Err("Failed")),
            (b"stream:  FOUND\0", Err("Unexpected")),
            (b"PONG\0", Err("Unexpected")),
            (b"", Err("Unexpected")),
        ];
        for (raw, want) in cases {
            let got = parse_reply(raw);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{raw:?}"),
                (Err(e), Err(kind)) => {
                    assert!(format!("{e:?}").starts_with(kind), "{raw:?}: {e:?}")
                }
                _ => panic!("{raw:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            ClamdAddr::parse("unix:/run/clamav/clamd.ctl"),
            Ok(ClamdAddr::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            ClamdAddr::parse("tcp:127.0.0.1:3310"),
            Ok(ClamdAddr::Tcp("127.0.0.1:3310".into()))
        );
        for bad in [
            "unix:relative.sock",
            "tcp:host",
            "tcp::3310",
            "tcp:h:99999",
            "/x.sock",
        ] {
            assert!(ClamdAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
