//! One step of receiving: waits for the next chunk with an idle timeout, counts it against a
//! size limit and the upload's account (rate, quota, store size), and stops when the upload is
//! cut off to make room for another, so a stalled, oversized or abusive upload ends as soon as
//! it is known to be one.

use super::{Limit, Ticket};
use crate::blobs::BlobError;
use std::future::Future;
use std::task::Poll;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError<E> {
    #[error("no data received for {0:?}")]
    Idle(Duration),
    #[error("larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("cut off: too slow while upload slots were short")]
    TooSlow,
    #[error("a quota or the store's size limit was reached")]
    Limit(Limit),
    #[error(transparent)]
    Source(E),
    /// Handing on what was gathered failed (the disk).
    #[error(transparent)]
    Sink(BlobError),
}

/// How long the bytes a writer gathered may wait for the client's next chunk before they are
/// handed on. Handing them on at every pause (microseconds at loopback speed) made a batch of
/// every 64 KiB read: 9,400 `pwritev`s and 38,000 futex calls per GiB.
const HOLD_FOR: Duration = Duration::from_millis(20);

/// The `waiting` of [`receive_chunk`] for a caller with nothing gathered to hand on.
pub fn nothing_to_flush() -> std::future::Ready<Result<(), BlobError>> {
    std::future::ready(Ok(()))
}

/// Awaits `next` (the source's next chunk) for at most `idle`, adds its length to `*received`
/// and fails if that passes `limit`. When the chunk is not there within [`HOLD_FOR`], `waiting`
/// runs first: the writer hands on what it gathered (`BlobSink::flush`), so nothing of this
/// upload waits in memory, holding the writers' shared budget, on a slow client.
pub async fn receive_chunk<T: AsRef<[u8]>, E>(
    next: impl Future<Output = Result<Option<T>, E>>,
    waiting: impl Future<Output = Result<(), BlobError>>,
    idle: Duration,
    received: &mut u64,
    limit: u64,
    ticket: &Ticket,
) -> Result<Option<T>, ReceiveError<E>> {
    let mut next = std::pin::pin!(next);
    let ready = std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await;
    let chunk = match ready {
        Poll::Ready(chunk) if !ticket.is_evicted() => chunk.map_err(ReceiveError::Source)?,
        Poll::Ready(_) => return Err(ReceiveError::TooSlow),
        Poll::Pending => {
            let soon = tokio::select! {
                biased;
                chunk = next.as_mut() => Some(chunk),
                () = tokio::time::sleep(HOLD_FOR) => None,
            };
            match soon {
                Some(chunk) => chunk.map_err(ReceiveError::Source)?,
                None => {
                    waiting.await.map_err(ReceiveError::Sink)?;
                    tokio::select! {
                        chunk = tokio::time::timeout(idle, next) => chunk
                            .map_err(|_| ReceiveError::Idle(idle))?
                            .map_err(ReceiveError::Source)?,
                        () = ticket.evicted() => return Err(ReceiveError::TooSlow),
                    }
                }
            }
        }
    };
    if let Some(c) = &chunk {
        let n = c.as_ref().len() as u64;
        *received += n;
        if *received > limit {
            return Err(ReceiveError::TooLarge(limit));
        }
        ticket.record(n).map_err(ReceiveError::Limit)?;
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::admission::{Admission, AdmissionLimits};
    use crate::upload::limits::Limits;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The writer is asked to hand its bytes on only when the next chunk keeps it waiting
    /// past [`HOLD_FOR`]; a chunk that is there, or comes soon, is taken as it is.
    #[tokio::test(start_paused = true)]
    async fn gathered_bytes_are_handed_on_only_when_the_client_pauses() {
        let admission = Admission::new(AdmissionLimits {
            total: 1,
            per_client: 1,
            per_network: 1,
            min_rate: 0,
            window: Duration::from_secs(10),
        });
        let ip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let account = Limits::unlimited().account(ip, false);
        let ticket = admission.admit(ip, account).await.unwrap();
        for (delay_ms, flushed) in [
            (0, false),
            (5, false),
            (19, false),
            (21, true),
            (5000, true),
        ] {
            let asked = AtomicBool::new(false);
            let next = async {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Ok::<_, ()>(Some(vec![1u8; 3]))
            };
            let waiting = async {
                asked.store(true, Ordering::SeqCst);
                Ok(())
            };
            let mut received = 0;
            let got = receive_chunk(
                next,
                waiting,
                Duration::from_secs(60),
                &mut received,
                10,
                &ticket,
            )
            .await
            .unwrap();
            assert_eq!(got, Some(vec![1u8; 3]), "{delay_ms} ms");
            assert_eq!(received, 3);
            assert_eq!(asked.load(Ordering::SeqCst), flushed, "{delay_ms} ms");
        }
    }
}
