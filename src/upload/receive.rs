//! One step of receiving: waits for the next chunk with an idle timeout and counts it against
//! a size limit, so a stalled or oversized upload is cut off as soon as it is known to be.

use std::future::Future;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError<E> {
    #[error("no data received for {0:?}")]
    Idle(Duration),
    #[error("larger than the limit of {0} bytes")]
    TooLarge(u64),
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
) -> Result<Option<T>, ReceiveError<E>> {
    let chunk = tokio::time::timeout(idle, next)
        .await
        .map_err(|_| ReceiveError::Idle(idle))?
        .map_err(ReceiveError::Source)?;
    if let Some(c) = &chunk {
        *received += c.as_ref().len() as u64;
        if *received > limit {
            return Err(ReceiveError::TooLarge(limit));
        }
    }
    Ok(chunk)
}
