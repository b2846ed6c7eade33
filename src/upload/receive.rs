//! One step of receiving: waits for the next chunk with an idle timeout, counts it against a
//! size limit and the upload's account (rate, quota, store size), and stops when the upload is
//! cut off to make room for another, so a stalled, oversized or abusive upload ends as soon as
//! it is known to be one.

use super::{Limit, Ticket};
use std::future::Future;
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
}

/// Awaits `next` (the source's next chunk) for at most `idle`, adds its length to `*received`
/// and fails if that passes `limit`.
pub async fn receive_chunk<T: AsRef<[u8]>, E>(
    next: impl Future<Output = Result<Option<T>, E>>,
    idle: Duration,
    received: &mut u64,
    limit: u64,
    ticket: &Ticket,
) -> Result<Option<T>, ReceiveError<E>> {
    let chunk = tokio::select! {
        chunk = tokio::time::timeout(idle, next) => chunk
            .map_err(|_| ReceiveError::Idle(idle))?
            .map_err(ReceiveError::Source)?,
        () = ticket.evicted() => return Err(ReceiveError::TooSlow),
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
